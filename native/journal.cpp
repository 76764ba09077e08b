// Step-journal windows (src/storage/journal.ts): a region of the journal file mapped MAP_SHARED into
// the process, so that appending a line is a copy into the page cache instead of a write(2) call.
// Durability against a killed process is the same as write(2)'s: the bytes are in the kernel's page
// cache the moment they are copied, and the kernel writes them back whatever happens to the process.
//
// The region is reserved with posix_fallocate before it is mapped: a store into a mapped page whose
// blocks cannot be allocated (a full disk) would kill the process with SIGBUS, so a region that
// cannot be reserved is never mapped (the caller then appends with write(2)).
//
// Lifetime: mapJournal returns an external ArrayBuffer over the region. unmapJournal unmaps it at
// once and detaches the buffer (its length becomes 0, so a stray view can no longer reach the
// memory); a buffer dropped without unmapJournal is unmapped by its finalizer.
#include <napi.h>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <mutex>
#include <string>
#include <sys/mman.h>
#include <unistd.h>
#include <unordered_map>

#include "journal.h"

namespace wpipe {
namespace {

struct Region {
  void* addr;
  size_t length;
  bool live;
};

// Live regions by address, so unmapJournal finds the region of a buffer. A region's finalizer hint
// is its own Region, which outlives any reuse of the address by a later mapping.
std::mutex regionsLock;
std::unordered_map<void*, Region*> regions;

Napi::Error ioError(Napi::Env env, const char* what, int err) {
  Napi::Error e = Napi::Error::New(env, std::string(what) + ": " + std::strerror(err));
  e.Set("code", Napi::String::New(env, "WPIPE_ERR_STORAGE"));
  e.Set("errno", Napi::Number::New(env, err));
  return e;
}

void unmapLocked(Region* r) {
  if (!r->live) return;
  munmap(r->addr, r->length);
  r->live = false;
  auto it = regions.find(r->addr);
  if (it != regions.end() && it->second == r) regions.erase(it);
}

void finalizeRegion(napi_env, void*, void* hint) {
  Region* r = static_cast<Region*>(hint);
  {
    std::lock_guard<std::mutex> guard(regionsLock);
    unmapLocked(r);
  }
  delete r;
}

}  // namespace

/** mapJournal(fd: number, start: number, length: number): ArrayBuffer — start page-aligned. */
Napi::Value MapJournal(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsNumber()) {
    throw Napi::TypeError::New(env, "mapJournal(fd, start, length) takes three numbers");
  }
  const int fd = info[0].As<Napi::Number>().Int32Value();
  const double startD = info[1].As<Napi::Number>().DoubleValue();
  const double lengthD = info[2].As<Napi::Number>().DoubleValue();
  const long page = sysconf(_SC_PAGESIZE);
  if (startD < 0 || lengthD <= 0 || startD > 9e15 || lengthD > 1e12) throw Napi::RangeError::New(env, "mapJournal: bad range");
  const off_t start = static_cast<off_t>(startD);
  const size_t length = static_cast<size_t>(lengthD);
  if (page <= 0 || start % page != 0) throw Napi::RangeError::New(env, "mapJournal: start is not page-aligned");
  // posix_fallocate returns the error number (it does not set errno).
  int err = posix_fallocate(fd, start, static_cast<off_t>(length));
  if (err != 0) throw ioError(env, "reserving journal space (posix_fallocate)", err);
  void* addr = mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, start);
  if (addr == MAP_FAILED) throw ioError(env, "mapping the journal (mmap)", errno);
  Region* r = new Region{addr, length, true};
  {
    std::lock_guard<std::mutex> guard(regionsLock);
    regions[addr] = r;
  }
  napi_value ab;
  if (napi_create_external_arraybuffer(env, addr, length, finalizeRegion, r, &ab) != napi_ok) {
    {
      std::lock_guard<std::mutex> guard(regionsLock);
      unmapLocked(r);
    }
    delete r;
    throw Napi::Error::New(env, "mapJournal: external ArrayBuffers are not supported here");
  }
  return Napi::Value(env, ab);
}

/** unmapJournal(buffer: ArrayBuffer): unmaps a region now and detaches its buffer. */
Napi::Value UnmapJournal(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArrayBuffer()) throw Napi::TypeError::New(env, "unmapJournal(buffer) takes an ArrayBuffer");
  Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
  void* addr = ab.Data();
  bool found = false;
  {
    std::lock_guard<std::mutex> guard(regionsLock);
    auto it = regions.find(addr);
    if (it != regions.end() && it->second->length == ab.ByteLength()) {
      unmapLocked(it->second);
      found = true;
    }
  }
  if (found) ab.Detach();
  return Napi::Boolean::New(env, found);
}

}  // namespace wpipe
