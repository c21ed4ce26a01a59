#include "model_handle.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <chrono>
#include <cmath>
#include <cstring>

#include "checkpoint.h"
#include "compact.h"
#include "patch.h"
#include "safetensors.h"
#include "training.h"
#include "group_handle.h"

#include <ATen/CPUGeneratorImpl.h>
#include <mutex>
#include "errors.h"
#include "worker.h"

namespace bpn {
namespace {

class ForwardWorker : public PromiseWorker {
 public:
  ForwardWorker(Napi::Env env, bp::Bert model, bp::Batch batch, bp::ForwardOptions opts, bool training)
      : PromiseWorker(env, "blockprune.forward"), model_(std::move(model)), batch_(std::move(batch)), opts_(opts), training_(training) {}

 protected:
  void Run() override {
    // A forward is an evaluation (dropout off) unless asked otherwise; it then needs no autograd record
    // at all: inference mode skips version counters and views.
    model_->train(training_);
    c10::InferenceMode guard(!training_);
    out_ = model_->forward(batch_, opts_);
    // Move results to CPU here, off the main thread.
    for (auto& [name, t] : out_) t = t.detach().to(at::kCPU).contiguous();
  }
  Napi::Value Result(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    for (const auto& [name, t] : out_) o.Set(name, tensor_to_js(env, t));
    return o;
  }

 private:
  bp::Bert model_;
  bp::Batch batch_;
  bp::ForwardOptions opts_;
  bool training_;
  bp::NamedTensors out_;
};

// Times `runs` forwards inside one worker (after `warmup`): the bench compares this in-process native loop
// with per-call forwards from JS, which separates the binding's per-call cost from process effects.
class TimeForwardWorker : public PromiseWorker {
 public:
  TimeForwardWorker(Napi::Env env, bp::Bert model, bp::Batch batch, int64_t runs, int64_t warmup)
      : PromiseWorker(env, "blockprune.timeForward"), model_(std::move(model)), batch_(std::move(batch)), runs_(runs), warmup_(warmup) {}

 protected:
  void Run() override {
    model_->eval();
    c10::InferenceMode guard;
    for (int64_t i = 0; i < warmup_ + runs_; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      auto out = model_->forward(batch_);
      for (auto& [name, t] : out) t = t.contiguous();
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      if (i >= warmup_) times_.push_back(ms);
    }
  }
  Napi::Value Result(Napi::Env env) override {
    Napi::Float64Array a = Napi::Float64Array::New(env, times_.size());
    for (size_t i = 0; i < times_.size(); ++i) a[i] = times_[i];
    return a;
  }

 private:
  bp::Bert model_;
  bp::Batch batch_;
  int64_t runs_, warmup_;
  std::vector<double> times_;
};

}  // namespace

Napi::Function ModelHandle::Define(Napi::Env env) {
  Napi::Function ctor = DefineClass(env, "NativeModel",
                                    {
                                        InstanceMethod<&ModelHandle::Forward>("forward"),
                                        InstanceMethod<&ModelHandle::TimeForward>("timeForward"),
                                        InstanceMethod<&ModelHandle::Save>("save"),
                                        InstanceMethod<&ModelHandle::Patch>("patch"),
                                        InstanceMethod<&ModelHandle::SetThreshold>("setThreshold"),
                                        InstanceMethod<&ModelHandle::Compile>("compile"),
                                        InstanceMethod<&ModelHandle::Compact>("compact"),
                                        InstanceMethod<&ModelHandle::PadFfn>("padFfn"),
                                        InstanceMethod<&ModelHandle::Masks>("masks"),
                                        InstanceMethod<&ModelHandle::Regularization>("regularization"),
                                        InstanceMethod<&ModelHandle::Gradients>("gradients"),
                                        InstanceMethod<&ModelHandle::LoadState>("loadState"),
                                        InstanceMethod<&ModelHandle::TrainStep>("trainStep"),
                                        InstanceMethod<&ModelHandle::SaveTraining>("saveTraining"),
                                        InstanceMethod<&ModelHandle::LoadTraining>("loadTraining"),
                                        InstanceMethod<&ModelHandle::ResetOptimizer>("resetOptimizer"),
                                        InstanceMethod<&ModelHandle::FillZeros>("fillZeros"),
                                        InstanceMethod<&ModelHandle::Info>("info"),
                                        InstanceMethod<&ModelHandle::StateDict>("stateDict"),
                                        InstanceMethod<&ModelHandle::ReadStateDict>("readStateDict"),
                                        InstanceMethod<&ModelHandle::Dispose>("dispose"),
                                        InstanceAccessor<&ModelHandle::IsDisposed>("disposed"),
                                    });
  addon_data(env).model_ctor = Napi::Persistent(ctor);
  return ctor;
}

Napi::Object ModelHandle::Wrap(Napi::Env env, bp::Bert model) {
  return addon_data(env).model_ctor.New({Napi::External<bp::Bert>::New(env, &model)});
}

ModelHandle::ModelHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelHandle>(info) {
  if (info.Length() != 1 || !info[0].IsExternal())
    throw_type_error(info.Env(), "NativeModel cannot be constructed from JS: use loadModel() or createModel()");
  cell_ = std::make_shared<ModelCell>(info.Env(), *info[0].As<Napi::External<bp::Bert>>().Data());
}

ModelHandle::~ModelHandle() {
  if (cell_) cell_->Release(Env());
}

const std::shared_ptr<ModelCell>& ModelHandle::cell(Napi::Env env) const {
  if (!cell_) throw make_error(env, "E_DISPOSED", "this model was disposed");
  return cell_;
}

std::shared_ptr<ModelCell> ModelHandle::CellOf(Napi::Env env, const Napi::Value& value, const char* what) {
  if (!value.IsObject() || !value.As<Napi::Object>().InstanceOf(addon_data(env).model_ctor.Value()))
    throw_type_error(env, std::string("Expected a NativeModel for ") + what + " but received " + describe(value));
  return Unwrap(value.As<Napi::Object>())->cell(env);
}

Napi::Promise ModelHandle::Queue(const Napi::CallbackInfo& info, const char* name, After after, std::function<void()> run,
                                 std::function<Napi::Value(Napi::Env)> result, std::vector<ModelUse> others) {
  others.insert(others.begin(), ModelUse{cell(info.Env()), after});
  return queue_lambda(info.Env(), info.This().As<Napi::Object>(), name, std::move(run), std::move(result), std::move(others));
}

bp::Batch ModelHandle::ReadBatch(Napi::Env env, const bp::Bert& m, const Napi::Value& value) {
  Napi::Object in = get_object(value, "inputs");
  const int64_t B = get_int(in, "batchSize", -1, 1, 1 << 20);
  const int64_t S = get_int(in, "seqLen", -1, 1, 1 << 20);
  if (B < 0) throw_type_error(env, "Expected an integer for inputs.batchSize but received " + describe(in.Get("batchSize")));
  if (S < 0) throw_type_error(env, "Expected an integer for inputs.seqLen but received " + describe(in.Get("seqLen")));
  // Copy every input out of V8 now: the worker must never read JS memory.
  bp::Batch b;
  b.input_ids = int_tensor(in.Get("inputIds"), "inputs.inputIds", {B, S});
  auto opt = [&](const char* key, at::Tensor& dst, std::vector<int64_t> shape) {
    Napi::Value v = in.Get(key);
    if (!v.IsUndefined() && !v.IsNull()) dst = int_tensor(v, std::string("inputs.") + key, shape);
  };
  opt("attentionMask", b.attention_mask, {B, S});
  opt("tokenTypeIds", b.token_type_ids, {B, S});
  opt("labels", b.labels, {B});
  opt("startPositions", b.start_positions, {B});
  opt("endPositions", b.end_positions, {B});
  // Range checks (token id < vocab ...) are cheap: fail synchronously with a RangeError, like sharp.
  guarded(env, [&] { m->check_batch(b); });
  return b;
}

Napi::Value ModelHandle::Forward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto& c = cell(env);
  bp::Batch b = ReadBatch(env, c->model, info[0]);
  Napi::Object o = get_object(info[1], "options");
  bp::ForwardOptions fo;
  fo.hidden_states = get_bool(o, "hiddenStates", false);
  fo.attentions = get_bool(o, "attentions", false);
  fo.extras = get_bool(o, "extras", false);
  return queue_worker(new ForwardWorker(env, c->model, std::move(b), fo, get_bool(o, "training", false)), info.This().As<Napi::Object>(),
                      {{c, After::Keep}});
}

Napi::Value ModelHandle::TimeForward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto& c = cell(env);
  bp::Batch b = ReadBatch(env, c->model, info[0]);
  Napi::Object o = get_object(info[1], "options");
  return queue_worker(new TimeForwardWorker(env, c->model, std::move(b), get_int(o, "runs", 10, 1, 1 << 20), get_int(o, "warmup", 0, 0, 1 << 20)),
                      info.This().As<Napi::Object>(), {{c, After::Keep}});
}

Napi::Value ModelHandle::Save(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bp::Bert m = cell(env)->model;
  const std::string dir = get_string(info[0], "dir");
  // info[1]: files (the tokenizer's) copied into the saved directory, inside the same atomic replacement.
  std::vector<std::string> copies;
  if (info.Length() > 1 && !info[1].IsUndefined()) {
    if (!info[1].IsArray()) throw_type_error(env, "Expected an array of paths for copyFiles but received " + describe(info[1]));
    auto a = info[1].As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); ++i) copies.push_back(get_string(a.Get(i), "copyFiles[" + std::to_string(i) + "]"));
  }
  return Queue(info, "blockprune.save", After::Keep, [m, dir, copies]() { bp::save_pretrained(m, dir, copies); },
               [](Napi::Env e) { return e.Undefined(); });
}

Napi::Value ModelHandle::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  // The description published by the last job that changed the model: never the model itself.
  const bp::ModelInfo& d = *cell(env)->info;
  auto numbers = [&](const std::vector<int64_t>& v) {
    Napi::Array a = Napi::Array::New(env, v.size());
    for (size_t i = 0; i < v.size(); ++i) a.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(v[i])));
    return a;
  };
  Napi::Object o = Napi::Object::New(env);
  o.Set("task", bp::task_name(d.kind));
  o.Set("architecture", bp::architecture_name(d.kind));
  o.Set("config", d.config_json);
  o.Set("numParameters", Napi::Number::New(env, static_cast<double>(d.num_parameters)));
  o.Set("device", d.device);
  Napi::Array layers = Napi::Array::New(env, d.layers.size());
  for (size_t i = 0; i < d.layers.size(); ++i) {
    Napi::Object l = Napi::Object::New(env);
    l.Set("heads", Napi::Number::New(env, static_cast<double>(d.layers[i].kept_heads.size())));
    l.Set("keptHeads", numbers(d.layers[i].kept_heads));
    l.Set("intermediateSize", Napi::Number::New(env, static_cast<double>(d.layers[i].intermediate_size)));
    layers.Set(static_cast<uint32_t>(i), l);
  }
  o.Set("layers", layers);
  o.Set("patched", Napi::Boolean::New(env, d.patched));
  if (d.patched) {
    o.Set("threshold", Napi::Number::New(env, d.threshold));
    o.Set("pruningPlan", d.pruning_plan);
  }
  // Names (HF state-dict keys) and shapes, in named_parameters() order: what reports print.
  Napi::Array params = Napi::Array::New(env, d.parameters.size());
  for (size_t i = 0; i < d.parameters.size(); ++i) {
    Napi::Array entry = Napi::Array::New(env, 2);
    entry.Set(0u, d.parameters[i].first);
    entry.Set(1u, numbers(d.parameters[i].second));
    params.Set(static_cast<uint32_t>(i), entry);
  }
  o.Set("parameters", params);
  return o;
}

Napi::Value ModelHandle::StateDict(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto& c = cell(env);
  // Synchronous, so it must not wait for a job: it refuses while one is queued or running on this model (as
  // itself, as a teacher, in syncModel), and reads the weights holding the lock.
  std::unique_lock<std::mutex> lock(c->mutex, std::defer_lock);
  if (c->jobs > 0 || !lock.try_lock())
    throw make_error(env, "E_BUSY", "stateDict(): a native call is running on this model; await it first (or use readStateDict())");
  return guarded(env, [&]() -> Napi::Value { return tensors_to_js(env, bp::state_dict(c->model)); });
}

Napi::Value ModelHandle::ReadStateDict(const Napi::CallbackInfo& info) {
  bp::Bert m = cell(info.Env())->model;
  auto out = std::make_shared<bp::NamedTensors>();
  return Queue(
      info, "blockprune.readStateDict", After::Keep,
      [m, out]() {
        // Copies taken under the lock: the JS arrays are filled on the main thread, after it is released.
        *out = bp::state_dict(m);
        for (auto& [name, t] : *out) t = t.detach().to(at::kCPU).clone();
      },
      [out](Napi::Env e) -> Napi::Value { return tensors_to_js(e, *out); });
}

namespace {

bp::LossOptions read_loss_options(const Napi::Object& o) {
  bp::LossOptions lo;
  lo.regularization = get_string_opt(o, "regularization", "disabled");
  if (lo.regularization != "disabled" && lo.regularization != "l1" && lo.regularization != "l0")
    throw_range_error(o.Env(), "Expected 'disabled', 'l1' or 'l0' for regularization but received '" + lo.regularization + "'");
  auto num = [&](const char* key, double def) {
    Napi::Value v = o.Get(key);
    if (v.IsUndefined() || v.IsNull()) return def;
    if (!v.IsNumber() || !std::isfinite(v.As<Napi::Number>().DoubleValue()))
      throw_type_error(o.Env(), std::string("Expected a finite number for ") + key + " but received " + describe(v));
    return v.As<Napi::Number>().DoubleValue();
  };
  lo.lambda = num("lambda", 0);
  lo.attention_lambda = num("attentionLambda", 1);
  lo.dense_lambda = num("denseLambda", 1);
  return lo;
}

Napi::Object regularization_to_js(Napi::Env env, const bp::RegularizationResult& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("loss", Napi::Number::New(env, r.loss.defined() ? r.loss.item<double>() : 0.0));
  Napi::Object groups = Napi::Object::New(env);
  for (const auto& g : r.groups) {
    Napi::Object gj = Napi::Object::New(env);
    gj.Set("loss", g.loss);
    gj.Set("density", g.density);
    gj.Set("tensors", Napi::Number::New(env, static_cast<double>(g.tensors)));
    groups.Set(g.name, gj);
  }
  o.Set("groups", groups);
  return o;
}

}  // namespace

Napi::Value ModelHandle::Patch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bp::Bert m = cell(env)->model;
  const std::string plan_text = get_string(info[0], "plan");
  nlohmann::json plan;
  guarded(env, [&] {
    try {
      plan = nlohmann::json::parse(plan_text);
    } catch (const nlohmann::json::exception& e) {
      throw bp::Error("E_INVALID_ARG", std::string("pruning plan is not valid JSON (") + e.what() + ")");
    }
  });
  auto report = std::make_shared<bp::PatchReport>();
  return Queue(
      info, "blockprune.patch", After::Describe, [m, plan, report]() mutable { *report = bp::patch_model(m, plan); },
      [report](Napi::Env e) -> Napi::Value {
        Napi::Object o = Napi::Object::New(e);
        Napi::Array mods = Napi::Array::New(e, report->modules.size());
        for (size_t i = 0; i < report->modules.size(); ++i) mods.Set(static_cast<uint32_t>(i), report->modules[i]);
        o.Set("modules", mods);
        o.Set("scoreParameters", Napi::Number::New(e, static_cast<double>(report->score_parameters)));
        return o;
      });
}

Napi::Value ModelHandle::SetThreshold(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bp::Bert m = cell(env)->model;
  if (!info[0].IsNumber() || !std::isfinite(info[0].As<Napi::Number>().DoubleValue()))
    throw_type_error(env, "Expected a finite number for threshold but received " + describe(info[0]));
  const double t = info[0].As<Napi::Number>().DoubleValue();
  return Queue(info, "blockprune.setThreshold", After::Describe, [m, t]() mutable { bp::set_threshold(m, t); },
               [](Napi::Env e) { return e.Undefined(); });
}

Napi::Value ModelHandle::Compile(const Napi::CallbackInfo& info) {
  bp::Bert m = cell(info.Env())->model;
  // Whether it is patched is checked by compile_model, under the lock: a patch queued before this call counts.
  return Queue(info, "blockprune.compile", After::Describe, [m]() mutable { bp::compile_model(m); },
               [](Napi::Env e) { return e.Undefined(); });
}

Napi::Value ModelHandle::Compact(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bp::Bert m = cell(env)->model;
  const std::string mode = info[0].IsUndefined() ? "dense" : get_string(info[0], "mode");
  if (mode != "dense" && mode != "heads")
    throw_range_error(env, "Expected 'dense' or 'heads' for mode but received '" + mode + "'");
  auto result = std::make_shared<std::pair<bp::Bert, bp::CompactReport>>(bp::Bert(nullptr), bp::CompactReport());
  return Queue(
      info, "blockprune.compact", After::Keep,
      [m, mode, result]() { result->first = bp::compact_model(m, mode, &result->second); },
      [result](Napi::Env e) -> Napi::Value {
        const auto& r = result->second;
        Napi::Object o = Napi::Object::New(e);
        o.Set("model", ModelHandle::Wrap(e, result->first));
        Napi::Object rep = Napi::Object::New(e);
        rep.Set("parametersBefore", Napi::Number::New(e, static_cast<double>(r.parameters_before)));
        rep.Set("parametersAfter", Napi::Number::New(e, static_cast<double>(r.parameters_after)));
        Napi::Array removed = Napi::Array::New(e, r.removed_heads.size());
        for (size_t i = 0; i < r.removed_heads.size(); ++i) {
          Napi::Array a = Napi::Array::New(e, r.removed_heads[i].size());
          for (size_t k = 0; k < r.removed_heads[i].size(); ++k)
            a.Set(static_cast<uint32_t>(k), Napi::Number::New(e, static_cast<double>(r.removed_heads[i][k])));
          removed.Set(static_cast<uint32_t>(i), a);
        }
        rep.Set("removedHeads", removed);
        Napi::Array heads = Napi::Array::New(e, r.heads.size()), widths = Napi::Array::New(e, r.ffn_widths.size());
        for (size_t i = 0; i < r.heads.size(); ++i) heads.Set(static_cast<uint32_t>(i), Napi::Number::New(e, static_cast<double>(r.heads[i])));
        for (size_t i = 0; i < r.ffn_widths.size(); ++i)
          widths.Set(static_cast<uint32_t>(i), Napi::Number::New(e, static_cast<double>(r.ffn_widths[i])));
        rep.Set("heads", heads);
        rep.Set("ffnWidths", widths);
        o.Set("report", rep);
        return o;
      });
}

Napi::Value ModelHandle::PadFfn(const Napi::CallbackInfo& info) {
  bp::Bert m = cell(info.Env())->model;
  auto result = std::make_shared<bp::Bert>(nullptr);
  return Queue(
      info, "blockprune.padFfn", After::Keep, [m, result]() { *result = bp::pad_ffn_to_config(m); },
      [result](Napi::Env e) -> Napi::Value { return ModelHandle::Wrap(e, *result); });
}

Napi::Value ModelHandle::Masks(const Napi::CallbackInfo& info) {
  bp::Bert m = cell(info.Env())->model;
  auto result = std::make_shared<bp::NamedTensors>();
  return Queue(
      info, "blockprune.masks", After::Keep,
      [m, result]() {
        *result = bp::current_masks(m);
        // 0/1 as bytes: a bert-base set of masks is 85 MB as floats, 21 MB as bytes.
        for (auto& [name, t] : *result) t = t.ne(0).to(at::kCPU);
      },
      [result](Napi::Env e) -> Napi::Value { return tensors_to_js(e, *result); });
}

Napi::Value ModelHandle::Regularization(const Napi::CallbackInfo& info) {
  bp::Bert m = cell(info.Env())->model;
  bp::LossOptions lo = read_loss_options(get_object(info[0], "options"));
  if (lo.regularization == "disabled") lo.regularization = "l1";
  auto result = std::make_shared<bp::RegularizationResult>();
  return Queue(
      info, "blockprune.regularization", After::Keep,
      [m, lo, result]() {
        at::NoGradGuard no_grad;
        *result = bp::regularization(m, lo.regularization, lo.attention_lambda, lo.dense_lambda);
      },
      [result](Napi::Env e) -> Napi::Value { return regularization_to_js(e, *result); });
}

Napi::Value ModelHandle::Gradients(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bp::Bert m = cell(env)->model;
  bp::Batch b = ReadBatch(env, m, info[0]);
  bp::LossOptions lo = read_loss_options(get_object(info[1], "options"));
  struct Out {
    bp::NamedTensors grads;
    bp::LossResult r;
  };
  auto out = std::make_shared<Out>();
  return Queue(
      info, "blockprune.gradients", After::Keep,
      [m, b, lo, out]() mutable {
        out->grads = bp::compute_gradients(m, b, lo, &out->r);
        for (auto& [n, t] : out->r.outputs) t = t.detach().to(at::kCPU).contiguous();
      },
      [out](Napi::Env e) -> Napi::Value {
        Napi::Object o = Napi::Object::New(e);
        o.Set("loss", Napi::Number::New(e, out->r.loss.item<double>()));
        o.Set("taskLoss", Napi::Number::New(e, out->r.task_loss.item<double>()));
        o.Set("reguLoss", Napi::Number::New(e, out->r.regu_loss.item<double>()));
        o.Set("regularization", regularization_to_js(e, out->r.regu));
        o.Set("outputs", tensors_to_js(e, out->r.outputs));
        o.Set("grads", tensors_to_js(e, out->grads));
        return o;
      });
}

Napi::Value ModelHandle::LoadState(const Napi::CallbackInfo& info) {
  bp::Bert m = cell(info.Env())->model;
  const std::string path = get_string(info[0], "path");
  const bool strict = get_bool(get_object(info[1], "options"), "strict", true);
  auto loaded = std::make_shared<std::vector<std::string>>();
  // Weights only, of the shapes they had (checked): what the getters report stays.
  return Queue(
      info, "blockprune.loadState", After::Keep,
      [m, path, strict, loaded]() {
        auto file = bp::read_safetensors(path);
        auto params = m->named_parameters();
        const bool bare = m->kind() == bp::TaskKind::Bare;
        at::NoGradGuard no_grad;
        // Check every tensor before copying any: a bad file leaves the model as it was.
        std::vector<std::pair<at::Tensor*, const at::Tensor*>> plan;
        for (auto& [name, t] : file.tensors) {
          const std::string key = bare && name.rfind("bert.", 0) != 0 ? "bert." + name : name;
          auto* p = params.find(key);
          if (!p) {
            if (strict) throw bp::Error("E_UNEXPECTED_TENSOR", path + " holds tensor '" + name + "' that this model does not have");
            continue;
          }
          if (p->sizes() != t.sizes())
            throw bp::Error("E_SHAPE", path + ": tensor '" + name + "' has shape " + bp::shape_str(t.sizes().vec()) +
                                           " but the model's is " + bp::shape_str(p->sizes().vec()));
          if (t.is_floating_point() && !at::isfinite(t).all().item<bool>())
            throw bp::Error("E_BAD_CHECKPOINT", path + ": tensor '" + name + "' holds NaN or infinite values");
          plan.emplace_back(p, &t);
          loaded->push_back(name);
        }
        for (auto& [p, t] : plan) p->copy_(t->to(p->scalar_type()));
      },
      [loaded](Napi::Env e) -> Napi::Value {
        Napi::Array a = Napi::Array::New(e, loaded->size());
        for (size_t i = 0; i < loaded->size(); ++i) a.Set(static_cast<uint32_t>(i), (*loaded)[i]);
        return a;
      });
}

Napi::Value ModelHandle::TrainStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bp::Bert m = cell(env)->model;
  // info[3]: a process group (data-parallel); then info[0] may be null (this rank has no rows this step).
  std::shared_ptr<bp::ProcessGroup> group;
  if (info.Length() > 3 && !info[3].IsUndefined() && !info[3].IsNull()) group = GroupHandle::From(env, info[3], "group");
  auto b = std::make_shared<bp::Batch>();
  const bool has_batch = !(group && info[0].IsNull());
  if (has_batch) *b = ReadBatch(env, m, info[0]);
  Napi::Object o = get_object(info[1], "options");
  bp::TrainStepOptions so;
  so.loss = read_loss_options(o);
  auto num = [&](const char* key, double def, double lo, double hi) {
    Napi::Value v = o.Get(key);
    if (v.IsUndefined() || v.IsNull()) return def;
    if (!v.IsNumber()) throw_type_error(env, std::string("Expected a number for ") + key + " but received " + describe(v));
    const double d = v.As<Napi::Number>().DoubleValue();
    if (!(d >= lo && d <= hi))
      throw_range_error(env, std::string("Expected ") + key + " in [" + std::to_string(lo) + ", " + std::to_string(hi) + "] but received " + std::to_string(d));
    return d;
  };
  so.adam.lr = num("lr", 5e-5, 0, 10);
  so.adam.mask_lr = num("maskLr", 1e-2, 0, 100);
  so.adam.weight_decay = num("weightDecay", 0, 0, 10);
  so.adam.beta1 = num("beta1", 0.9, 0, 1);
  so.adam.beta2 = num("beta2", 0.999, 0, 1);
  so.adam.eps = num("eps", 1e-8, 0, 1);
  so.lr_scale = num("lrScale", 1, 0, 1e6);
  so.max_grad_norm = num("maxGradNorm", 1.0, -1, 1e12);
  so.distil.alpha_ce = num("alphaCe", 0.5, 0, 1e6);
  so.distil.alpha_teacher = num("alphaTeacher", 0.5, 0, 1e6);
  so.distil.temperature = num("temperature", 2.0, 1e-6, 1e6);
  if (!o.Get("threshold").IsUndefined()) {
    so.set_threshold = true;
    so.threshold = num("threshold", 0, -1e9, 1e9);
  }
  bp::Bert teacher(nullptr);
  std::vector<ModelUse> others;
  if (info.Length() > 2 && !info[2].IsUndefined() && !info[2].IsNull()) {
    auto tc = CellOf(env, info[2], "teacher");
    if (tc == cell_) throw_range_error(env, "the teacher must be another model than the student");
    teacher = tc->model;
    // The teacher's forward sets its eval mode and fills its caches: it is locked like the student.
    others.push_back({tc, After::Keep});
  }
  so.group = group;
  so.stop_vote = info.Length() > 4 && info[4].ToBoolean().Value();
  auto opt = optimizer_;
  auto result = std::make_shared<bp::TrainStepResult>();
  // Described again only when the step sets the threshold (about 0.6 ms for a patched bert-base): otherwise
  // it changes weights alone.
  return Queue(
      info, "blockprune.trainStep", so.set_threshold ? After::Describe : After::Keep,
      [m, opt, b, has_batch, so, teacher, result]() mutable {
        bp::Bert* t = teacher.is_empty() ? nullptr : &teacher;
        *result = bp::train_step(m, *opt, has_batch ? b.get() : nullptr, so, t);
      },
      [result](Napi::Env e) -> Napi::Value {
        Napi::Object r = Napi::Object::New(e);
        r.Set("loss", result->loss);
        r.Set("taskLoss", result->task_loss);
        r.Set("reguLoss", result->regu_loss);
        r.Set("distilLoss", result->distil_loss);
        r.Set("gradNorm", result->grad_norm);
        r.Set("examples", Napi::Number::New(e, static_cast<double>(result->examples)));
        r.Set("stop", Napi::Boolean::New(e, result->stop));
        r.Set("syncMs", result->sync_ms);
        r.Set("regularization", regularization_to_js(e, result->regu));
        return r;
      },
      std::move(others));
}

Napi::Value ModelHandle::SaveTraining(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  cell(env);  // E_DISPOSED before any argument error, as every method
  const std::string dir = get_string(info[0], "dir");
  // info[1]: the other ranks' generator states (data-parallel runs), saved as "cpu.rank<r>".
  bp::NamedTensors others;
  if (info.Length() > 1 && !info[1].IsUndefined() && !info[1].IsNull()) {
    if (!info[1].IsArray()) throw_type_error(env, "Expected an array of Uint8Array for rngStates but received " + describe(info[1]));
    auto a = info[1].As<Napi::Array>();
    for (uint32_t r = 1; r < a.Length(); ++r) {
      Napi::Value v = a.Get(r);
      if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
        throw_type_error(env, "Expected a Uint8Array for rngStates[" + std::to_string(r) + "] but received " + describe(v));
      auto u = v.As<Napi::Uint8Array>();
      auto t = at::empty({static_cast<int64_t>(u.ElementLength())}, at::kByte);
      if (u.ElementLength()) std::memcpy(t.data_ptr<uint8_t>(), u.Data(), u.ElementLength());
      others.emplace_back("cpu.rank" + std::to_string(r), t);
    }
  }
  auto opt = optimizer_;
  // Holds the model's lock: it guards the optimizer state too.
  return Queue(
      info, "blockprune.saveTraining", After::Keep,
      [dir, opt, others]() {
        bp::write_safetensors(dir + "/optimizer.safetensors", opt->state(), {{"format", "blockprune-adamw"}});
        // The default CPU generator drives dropout: saving it makes a resumed run draw the same masks.
        auto gen = at::detail::getDefaultCPUGenerator();
        at::Tensor rng;
        {
          std::lock_guard<std::mutex> lock(gen.mutex());
          rng = gen.get_state();
        }
        bp::NamedTensors all{{"cpu", rng}};
        all.insert(all.end(), others.begin(), others.end());
        bp::write_safetensors(dir + "/rng.safetensors", all, {});
      },
      [](Napi::Env e) { return e.Undefined(); });
}

Napi::Value ModelHandle::LoadTraining(const Napi::CallbackInfo& info) {
  bp::Bert m = cell(info.Env())->model;
  const std::string dir = get_string(info[0], "dir");
  // info[1]: this process's rank in a data-parallel run (its generator state is "cpu.rank<r>", rank 0's "cpu").
  const int64_t rank = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().Int64Value() : 0;
  auto opt = optimizer_;
  return Queue(
      info, "blockprune.loadTraining", After::Keep,
      [m, dir, opt, rank]() {
        const auto path = dir + "/optimizer.safetensors";
        auto file = bp::read_safetensors(path);
        opt->load_state(file.tensors, m, path);
        auto rng = bp::read_safetensors(dir + "/rng.safetensors");
        const std::string want = rank == 0 ? "cpu" : "cpu.rank" + std::to_string(rank);
        const at::Tensor* state = nullptr;
        for (const auto& [name, t] : rng.tensors)
          if (name == want) state = &t;
        if (!state) throw bp::Error("E_BAD_CHECKPOINT", dir + "/rng.safetensors: no generator state '" + want + "' (was the checkpoint made with another world size?)");
        auto gen = at::detail::getDefaultCPUGenerator();
        std::lock_guard<std::mutex> lock(gen.mutex());
        try {
          gen.set_state(*state);
        } catch (const c10::Error& e) {
          throw bp::Error("E_BAD_CHECKPOINT", dir + "/rng.safetensors: not a generator state (" + e.what_without_backtrace() + ")");
        }
      },
      [](Napi::Env e) { return e.Undefined(); });
}

Napi::Value ModelHandle::FillZeros(const Napi::CallbackInfo& info) {
  bp::Bert m = cell(info.Env())->model;
  const uint64_t seed = info[0].IsNumber() ? static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value()) : 0;
  auto count = std::make_shared<int64_t>(0);
  return Queue(
      info, "blockprune.fillZeros", After::Keep, [m, seed, count]() mutable { *count = bp::fill_zeros(m, seed); },
      [count](Napi::Env e) -> Napi::Value { return Napi::Number::New(e, static_cast<double>(*count)); });
}

Napi::Value ModelHandle::ResetOptimizer(const Napi::CallbackInfo& info) {
  auto opt = optimizer_;
  // A job: a train step of this model may be using the moments right now.
  return Queue(info, "blockprune.resetOptimizer", After::Keep, [opt]() { opt->reset(); }, [](Napi::Env e) { return e.Undefined(); });
}

Napi::Value ModelHandle::Dispose(const Napi::CallbackInfo& info) {
  // A job queued or in flight holds its own reference to the model's cell, so it finishes safely; the weights
  // are freed when the last reference goes.
  if (cell_) {
    cell_->Release(info.Env());
    cell_.reset();
  }
  return info.Env().Undefined();
}

Napi::Value ModelHandle::IsDisposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), !cell_);
}

}  // namespace bpn
