#include "worker.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "errors.h"

namespace bpn {

AddonData& addon_data(Napi::Env env) {
  auto* data = env.GetInstanceData<AddonData>();
  if (!data) {
    data = new AddonData();
    env.SetInstanceData(data);
  }
  return *data;
}

ModelCell::ModelCell(Napi::Env env, bp::Bert m) : model(std::move(m)) {
  // A new model is not shared with any thread yet: it may be described here, on the main thread.
  Publish(env, std::make_shared<const bp::ModelInfo>(bp::describe_model(model)), 0);
}

void ModelCell::Publish(Napi::Env env, std::shared_ptr<const bp::ModelInfo> next, uint64_t version) {
  // Jobs complete on the main thread in any order: an older description never replaces a newer one.
  if (info && version <= info_version) return;
  info = std::move(next);
  info_version = version;
  if (released_) return;
  const int64_t delta = info->cpu_bytes - reported_bytes_;
  if (delta) Napi::MemoryManagement::AdjustExternalMemory(env, delta);
  reported_bytes_ = info->cpu_bytes;
}

void ModelCell::Release(Napi::Env env) {
  if (released_) return;
  released_ = true;
  if (reported_bytes_) Napi::MemoryManagement::AdjustExternalMemory(env, -reported_bytes_);
  reported_bytes_ = 0;
}

PromiseWorker::PromiseWorker(Napi::Env env, const char* name)
    : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)) {}

void PromiseWorker::Use(std::vector<ModelUse> uses) {
  for (auto& u : uses) {
    ++u.cell->jobs;
    uses_.push_back({std::move(u), nullptr, 0});
  }
}

void PromiseWorker::Finish() {
  Napi::Env env = Env();
  for (auto& t : uses_) {
    --t.use.cell->jobs;
    if (t.info) t.use.cell->Publish(env, std::move(t.info), t.version);
  }
  uses_.clear();
}

std::atomic<int> g_thread_settings_generation{0};

void PromiseWorker::Execute() {
  // OpenMP's thread count is per thread: a libuv pool thread must take the process's setting, once, and
  // again after setNumThreads. Not on every call: at::init_num_threads() also clears oneDNN's primitive
  // cache, and doing it per forward cost ~25 ms of a 155 ms bert-base forward (measured).
  thread_local int seen_generation = -1;
  const int gen = g_thread_settings_generation.load();
  if (seen_generation != gen) {
    at::init_num_threads();
    seen_generation = gen;
  }
  // Every model this job uses is locked for the whole job, in address order: two jobs that share two models
  // (a train step with a teacher, the teacher's own step with the student as its teacher) take the locks in
  // the same order and cannot deadlock.
  std::vector<std::mutex*> order;
  for (const auto& t : uses_) order.push_back(&t.use.cell->mutex);
  std::sort(order.begin(), order.end());
  order.erase(std::unique(order.begin(), order.end()), order.end());
  std::vector<std::unique_lock<std::mutex>> locks;
  for (auto* m : order) locks.emplace_back(*m);
  try {
    Run();
  } catch (const bp::Error& e) {
    code_ = e.code();
    SetError(e.what());
  } catch (const c10::Error& e) {
    code_ = "E_TORCH";
    SetError(e.what_without_backtrace());
  } catch (const std::exception& e) {
    code_ = "E_NATIVE";
    SetError(e.what());
  } catch (...) {
    code_ = "E_NATIVE";
    SetError("unknown native error");
  }
  // Described after a failure too: a job may fail after changing the model.
  for (auto& t : uses_) {
    if (t.use.after != After::Describe) continue;
    try {
      t.info = std::make_shared<const bp::ModelInfo>(bp::describe_model(t.use.cell->model));
      t.version = ++t.use.cell->descriptions;
    } catch (...) {
      t.info = nullptr;  // the description in place stays
    }
  }
}

void PromiseWorker::OnOK() {
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  Finish();
  try {
    deferred_.Resolve(guarded(env, [&] { return Result(env); }));
  } catch (const Napi::Error& e) {
    deferred_.Reject(e.Value());
  }
}

void PromiseWorker::OnError(const Napi::Error& e) {
  Napi::HandleScope scope(Env());
  Finish();
  deferred_.Reject(make_error(Env(), code_, e.Message()).Value());
}

Napi::Promise queue_worker(PromiseWorker* worker, const Napi::Object& self, std::vector<ModelUse> models) {
  if (!self.IsEmpty()) worker->Retain(self);
  worker->Use(std::move(models));
  auto p = worker->Promise();
  worker->Queue();
  return p;
}

Napi::Promise queue_lambda(Napi::Env env, const Napi::Object& self, const char* name, std::function<void()> run,
                           std::function<Napi::Value(Napi::Env)> result, std::vector<ModelUse> models) {
  return queue_worker(new LambdaWorker(env, name, std::move(run), std::move(result)), self, std::move(models));
}

Napi::Array strings_to_js(Napi::Env env, const std::vector<std::string>& strings) {
  Napi::Array a = Napi::Array::New(env, strings.size());
  for (size_t i = 0; i < strings.size(); ++i) a.Set(static_cast<uint32_t>(i), strings[i]);
  return a;
}

Napi::Object tensors_to_js(Napi::Env env, const bp::NamedTensors& tensors) {
  Napi::Object o = Napi::Object::New(env);
  for (const auto& [name, t] : tensors) o.Set(name, tensor_to_js(env, t));
  return o;
}

Napi::Error make_error(Napi::Env env, const std::string& code, const std::string& message) {
  Napi::Error err = code == "E_INVALID_ARG" ? Napi::Error(env, Napi::RangeError::New(env, message).Value())
                                            : Napi::Error::New(env, message);
  err.Set("code", Napi::String::New(env, code));
  return err;
}

void throw_type_error(Napi::Env env, const std::string& message) {
  auto err = Napi::TypeError::New(env, message);
  err.Set("code", Napi::String::New(env, "E_INVALID_ARG"));
  throw err;
}

void throw_range_error(Napi::Env env, const std::string& message) {
  auto err = Napi::RangeError::New(env, message);
  err.Set("code", Napi::String::New(env, "E_INVALID_ARG"));
  throw err;
}

std::string describe(const Napi::Value& v) {
  if (v.IsUndefined()) return "undefined";
  if (v.IsNull()) return "null";
  if (v.IsString()) return "a string";
  if (v.IsNumber()) return "a number";
  if (v.IsBoolean()) return "a boolean";
  if (v.IsBigInt()) return "a bigint";
  if (v.IsTypedArray()) {
    switch (v.As<Napi::TypedArray>().TypedArrayType()) {
      case napi_int8_array: return "an Int8Array";
      case napi_uint8_array: return "a Uint8Array";
      case napi_uint8_clamped_array: return "a Uint8ClampedArray";
      case napi_int16_array: return "an Int16Array";
      case napi_uint16_array: return "a Uint16Array";
      case napi_int32_array: return "an Int32Array";
      case napi_uint32_array: return "a Uint32Array";
      case napi_float32_array: return "a Float32Array";
      case napi_float64_array: return "a Float64Array";
      case napi_bigint64_array: return "a BigInt64Array";
      case napi_biguint64_array: return "a BigUint64Array";
    }
  }
  if (v.IsArray()) return "an Array";
  if (v.IsFunction()) return "a function";
  if (v.IsObject()) return "an object";
  return "an unknown value";
}

std::string get_string(const Napi::Value& v, const std::string& name) {
  if (!v.IsString()) throw_type_error(v.Env(), "Expected a string for " + name + " but received " + describe(v));
  return v.As<Napi::String>().Utf8Value();
}

Napi::Object get_object(const Napi::Value& v, const std::string& name) {
  if (v.IsUndefined() || v.IsNull()) return Napi::Object::New(v.Env());
  if (!v.IsObject() || v.IsArray())
    throw_type_error(v.Env(), "Expected an object for " + name + " but received " + describe(v));
  return v.As<Napi::Object>();
}

bool get_bool(const Napi::Object& o, const char* key, bool def) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return def;
  if (!v.IsBoolean()) throw_type_error(o.Env(), std::string("Expected a boolean for ") + key + " but received " + describe(v));
  return v.As<Napi::Boolean>().Value();
}

int64_t get_int(const Napi::Object& o, const char* key, int64_t def, int64_t lo, int64_t hi) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return def;
  if (!v.IsNumber()) throw_type_error(o.Env(), std::string("Expected an integer for ") + key + " but received " + describe(v));
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d == static_cast<double>(static_cast<int64_t>(d))) || d < static_cast<double>(lo) || d > static_cast<double>(hi))
    throw_range_error(o.Env(), std::string("Expected an integer in [") + std::to_string(lo) + ", " + std::to_string(hi) +
                                   "] for " + key + " but received " + std::to_string(d));
  return static_cast<int64_t>(d);
}

std::string get_string_opt(const Napi::Object& o, const char* key, const std::string& def) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return def;
  return get_string(v, key);
}

at::Tensor int_tensor(const Napi::Value& v, const std::string& name, const std::vector<int64_t>& shape) {
  Napi::Env env = v.Env();
  if (!v.IsTypedArray())
    throw_type_error(env, "Expected an Int32Array or BigInt64Array for " + name + " but received " + describe(v));
  auto ta = v.As<Napi::TypedArray>();
  int64_t numel = 1;
  for (int64_t s : shape) numel *= s;
  if (static_cast<int64_t>(ta.ElementLength()) != numel)
    throw_range_error(env, "Expected " + std::to_string(numel) + " elements (shape " + bp::shape_str(shape) + ") for " + name +
                               " but received " + std::to_string(ta.ElementLength()));
  // The element pointer straight from Node-API: Napi::TypedArray::ArrayBuffer() fails ("Invalid argument") on
  // a SharedArrayBuffer. Copied once here; the copy is what gets checked and used.
  napi_typedarray_type type;
  void* data = nullptr;
  if (napi_get_typedarray_info(env, v, &type, nullptr, &data, nullptr, nullptr) != napi_ok)
    throw_type_error(env, "Expected an Int32Array or BigInt64Array for " + name + " but received " + describe(v));
  at::Tensor out = at::empty(shape, at::kLong);
  int64_t* dst = out.data_ptr<int64_t>();
  const uint8_t* base = static_cast<const uint8_t*>(data);
  switch (type) {
    case napi_int32_array: {
      const int32_t* src = reinterpret_cast<const int32_t*>(base);
      for (int64_t i = 0; i < numel; ++i) dst[i] = src[i];
      break;
    }
    case napi_uint32_array: {
      const uint32_t* src = reinterpret_cast<const uint32_t*>(base);
      for (int64_t i = 0; i < numel; ++i) dst[i] = src[i];
      break;
    }
    case napi_bigint64_array:
      std::memcpy(dst, base, static_cast<size_t>(numel) * 8);
      break;
    case napi_float64_array: {
      const double* src = reinterpret_cast<const double*>(base);
      for (int64_t i = 0; i < numel; ++i) {
        if (src[i] != static_cast<double>(static_cast<int64_t>(src[i])))
          throw_range_error(env, "Expected integers in " + name + " but element " + std::to_string(i) + " is " + std::to_string(src[i]));
        dst[i] = static_cast<int64_t>(src[i]);
      }
      break;
    }
    default:
      throw_type_error(env, "Expected an Int32Array or BigInt64Array for " + name + " but received " + describe(v));
  }
  return out;
}

Napi::Object tensor_to_js(Napi::Env env, const at::Tensor& t_in) {
  at::Tensor t = t_in.detach().to(at::kCPU).contiguous();
  Napi::Object o = Napi::Object::New(env);
  Napi::Array shape = Napi::Array::New(env, t.dim());
  for (int64_t i = 0; i < t.dim(); ++i) shape.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(t.size(i))));
  o.Set("shape", shape);
  const size_t n = static_cast<size_t>(t.numel());
  auto copy = [&](auto typed, size_t bytes) {
    if (bytes) std::memcpy(typed.ArrayBuffer().Data(), t.data_ptr(), bytes);
    return typed;
  };
  switch (t.scalar_type()) {
    case at::kFloat:
      o.Set("data", copy(Napi::Float32Array::New(env, n), n * 4));
      o.Set("dtype", "F32");
      break;
    case at::kLong:
      o.Set("data", copy(Napi::BigInt64Array::New(env, n), n * 8));
      o.Set("dtype", "I64");
      break;
    case at::kInt:
      o.Set("data", copy(Napi::Int32Array::New(env, n), n * 4));
      o.Set("dtype", "I32");
      break;
    case at::kChar:
      // A quantized model's int8 weights (native/quantize.h): as they are, so no reader takes them for floats.
      o.Set("data", copy(Napi::Int8Array::New(env, n), n));
      o.Set("dtype", "I8");
      break;
    case at::kBool:
    case at::kByte:
      o.Set("data", copy(Napi::Uint8Array::New(env, n), n));
      o.Set("dtype", t.scalar_type() == at::kBool ? "BOOL" : "U8");
      break;
    default: {
      at::Tensor f = t.to(at::kFloat);
      auto arr = Napi::Float32Array::New(env, n);
      if (n) std::memcpy(arr.ArrayBuffer().Data(), f.data_ptr(), n * 4);
      o.Set("data", arr);
      o.Set("dtype", "F32");
    }
  }
  return o;
}

}  // namespace bpn
