// ModelHandle: the JS object that owns one native BERT (blockprune's `NativeModel`, typed in lib/native.ts).
#pragma once

#include <napi.h>

#include <atomic>

#include "bert.h"
#include "optimizer.h"

namespace bpn {

class ModelHandle : public Napi::ObjectWrap<ModelHandle> {
 public:
  static Napi::Function Define(Napi::Env env);
  // Wraps a native model into a new JS handle (main thread only).
  static Napi::Object Wrap(Napi::Env env, bp::Bert model);

  explicit ModelHandle(const Napi::CallbackInfo& info);
  ~ModelHandle() override;

  // The live model, or a JS Error E_DISPOSED.
  bp::Bert model(Napi::Env env) const;

 private:
  // Reads and checks a batch object ({inputIds, attentionMask?, ..., batchSize, seqLen}) into tensors.
  static bp::Batch ReadBatch(Napi::Env env, const bp::Bert& m, const Napi::Value& value);
  Napi::Value Forward(const Napi::CallbackInfo& info);
  Napi::Value TimeForward(const Napi::CallbackInfo& info);
  Napi::Value Save(const Napi::CallbackInfo& info);
  Napi::Value Patch(const Napi::CallbackInfo& info);
  Napi::Value SetThreshold(const Napi::CallbackInfo& info);
  Napi::Value Compile(const Napi::CallbackInfo& info);
  Napi::Value Compact(const Napi::CallbackInfo& info);
  Napi::Value PadFfn(const Napi::CallbackInfo& info);
  Napi::Value Masks(const Napi::CallbackInfo& info);
  Napi::Value Regularization(const Napi::CallbackInfo& info);
  Napi::Value Gradients(const Napi::CallbackInfo& info);
  Napi::Value LoadState(const Napi::CallbackInfo& info);
  Napi::Value TrainStep(const Napi::CallbackInfo& info);
  Napi::Value SaveTraining(const Napi::CallbackInfo& info);
  Napi::Value LoadTraining(const Napi::CallbackInfo& info);
  Napi::Value ResetOptimizer(const Napi::CallbackInfo& info);
  Napi::Value FillZeros(const Napi::CallbackInfo& info);
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value StateDict(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value IsDisposed(const Napi::CallbackInfo& info);

  void ReportMemory(Napi::Env env, bool add);

  bp::Bert model_{nullptr};
  // Optimizer state of the sparse trainer (AdamW moments), created by the first train step.
  std::shared_ptr<bp::AdamW> optimizer_ = std::make_shared<bp::AdamW>();
  int64_t external_bytes_ = 0;
};

}  // namespace bpn
