// ModelHandle: the JS object that owns one native BERT (blockprune's `NativeModel`, typed in
// lib/runtime/native.ts): its weights, and the jobs that use them. Model methods in model_handle.cc, pruning
// methods in model_pruning.cc; the training state (optimizer, generator) is a TrainingHandle of its own.
#pragma once

#include <napi.h>

#include <atomic>

#include "bert.h"
#include "worker.h"

namespace bpn {

class ModelHandle : public Napi::ObjectWrap<ModelHandle> {
 public:
  static Napi::Function Define(Napi::Env env);
  // Wraps a native model into a new JS handle (main thread only).
  static Napi::Object Wrap(Napi::Env env, bp::Bert model);

  explicit ModelHandle(const Napi::CallbackInfo& info);
  ~ModelHandle() override;

  // The live model's cell (see ModelCell in worker.h), or a thrown E_DISPOSED.
  const std::shared_ptr<ModelCell>& cell(Napi::Env env) const;
  // The cell of the model behind a JS value that must be a NativeModel (TypeError naming `what` otherwise).
  static std::shared_ptr<ModelCell> CellOf(Napi::Env env, const Napi::Value& value, const char* what);
  // Reads and checks a batch object ({inputIds, attentionMask?, ..., batchSize, seqLen}) for `m` into tensors.
  static bp::Batch ReadBatch(Napi::Env env, const bp::Bert& m, const Napi::Value& value);

 private:
  Napi::Value Forward(const Napi::CallbackInfo& info);
  Napi::Value TimeForward(const Napi::CallbackInfo& info);
  Napi::Value Save(const Napi::CallbackInfo& info);
  Napi::Value Patch(const Napi::CallbackInfo& info);
  Napi::Value SetThreshold(const Napi::CallbackInfo& info);
  Napi::Value Compile(const Napi::CallbackInfo& info);
  Napi::Value Compact(const Napi::CallbackInfo& info);
  Napi::Value PadFfn(const Napi::CallbackInfo& info);
  Napi::Value Quantize(const Napi::CallbackInfo& info);
  Napi::Value Masks(const Napi::CallbackInfo& info);
  Napi::Value Regularization(const Napi::CallbackInfo& info);
  Napi::Value BudgetCost(const Napi::CallbackInfo& info);
  Napi::Value Gradients(const Napi::CallbackInfo& info);
  Napi::Value LoadState(const Napi::CallbackInfo& info);
  Napi::Value FillZeros(const Napi::CallbackInfo& info);
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value StateDict(const Napi::CallbackInfo& info);
  Napi::Value ReadStateDict(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value IsDisposed(const Napi::CallbackInfo& info);

  // Queues a job that uses this model (and `others`), keeping this handle alive while it runs.
  Napi::Promise Queue(const Napi::CallbackInfo& info, const char* name, After after, std::function<void()> run,
                      std::function<Napi::Value(Napi::Env)> result, std::vector<ModelUse> others = {});

  std::shared_ptr<ModelCell> cell_;  // null once disposed
};

}  // namespace bpn
