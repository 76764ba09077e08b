// The N-API surface of the addon (typed by src/backend/native-binding.d.ts; loaded only by
// src/backend/native.ts). Everything crosses as flat buffers: Int32Array code, Uint8Array tapes,
// Float64Array/Uint8Array columns, an Int32Array of six fault words.
//
// Worker-safe by construction: no mutable statics; per-environment scratch lives in napi instance
// data (freed by its finalizer when the environment is torn down); programs are external objects
// owned by the environment that prepared them; process-wide setup (CPU feature detection) runs once
// under std::call_once.
#include <napi.h>

#include <cstring>
#include <mutex>
#include <new>

#include "vm.h"

namespace {

using wpipe::EnvState;
using wpipe::Program;

// Distinguishes our program externals from any other external (napi_type_tag_object, Node-API 8).
constexpr napi_type_tag kProgramTag = {0x77706970652d7670ULL, 0x726f6772616d2d31ULL};

EnvState& state(Napi::Env env) { return *env.GetInstanceData<EnvState>(); }

[[noreturn]] void throwType(Napi::Env env, const char* msg) { throw Napi::TypeError::New(env, msg); }

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
 * -1: an expression error, `fault` holds its six words.
 */
Napi::Value Evaluate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4) throwType(env, "evaluate(program, ctx, out, fault) takes four arguments");
  Program* p = program(env, info[0]);
  size_t ctxLen, outLen, faultLen;
  auto* ctx = typedArray<uint8_t>(env, info[1], napi_uint8_array, &ctxLen, "ctx must be a Uint8Array");
  auto* out = typedArray<uint8_t>(env, info[2], napi_uint8_array, &outLen, "out must be a Uint8Array");
  auto* fault = typedArray<int32_t>(env, info[3], napi_int32_array, &faultLen, "fault must be an Int32Array");
  if (faultLen < 6) throwType(env, "fault must hold six words");
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
  if (faultLen < 6) throwType(env, "fault must hold six words");
  if (outLen < rows) throwType(env, "out is shorter than rows");
  int64_t r;
  try {
    r = wpipe::runBatch(*p, state(env), cols.data(), cols.size(), rows, out, fault);
  } catch (const std::exception& e) {
    throw internalError(env, e.what());
  }
  return Napi::Number::New(env, (double)r);
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
  o.Set("abi", Napi::Number::New(env, 2));
  return o;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData<EnvState>(new EnvState());
  exports.Set("info", Napi::Function::New(env, Info, "info"));
  exports.Set("prepare", Napi::Function::New(env, Prepare, "prepare"));
  exports.Set("evaluate", Napi::Function::New(env, Evaluate, "evaluate"));
  exports.Set("takeResult", Napi::Function::New(env, TakeResult, "takeResult"));
  exports.Set("runBatch", Napi::Function::New(env, RunBatch, "runBatch"));
  return exports;
}

}  // namespace

NODE_API_MODULE(wpipe, Init)
