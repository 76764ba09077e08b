// The process-wide resource sampler: see sampler.h for why it is process-wide and how it is freed.
#include "sampler.h"

#include <fcntl.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace wpipe::sampler {
namespace {

double monotonicMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

// CLOCK_PROCESS_CPUTIME_ID: the scheduler's exact runtime of all threads (getrusage is rounded to
// ticks on some kernels, which makes 10 ms CPU percentages jump between 0 and 200).
double cpuSeconds() {
  timespec ts;
  if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0) return std::nan("");
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/** The RSS in bytes from an open /proc/self/statm (second field, in pages), or NaN. */
double rssFrom(int fd, double pageSize) {
  if (fd < 0) return std::nan("");
  char buf[128];
  ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return std::nan("");
  buf[n] = 0;
  char* p = buf;
  std::strtoull(p, &p, 10);  // size
  char* end = p;
  unsigned long long resident = std::strtoull(p, &end, 10);
  if (end == p) return std::nan("");
  return (double)resident * pageSize;
}

struct Slot {
  uint32_t id;
  napi_env owner;
  double intervalMs;
  uint64_t startSeq;
  uint64_t count = 0;
  double peakRss = 0;
  double peakCpu = 0;
  double sumCpu = 0;
};

void envCleanup(void* arg);

class Sampler {
 public:
  Sampler() : ring_(kRingSamples * kSampleFields, 0.0) {
    pageSize_ = (double)sysconf(_SC_PAGESIZE);
    statmFd_ = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  }

  void now(double out[3]) {
    out[0] = monotonicMs();
    out[1] = rssFrom(statmFd_, pageSize_);
    out[2] = cpuSeconds();
  }

  uint32_t start(napi_env owner, double intervalMs) {
    std::lock_guard<std::mutex> life(lifecycle_);
    uint32_t id;
    {
      std::lock_guard<std::mutex> lock(mu_);
      trackEnv(owner);
      id = nextId_++;
      Slot s{};
      s.id = id;
      s.owner = owner;
      s.intervalMs = intervalMs;
      s.startSeq = seq_;
      slots_.push_back(s);
      retune();
    }
    ensureThread();
    return id;
  }

  bool read(uint32_t id, double h[kHeaderFields]) {
    std::lock_guard<std::mutex> lock(mu_);
    const Slot* s = find(id);
    if (!s) return false;
    namespace H = SamplerHeaderField;
    uint64_t oldest = seq_ > kRingSamples ? seq_ - kRingSamples : 0;
    h[H::SAMPLES] = (double)s->count;
    h[H::PEAK_RSS] = s->peakRss;
    h[H::PEAK_CPU] = s->peakCpu;
    h[H::FIRST_SEQ] = (double)std::max(oldest, s->startSeq);
    h[H::START_SEQ] = (double)s->startSeq;
    h[H::END_SEQ] = (double)seq_;
    h[H::INTERVAL_MS] = intervalMs_;
    h[H::SUM_CPU] = s->sumCpu;
    if (seq_ > 0) {
      const double* last = &ring_[((seq_ - 1) % kRingSamples) * kSampleFields];
      h[H::LAST_RSS] = last[1];
      h[H::LAST_TIME] = last[0];
    } else {
      h[H::LAST_RSS] = std::nan("");
      h[H::LAST_TIME] = std::nan("");
    }
    return true;
  }

  size_t copy(uint32_t id, uint64_t from, double* out, size_t cap) {
    std::lock_guard<std::mutex> lock(mu_);
    const Slot* s = find(id);
    if (!s) return 0;
    uint64_t oldest = seq_ > kRingSamples ? seq_ - kRingSamples : 0;
    uint64_t first = std::max({from, oldest, s->startSeq});
    size_t n = 0;
    for (uint64_t q = first; q < seq_ && n < cap; q++, n++) {
      std::memcpy(out + n * kSampleFields, &ring_[(q % kRingSamples) * kSampleFields], kSampleFields * sizeof(double));
    }
    return n;
  }

  bool stop(uint32_t id) {
    std::lock_guard<std::mutex> life(lifecycle_);
    bool found = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = std::find_if(slots_.begin(), slots_.end(), [&](const Slot& s) { return s.id == id; });
      if (it != slots_.end()) {
        slots_.erase(it);
        found = true;
        retune();
      }
    }
    stopThreadIfUnused();
    return found;
  }

  void releaseEnv(napi_env env) {
    std::lock_guard<std::mutex> life(lifecycle_);
    napi_threadsafe_function tsfn = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      envs_.erase(env);
      slots_.erase(std::remove_if(slots_.begin(), slots_.end(), [&](const Slot& s) { return s.owner == env; }), slots_.end());
      if (watchEnv_ == env) {
        tsfn = watchTsfn_;
        disarm();
      }
      retune();
    }
    // The environment is going away: Node finalizes its threadsafe functions itself; abort ours so no
    // queued call runs into a dead environment.
    if (tsfn) napi_release_threadsafe_function(tsfn, napi_tsfn_abort);
    stopThreadIfUnused();
  }

  void info(double out[kInfoFields]) {
    std::lock_guard<std::mutex> lock(mu_);
    namespace I = SamplerInfoField;
    out[I::RUNNING] = running_ ? 1 : 0;
    out[I::INTERVAL_MS] = intervalMs_;
    out[I::SLOTS] = (double)slots_.size();
    out[I::SAMPLES_TAKEN] = (double)seq_;
    out[I::RING_CAPACITY] = (double)kRingSamples;
    out[I::WATCHDOG_LIMIT] = watchLimit_;
    out[I::WATCHDOG_FIRED] = (double)watchFired_;
    out[I::ENVS] = (double)envs_.size();
    out[I::THREAD_CPU] = selfCpuDone_ + selfCpu_;
  }

  void watchdog(napi_env owner, double limitBytes, double intervalMs, napi_threadsafe_function tsfn) {
    std::lock_guard<std::mutex> life(lifecycle_);
    napi_threadsafe_function old = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      old = watchTsfn_;
      disarm();
      if (limitBytes > 0 && tsfn) {
        trackEnv(owner);
        watchLimit_ = limitBytes;
        watchIntervalMs_ = intervalMs;
        watchTsfn_ = tsfn;
        watchEnv_ = owner;
      }
      retune();
    }
    if (old) napi_release_threadsafe_function(old, napi_tsfn_release);
    if (limitBytes > 0 && tsfn) ensureThread();
    else stopThreadIfUnused();
  }

  void forgetTsfn(napi_threadsafe_function tsfn) {
    std::lock_guard<std::mutex> lock(mu_);
    if (watchTsfn_ == tsfn) {
      disarm();
      retune();
      // The thread keeps its current interval until the next start/stop; it stops with its last user.
    }
  }

 private:
  const Slot* find(uint32_t id) const {
    for (const Slot& s : slots_) if (s.id == id) return &s;
    return nullptr;
  }

  // Callers hold mu_.
  void trackEnv(napi_env env) {
    if (envs_.insert(env).second) napi_add_env_cleanup_hook(env, envCleanup, env);
  }

  void disarm() {
    watchLimit_ = 0;
    watchTsfn_ = nullptr;
    watchEnv_ = nullptr;
    watchArmed_ = true;
  }

  bool used() const { return !slots_.empty() || watchTsfn_ != nullptr; }

  /** The thread's interval: the smallest any user asked for. Callers hold mu_. */
  void retune() {
    double iv = std::numeric_limits<double>::infinity();
    for (const Slot& s : slots_) iv = std::min(iv, s.intervalMs);
    if (watchTsfn_) iv = std::min(iv, watchIntervalMs_);
    if (std::isfinite(iv) && iv != intervalMs_) {
      intervalMs_ = iv;
      cv_.notify_all();
    }
  }

  // Callers hold lifecycle_ (not mu_).
  void ensureThread() {
    std::unique_lock<std::mutex> lock(mu_);
    if (running_ || !used()) return;
    running_ = true;
    quit_ = false;
    lock.unlock();
    thread_ = std::thread([this] { loop(); });
  }

  void stopThreadIfUnused() {
    std::unique_lock<std::mutex> lock(mu_);
    if (!running_ || used()) return;
    quit_ = true;
    cv_.notify_all();
    lock.unlock();
    thread_.join();
    lock.lock();
    running_ = false;
    // The finished thread's CPU time, kept for info() (the bench's exact cost of sampling).
    selfCpuDone_ += selfCpu_;
    selfCpu_ = 0;
  }

  void loop() {
    pthread_setname_np(pthread_self(), "wpipe-sampler");
    std::unique_lock<std::mutex> lock(mu_);
    auto next = std::chrono::steady_clock::now();
    double lastT = 0, lastCpu = 0;
    bool havePrev = false;
    while (!quit_) {
      // Sample outside the lock: a pread and a clock read, no V8.
      lock.unlock();
      double s[3];
      now(s);
      timespec own;
      clock_gettime(CLOCK_THREAD_CPUTIME_ID, &own);
      lock.lock();
      selfCpu_ = (double)own.tv_sec + (double)own.tv_nsec / 1e9;
      if (quit_) break;
      double cpuPct = havePrev && s[0] > lastT ? (s[2] - lastCpu) * 1e3 / (s[0] - lastT) * 100.0 : 0.0;
      if (!(cpuPct >= 0)) cpuPct = 0;
      lastT = s[0];
      lastCpu = s[2];
      havePrev = true;
      double* slot = &ring_[(seq_ % kRingSamples) * kSampleFields];
      slot[0] = s[0];
      slot[1] = s[1];
      slot[2] = s[2];
      slot[3] = cpuPct;
      seq_++;
      for (Slot& sl : slots_) {
        sl.count++;
        if (s[1] > sl.peakRss) sl.peakRss = s[1];
        if (cpuPct > sl.peakCpu) sl.peakCpu = cpuPct;
        sl.sumCpu += cpuPct;
      }
      if (watchTsfn_ && s[1] > watchLimit_) {
        if (watchArmed_) {
          watchArmed_ = false;
          watchFired_++;
          double* rss = new double(s[1]);
          if (napi_call_threadsafe_function(watchTsfn_, rss, napi_tsfn_nonblocking) != napi_ok) delete rss;
        }
      } else if (s[1] <= watchLimit_) {
        watchArmed_ = true;
      }
      // Fixed rate, no catch-up bursts after a stall (a suspended process, a busy machine).
      auto period = std::chrono::duration<double, std::milli>(intervalMs_);
      next += std::chrono::duration_cast<std::chrono::steady_clock::duration>(period);
      auto t = std::chrono::steady_clock::now();
      if (next < t) next = t + std::chrono::duration_cast<std::chrono::steady_clock::duration>(period);
      double iv = intervalMs_;
      cv_.wait_until(lock, next, [&] { return quit_ || intervalMs_ < iv; });
      if (intervalMs_ < iv) next = std::chrono::steady_clock::now();
    }
  }

  std::mutex lifecycle_;  // serializes thread start/join; never taken by the thread
  std::mutex mu_;         // everything below
  std::condition_variable cv_;
  std::thread thread_;
  bool running_ = false;
  bool quit_ = false;
  double intervalMs_ = 100;
  std::vector<Slot> slots_;
  uint32_t nextId_ = 1;
  std::vector<double> ring_;
  uint64_t seq_ = 0;
  std::set<napi_env> envs_;
  double watchLimit_ = 0;
  double watchIntervalMs_ = 50;
  napi_threadsafe_function watchTsfn_ = nullptr;
  napi_env watchEnv_ = nullptr;
  bool watchArmed_ = true;
  uint64_t watchFired_ = 0;
  double selfCpu_ = 0;      // CPU seconds of the running thread, as of its last sample
  double selfCpuDone_ = 0;  // of the threads that have finished
  int statmFd_ = -1;
  double pageSize_ = 4096;
};

std::once_flag once;
Sampler* instance = nullptr;  // set once under `once`, never freed (see sampler.h)

Sampler& the() {
  std::call_once(once, [] { instance = new Sampler(); });
  return *instance;
}

void envCleanup(void* arg) { the().releaseEnv(static_cast<napi_env>(arg)); }

}  // namespace

void now(double out[3]) { the().now(out); }
uint32_t start(napi_env owner, double intervalMs) { return the().start(owner, intervalMs); }
bool read(uint32_t id, double header[kHeaderFields]) { return the().read(id, header); }
size_t copy(uint32_t id, uint64_t from, double* out, size_t cap) { return the().copy(id, from, out, cap); }
bool stop(uint32_t id) { return the().stop(id); }
void info(double out[kInfoFields]) { the().info(out); }
void watchdog(napi_env owner, double limitBytes, double intervalMs, napi_threadsafe_function tsfn) {
  the().watchdog(owner, limitBytes, intervalMs, tsfn);
}
void forgetTsfn(napi_threadsafe_function tsfn) { the().forgetTsfn(tsfn); }

}  // namespace wpipe::sampler
