#include "group_handle.h"

#include <cstring>

#include "model_handle.h"
#include "training.h"
#include "worker.h"

namespace bpn {

Napi::Function GroupHandle::Define(Napi::Env env) {
  Napi::Function ctor = DefineClass(env, "NativeProcessGroup",
                                    {
                                        InstanceAccessor<&GroupHandle::Rank>("rank"),
                                        InstanceAccessor<&GroupHandle::WorldSize>("worldSize"),
                                        InstanceAccessor<&GroupHandle::Backend>("backend"),
                                        InstanceMethod<&GroupHandle::Allreduce>("allreduce"),
                                        InstanceMethod<&GroupHandle::AllgatherBytes>("allgatherBytes"),
                                        InstanceMethod<&GroupHandle::Barrier>("barrier"),
                                        InstanceMethod<&GroupHandle::StoreSet>("storeSet"),
                                        InstanceMethod<&GroupHandle::StoreWait>("storeWait"),
                                        InstanceMethod<&GroupHandle::SyncModel>("syncModel"),
                                        InstanceMethod<&GroupHandle::Shutdown>("shutdown"),
                                    });
  addon_data(env).group_ctor = Napi::Persistent(ctor);
  return ctor;
}

GroupHandle::GroupHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<GroupHandle>(info) {
  if (info.Length() != 1 || !info[0].IsExternal())
    throw_type_error(info.Env(), "NativeProcessGroup cannot be constructed from JS: use initProcessGroup()");
  group_ = *info[0].As<Napi::External<std::shared_ptr<bp::ProcessGroup>>>().Data();
}

std::shared_ptr<bp::ProcessGroup> GroupHandle::From(Napi::Env env, const Napi::Value& value, const char* what) {
  if (!value.IsObject() || !value.As<Napi::Object>().InstanceOf(addon_data(env).group_ctor.Value()))
    throw_type_error(env, std::string("Expected a NativeProcessGroup for ") + what + " but received " + describe(value));
  auto g = Unwrap(value.As<Napi::Object>())->group_;
  if (!g) throw make_error(env, "E_DISPOSED", "this process group was shut down");
  return g;
}

Napi::Value GroupHandle::Rank(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), group_ ? group_->rank() : -1); }
Napi::Value GroupHandle::WorldSize(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), group_ ? group_->world_size() : 0);
}
Napi::Value GroupHandle::Backend(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), group_ ? group_->options().backend : "");
}

Napi::Value GroupHandle::Allreduce(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto g = From(env, info.This(), "this");
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
    throw_type_error(env, "Expected a Float64Array for values but received " + describe(info[0]));
  auto arr = info[0].As<Napi::Float64Array>();
  auto t = at::empty({static_cast<int64_t>(arr.ElementLength())}, at::kDouble);
  std::memcpy(t.data_ptr<double>(), arr.Data(), arr.ElementLength() * sizeof(double));
  return queue_lambda(
      env, info.This().As<Napi::Object>(), "blockprune.allreduce", [g, t]() { g->allreduce_sum({t}, "all-reduce"); },
      [t](Napi::Env e) -> Napi::Value {
        auto out = Napi::Float64Array::New(e, t.numel());
        std::memcpy(out.Data(), t.data_ptr<double>(), t.numel() * sizeof(double));
        return out;
      });
}

Napi::Value GroupHandle::AllgatherBytes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto g = From(env, info.This(), "this");
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    throw_type_error(env, "Expected a Uint8Array for bytes but received " + describe(info[0]));
  auto arr = info[0].As<Napi::Uint8Array>();
  const int64_t n = static_cast<int64_t>(arr.ElementLength());
  // Lengths first (every rank may hold a different one), then the bytes padded to the longest.
  auto out = std::make_shared<std::vector<std::vector<uint8_t>>>();
  std::vector<uint8_t> mine(arr.Data(), arr.Data() + n);
  return queue_lambda(
      env, info.This().As<Napi::Object>(), "blockprune.allgather",
      [g, mine, out]() {
        auto lens = g->allgather(at::tensor({static_cast<int64_t>(mine.size())}, at::kLong), "all-gather (sizes)");
        int64_t longest = 0;
        for (auto& l : lens) longest = std::max(longest, l.item<int64_t>());
        auto padded = at::zeros({std::max<int64_t>(longest, 1)}, at::kByte);
        if (!mine.empty()) std::memcpy(padded.data_ptr<uint8_t>(), mine.data(), mine.size());
        auto all = g->allgather(padded, "all-gather");
        for (size_t r = 0; r < all.size(); ++r) {
          const auto len = lens[r].item<int64_t>();
          const uint8_t* p = all[r].data_ptr<uint8_t>();
          out->emplace_back(p, p + len);
        }
      },
      [out](Napi::Env e) -> Napi::Value {
        Napi::Array a = Napi::Array::New(e, out->size());
        for (size_t r = 0; r < out->size(); ++r) {
          auto b = Napi::Uint8Array::New(e, (*out)[r].size());
          if (!(*out)[r].empty()) std::memcpy(b.Data(), (*out)[r].data(), (*out)[r].size());
          a.Set(static_cast<uint32_t>(r), b);
        }
        return a;
      });
}

Napi::Value GroupHandle::Barrier(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto g = From(env, info.This(), "this");
  return queue_lambda(
      env, info.This().As<Napi::Object>(), "blockprune.barrier", [g]() { g->barrier("barrier"); }, [](Napi::Env e) { return e.Undefined(); });
}

Napi::Value GroupHandle::StoreSet(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto g = From(env, info.This(), "this");
  const std::string key = get_string(info[0], "key"), value = get_string(info[1], "value");
  return queue_lambda(
      env, info.This().As<Napi::Object>(), "blockprune.storeSet", [g, key, value]() { g->store_set(key, value); },
      [](Napi::Env e) { return e.Undefined(); });
}

Napi::Value GroupHandle::StoreWait(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto g = From(env, info.This(), "this");
  const std::string key = get_string(info[0], "key");
  if (!info[1].IsNumber()) throw_type_error(env, "Expected a number for timeoutMs but received " + describe(info[1]));
  const double ms = info[1].As<Napi::Number>().DoubleValue();
  if (!(ms >= 1)) throw_range_error(env, "Expected timeoutMs >= 1 but received " + std::to_string(ms));
  auto value = std::make_shared<std::string>();
  return queue_lambda(
      env, info.This().As<Napi::Object>(), "blockprune.storeWait",
      [g, key, ms, value]() { *value = g->store_wait(key, static_cast<int64_t>(std::min(ms, 9e15))); },
      [value](Napi::Env e) -> Napi::Value { return Napi::String::New(e, *value); });
}

Napi::Value GroupHandle::SyncModel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto g = From(env, info.This(), "this");
  auto c = ModelHandle::CellOf(env, info[0], "model");
  bp::Bert m = c->model;
  // Holds the model's lock like the model's own jobs: it copies rank 0's weights into it.
  return queue_lambda(
      env, info.This().As<Napi::Object>(), "blockprune.syncModel", [g, m]() mutable { bp::sync_model(m, *g); },
      [](Napi::Env e) { return e.Undefined(); }, {{c, After::Keep}});
}

Napi::Value GroupHandle::Shutdown(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const bool barrier = info.Length() == 0 || info[0].IsUndefined() || info[0].ToBoolean().Value();
  auto g = group_;
  group_.reset();
  if (!g) return queue_lambda(
      env, info.This().As<Napi::Object>(), "blockprune.shutdown", []() {}, [](Napi::Env e) { return e.Undefined(); });
  return queue_lambda(
      env, info.This().As<Napi::Object>(), "blockprune.shutdown", [g, barrier]() { g->shutdown(barrier); }, [](Napi::Env e) { return e.Undefined(); });
}

Napi::Value InitProcessGroup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = get_object(info[0], "options");
  bp::DistOptions d;
  d.backend = get_string_opt(o, "backend", "gloo");
  d.world_size = static_cast<int>(get_int(o, "worldSize", 1, 1, 1 << 16));
  d.rank = static_cast<int>(get_int(o, "rank", 0, 0, (1 << 16) - 1));
  d.master_addr = get_string_opt(o, "masterAddr", "127.0.0.1");
  d.master_port = static_cast<int>(get_int(o, "masterPort", 29500, 1, 65535));
  d.timeout_ms = get_int(o, "timeoutMs", 300000, 1, int64_t(1) << 40);
  d.bucket_bytes = get_int(o, "bucketBytes", 25 << 20, 1024, int64_t(1) << 34);
  d.interface = get_string_opt(o, "interface", "");
  if (d.rank >= d.world_size)
    throw_range_error(env, "Expected rank in [0, " + std::to_string(d.world_size - 1) + "] but received " + std::to_string(d.rank));
  auto holder = std::make_shared<std::shared_ptr<bp::ProcessGroup>>();
  return queue_lambda(
      env, Napi::Object(), "blockprune.initProcessGroup", [d, holder]() { *holder = std::make_shared<bp::ProcessGroup>(d); },
      [holder](Napi::Env e) -> Napi::Value {
        return addon_data(e).group_ctor.New({Napi::External<std::shared_ptr<bp::ProcessGroup>>::New(e, holder.get())});
      });
}

}  // namespace bpn
