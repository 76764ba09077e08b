// The resource sampler (ResourceMonitor, memoryLimit's RSS watchdog) and the rlimit calls of the addon.
//
// THE ONE DELIBERATE PROCESS-WIDE OBJECT of the addon: RSS and CPU time belong to the process, so
// one sampler thread serves every monitor of every thread and worker. It is created once
// (std::call_once), guarded by a std::mutex, reference-counted by the monitors (slots) and the
// watchdog that use it, and never destroyed (leaked on purpose: a static destructor joining a thread
// at exit could deadlock). Each environment (main thread, worker) that uses it registers a cleanup
// hook that releases its slots and its watchdog when the environment is torn down, so a terminated
// worker never leaves the thread running.
//
// The thread makes no V8 or Node-API call except napi_call_threadsafe_function (the watchdog): it
// reads /proc/self/statm (kept open, pread) and CLOCK_PROCESS_CPUTIME_ID into a ring buffer, so it
// keeps sampling while the JS thread is blocked by a long synchronous step.
//
// Cost (bench/host.ts, AMD EPYC VM with 2 cores, Node 20.20, a loaded machine): 65–110 µs of the
// thread's own CPU clock per sample, 0.66–0.98 % of one core at a 10 ms interval. A wakeup is most
// of it: a bare 10 ms sleep/wake loop in C costs 25–60 µs per wakeup on that VM, and the pread of
// statm plus the CPU clock 3.3 µs when hot. On bare metal expect a few µs.
#pragma once
#include <node_api.h>

#include <cstddef>
#include <cstdint>

#include "opcodes.h"

namespace wpipe::sampler {

/** Samples kept in the ring (at a 10 ms interval: 82 s). Older samples still count in each slot's aggregates. */
constexpr size_t kRingSamples = 8192;
/** Doubles per sample: monotonic time (ms), RSS (bytes), process CPU time (s), CPU % of one core since the previous sample. */
constexpr size_t kSampleFields = 4;
/** Doubles of a read header, by SamplerHeaderField (src/vm/contract.ts, generated into opcodes.h). */
constexpr size_t kHeaderFields = (size_t)kSamplerHeaderFieldCount;
/** Doubles of info(), by SamplerInfoField (src/vm/contract.ts, generated into opcodes.h). */
constexpr size_t kInfoFields = (size_t)kSamplerInfoFieldCount;

/** Fills out[0..2] with the monotonic time (ms), RSS (bytes, NaN if /proc/self/statm is unreadable) and process CPU time (s). */
void now(double out[3]);

/**
 * Adds a slot (a monitor) sampled at least every `intervalMs`; starts the thread if it is the first
 * user. `owner` is the environment whose teardown releases it. Returns the slot id (> 0).
 */
uint32_t start(napi_env owner, double intervalMs);

/**
 * Reads a slot into header[SamplerHeaderField::*]: samples, peak RSS, peak CPU %, first seq still in
 * the ring, start seq, end seq (exclusive), thread interval ms, sum of CPU %, RSS of the last sample,
 * time of the last sample. Returns false for an unknown slot.
 */
bool read(uint32_t id, double header[kHeaderFields]);

/** Copies the samples of seq in [from, end) still in the ring into out (4 doubles each), at most cap; returns how many. */
size_t copy(uint32_t id, uint64_t from, double* out, size_t cap);

/** Releases a slot; stops the thread when nothing uses it. Returns false for an unknown slot. */
bool stop(uint32_t id);

/**
 * Fills out[SamplerInfoField::*]: thread running, thread interval ms, active slots, samples taken, ring
 * capacity, watchdog limit bytes, watchdog fired count, envs, CPU seconds the sampler thread has used
 * (all its runs).
 */
void info(double out[kInfoFields]);

/**
 * Arms the RSS watchdog of `owner`'s environment: when a sample's RSS exceeds `limitBytes`, `tsfn`
 * is called (once per crossing; re-armed when RSS falls back below the limit) with the RSS as a
 * heap-allocated double that the JS-side call deletes. limitBytes 0 disarms (and releases the tsfn).
 * One watchdog per process: arming replaces the previous one.
 */
void watchdog(napi_env owner, double limitBytes, double intervalMs, napi_threadsafe_function tsfn);

/** Called from the watchdog tsfn's finalizer: forgets it if it is still the armed one. */
void forgetTsfn(napi_threadsafe_function tsfn);

}  // namespace wpipe::sampler
