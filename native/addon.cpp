// The N-API surface of the addon (typed by NativeBinding in src/backend/addon.ts; loaded only by
// src/backend/addon.ts). Everything crosses as flat buffers: Int32Array code, Uint8Array tapes,
// Float64Array/Uint8Array columns, an Int32Array of fault words (FaultWord, kFaultWordCount of them).
//
// Worker-safe by construction: no mutable statics; per-environment scratch lives in napi instance
// data (freed by its finalizer when the environment is torn down); programs are external objects
// owned by the environment that prepared them; process-wide setup (CPU feature detection) runs once
// under std::call_once. The one deliberate process-wide object is the resource sampler (sampler.h):
// RSS and CPU time are the process's, so one thread serves every environment; each environment's
// cleanup hook releases what it holds.
#include <napi.h>
#include <sys/resource.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <mutex>
#include <new>
#include <string>

#include "sampler.h"
#include "vm.h"

namespace {

using wpipe::EnvState;
using wpipe::Program;

// Distinguishes our program externals from any other external (napi_type_tag_object, Node-API 8).
constexpr napi_type_tag kProgramTag = {0x77706970652d7670ULL, 0x726f6772616d2d31ULL};

EnvState& state(Napi::Env env) { return *env.GetInstanceData<EnvState>(); }

[[noreturn]] void throwType(Napi::Env env, const char* msg) { throw Napi::TypeError::New(env, msg); }
[[noreturn]] void throwType(Napi::Env env, const std::string& msg) { throw Napi::TypeError::New(env, msg); }

/** Throws unless the fault array holds every fault word (its length comes from the contract). */
void checkFaultLength(Napi::Env env, size_t faultLen) {
  if (faultLen < (size_t)wpipe::kFaultWordCount) {
    throwType(env, "fault must hold " + std::to_string(wpipe::kFaultWordCount) + " words (FaultWord)");
  }
}

template <typename T>
T* typedArray(Napi::Env env, napi_value v, napi_typedarray_type want, size_t* length, const char* what) {
  // napi_get_typedarray_info fails on anything that is not a typed array: one call checks and reads.
  napi_typedarray_type type;
  void* data = nullptr;
  napi_value ab;
  size_t offset;
  if (napi_get_typedarray_info(env, v, &type, length, &data, &ab, &offset) != napi_ok || type != want) {
    throwType(env, what);
  }
  return static_cast<T*>(data);
}

Program* program(Napi::Env env, napi_value v) {
  bool ok = false;
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external ||
      napi_check_object_type_tag(env, v, &kProgramTag, &ok) != napi_ok || !ok) {
    throwType(env, "expected a program handle from prepare()");
  }
  void* p = nullptr;
  napi_get_value_external(env, v, &p);
  return static_cast<Program*>(p);
}

Napi::Error internalError(Napi::Env env, const std::string& message) {
  Napi::Error e = Napi::Error::New(env, "wpipe native VM: " + message);
  e.Set("code", Napi::String::New(env, "WPIPE_ERR_INTERNAL"));
  return e;
}

/** prepare(code: Int32Array, consts: Uint8Array, strings: Uint8Array, kinds: Uint8Array | null) */
Napi::Value Prepare(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4) throwType(env, "prepare(code, consts, strings, kinds) takes four arguments");
  size_t codeLen, constsLen, stringsLen, nKinds = 0;
  auto* code = typedArray<int32_t>(env, info[0], napi_int32_array, &codeLen, "code must be an Int32Array");
  auto* consts = typedArray<uint8_t>(env, info[1], napi_uint8_array, &constsLen, "consts must be a Uint8Array");
  auto* strings = typedArray<uint8_t>(env, info[2], napi_uint8_array, &stringsLen, "strings must be a Uint8Array");
  const uint8_t* kinds = nullptr;
  bool batch = !info[3].IsNull() && !info[3].IsUndefined();
  if (batch) kinds = typedArray<uint8_t>(env, info[3], napi_uint8_array, &nKinds, "kinds must be a Uint8Array or null");
  const uint8_t noKinds = 0;  // a batch program over no columns still needs a non-null kinds pointer
  if (batch && !kinds) kinds = &noKinds;
  std::unique_ptr<Program> p;
  try {
    p = wpipe::prepareProgram(code, codeLen, consts, constsLen, strings, stringsLen, kinds, nKinds);
  } catch (const std::exception& e) {
    throw internalError(env, e.what());
  }
  auto ext = Napi::External<Program>::New(env, p.release(), [](Napi::Env, Program* q) { delete q; });
  napi_type_tag_object(env, ext, &kProgramTag);
  return ext;
}

/**
 * evaluate(program, ctx: Uint8Array, out: Uint8Array, fault: Int32Array): number
 * >= 0: the result tape's length (copied into `out` when it fits, else fetch it with takeResult);
 * -1: an expression error, `fault` holds its fault words.
 */
Napi::Value Evaluate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4) throwType(env, "evaluate(program, ctx, out, fault) takes four arguments");
  Program* p = program(env, info[0]);
  size_t ctxLen, outLen, faultLen;
  auto* ctx = typedArray<uint8_t>(env, info[1], napi_uint8_array, &ctxLen, "ctx must be a Uint8Array");
  auto* out = typedArray<uint8_t>(env, info[2], napi_uint8_array, &outLen, "out must be a Uint8Array");
  auto* fault = typedArray<int32_t>(env, info[3], napi_int32_array, &faultLen, "fault must be an Int32Array");
  checkFaultLength(env, faultLen);
  if (p->batch) throwType(env, "a batch program cannot be evaluated as a scalar program");
  EnvState& st = state(env);
  bool ok;
  try {
    ok = wpipe::evaluateScalar(*p, st, ctx, ctxLen, fault);
  } catch (const std::exception& e) {
    throw internalError(env, e.what());
  }
  if (!ok) return Napi::Number::New(env, -1);
  size_t n = st.out.size();
  if (n <= outLen) std::memcpy(out, st.out.data(), n);
  return Napi::Number::New(env, (double)n);
}

/** takeResult(out: Uint8Array): copies the last result tape (when it did not fit); returns its length. */
Napi::Value TakeResult(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t outLen;
  auto* out = typedArray<uint8_t>(env, info[0], napi_uint8_array, &outLen, "out must be a Uint8Array");
  EnvState& st = state(env);
  if (!st.hasResult) throw internalError(env, "no result to take");
  if (outLen < st.out.size()) throwType(env, "out is too small for the result");
  std::memcpy(out, st.out.data(), st.out.size());
  return Napi::Number::New(env, (double)st.out.size());
}

/**
 * runBatch(program, columns: (Float64Array | Uint8Array)[], rows: number, out: Uint8Array,
 *          fault: Int32Array): number — -1, or the first failing row (fault filled).
 */
Napi::Value RunBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 5) throwType(env, "runBatch(program, columns, rows, out, fault) takes five arguments");
  Program* p = program(env, info[0]);
  if (!info[1].IsArray()) throwType(env, "columns must be an array");
  Napi::Array arr = info[1].As<Napi::Array>();
  uint32_t nCols = arr.Length();
  std::vector<wpipe::Column> cols(nCols);
  for (uint32_t i = 0; i < nCols; i++) {
    Napi::Value c = arr.Get(i);
    if (!c.IsTypedArray()) throwType(env, "a column must be a Float64Array or a Uint8Array");
    napi_typedarray_type type;
    size_t length;
    void* data;
    napi_value ab;
    size_t offset;
    napi_get_typedarray_info(env, c, &type, &length, &data, &ab, &offset);
    if (type != napi_float64_array && type != napi_uint8_array) throwType(env, "a column must be a Float64Array or a Uint8Array");
    cols[i] = wpipe::Column{data, length, type == napi_uint8_array};
  }
  if (!info[2].IsNumber()) throwType(env, "rows must be a number");
  double rowsD = info[2].As<Napi::Number>().DoubleValue();
  if (!(rowsD >= 0) || rowsD > 2147483647.0 || rowsD != (double)(int64_t)rowsD) throwType(env, "rows must be a non-negative integer");
  size_t rows = (size_t)rowsD;
  size_t outLen, faultLen;
  auto* out = typedArray<uint8_t>(env, info[3], napi_uint8_array, &outLen, "out must be a Uint8Array");
  auto* fault = typedArray<int32_t>(env, info[4], napi_int32_array, &faultLen, "fault must be an Int32Array");
  checkFaultLength(env, faultLen);
  if (outLen < rows) throwType(env, "out is shorter than rows");
  int64_t r;
  try {
    r = wpipe::runBatch(*p, state(env), cols.data(), cols.size(), rows, out, fault);
  } catch (const std::exception& e) {
    throw internalError(env, e.what());
  }
  return Napi::Number::New(env, (double)r);
}

// ---------------------------------------------------------------------------------------------
// The resource sampler (sampler.h) and rlimits. src/backend/addon.ts validates every argument; these
// only check what would make C++ misbehave (types, lengths).

/** A Float64Array of at least `min` doubles; `what` says what it must be ("out must be a Float64Array"). */
double* f64(Napi::Env env, napi_value v, size_t min, const char* what) {
  size_t n;
  auto* p = typedArray<double>(env, v, napi_float64_array, &n, what);
  if (n < min) throwType(env, std::string(what) + " of at least " + std::to_string(min));
  return p;
}

double number(Napi::Env env, const Napi::Value& v, const char* what) {
  if (!v.IsNumber()) throwType(env, what);
  return v.As<Napi::Number>().DoubleValue();
}

uint32_t slotId(Napi::Env env, const Napi::Value& v) {
  double d = number(env, v, "a sampler slot id must be a number");
  if (!(d >= 1 && d <= 4294967295.0)) throwType(env, "a sampler slot id must be a positive integer");
  return (uint32_t)d;
}

/** samplerNow(out: Float64Array(3)): [monotonic ms, RSS bytes, process CPU seconds]. */
Napi::Value SamplerNow(const Napi::CallbackInfo& info) {
  wpipe::sampler::now(f64(info.Env(), info[0], 3, "out must be a Float64Array"));
  return info.Env().Undefined();
}

/** samplerStart(intervalMs): a slot id; the sampler thread runs while any slot or watchdog is active. */
Napi::Value SamplerStart(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double iv = number(env, info[0], "intervalMs must be a number");
  if (!(iv >= 1 && iv <= 3600000)) throwType(env, "intervalMs must be from 1 to 3600000");
  return Napi::Number::New(env, wpipe::sampler::start(env, iv));
}

/** samplerRead(id, header: Float64Array(kSamplerHeaderFieldCount)): false for an unknown slot. */
Napi::Value SamplerRead(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t id = slotId(env, info[0]);
  double* h = f64(env, info[1], wpipe::sampler::kHeaderFields, "header must be a Float64Array");
  return Napi::Boolean::New(env, wpipe::sampler::read(id, h));
}

/** samplerCopy(id, fromSeq, out: Float64Array): samples copied (4 doubles each). */
Napi::Value SamplerCopy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t id = slotId(env, info[0]);
  double from = number(env, info[1], "fromSeq must be a number");
  size_t n;
  auto* out = typedArray<double>(env, info[2], napi_float64_array, &n, "out must be a Float64Array");
  size_t copied = wpipe::sampler::copy(id, from > 0 ? (uint64_t)from : 0, out, n / wpipe::sampler::kSampleFields);
  return Napi::Number::New(env, (double)copied);
}

/** samplerStop(id): false for an unknown slot. */
Napi::Value SamplerStop(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Napi::Boolean::New(env, wpipe::sampler::stop(slotId(env, info[0])));
}

/** samplerInfo(out: Float64Array(kSamplerInfoFieldCount)). */
Napi::Value SamplerInfo(const Napi::CallbackInfo& info) {
  wpipe::sampler::info(f64(info.Env(), info[0], wpipe::sampler::kInfoFields, "out must be a Float64Array"));
  return info.Env().Undefined();
}

void CallWatchdog(napi_env env, napi_value callback, void*, void* data) {
  double* rss = static_cast<double*>(data);
  double value = *rss;
  delete rss;
  if (env == nullptr || callback == nullptr) return;  // aborted with queued calls: just free them
  napi_value arg, global;
  napi_create_double(env, value, &arg);
  napi_get_global(env, &global);
  napi_call_function(env, global, callback, 1, &arg, nullptr);
}

// finalize_data is a box holding the tsfn (its handle is only known after creation): when Node
// destroys the tsfn (released, or its environment torn down), the sampler forgets it.
void FinalizeWatchdog(napi_env, void* data, void*) {
  auto* box = static_cast<napi_threadsafe_function*>(data);
  wpipe::sampler::forgetTsfn(*box);
  delete box;
}

/**
 * samplerWatchdog(limitBytes, intervalMs, callback | null): arms (or, with 0 / null, disarms) the
 * process's RSS watchdog; callback(rssBytes) runs on this thread's event loop.
 */
Napi::Value SamplerWatchdog(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double limit = number(env, info[0], "limitBytes must be a number");
  double iv = number(env, info[1], "intervalMs must be a number");
  if (!(iv >= 1 && iv <= 3600000)) throwType(env, "intervalMs must be from 1 to 3600000");
  if (!(limit > 0) || info[2].IsNull() || info[2].IsUndefined()) {
    wpipe::sampler::watchdog(env, 0, iv, nullptr);
    return env.Undefined();
  }
  if (!info[2].IsFunction()) throwType(env, "callback must be a function or null");
  napi_threadsafe_function tsfn = nullptr;
  auto* box = new napi_threadsafe_function(nullptr);
  napi_value name = Napi::String::New(env, "wpipe memory watchdog");
  napi_status st = napi_create_threadsafe_function(env, info[2], nullptr, name, 0, 1, box, FinalizeWatchdog, nullptr,
                                                   CallWatchdog, &tsfn);
  if (st != napi_ok) {
    delete box;
    throw internalError(env, "could not create the watchdog callback");
  }
  *box = tsfn;
  // Unref'd: an armed watchdog never keeps the process alive on its own.
  napi_unref_threadsafe_function(env, tsfn);
  wpipe::sampler::watchdog(env, limit, iv, tsfn);
  return env.Undefined();
}

int rlimitResource(Napi::Env env, const Napi::Value& v) {
  if (!v.IsString()) throwType(env, "resource must be a string");
  std::string r = v.As<Napi::String>().Utf8Value();
  if (r == "data") return RLIMIT_DATA;
  if (r == "as") return RLIMIT_AS;
  if (r == "stack") return RLIMIT_STACK;
  throwType(env, "resource must be 'data', 'as' or 'stack'");
}

double fromRlim(rlim_t v) { return v == RLIM_INFINITY ? INFINITY : (double)v; }

/** getrlimit(resource, out: Float64Array(2)): 0 with [soft, hard] (Infinity for unlimited) in out, or errno. */
Napi::Value GetRlimit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int res = rlimitResource(env, info[0]);
  double* out = f64(env, info[1], 2, "out must be a Float64Array");
  struct rlimit rl;
  if (getrlimit(res, &rl) != 0) return Napi::Number::New(env, errno);
  out[0] = fromRlim(rl.rlim_cur);
  out[1] = fromRlim(rl.rlim_max);
  return Napi::Number::New(env, 0);
}

/** setrlimit(resource, soft, hard): 0 or errno (Infinity for unlimited). */
Napi::Value SetRlimit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int res = rlimitResource(env, info[0]);
  double soft = number(env, info[1], "soft must be a number");
  double hard = number(env, info[2], "hard must be a number");
  if (!(soft >= 0) || !(hard >= 0)) throwType(env, "limits must be non-negative");
  struct rlimit rl;
  rl.rlim_cur = std::isinf(soft) ? RLIM_INFINITY : (rlim_t)soft;
  rl.rlim_max = std::isinf(hard) ? RLIM_INFINITY : (rlim_t)hard;
  if (setrlimit(res, &rl) != 0) return Napi::Number::New(env, errno);
  return Napi::Number::New(env, 0);
}

/** info(): { napiVersion, features, abi } */
Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("napiVersion", Napi::Number::New(env, NAPI_VERSION));
  Napi::Array f = Napi::Array::New(env);
  std::vector<std::string> feats = wpipe::cpuFeatures();
  for (uint32_t i = 0; i < feats.size(); i++) f.Set(i, Napi::String::New(env, feats[i]));
  o.Set("features", f);
  o.Set("abi", Napi::Number::New(env, wpipe::ADDON_ABI));  // src/vm/contract.ts ADDON_ABI
  return o;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData<EnvState>(new EnvState());
  exports.Set("info", Napi::Function::New(env, Info, "info"));
  exports.Set("prepare", Napi::Function::New(env, Prepare, "prepare"));
  exports.Set("evaluate", Napi::Function::New(env, Evaluate, "evaluate"));
  exports.Set("takeResult", Napi::Function::New(env, TakeResult, "takeResult"));
  exports.Set("runBatch", Napi::Function::New(env, RunBatch, "runBatch"));
  exports.Set("samplerNow", Napi::Function::New(env, SamplerNow, "samplerNow"));
  exports.Set("samplerStart", Napi::Function::New(env, SamplerStart, "samplerStart"));
  exports.Set("samplerRead", Napi::Function::New(env, SamplerRead, "samplerRead"));
  exports.Set("samplerCopy", Napi::Function::New(env, SamplerCopy, "samplerCopy"));
  exports.Set("samplerStop", Napi::Function::New(env, SamplerStop, "samplerStop"));
  exports.Set("samplerInfo", Napi::Function::New(env, SamplerInfo, "samplerInfo"));
  exports.Set("samplerWatchdog", Napi::Function::New(env, SamplerWatchdog, "samplerWatchdog"));
  exports.Set("getrlimit", Napi::Function::New(env, GetRlimit, "getrlimit"));
  exports.Set("setrlimit", Napi::Function::New(env, SetRlimit, "setrlimit"));
  return exports;
}

}  // namespace

NODE_API_MODULE(wpipe, Init)
