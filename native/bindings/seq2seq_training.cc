// Seq2SeqHandle's training methods (issue 18): trainStep, gradients, save, and createSeq2Seq (a model from a
// config with random weights). The arithmetic is native/seq2seq_training.h and seq2seq_init.h; here are the
// argument checks, the copies out of V8 before queueing, and the locks.
#include <c10/core/GradMode.h>

#include <mutex>

#include "errors.h"
#include "loss_args.h"
#include "optimizer.h"
#include "seq2seq_handle.h"
#include "seq2seq_init.h"
#include "seq2seq_training.h"
#include "training_state.h"
#include "worker.h"

namespace bpn {

namespace {

// A number option in [lo, hi] (the TypeScript layer checks the same ranges first; this guards direct callers).
double number_option(const Napi::Object& o, const char* key, double def, double lo, double hi) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return def;
  if (!v.IsNumber()) throw_type_error(o.Env(), std::string("Expected a number for options.") + key + " but received " + describe(v));
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= lo && d <= hi))
    throw_range_error(o.Env(), std::string("Expected a number in [") + std::to_string(lo) + ", " + std::to_string(hi) + "] for options." + key +
                                   " but received " + std::to_string(d));
  return d;
}

// {kind, lambda, attentionLambda, denseLambda, decoderAttentionLambda?, decoderDenseLambda?}.
void read_regularization(const Napi::Object& o, bp::Seq2SeqTrainOptions& so) {
  so.regularization = get_string_opt(o, "kind", "disabled");
  if (so.regularization != "disabled" && so.regularization != "l1" && so.regularization != "l0")
    throw_range_error(o.Env(), "Expected 'disabled', 'l1' or 'l0' for options.regularization.kind but received '" + so.regularization + "'");
  so.lambda = number_option(o, "lambda", 0, 0, 1e12);
  so.lambdas.attention = number_option(o, "attentionLambda", 1, 0, 1e12);
  so.lambdas.dense = number_option(o, "denseLambda", 1, 0, 1e12);
  for (auto [key, into] : {std::pair{"decoderAttentionLambda", &so.lambdas.decoder_attention}, std::pair{"decoderDenseLambda", &so.lambdas.decoder_dense}}) {
    Napi::Value v = o.Get(key);
    if (!v.IsUndefined() && !v.IsNull()) *into = number_option(o, key, 1, 0, 1e12);
  }
}

bp::Seq2SeqTrainOptions read_train_options(const Napi::Object& o) {
  bp::Seq2SeqTrainOptions so;
  so.adam.lr = number_option(o, "lr", 5e-5, 0, 10);
  so.adam.weight_decay = number_option(o, "weightDecay", 0, 0, 10);
  so.adam.beta1 = number_option(o, "beta1", 0.9, 0, 1);
  so.adam.beta2 = number_option(o, "beta2", 0.999, 0, 1);
  so.adam.eps = number_option(o, "eps", 1e-8, 0, 1);
  so.lr_scale = number_option(o, "lrScale", 1, 0, 1e6);
  so.max_grad_norm = number_option(o, "maxGradNorm", 1.0, -1, 1e12);
  so.alpha_ce = number_option(o, "alphaCe", 0.5, 0, 1e6);
  so.alpha_teacher = number_option(o, "alphaTeacher", 0.5, 0, 1e6);
  so.temperature = number_option(o, "temperature", 2.0, 1e-6, 1e6);
  so.adam.mask_lr = number_option(o, "maskLr", 1e-2, 0, 100);
  Napi::Value t = o.Get("threshold");
  if (!t.IsUndefined() && !t.IsNull()) {
    so.set_threshold = true;
    so.threshold = number_option(o, "threshold", 0, -1e9, 1e9);
  }
  Napi::Value r = o.Get("regularization");
  if (!r.IsUndefined() && !r.IsNull()) read_regularization(get_object(r, "options.regularization"), so);
  return so;
}

}  // namespace

Napi::Value Seq2SeqHandle::TrainStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto c = cell(env);
  const bp::Seq2SeqBatch b = ReadBatch(env, info[0]);
  const bp::Seq2SeqTrainOptions so = read_train_options(info.Length() > 1 && !info[1].IsUndefined() ? get_object(info[1], "options") : Napi::Object::New(env));
  std::shared_ptr<Cell> t;
  if (info.Length() > 2 && !info[2].IsUndefined() && !info[2].IsNull()) {
    t = CellOf(env, info[2], "teacher");
    if (t == c) throw_range_error(env, "the teacher must be another model than the student");
  }
  auto out = std::make_shared<bp::Seq2SeqStepResult>();
  auto steps = std::make_shared<int64_t>(0);
  return queue_lambda(
      env, info.This().As<Napi::Object>(), "blockprune.seq2seqTrainStep",
      [c, t, b, so, out, steps]() {
        // Both models at once (std::scoped_lock orders the two mutexes: two students teaching each other in
        // parallel cannot deadlock). The teacher's forward changes its mode, so it is locked like the student.
        std::unique_lock<std::mutex> own(c->mutex, std::defer_lock), other;
        if (t) {
          other = std::unique_lock<std::mutex>(t->mutex, std::defer_lock);
          std::lock(own, other);
        } else {
          own.lock();
        }
        if (!c->optimizer) c->optimizer = std::make_shared<bp::AdamW>();
        *out = bp::seq2seq_train_step(*c->model, *c->optimizer, b, so, t ? t->model.get() : nullptr);
        *steps = c->optimizer->steps();
      },
      [out, steps](Napi::Env e) -> Napi::Value {
        Napi::Object r = Napi::Object::New(e);
        r.Set("loss", out->loss);
        r.Set("taskLoss", out->task_loss);
        r.Set("distilLoss", out->distil_loss);
        r.Set("gradNorm", out->grad_norm);
        r.Set("tokens", Napi::Number::New(e, static_cast<double>(out->tokens)));
        r.Set("steps", Napi::Number::New(e, static_cast<double>(*steps)));
        r.Set("reguLoss", out->regu_loss);
        r.Set("groups", regularization_to_js(e, out->regu).Get("groups"));
        return r;
      });
}

Napi::Value Seq2SeqHandle::Gradients(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto c = cell(env);
  const bp::Seq2SeqBatch b = ReadBatch(env, info[0]);
  auto grads = std::make_shared<bp::NamedTensors>();
  auto loss = std::make_shared<double>(0);
  return queue_lambda(
      env, info.This().As<Napi::Object>(), "blockprune.seq2seqGradients",
      [c, b, grads, loss]() {
        std::lock_guard<std::mutex> lock(c->mutex);
        *grads = bp::seq2seq_gradients(*c->model, b, loss.get());
      },
      [grads, loss](Napi::Env e) -> Napi::Value {
        Napi::Object r = Napi::Object::New(e);
        r.Set("loss", *loss);
        r.Set("grads", tensors_to_js(e, *grads));
        return r;
      });
}

Napi::Value Seq2SeqHandle::Save(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto c = cell(env);
  const std::string dir = get_string(info[0], "dir");
  // info[1]: the tokenizer's files, copied inside the same atomic replacement (as NativeModel.save).
  std::vector<std::string> copies;
  if (info.Length() > 1 && !info[1].IsUndefined()) {
    if (!info[1].IsArray()) throw_type_error(env, "Expected an array of paths for copyFiles but received " + describe(info[1]));
    for (uint32_t i = 0; i < info[1].As<Napi::Array>().Length(); ++i) copies.push_back(get_string(info[1].As<Napi::Array>().Get(i), "copyFiles[" + std::to_string(i) + "]"));
  }
  return queue_lambda(
      env, info.This().As<Napi::Object>(), "blockprune.seq2seqSave",
      [c, dir, copies]() {
        std::lock_guard<std::mutex> lock(c->mutex);
        bp::save_seq2seq(*c->model, dir, copies);
      },
      [](Napi::Env e) -> Napi::Value { return e.Undefined(); });
}

Napi::Value Seq2SeqHandle::Regularization(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto c = cell(env);
  bp::Seq2SeqTrainOptions so;
  read_regularization(info.Length() > 0 && !info[0].IsUndefined() ? get_object(info[0], "options") : Napi::Object::New(env), so);
  if (so.regularization == "disabled") so.regularization = "l1";
  auto out = std::make_shared<bp::RegularizationResult>();
  return queue_lambda(
      env, info.This().As<Napi::Object>(), "blockprune.seq2seqRegularization",
      [c, so, out]() {
        std::lock_guard<std::mutex> lock(c->mutex);
        if (!c->model->is_patched()) throw bp::Error("E_INVALID_ARG", "the model is not patched for pruning: no scores to regularize");
        at::NoGradGuard no_grad;
        *out = bp::regularization(*c->model, so.regularization, so.lambdas);
      },
      [out](Napi::Env e) -> Napi::Value { return regularization_to_js(e, *out); });
}

Napi::Value Seq2SeqHandle::SaveTrainingState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto c = cell(env);
  const std::string dir = get_string(info[0], "dir");
  return queue_lambda(
      env, info.This().As<Napi::Object>(), "blockprune.seq2seqSaveTraining",
      [c, dir]() {
        std::lock_guard<std::mutex> lock(c->mutex);
        // No step yet: an empty optimizer (a resume from it starts the moments afresh, as the run would).
        bp::save_training_state(c->optimizer ? *c->optimizer : bp::AdamW(), dir, {});
      },
      [](Napi::Env e) -> Napi::Value { return e.Undefined(); });
}

Napi::Value Seq2SeqHandle::LoadTrainingState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto c = cell(env);
  const std::string dir = get_string(info[0], "dir");
  return queue_lambda(
      env, info.This().As<Napi::Object>(), "blockprune.seq2seqLoadTraining",
      [c, dir]() {
        std::lock_guard<std::mutex> lock(c->mutex);
        auto next = std::make_shared<bp::AdamW>();
        bp::load_training_state(*next, *c->model, dir, 0);
        c->optimizer = next;
      },
      [](Napi::Env e) -> Napi::Value { return e.Undefined(); });
}

Napi::Value CreateSeq2Seq(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string config = get_string(info[0], "configJson");
  Napi::Object o = info.Length() > 1 && !info[1].IsUndefined() ? get_object(info[1], "options") : Napi::Object::New(env);
  const auto seed = static_cast<uint64_t>(get_int(o, "seed", 42, 0, (int64_t{1} << 53) - 1));
  const std::string device = get_string_opt(o, "device", "cpu");
  auto out = std::make_shared<std::shared_ptr<bp::Seq2SeqImpl>>();
  return queue_lambda(
      env, Napi::Object(), "blockprune.createSeq2Seq", [config, seed, device, out]() { *out = bp::create_seq2seq(config, seed, device); },
      [out](Napi::Env e) -> Napi::Value { return Seq2SeqHandle::Wrap(e, *out); });
}

}  // namespace bpn
