#include "distributed.h"

#include <chrono>
#include <thread>

#include "errors.h"

#if BP_WITH_C10D
#include <torch/version.h>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#if BP_WITH_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#endif

namespace bp {

bool distributed_available() { return BP_WITH_C10D != 0; }
bool nccl_available() {
#if BP_WITH_C10D && BP_WITH_NCCL
  return true;
#else
  return false;
#endif
}

namespace {

std::string cause_of(const std::exception& e) {
  if (auto* c = dynamic_cast<const c10::Error*>(&e)) return c->what_without_backtrace();
  return e.what();
}

bool is_loopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

}  // namespace

#if BP_WITH_C10D

// torch 1.x: the Gloo and NCCL classes are ProcessGroups; torch 2 made them Backends (same collectives).
#if TORCH_VERSION_MAJOR >= 2
using CollectiveBackend = c10d::Backend;
#else
using CollectiveBackend = c10d::ProcessGroup;
#endif

struct ProcessGroup::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<CollectiveBackend> pg;
};

ProcessGroup::ProcessGroup(const DistOptions& opts) : opts_(opts), impl_(std::make_unique<Impl>()) {
  if (opts.world_size < 1) throw Error("E_INVALID_ARG", "world size must be at least 1, got " + std::to_string(opts.world_size));
  if (opts.rank < 0 || opts.rank >= opts.world_size)
    throw Error("E_INVALID_ARG", "rank must be in [0, " + std::to_string(opts.world_size - 1) + "], got " + std::to_string(opts.rank));
  if (opts.master_port < 1 || opts.master_port > 65535)
    throw Error("E_INVALID_ARG", "master port must be in [1, 65535], got " + std::to_string(opts.master_port));
  if (opts.timeout_ms < 1) throw Error("E_INVALID_ARG", "timeout must be positive");
  if (opts.bucket_bytes < 1024) throw Error("E_INVALID_ARG", "bucket size must be at least 1 KiB");
  if (opts.backend != "gloo" && opts.backend != "nccl")
    throw Error("E_INVALID_ARG", "backend must be 'gloo' or 'nccl', got '" + opts.backend + "'");
  if (opts.backend == "nccl" && !nccl_available())
    throw Error("E_UNSUPPORTED", "this blockprune build has no NCCL (it needs a CUDA libtorch with NCCL): use backend 'gloo'");
  const auto timeout = std::chrono::milliseconds(opts.timeout_ms);
  const std::string where = opts.master_addr + ":" + std::to_string(opts.master_port);
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(opts.master_port);
    so.isServer = opts.rank == 0;
    so.numWorkers = static_cast<size_t>(opts.world_size);
    so.waitWorkers = true;
    so.timeout = timeout;
    impl_->store = c10::make_intrusive<c10d::TCPStore>(opts.master_addr, so);
  } catch (const std::exception& e) {
    broken_ = true;
    throw Error("E_DISTRIBUTED", "rank " + std::to_string(opts.rank) + " of " + std::to_string(opts.world_size) + ": rendezvous at " + where +
                                     " failed within " + std::to_string(opts.timeout_ms / 1000.0).substr(0, 5) + " s (" + cause_of(e) +
                                     "). Check that every rank was started with the same MASTER_ADDR, MASTER_PORT and WORLD_SIZE, that rank 0 is running, and that the port is free and reachable.");
  }
  try {
    if (opts.backend == "gloo") {
      auto go = c10d::ProcessGroupGloo::Options::create(timeout);
      if (!opts.interface.empty())
        go->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(opts.interface));
      else if (is_loopback(opts.master_addr))
        go->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      else
        go->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      go->threads = 2;
      impl_->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, opts.rank, opts.world_size, go);
    } else {
#if BP_WITH_NCCL
      auto no = c10d::ProcessGroupNCCL::Options::create();
      no->timeout = timeout;
      impl_->pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(impl_->store, opts.rank, opts.world_size, no);
#endif
    }
  } catch (const std::exception& e) {
    broken_ = true;
    throw Error("E_DISTRIBUTED", "rank " + std::to_string(opts.rank) + " of " + std::to_string(opts.world_size) + ": joining the " + opts.backend +
                                     " process group via " + where + " failed (" + cause_of(e) + "): not every rank joined within " +
                                     std::to_string(opts.timeout_ms / 1000.0).substr(0, 5) + " s. Start all " + std::to_string(opts.world_size) +
                                     " ranks with the same MASTER_ADDR, MASTER_PORT and WORLD_SIZE.");
  }
}

ProcessGroup::~ProcessGroup() = default;

void ProcessGroup::fail(const std::string& op, const std::string& cause) {
  broken_ = true;
  throw Error("E_DISTRIBUTED", "rank " + std::to_string(opts_.rank) + " of " + std::to_string(opts_.world_size) + ": " + op + " failed: " + cause +
                                   " (another rank died, stopped, or did not answer within " + std::to_string(opts_.timeout_ms / 1000) + " s)");
}

template <typename F>
void ProcessGroup::guarded(const char* op, F&& f) {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) throw Error("E_DISTRIBUTED", std::string(op) + ": the process group was shut down");
  if (broken_) throw Error("E_DISTRIBUTED", std::string(op) + ": the process group is broken by an earlier failure");
  try {
    f();
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    fail(op, cause_of(e));
  }
}

namespace {

// Groups `tensors` into buckets of one dtype and device and at most `bucket_bytes` (a larger tensor is a bucket
// of its own), visiting them in order or in reverse; each bucket lists its members' indices in that order.
std::vector<std::vector<size_t>> bucket_plan(const std::vector<at::Tensor>& tensors, int64_t bucket_bytes, bool reverse) {
  const size_t n = tensors.size();
  auto at_pos = [&](size_t k) { return reverse ? n - 1 - k : k; };
  std::vector<std::vector<size_t>> plan;
  std::vector<bool> used(n, false);
  for (size_t k = 0; k < n; ++k) {
    const size_t first = at_pos(k);
    if (used[first]) continue;
    std::vector<size_t> members;
    int64_t bytes = 0;
    for (size_t m = k; m < n; ++m) {
      const size_t j = at_pos(m);
      const auto& t = tensors[j];
      if (used[j] || t.scalar_type() != tensors[first].scalar_type() || t.device() != tensors[first].device()) continue;
      const int64_t nb = t.numel() * static_cast<int64_t>(t.element_size());
      if (!members.empty() && bytes + nb > bucket_bytes) break;
      members.push_back(j);
      bytes += nb;
      used[j] = true;
    }
    plan.push_back(std::move(members));
  }
  return plan;
}

// Runs `launch` over flat copies of `tensors`' buckets (bucket_plan, in order), all in flight at once, waits
// for all of them, then copies the buckets back into the tensors.
template <typename Launch>
void over_buckets(const std::vector<at::Tensor>& tensors, int64_t bucket_bytes, Launch&& launch) {
  struct Bucket {
    std::vector<size_t> members;
    at::Tensor flat;
    c10::intrusive_ptr<c10d::Work> work;
  };
  std::vector<Bucket> buckets;
  for (auto& members : bucket_plan(tensors, bucket_bytes, false)) {
    std::vector<at::Tensor> flat;
    flat.reserve(members.size());
    for (size_t j : members) flat.push_back(tensors[j].reshape({-1}));
    buckets.push_back({std::move(members), at::cat(flat), {}});
  }
  for (auto& b : buckets) {
    std::vector<at::Tensor> v{b.flat};
    b.work = launch(v);
  }
  for (auto& b : buckets) b.work->wait();
  for (auto& b : buckets) {
    int64_t off = 0;
    for (size_t j : b.members) {
      const auto& t = tensors[j];
      t.copy_(b.flat.narrow(0, off, t.numel()).view(t.sizes()));
      off += t.numel();
    }
  }
}

}  // namespace

void ProcessGroup::allreduce_sum(const std::vector<at::Tensor>& tensors, const char* what) {
  guarded(what, [&] {
    at::NoGradGuard no_grad;
    over_buckets(tensors, opts_.bucket_bytes, [&](std::vector<at::Tensor>& v) { return impl_->pg->allreduce(v, c10d::AllreduceOptions{}); });
  });
}

void ProcessGroup::broadcast(const std::vector<at::Tensor>& tensors, int root, const char* what) {
  guarded(what, [&] {
    at::NoGradGuard no_grad;
    c10d::BroadcastOptions bo;
    bo.rootRank = root;
    over_buckets(tensors, opts_.bucket_bytes, [&](std::vector<at::Tensor>& v) { return impl_->pg->broadcast(v, bo); });
  });
}

GradientReducer& ProcessGroup::gradient_reducer(const std::vector<at::Tensor>& params) {
  if (!reducer_ || !reducer_->serves(params)) {
    reducer_.reset();
    reducer_ = std::make_unique<GradientReducer>(*this, params);
  }
  return *reducer_;
}

std::vector<at::Tensor> ProcessGroup::allgather(const at::Tensor& t, const char* what) {
  std::vector<std::vector<at::Tensor>> out(1);
  guarded(what, [&] {
    for (int r = 0; r < opts_.world_size; ++r) out[0].push_back(at::empty_like(t));
    std::vector<at::Tensor> in{t.contiguous()};
    impl_->pg->allgather(out, in)->wait();
  });
  return out[0];
}

void ProcessGroup::barrier(const char* what) {
  guarded(what, [&] { impl_->pg->barrier()->wait(); });
}

struct ProcessGroup::Pending {
  c10::intrusive_ptr<c10d::Work> work;
};

std::shared_ptr<ProcessGroup::Pending> ProcessGroup::allreduce_start(const at::Tensor& flat, const char* what) {
  auto p = std::make_shared<Pending>();
  guarded(what, [&] {
    std::vector<at::Tensor> v{flat};
    p->work = impl_->pg->allreduce(v, c10d::AllreduceOptions{});
  });
  return p;
}

void ProcessGroup::wait(const std::shared_ptr<Pending>& pending, const char* what) {
  // Not under the lock: other buckets may start meanwhile. A failure still breaks the group.
  if (broken_) throw Error("E_DISTRIBUTED", std::string(what) + ": the process group is broken by an earlier failure");
  try {
    pending->work->wait();
  } catch (const std::exception& e) {
    std::lock_guard<std::mutex> lock(mu_);
    fail(what, cause_of(e));
  }
}

void ProcessGroup::store_set(const std::string& key, const std::string& value) {
  guarded("store set", [&] { impl_->store->set(key, std::vector<uint8_t>(value.begin(), value.end())); });
}

std::string ProcessGroup::store_wait(const std::string& key, int64_t timeout_ms) {
  std::string value;
  guarded("waiting for rank 0", [&] {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    // check() is a round trip to rank 0's store: a dead rank 0 fails it at once.
    while (!impl_->store->check({key})) {
      if (std::chrono::steady_clock::now() > deadline)
        throw std::runtime_error("'" + key + "' did not arrive within " + std::to_string(timeout_ms / 1000) + " s");
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    auto v = impl_->store->get(key);
    value.assign(v.begin(), v.end());
  });
  return value;
}

void ProcessGroup::shutdown(bool wait_for_all) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return;
  }
  std::string err;
  if (wait_for_all && !broken_) {
    try {
      barrier("shutdown barrier");
    } catch (const Error& e) {
      err = e.what();
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  closed_ = true;
  reducer_.reset();
  impl_->pg.reset();
  impl_->store.reset();
  if (!err.empty()) throw Error("E_DISTRIBUTED", err);
}

GradientReducer::GradientReducer(ProcessGroup& group, const std::vector<at::Tensor>& params)
    : group_(group), params_(params), where_(params.size()), seen_(params.size(), false) {
  // Reverse order: the order backward produces the gradients in.
  for (const auto& members : bucket_plan(params_, group.options().bucket_bytes, true)) {
    int64_t numel = 0;
    for (size_t j : members) {
      where_[j] = {buckets_.size(), numel};
      numel += params_[j].numel();
    }
    Bucket b;
    b.flat = at::empty({numel}, params_[members[0]].options().requires_grad(false));
    b.members = static_cast<int64_t>(members.size());
    buckets_.push_back(std::move(b));
  }
}

GradientReducer::~GradientReducer() { detach(); }

bool GradientReducer::serves(const std::vector<at::Tensor>& params) const {
  if (params.size() != params_.size()) return false;
  for (size_t i = 0; i < params.size(); ++i)
    if (!params[i].is_same(params_[i]) || params[i].sizes() != params_[i].sizes()) return false;
  return true;
}

void GradientReducer::detach() {
  for (size_t i = 0; i < hooks_.size(); ++i) params_[i].remove_hook(hooks_[i]);
  hooks_.clear();
}

void GradientReducer::begin(double weight) {
  std::lock_guard<std::mutex> lock(mu_);
  detach();  // left by a step that failed in backward
  weight_ = weight;
  std::fill(seen_.begin(), seen_.end(), false);
  for (auto& b : buckets_) {
    b.pending = b.members;
    b.work.reset();
  }
  next_ = 0;
  finishing_ = false;
}

void GradientReducer::attach() {
  for (size_t i = 0; i < params_.size(); ++i)
    hooks_.push_back(params_[i].register_hook([this, i](const at::Tensor& grad) { on_grad(i, grad); }));
}

void GradientReducer::on_grad(size_t i, const at::Tensor& grad) {
  std::lock_guard<std::mutex> lock(mu_);
  if (seen_[i] || finishing_) return;
  seen_[i] = true;
  auto& b = buckets_[where_[i].first];
  at::NoGradGuard no_grad;
  b.flat.narrow(0, where_[i].second, params_[i].numel()).copy_(grad.reshape({-1})).mul_(weight_);
  if (--b.pending == 0) start_ready();
}

void GradientReducer::start_ready() {
  while (next_ < buckets_.size() && buckets_[next_].pending == 0) {
    buckets_[next_].work = group_.allreduce_start(buckets_[next_].flat, "gradient all-reduce");
    ++next_;
  }
}

void GradientReducer::finish() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    detach();
    finishing_ = true;
    // Gradients that no hook saw (hooks off, or a gradient accumulated without one) come from .grad; a
    // parameter without any gradient (or a rank without rows) contributes zeros.
    at::NoGradGuard no_grad;
    for (size_t i = 0; i < params_.size(); ++i) {
      if (seen_[i]) continue;
      auto slice = buckets_[where_[i].first].flat.narrow(0, where_[i].second, params_[i].numel());
      if (params_[i].grad().defined()) slice.copy_(params_[i].grad().reshape({-1})).mul_(weight_);
      else slice.zero_();
    }
    for (auto& b : buckets_) b.pending = 0;
    start_ready();
  }
  for (auto& b : buckets_) group_.wait(b.work, "gradient all-reduce");
}

void GradientReducer::write_grads(double scale) {
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    auto& b = buckets_[where_[i].first];
    auto g = b.flat.narrow(0, where_[i].second, params_[i].numel()).view(params_[i].sizes()).mul(scale);
    params_[i].mutable_grad() = g;
  }
}

#else  // no c10d in this libtorch

struct ProcessGroup::Impl {};

ProcessGroup::ProcessGroup(const DistOptions& opts) : opts_(opts) {
  throw Error("E_UNSUPPORTED", "this blockprune build has no distributed support (its libtorch lacks c10d/Gloo, or the gloo headers were missing at build time: apt-get install libgloo-dev and rebuild)");
}
ProcessGroup::~ProcessGroup() = default;
void ProcessGroup::fail(const std::string& op, const std::string& cause) { throw Error("E_DISTRIBUTED", op + ": " + cause); }
void ProcessGroup::allreduce_sum(const std::vector<at::Tensor>&, const char*) {}
void ProcessGroup::broadcast(const std::vector<at::Tensor>&, int, const char*) {}
std::vector<at::Tensor> ProcessGroup::allgather(const at::Tensor& t, const char*) { return {t}; }
void ProcessGroup::barrier(const char*) {}
void ProcessGroup::store_set(const std::string&, const std::string&) {}
std::string ProcessGroup::store_wait(const std::string&, int64_t) { return {}; }
void ProcessGroup::shutdown(bool) {}
struct ProcessGroup::Pending {};
std::shared_ptr<ProcessGroup::Pending> ProcessGroup::allreduce_start(const at::Tensor&, const char*) { return nullptr; }
void ProcessGroup::wait(const std::shared_ptr<Pending>&, const char*) {}
GradientReducer& ProcessGroup::gradient_reducer(const std::vector<at::Tensor>&) { throw Error("E_UNSUPPORTED", "no distributed support"); }
GradientReducer::GradientReducer(ProcessGroup& group, const std::vector<at::Tensor>&) : group_(group) {}
GradientReducer::~GradientReducer() = default;
bool GradientReducer::serves(const std::vector<at::Tensor>&) const { return false; }
void GradientReducer::begin(double) {}
void GradientReducer::attach() {}
void GradientReducer::finish() {}
void GradientReducer::write_grads(double) {}
void GradientReducer::on_grad(size_t, const at::Tensor&) {}
void GradientReducer::start_ready() {}
void GradientReducer::detach() {}

#endif

}  // namespace bp
