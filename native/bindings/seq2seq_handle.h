// Seq2SeqHandle: the JS object that owns one native encoder-decoder model (native/seq2seq.h; blockprune's
// `NativeSeq2Seq`, typed in lib/runtime/native.ts). Its jobs run on the worker pool one at a time per model
// (a mutex of its own: the model's forward reads its weights while nothing else runs on it), and a job keeps
// the model alive past dispose().
#pragma once

#include <napi.h>

#include <memory>
#include <mutex>

#include "seq2seq.h"

namespace bp {
class AdamW;
}

namespace bpn {

class Seq2SeqHandle : public Napi::ObjectWrap<Seq2SeqHandle> {
 public:
  static Napi::Function Define(Napi::Env env);
  static Napi::Object Wrap(Napi::Env env, std::shared_ptr<bp::Seq2SeqImpl> model);
  explicit Seq2SeqHandle(const Napi::CallbackInfo& info);

  struct Cell {
    std::shared_ptr<bp::Seq2SeqImpl> model;
    std::mutex mutex;
    // What info() returns, read once at Wrap (no job runs yet): nothing a job does changes it (patching adds
    // mask scores, which are not counted), so info() never waits on the mutex behind a long generate.
    bp::Seq2SeqInfo info;
    std::vector<bp::PrunableBlock> blocks;
    // Training (seq2seq_training.cc): the AdamW moments, created by the first trainStep. They live with the
    // model under its mutex, since they are keyed by its parameters and change only with them.
    std::shared_ptr<bp::AdamW> optimizer;
  };

 private:
  Napi::Value Forward(const Napi::CallbackInfo& info);
  // generate(inputs, options) -> Promise<{sequences, scores?}>; options.onStep(tokens: BigInt64Array), when
  // given, receives each step's tokens on the main thread (a thread-safe function) before the Promise settles.
  Napi::Value Generate(const Napi::CallbackInfo& info);
  // decodeSteps(inputs, {selects}): teacher-forced incremental decoding (start, then one step per
  // decoderInputIds position), what tests and the decoding benchmark compare with forward().
  Napi::Value DecodeSteps(const Napi::CallbackInfo& info);
  Napi::Value Info(const Napi::CallbackInfo& info);
  // Pruning (patch.h), each a job under the model's mutex: patch(planJson) -> {modules, scoreParameters};
  // setThreshold(t); masks() -> {"mask.<linear>", "bias_mask.<linear>"} as 0/1 bytes; loadState(path, {strict})
  // -> the stored names copied into parameters (mask scores included).
  Napi::Value Patch(const Napi::CallbackInfo& info);
  Napi::Value SetThreshold(const Napi::CallbackInfo& info);
  Napi::Value Masks(const Napi::CallbackInfo& info);
  Napi::Value LoadState(const Napi::CallbackInfo& info);
  // compact(mode) -> Promise<{model: NativeSeq2Seq, report}> (seq2seq.h compact_seq2seq; this model unchanged).
  Napi::Value Compact(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value IsDisposed(const Napi::CallbackInfo& info);
  const std::shared_ptr<Cell>& cell(Napi::Env env) const;

  std::shared_ptr<Cell> cell_;  // null once disposed

  // ---- training (issue 18; definitions in seq2seq_training.cc) ----
 public:
  // inputs as forward() reads them (source, target, labels), copied out of V8.
  static bp::Seq2SeqBatch ReadBatch(Napi::Env env, const Napi::Value& inputs);
  // The live cell of another NativeSeq2Seq (a teacher); TypeError naming `name` for anything else.
  static std::shared_ptr<Cell> CellOf(Napi::Env env, const Napi::Value& v, const std::string& name);

 private:
  // trainStep(inputs, options, teacher?) -> Promise<{loss, taskLoss, distilLoss, gradNorm, tokens, steps}>.
  Napi::Value TrainStep(const Napi::CallbackInfo& info);
  // gradients(inputs) -> Promise<{loss, grads: {name: tensor}}>: train-mode forward and backward, no step.
  Napi::Value Gradients(const Napi::CallbackInfo& info);
  // save(dir) -> Promise<void>: config.json + model.safetensors, atomically.
  Napi::Value Save(const Napi::CallbackInfo& info);
  // regularization({regularization, attentionLambda, ...}) -> {loss, groups}: the penalty and densities now.
  Napi::Value Regularization(const Napi::CallbackInfo& info);
  // saveTrainingState(dir) / loadTrainingState(dir): optimizer.safetensors and rng.safetensors (training_state.h).
  Napi::Value SaveTrainingState(const Napi::CallbackInfo& info);
  Napi::Value LoadTrainingState(const Napi::CallbackInfo& info);
};

// createSeq2Seq(configJson, {seed, device}) -> Promise<NativeSeq2Seq>: random weights (seq2seq_init.h).
Napi::Value CreateSeq2Seq(const Napi::CallbackInfo& info);

// loadSeq2Seq(dir, {device}) -> Promise<NativeSeq2Seq>.
Napi::Value LoadSeq2Seq(const Napi::CallbackInfo& info);

}  // namespace bpn
