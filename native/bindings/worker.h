// Async plumbing shared by every binding. The only place besides its .cc files that includes napi.h.
//
// Each slow call is a PromiseWorker: the JS-facing method copies everything it needs out of V8 on the
// main thread, then Run() works on the libuv pool and never touches V8, and Result() turns the outcome into
// JS values back on the main thread. Every C++ failure in Run() becomes a rejected Promise with an Error
// carrying a `code` (bp::Error's code, E_TORCH for c10::Error, E_NATIVE otherwise): never an abort.
#pragma once

#include <napi.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "bert.h"
#include "checkpoint.h"
#include "errors.h"

namespace bpn {

// Per-environment data: the constructors of the wrapped classes (for instance checks and wrapping).
struct AddonData {
  Napi::FunctionReference model_ctor;
  Napi::FunctionReference group_ctor;
};
AddonData& addon_data(Napi::Env env);

// Bumped by setNumThreads so that each pool thread re-reads the thread settings before its next job.
extern std::atomic<int> g_thread_settings_generation;

// One per native model, shared by its JS handle (ModelHandle) and by every job that uses the model: as itself,
// through its training state, as the teacher of another model's train step, in a process group's syncModel.
// The one rule for a model's native state:
//  - a job reads or changes the model only while it holds `mutex`, for the whole of its Run(). Forwards too:
//    they set the train/eval mode and fill the fast-kernel and fused q/k/v caches lazily. The model's training
//    state (TrainingHandle: optimizer moments) is under the same lock: it belongs to this one model.
//  - the main thread never waits for the lock. The one synchronous call that reads the weights (stateDict)
//    refuses with E_BUSY while a job is queued or running on the model (`jobs`) or the lock is taken.
//  - getters never touch the model: they read `info`, a description taken under the lock by each job that may
//    change it (and at creation), and published here on the main thread when that job completes, before its
//    Promise settles. So all getters read in one synchronous stretch of JS agree with each other.
// The config and the task of a model never change (BertImpl::config() is immutable), so argument checks
// against them (ModelHandle::ReadBatch) may run on the main thread at any time.
struct ModelCell {
  explicit ModelCell(Napi::Env env, bp::Bert m);
  bp::Bert model;
  std::mutex mutex;
  uint64_t descriptions = 0;  // taken so far, under `mutex`

  // Main thread only.
  std::shared_ptr<const bp::ModelInfo> info;
  uint64_t info_version = 0;
  int jobs = 0;  // jobs queued or running that use the model
  // Installs a description newer than the one in place, and reports the change in parameter memory to V8.
  void Publish(Napi::Env env, std::shared_ptr<const bp::ModelInfo> next, uint64_t version);
  // The handle lets go (dispose, or garbage collection): its memory is no longer reported.
  void Release(Napi::Env env);

 private:
  int64_t reported_bytes_ = 0;
  bool released_ = false;
};

// What a job does to a model it uses (it holds the model's lock either way): Keep leaves what the getters
// report as it was (forward, save, masks, a teacher's forward...); Describe may change it (patch, compile,
// setThreshold, a train step that sets the threshold), so the job describes the model again before unlocking.
enum class After { Keep, Describe };
struct ModelUse {
  std::shared_ptr<ModelCell> cell;
  After after = After::Keep;
};

class PromiseWorker : public Napi::AsyncWorker {
 public:
  PromiseWorker(Napi::Env env, const char* name);
  Napi::Promise Promise() { return deferred_.Promise(); }
  // Keeps a JS object (the handle whose native state Run() uses) alive until the worker is done.
  void Retain(const Napi::Object& obj) { retained_ = Napi::Persistent(obj); }
  // The models Run() uses (main thread, before queueing): their locks are held for the whole of Run(), and
  // until the job completes stateDict() refuses on them.
  void Use(std::vector<ModelUse> uses);

 protected:
  virtual void Run() = 0;
  virtual Napi::Value Result(Napi::Env env) = 0;

 private:
  void Execute() final;
  void OnOK() final;
  void OnError(const Napi::Error& e) final;
  // Main thread, before the Promise settles: publishes the descriptions taken and releases the models.
  void Finish();

  struct Taken {
    ModelUse use;
    std::shared_ptr<const bp::ModelInfo> info;
    uint64_t version = 0;
  };
  Napi::Promise::Deferred deferred_;
  Napi::ObjectReference retained_;
  std::vector<Taken> uses_;
  std::string code_ = "E_NATIVE";
};

// A worker from two lambdas: `run` on the pool (no V8), `result` on the main thread.
class LambdaWorker : public PromiseWorker {
 public:
  LambdaWorker(Napi::Env env, const char* name, std::function<void()> run, std::function<Napi::Value(Napi::Env)> result)
      : PromiseWorker(env, name), run_(std::move(run)), result_(std::move(result)) {}

 protected:
  void Run() override { run_(); }
  Napi::Value Result(Napi::Env env) override { return result_(env); }

 private:
  std::function<void()> run_;
  std::function<Napi::Value(Napi::Env)> result_;
};

// Queues a worker (keeping `self`, the handle whose state it uses, alive while it runs; `self` may be empty)
// that uses `models` (see ModelCell), and returns its Promise.
Napi::Promise queue_worker(PromiseWorker* worker, const Napi::Object& self, std::vector<ModelUse> models = {});

// Queues a LambdaWorker that keeps `self` alive and uses `models`, and returns its Promise.
Napi::Promise queue_lambda(Napi::Env env, const Napi::Object& self, const char* name, std::function<void()> run,
                           std::function<Napi::Value(Napi::Env)> result, std::vector<ModelUse> models = {});

// Named tensors as a JS object {name: {data, shape, dtype}}.
Napi::Object tensors_to_js(Napi::Env env, const bp::NamedTensors& tensors);
Napi::Array strings_to_js(Napi::Env env, const std::vector<std::string>& strings);

// A JS Error (or TypeError/RangeError) with a `code` property.
Napi::Error make_error(Napi::Env env, const std::string& code, const std::string& message);
[[noreturn]] void throw_type_error(Napi::Env env, const std::string& message);
[[noreturn]] void throw_range_error(Napi::Env env, const std::string& message);

// Runs `fn` and converts bp::Error / c10::Error / std::exception into a thrown JS Error with a code.
template <typename F>
auto guarded(Napi::Env env, F&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const Napi::Error&) {
    throw;
  } catch (const bp::Error& e) {
    throw make_error(env, e.code(), e.what());
  } catch (const c10::Error& e) {
    throw make_error(env, "E_TORCH", e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw make_error(env, "E_NATIVE", e.what());
  }
}

// Argument readers: "Expected X for NAME but received Y".
std::string describe(const Napi::Value& v);
std::string get_string(const Napi::Value& v, const std::string& name);
Napi::Object get_object(const Napi::Value& v, const std::string& name);
bool get_bool(const Napi::Object& o, const char* key, bool def);
int64_t get_int(const Napi::Object& o, const char* key, int64_t def, int64_t lo, int64_t hi);
std::string get_string_opt(const Napi::Object& o, const char* key, const std::string& def);
// Copies an Int32Array / BigInt64Array / Uint32Array / Float64Array of integers into an int64 tensor of `shape`
// (on an ArrayBuffer or a SharedArrayBuffer).
at::Tensor int_tensor(const Napi::Value& v, const std::string& name, const std::vector<int64_t>& shape);
// Copies a tensor into {data: Float32Array | BigInt64Array | Int32Array | Uint8Array, shape: number[], dtype}.
Napi::Object tensor_to_js(Napi::Env env, const at::Tensor& t);

}  // namespace bpn
