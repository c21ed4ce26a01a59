// Seq2SeqHandle's training methods (issue 18): trainStep, gradients, save, and createSeq2Seq (a model from a
// config with random weights). The arithmetic is native/seq2seq_training.h and seq2seq_init.h; here are the
// argument checks, the copies out of V8 before queueing, and the locks.
#include <mutex>

#include "errors.h"
#include "optimizer.h"
#include "seq2seq_handle.h"
#include "seq2seq_init.h"
#include "seq2seq_training.h"
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
