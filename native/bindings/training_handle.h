// TrainingHandle: the JS object that owns one model's training state (blockprune's `NativeTrainingState`, typed
// in lib/runtime/native.ts; created by lib/training/model-training.ts, one per model). The model's handle keeps
// the weights; this one the AdamW moments, and it saves and restores them with the dropout generator.
//
// Concurrency: the state belongs to one model, and every job that reads or changes it takes that model's lock
// (it is a ModelUse of the model, like any job on it): so its jobs run one at a time, never beside a job that
// changes the weights they read, and the rule of ModelCell (worker.h) covers the state too. Each method takes
// the model as its first argument, which must be the one the state was created for (and not disposed).
#pragma once

#include <napi.h>

#include <memory>

#include "training_state.h"
#include "worker.h"

namespace bpn {

class TrainingHandle : public Napi::ObjectWrap<TrainingHandle> {
 public:
  static Napi::Function Define(Napi::Env env);
  // new NativeTrainingState(model): an empty state (no moments yet) for `model`.
  explicit TrainingHandle(const Napi::CallbackInfo& info);
  ~TrainingHandle() override;

 private:
  Napi::Value TrainStep(const Napi::CallbackInfo& info);
  Napi::Value Save(const Napi::CallbackInfo& info);
  Napi::Value Load(const Napi::CallbackInfo& info);
  Napi::Value ResetOptimizer(const Napi::CallbackInfo& info);

  // The cell of info[0], which must be the live model this state belongs to (TypeError / E_DISPOSED /
  // RangeError otherwise).
  std::shared_ptr<ModelCell> Owner(const Napi::CallbackInfo& info) const;
  // Queues a job that holds the model's lock (and `others`'), keeping this handle alive while it runs, and
  // reports the moments' size to V8 when it completes.
  Napi::Promise Queue(const Napi::CallbackInfo& info, const char* name, After after, std::function<void(bp::TrainingState&)> run,
                      std::function<Napi::Value(Napi::Env)> result, std::vector<ModelUse> others = {});
  // Main thread: tells V8 how many bytes of moments this state holds now.
  void Report(Napi::Env env, int64_t bytes);

  std::weak_ptr<ModelCell> owner_;  // weak: the state does not keep a disposed model's weights alive
  std::shared_ptr<bp::TrainingState> state_ = std::make_shared<bp::TrainingState>();
  int64_t reported_bytes_ = 0;
};

}  // namespace bpn
