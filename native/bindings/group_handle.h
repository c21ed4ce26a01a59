// GroupHandle: the JS object that owns one data-parallel process group (blockprune's `NativeProcessGroup`,
// typed in lib/native.ts; used by lib/distributed.ts).
#pragma once

#include <napi.h>

#include <memory>

#include "distributed.h"

namespace bpn {

class GroupHandle : public Napi::ObjectWrap<GroupHandle> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit GroupHandle(const Napi::CallbackInfo& info);

  // The group behind a JS value, or a thrown TypeError / E_DISPOSED naming `what`.
  static std::shared_ptr<bp::ProcessGroup> From(Napi::Env env, const Napi::Value& value, const char* what);

 private:
  Napi::Value Rank(const Napi::CallbackInfo& info);
  Napi::Value WorldSize(const Napi::CallbackInfo& info);
  Napi::Value Backend(const Napi::CallbackInfo& info);
  Napi::Value Allreduce(const Napi::CallbackInfo& info);
  Napi::Value AllgatherBytes(const Napi::CallbackInfo& info);
  Napi::Value Barrier(const Napi::CallbackInfo& info);
  Napi::Value StoreSet(const Napi::CallbackInfo& info);
  Napi::Value StoreWait(const Napi::CallbackInfo& info);
  Napi::Value SyncModel(const Napi::CallbackInfo& info);
  Napi::Value Shutdown(const Napi::CallbackInfo& info);

  std::shared_ptr<bp::ProcessGroup> group_;
};

// initProcessGroup({backend, rank, worldSize, masterAddr, masterPort, timeoutMs, bucketBytes, interface})
// -> Promise<NativeProcessGroup>, resolved once every rank has joined.
Napi::Value InitProcessGroup(const Napi::CallbackInfo& info);

}  // namespace bpn
