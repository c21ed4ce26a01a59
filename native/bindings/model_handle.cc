// ModelHandle's model methods: forward, save, the description (info), weights in and out, the gradients of one
// batch, dispose. Its pruning methods are in model_pruning.cc; a model's training state (optimizer,
// generator) is a handle of its own (training_handle.h).
#include "model_handle.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <chrono>
#include <cmath>
#include <mutex>

#include "checkpoint.h"
#include "errors.h"
#include "loss_args.h"
#include "quantize.h"
#include "safetensors.h"
#include "training.h"
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
                                        InstanceMethod<&ModelHandle::Quantize>("quantize"),
                                        InstanceMethod<&ModelHandle::Masks>("masks"),
                                        InstanceMethod<&ModelHandle::Regularization>("regularization"),
                                        InstanceMethod<&ModelHandle::BudgetCost>("budgetCost"),
                                        InstanceMethod<&ModelHandle::Gradients>("gradients"),
                                        InstanceMethod<&ModelHandle::LoadState>("loadState"),
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

Napi::Value ModelHandle::Quantize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bp::Bert m = cell(env)->model;
  const std::string dtype = get_string(info[0], "dtype");
  if (dtype != "int8" && dtype != "bf16") throw_range_error(env, "Expected 'int8' or 'bf16' for dtype but received '" + dtype + "'");
  if (!info[1].IsBoolean()) throw_type_error(env, "Expected a boolean for perChannel but received " + describe(info[1]));
  const bool per_channel = info[1].As<Napi::Boolean>().Value();
  auto result = std::make_shared<bp::Bert>(nullptr);
  // A new model, as compact() gives: the fp32 one stays usable (and is the one to train or prune further).
  return Queue(
      info, "blockprune.quantize", After::Keep, [m, dtype, per_channel, result]() { *result = bp::quantize_model(m, dtype, per_channel); },
      [result](Napi::Env e) -> Napi::Value { return ModelHandle::Wrap(e, *result); });
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
  o.Set("architecture", bp::architecture_name(*d.config.family, d.kind));
  // Where the family keeps its layers and each layer's linears (internal names, as pruning plans and masks
  // use them): nn_pruning's ModelStructure, for the TypeScript side.
  const bp::Family& f = *d.config.family;
  Napi::Object structure = Napi::Object::New(env);
  structure.Set("modelType", f.model_type);
  structure.Set("prefix", f.prefix);
  structure.Set("layers", f.prefix + "." + f.layers);
  Napi::Object linears = Napi::Object::New(env);
  linears.Set("query", f.query);
  linears.Set("key", f.key);
  linears.Set("value", f.value);
  linears.Set("attentionOutput", f.attn_out);
  linears.Set("intermediate", f.inter);
  linears.Set("output", f.out);
  structure.Set("linears", linears);
  Napi::Object norms = Napi::Object::New(env);
  norms.Set("attention", f.attn_norm);
  norms.Set("output", f.out_norm);
  structure.Set("norms", norms);
  structure.Set("tokenTypes", Napi::Boolean::New(env, f.token_types));
  structure.Set("positions", f.positions == bp::PositionIds::FromInputIds ? "input_ids" : "arange");
  Napi::Object cls = Napi::Object::New(env);
  cls.Set("pre", f.cls_pre);
  cls.Set("activation", f.cls_act);
  cls.Set("out", f.cls_out);
  cls.Set("preIsPooler", Napi::Boolean::New(env, f.cls_pre_is_pooler));
  structure.Set("classifier", cls);
  if (f.pooler) structure.Set("pooler", f.pooler_dense());
  o.Set("structure", structure);
  // The sizes under one set of names for every family (DistilBERT's config.json says "dim", "n_heads", ...).
  const bp::BertConfig& c = d.config;
  Napi::Object dims = Napi::Object::New(env);
  auto num = [&](const char* k, int64_t v) { dims.Set(k, Napi::Number::New(env, static_cast<double>(v))); };
  num("vocabSize", c.vocab_size);
  num("hiddenSize", c.hidden_size);
  num("numLayers", c.num_hidden_layers);
  num("numHeads", c.num_attention_heads);
  num("headDim", c.head_dim());
  num("intermediateSize", c.intermediate_size);
  num("maxPositions", c.max_position_embeddings);
  num("maxSequenceLength", c.max_sequence_length());
  num("typeVocabSize", c.family->token_types ? c.type_vocab_size : 0);
  num("padTokenId", c.pad_token_id);
  num("numLabels", c.num_labels);
  o.Set("dimensions", dims);
  o.Set("config", d.config_json);
  o.Set("numParameters", Napi::Number::New(env, static_cast<double>(d.num_parameters)));
  o.Set("device", d.device);
  o.Set("dtype", d.dtype);
  o.Set("weightBytes", Napi::Number::New(env, static_cast<double>(d.weight_bytes)));
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
        const bool bare = m->kind() == bp::TaskKind::Bare;
        const std::string base = m->family().prefix + ".";
        *loaded = bp::load_state(*m.ptr(), path, strict, [&](const std::string& name) { return bare && name.rfind(base, 0) != 0 ? base + name : name; });
      },
      [loaded](Napi::Env e) -> Napi::Value { return strings_to_js(e, *loaded); });
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
