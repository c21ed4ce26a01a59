#include "model_handle.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <chrono>

#include "checkpoint.h"
#include "errors.h"
#include "worker.h"

namespace bpn {
namespace {

struct AddonData {
  Napi::FunctionReference model_ctor;
};

class ForwardWorker : public PromiseWorker {
 public:
  ForwardWorker(Napi::Env env, bp::Bert model, bp::Batch batch, bp::ForwardOptions opts)
      : PromiseWorker(env, "blockprune.forward"), model_(std::move(model)), batch_(std::move(batch)), opts_(opts) {}

 protected:
  void Run() override {
    // Eval forwards need no autograd record at all: inference mode skips version counters and views.
    c10::InferenceMode guard(!model_->is_training());
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
    c10::InferenceMode guard(!model_->is_training());
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

class SaveWorker : public PromiseWorker {
 public:
  SaveWorker(Napi::Env env, bp::Bert model, std::string dir)
      : PromiseWorker(env, "blockprune.save"), model_(std::move(model)), dir_(std::move(dir)) {}

 protected:
  void Run() override { bp::save_pretrained(model_, dir_); }
  Napi::Value Result(Napi::Env env) override { return env.Undefined(); }

 private:
  bp::Bert model_;
  std::string dir_;
};

}  // namespace

Napi::Function ModelHandle::Define(Napi::Env env) {
  Napi::Function ctor = DefineClass(env, "NativeModel",
                                    {
                                        InstanceMethod<&ModelHandle::Forward>("forward"),
                                        InstanceMethod<&ModelHandle::TimeForward>("timeForward"),
                                        InstanceMethod<&ModelHandle::Save>("save"),
                                        InstanceMethod<&ModelHandle::Info>("info"),
                                        InstanceMethod<&ModelHandle::StateDict>("stateDict"),
                                        InstanceMethod<&ModelHandle::Dispose>("dispose"),
                                        InstanceAccessor<&ModelHandle::IsDisposed>("disposed"),
                                    });
  auto* data = env.GetInstanceData<AddonData>();
  if (!data) {
    data = new AddonData();
    env.SetInstanceData(data);
  }
  data->model_ctor = Napi::Persistent(ctor);
  return ctor;
}

Napi::Object ModelHandle::Wrap(Napi::Env env, bp::Bert model) {
  auto* data = env.GetInstanceData<AddonData>();
  Napi::Object obj = data->model_ctor.New({Napi::External<bp::Bert>::New(env, &model)});
  return obj;
}

ModelHandle::ModelHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelHandle>(info) {
  if (info.Length() != 1 || !info[0].IsExternal())
    throw_type_error(info.Env(), "NativeModel cannot be constructed from JS: use loadModel() or createModel()");
  model_ = *info[0].As<Napi::External<bp::Bert>>().Data();
  ReportMemory(info.Env(), true);
}

ModelHandle::~ModelHandle() {
  if (external_bytes_) Napi::MemoryManagement::AdjustExternalMemory(Env(), -external_bytes_);
}

void ModelHandle::ReportMemory(Napi::Env env, bool add) {
  if (add) {
    external_bytes_ = 0;
    for (const auto& p : model_->parameters())
      if (p.is_cpu()) external_bytes_ += p.numel() * p.element_size();
    Napi::MemoryManagement::AdjustExternalMemory(env, external_bytes_);
  } else if (external_bytes_) {
    Napi::MemoryManagement::AdjustExternalMemory(env, -external_bytes_);
    external_bytes_ = 0;
  }
}

bp::Bert ModelHandle::model(Napi::Env env) const {
  if (model_.is_empty()) throw make_error(env, "E_DISPOSED", "this model was disposed");
  return model_;
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
  bp::Bert m = model(env);
  bp::Batch b = ReadBatch(env, m, info[0]);
  Napi::Object o = get_object(info[1], "options");
  bp::ForwardOptions fo;
  fo.hidden_states = get_bool(o, "hiddenStates", false);
  fo.attentions = get_bool(o, "attentions", false);
  fo.extras = get_bool(o, "extras", false);
  auto* w = new ForwardWorker(env, m, std::move(b), fo);
  w->Retain(info.This().As<Napi::Object>());
  auto p = w->Promise();
  w->Queue();
  return p;
}

Napi::Value ModelHandle::TimeForward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bp::Bert m = model(env);
  bp::Batch b = ReadBatch(env, m, info[0]);
  Napi::Object o = get_object(info[1], "options");
  auto* w = new TimeForwardWorker(env, m, std::move(b), get_int(o, "runs", 10, 1, 1 << 20), get_int(o, "warmup", 0, 0, 1 << 20));
  w->Retain(info.This().As<Napi::Object>());
  auto p = w->Promise();
  w->Queue();
  return p;
}

Napi::Value ModelHandle::Save(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bp::Bert m = model(env);
  auto* w = new SaveWorker(env, m, get_string(info[0], "dir"));
  w->Retain(info.This().As<Napi::Object>());
  auto p = w->Promise();
  w->Queue();
  return p;
}

Napi::Value ModelHandle::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bp::Bert m = model(env);
  return guarded(env, [&]() -> Napi::Value {
    const auto& c = m->config();
    Napi::Object o = Napi::Object::New(env);
    o.Set("task", bp::task_name(m->kind()));
    o.Set("architecture", bp::architecture_name(m->kind()));
    o.Set("config", m->config().to_json(m->kind()).dump());
    o.Set("numParameters", Napi::Number::New(env, static_cast<double>(bp::count_parameters(m))));
    o.Set("device", m->device().str());
    o.Set("training", m->is_training());
    Napi::Array layers = Napi::Array::New(env, m->num_layers());
    for (int64_t i = 0; i < m->num_layers(); ++i) {
      Napi::Object l = Napi::Object::New(env);
      const auto kept = c.kept_heads(i);
      Napi::Array heads = Napi::Array::New(env, kept.size());
      for (size_t k = 0; k < kept.size(); ++k) heads.Set(static_cast<uint32_t>(k), Napi::Number::New(env, static_cast<double>(kept[k])));
      l.Set("heads", Napi::Number::New(env, static_cast<double>(kept.size())));
      l.Set("keptHeads", heads);
      l.Set("intermediateSize", Napi::Number::New(env, static_cast<double>(m->layer(i).intermediate->dense->weight.size(0))));
      layers.Set(static_cast<uint32_t>(i), l);
    }
    o.Set("layers", layers);
    // Names (HF state-dict keys) and shapes, in named_parameters() order: what reports print.
    const auto named = bp::state_dict_shapes(m);
    Napi::Array params = Napi::Array::New(env, named.size());
    for (size_t i = 0; i < named.size(); ++i) {
      Napi::Array entry = Napi::Array::New(env, 2);
      entry.Set(0u, named[i].first);
      Napi::Array shape = Napi::Array::New(env, named[i].second.size());
      for (size_t d = 0; d < named[i].second.size(); ++d)
        shape.Set(static_cast<uint32_t>(d), Napi::Number::New(env, static_cast<double>(named[i].second[d])));
      entry.Set(1u, shape);
      params.Set(static_cast<uint32_t>(i), entry);
    }
    o.Set("parameters", params);
    return o;
  });
}

Napi::Value ModelHandle::StateDict(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bp::Bert m = model(env);
  return guarded(env, [&]() -> Napi::Value {
    Napi::Object o = Napi::Object::New(env);
    for (const auto& [name, t] : bp::state_dict(m)) o.Set(name, tensor_to_js(env, t));
    return o;
  });
}

Napi::Value ModelHandle::Dispose(const Napi::CallbackInfo& info) {
  // A worker in flight holds its own reference to the model, so it finishes safely; the weights are freed
  // when the last reference goes.
  if (!model_.is_empty()) {
    ReportMemory(info.Env(), false);
    model_ = bp::Bert(nullptr);
  }
  return info.Env().Undefined();
}

Napi::Value ModelHandle::IsDisposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), model_.is_empty());
}

}  // namespace bpn
