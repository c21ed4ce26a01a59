#include "training_handle.h"

#include <cstring>

#include "group_handle.h"
#include "loss_args.h"
#include "model_handle.h"
#include "training.h"
#include "mixed_precision.h"

namespace bpn {

Napi::Function TrainingHandle::Define(Napi::Env env) {
  return DefineClass(env, "NativeTrainingState",
                     {
                         InstanceMethod<&TrainingHandle::TrainStep>("trainStep"),
                         InstanceMethod<&TrainingHandle::Save>("save"),
                         InstanceMethod<&TrainingHandle::Load>("load"),
                         InstanceMethod<&TrainingHandle::ResetOptimizer>("resetOptimizer"),
                     });
}

TrainingHandle::TrainingHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TrainingHandle>(info) {
  owner_ = ModelHandle::CellOf(info.Env(), info[0], "model");
}

TrainingHandle::~TrainingHandle() {
  if (reported_bytes_) Napi::MemoryManagement::AdjustExternalMemory(Env(), -reported_bytes_);
}

std::shared_ptr<ModelCell> TrainingHandle::Owner(const Napi::CallbackInfo& info) const {
  auto cell = ModelHandle::CellOf(info.Env(), info[0], "model");
  if (cell != owner_.lock())
    throw_range_error(info.Env(), "Expected the model this training state was created for, but received another NativeModel");
  return cell;
}

void TrainingHandle::Report(Napi::Env env, int64_t bytes) {
  if (bytes != reported_bytes_) Napi::MemoryManagement::AdjustExternalMemory(env, bytes - reported_bytes_);
  reported_bytes_ = bytes;
}

Napi::Promise TrainingHandle::Queue(const Napi::CallbackInfo& info, const char* name, After after, std::function<void(bp::TrainingState&)> run,
                                    std::function<Napi::Value(Napi::Env)> result, std::vector<ModelUse> others) {
  others.insert(others.begin(), ModelUse{Owner(info), after});
  auto state = state_;
  // Measured under the model's lock, by the job that changed the moments; reported on the main thread.
  auto bytes = std::make_shared<int64_t>(reported_bytes_);
  return queue_lambda(
      info.Env(), info.This().As<Napi::Object>(), name,
      [state, bytes, run = std::move(run)]() {
        run(*state);
        *bytes = state->optimizer.bytes();
      },
      // `this` lives until then: the job retains this handle's JS object.
      [this, bytes, result = std::move(result)](Napi::Env e) {
        Report(e, *bytes);
        return result(e);
      },
      std::move(others));
}

Napi::Value TrainingHandle::TrainStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  // info: model, inputs, options, teacher?, group?, stopVote?. The model first: E_DISPOSED before argument errors.
  const auto student = Owner(info);
  bp::Bert m = student->model;
  // A process group (data-parallel): then the inputs may be null (this rank has no rows this step).
  std::shared_ptr<bp::ProcessGroup> group;
  if (info.Length() > 4 && !info[4].IsUndefined() && !info[4].IsNull()) group = GroupHandle::From(env, info[4], "group");
  auto b = std::make_shared<bp::Batch>();
  const bool has_batch = !(group && info[1].IsNull());
  if (has_batch) *b = ModelHandle::ReadBatch(env, m, info[1]);
  Napi::Object o = get_object(info[2], "options");
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
  if (info.Length() > 3 && !info[3].IsUndefined() && !info[3].IsNull()) {
    auto tc = ModelHandle::CellOf(env, info[3], "teacher");
    if (tc == student) throw_range_error(env, "the teacher must be another model than the student");
    teacher = tc->model;
    // The teacher's forward sets its eval mode and fills its caches: it is locked like the student.
    others.push_back({tc, After::Keep});
  }
  {
    Napi::Value mp = o.Get("mixedPrecision");
    if (!mp.IsUndefined() && !mp.IsNull()) {
      if (!mp.IsString() || mp.As<Napi::String>().Utf8Value() != "bf16")
        throw_type_error(env, "Expected 'bf16' for mixedPrecision but received " + describe(mp));
      if (!bp::bf16_training_supported())
        throw_range_error(env, "mixedPrecision 'bf16' needs the bf16 kernels (AVX-512 BF16), which this CPU does not have");
      so.bf16 = true;
    }
  }
  so.group = group;
  so.stop_vote = info.Length() > 5 && info[5].ToBoolean().Value();
  auto result = std::make_shared<bp::TrainStepResult>();
  // Described again only when the step sets the threshold (about 0.6 ms for a patched bert-base): otherwise
  // it changes weights alone.
  return Queue(
      info, "blockprune.trainStep", so.set_threshold ? After::Describe : After::Keep,
      [m, b, has_batch, so, teacher, result](bp::TrainingState& state) mutable {
        bp::Bert* t = teacher.is_empty() ? nullptr : &teacher;
        *result = bp::train_step(m, state.optimizer, has_batch ? b.get() : nullptr, so, t);
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
        if (result->budget) r.Set("budget", budget_to_js(e, *result->budget));
        r.Set("regularization", regularization_to_js(e, result->regu));
        return r;
      },
      std::move(others));
}

Napi::Value TrainingHandle::Save(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Owner(info);  // E_DISPOSED before any argument error, as every method
  const std::string dir = get_string(info[1], "dir");
  // info[2]: the other ranks' generator states (data-parallel runs), saved as "cpu.rank<r>".
  bp::NamedTensors others;
  if (info.Length() > 2 && !info[2].IsUndefined() && !info[2].IsNull()) {
    if (!info[2].IsArray()) throw_type_error(env, "Expected an array of Uint8Array for rngStates but received " + describe(info[2]));
    auto a = info[2].As<Napi::Array>();
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
  return Queue(
      info, "blockprune.saveTraining", After::Keep, [dir, others](bp::TrainingState& state) { bp::save_training_state(state, dir, others); },
      [](Napi::Env e) { return e.Undefined(); });
}

Napi::Value TrainingHandle::Load(const Napi::CallbackInfo& info) {
  bp::Bert m = Owner(info)->model;
  const std::string dir = get_string(info[1], "dir");
  // info[2]: this process's rank in a data-parallel run (its generator state is "cpu.rank<r>", rank 0's "cpu").
  const int64_t rank = info.Length() > 2 && info[2].IsNumber() ? info[2].As<Napi::Number>().Int64Value() : 0;
  return Queue(
      info, "blockprune.loadTraining", After::Keep, [m, dir, rank](bp::TrainingState& state) { bp::load_training_state(state, m, dir, rank); },
      [](Napi::Env e) { return e.Undefined(); });
}

Napi::Value TrainingHandle::ResetOptimizer(const Napi::CallbackInfo& info) {
  // A job: a train step of this model may be using the moments right now.
  return Queue(info, "blockprune.resetOptimizer", After::Keep, [](bp::TrainingState& state) { state.optimizer.reset(); },
               [](Napi::Env e) { return e.Undefined(); });
}

}  // namespace bpn
