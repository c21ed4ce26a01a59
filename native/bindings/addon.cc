// Module entry: the native surface that lib/native.ts types, function by function.
#include <napi.h>

#include <ATen/Parallel.h>
#include <dlfcn.h>

#include <cstring>

#include "checkpoint.h"
#include "errors.h"
#include "distributed.h"
#include "fast/fast_cpu.h"
#include "fast/quant.h"
#include "group_handle.h"
#include "model_handle.h"
#include "runtime.h"
#include "safetensors.h"
#include "seq2seq_handle.h"
#include "training_handle.h"
#include "training_state.h"
#include "worker.h"

namespace bpn {
namespace {

class LoadWorker : public PromiseWorker {
 public:
  LoadWorker(Napi::Env env, std::string dir, bp::LoadOptions opts)
      : PromiseWorker(env, "blockprune.load"), dir_(std::move(dir)), opts_(std::move(opts)) {}

 protected:
  void Run() override { loaded_ = bp::load_pretrained(dir_, opts_); }
  Napi::Value Result(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    o.Set("model", ModelHandle::Wrap(env, loaded_.model));
    Napi::Object r = Napi::Object::New(env);
    r.Set("weightsFile", loaded_.report.weights_file);
    auto list = [&](const std::vector<std::string>& v) {
      Napi::Array a = Napi::Array::New(env, v.size());
      for (size_t i = 0; i < v.size(); ++i) a.Set(static_cast<uint32_t>(i), v[i]);
      return a;
    };
    r.Set("newlyInitialized", list(loaded_.report.newly_initialized));
    r.Set("ignored", list(loaded_.report.ignored));
    o.Set("report", r);
    return o;
  }

 private:
  std::string dir_;
  bp::LoadOptions opts_;
  bp::Loaded loaded_;
};

class CreateWorker : public PromiseWorker {
 public:
  CreateWorker(Napi::Env env, bp::BertConfig config, bp::TaskKind kind, uint64_t seed, std::string device)
      : PromiseWorker(env, "blockprune.create"), config_(std::move(config)), kind_(kind), seed_(seed), device_(std::move(device)) {}

 protected:
  void Run() override { model_ = bp::create_random(config_, kind_, seed_, device_); }
  Napi::Value Result(Napi::Env env) override { return ModelHandle::Wrap(env, model_); }

 private:
  bp::BertConfig config_;
  bp::TaskKind kind_;
  uint64_t seed_;
  std::string device_;
  bp::Bert model_{nullptr};
};

class ReadSafetensorsWorker : public PromiseWorker {
 public:
  ReadSafetensorsWorker(Napi::Env env, std::string path) : PromiseWorker(env, "blockprune.readSafetensors"), path_(std::move(path)) {}

 protected:
  void Run() override { file_ = bp::read_safetensors(path_); }
  Napi::Value Result(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    Napi::Object t = Napi::Object::New(env);
    for (const auto& [name, tensor] : file_.tensors) t.Set(name, tensor_to_js(env, tensor));
    Napi::Object m = Napi::Object::New(env);
    for (const auto& [k, v] : file_.metadata) m.Set(k, v);
    o.Set("tensors", t);
    o.Set("metadata", m);
    return o;
  }

 private:
  std::string path_;
  bp::SafetensorsFile file_;
};

Napi::Value LoadModel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string dir = get_string(info[0], "dir");
  Napi::Object o = get_object(info[1], "options");
  bp::LoadOptions opts;
  opts.task = get_string_opt(o, "task", "auto");
  opts.num_labels = get_int(o, "numLabels", -1, 1, 1 << 20);
  opts.device = get_string_opt(o, "device", "cpu");
  opts.seed = static_cast<uint64_t>(get_int(o, "seed", 42, 0, int64_t(1) << 52));
  guarded(env, [&] {
    if (opts.task != "auto") bp::parse_task(opts.task);
    bp::parse_device(opts.device);
  });
  return queue_worker(new LoadWorker(env, std::move(dir), std::move(opts)), Napi::Object());
}

Napi::Value CreateModel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string json = get_string(info[0], "config");
  Napi::Object o = get_object(info[1], "options");
  std::string task = get_string_opt(o, "task", "text-classification");
  std::string device = get_string_opt(o, "device", "cpu");
  uint64_t seed = static_cast<uint64_t>(get_int(o, "seed", 42, 0, int64_t(1) << 52));
  bp::BertConfig config;
  bp::TaskKind kind;
  guarded(env, [&] {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(json);
    } catch (const nlohmann::json::exception& e) {
      throw bp::Error("E_BAD_CONFIG", std::string("config is not valid JSON (") + e.what() + ")");
    }
    config = bp::BertConfig::from_json(j, "(config object)");
    kind = bp::parse_task(task);
    bp::parse_device(device);
  });
  return queue_worker(new CreateWorker(env, std::move(config), kind, seed, std::move(device)), Napi::Object());
}

Napi::Value ReadSafetensors(const Napi::CallbackInfo& info) {
  return queue_worker(new ReadSafetensorsWorker(info.Env(), get_string(info[0], "path")), Napi::Object());
}

// OpenBLAS keeps its own thread pool beside libtorch's OpenMP one; set both so they do not fight.
using OpenblasSetThreads = void (*)(int);
using OpenblasGetThreads = int (*)();

Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) throw_type_error(env, "Expected a positive integer for n but received " + describe(info[0]));
  const double d = info[0].As<Napi::Number>().DoubleValue();
  if (!(d >= 1 && d <= 1024 && d == static_cast<int>(d))) throw_range_error(env, "Expected a positive integer for n but received " + std::to_string(d));
  const int n = static_cast<int>(d);
  guarded(env, [&] { at::set_num_threads(n); });
  g_thread_settings_generation.fetch_add(1);
  if (auto f = reinterpret_cast<OpenblasSetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) f(n);
  return env.Undefined();
}

Napi::Value ManualSeed(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) throw_type_error(env, "Expected an integer for seed but received " + describe(info[0]));
  const double d = info[0].As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d < 9007199254740992.0 && d == static_cast<double>(static_cast<uint64_t>(d))))
    throw_range_error(env, "Expected a non-negative integer for seed but received " + std::to_string(d));
  at::manual_seed(static_cast<uint64_t>(d));
  return env.Undefined();
}

// The CPU inference kernels (fast_cpu.h): on by default where the CPU has them; off = libtorch's ops only.
Napi::Value SetFastKernels(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsBoolean()) throw_type_error(env, "Expected a boolean for on but received " + describe(info[0]));
  bp::fast::set_enabled(info[0].As<Napi::Boolean>().Value());
  return env.Undefined();
}

Napi::Value RngState(const Napi::CallbackInfo& info) {
  const at::Tensor state = bp::cpu_rng_state();
  auto out = Napi::Uint8Array::New(info.Env(), state.numel());
  std::memcpy(out.Data(), state.data_ptr<uint8_t>(), state.numel());
  return out;
}

Napi::Value GetNumThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), at::get_num_threads());
}

Napi::Value BuildInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("torchVersion", BP_TORCH_VERSION);
  o.Set("cuda", Napi::Boolean::New(env, BP_WITH_CUDA != 0));
  o.Set("cudaAvailable", Napi::Boolean::New(env, at::hasCUDA()));
  o.Set("cxx11Abi", Napi::Boolean::New(env, BP_CXX11_ABI != 0));
  o.Set("parallel", at::get_parallel_info());
  int blas = -1;
  if (auto f = reinterpret_cast<OpenblasGetThreads>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"))) blas = f();
  o.Set("openblasThreads", Napi::Number::New(env, blas));
  o.Set("cpuKernels", bp::fast::isa());
  o.Set("fastKernels", Napi::Boolean::New(env, bp::fast::enabled()));
  Napi::Object quant = Napi::Object::New(env);
  quant.Set("int8", bp::fast::quant_isa(bp::fast::QuantFormat::kInt8));
  quant.Set("bf16", bp::fast::quant_isa(bp::fast::QuantFormat::kBf16));
  o.Set("quantKernels", quant);
  Napi::Array backends = Napi::Array::New(env);
  if (bp::distributed_available()) backends.Set(backends.Length(), "gloo");
  if (bp::nccl_available()) backends.Set(backends.Length(), "nccl");
  o.Set("distributedBackends", backends);
  return o;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  bp::configure_default_threads();
  exports.Set("NativeModel", ModelHandle::Define(env));
  exports.Set("NativeTrainingState", TrainingHandle::Define(env));
  exports.Set("NativeSeq2Seq", Seq2SeqHandle::Define(env));
  exports.Set("loadSeq2Seq", Napi::Function::New(env, LoadSeq2Seq, "loadSeq2Seq"));
  exports.Set("createSeq2Seq", Napi::Function::New(env, CreateSeq2Seq, "createSeq2Seq"));
  exports.Set("loadModel", Napi::Function::New(env, LoadModel, "loadModel"));
  exports.Set("createModel", Napi::Function::New(env, CreateModel, "createModel"));
  exports.Set("readSafetensors", Napi::Function::New(env, ReadSafetensors, "readSafetensors"));
  exports.Set("setNumThreads", Napi::Function::New(env, SetNumThreads, "setNumThreads"));
  exports.Set("manualSeed", Napi::Function::New(env, ManualSeed, "manualSeed"));
  exports.Set("setFastKernels", Napi::Function::New(env, SetFastKernels, "setFastKernels"));
  exports.Set("getNumThreads", Napi::Function::New(env, GetNumThreads, "getNumThreads"));
  exports.Set("buildInfo", Napi::Function::New(env, BuildInfo, "buildInfo"));
  exports.Set("rngState", Napi::Function::New(env, RngState, "rngState"));
  exports.Set("NativeProcessGroup", GroupHandle::Define(env));
  exports.Set("initProcessGroup", Napi::Function::New(env, InitProcessGroup, "initProcessGroup"));
  return exports;
}

}  // namespace
}  // namespace bpn

static Napi::Object InitBlockprune(Napi::Env env, Napi::Object exports) { return bpn::Init(env, exports); }

NODE_API_MODULE(blockprune, InitBlockprune)
