// Data-parallel training over libtorch's own distributed engine (c10d): a TCPStore for the rendezvous
// (hosted by rank 0, as torch.distributed's env:// init does), ProcessGroupGloo on CPU and ProcessGroupNCCL on
// CUDA builds that have it. This file is the only one that includes c10d headers.
//
// Failure model: every collective runs with the group's timeout; Gloo also notices a dead peer at once (its
// socket closes). Any failure is thrown as bp::Error E_DISTRIBUTED naming the rank, the operation and the
// cause, and leaves the group broken: every later call fails at once instead of waiting on peers that will
// never answer.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <ATen/ATen.h>

namespace bp {

struct DistOptions {
  std::string backend = "gloo";  // "gloo" | "nccl"
  int rank = 0;
  int world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  // Rendezvous and every collective: an operation not done in this time fails on every rank.
  int64_t timeout_ms = 300000;
  // Gradients are summed in flat buckets of at most this many bytes (torch DDP's default is 25 MiB).
  int64_t bucket_bytes = 25 << 20;
  // Gloo: the network interface to use (torch's GLOO_SOCKET_IFNAME); empty = loopback for a loopback master
  // address, else the interface the host name resolves to.
  std::string interface;
};

// True when this build has c10d with Gloo (the addon reports it in buildInfo()).
bool distributed_available();
bool nccl_available();

class GradientReducer;

class ProcessGroup {
 public:
  // Rendezvous: blocks until all world_size ranks have joined (or the timeout passes).
  explicit ProcessGroup(const DistOptions& opts);
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  int rank() const { return opts_.rank; }
  int world_size() const { return opts_.world_size; }
  const DistOptions& options() const { return opts_; }
  bool broken() const { return broken_; }

  // Sums the tensors elementwise across ranks, in place. Tensors of one dtype and device are packed into flat
  // buckets of at most bucket_bytes; all buckets are in flight at once. Every rank must pass the same shapes
  // in the same order.
  void allreduce_sum(const std::vector<at::Tensor>& tensors, const char* what);
  // Copies root's tensors into every rank's (same shapes on every rank), in place.
  void broadcast(const std::vector<at::Tensor>& tensors, int root, const char* what);
  // Every rank's copy of `t` (same shape and dtype on every rank), in rank order.
  std::vector<at::Tensor> allgather(const at::Tensor& t, const char* what);
  void barrier(const char* what);

  // Starts summing `flat` across ranks in place and returns at once; wait() completes it. Every rank must
  // start the same operations in the same order.
  struct Pending;
  std::shared_ptr<Pending> allreduce_start(const at::Tensor& flat, const char* what);
  void wait(const std::shared_ptr<Pending>& pending, const char* what);

  // The gradient reducer for these parameters, kept across steps so its buckets are allocated once (a new
  // one when the parameters change: another model, or the same one patched or compacted).
  GradientReducer& gradient_reducer(const std::vector<at::Tensor>& params);

  // The rendezvous store: rank 0 publishes, the others wait. store_wait polls in slices of at most 1 s so that
  // a store that goes away (rank 0 died) is noticed at once, and gives up after timeout_ms.
  void store_set(const std::string& key, const std::string& value);
  std::string store_wait(const std::string& key, int64_t timeout_ms);

  // Ends the group. With `wait_for_all` (and a healthy group), after a barrier: every rank got here, so rank
  // 0's store outlives the others' last use. Without it (after an error on this rank), at once: this rank's
  // sockets close, so the others' pending or next operation fails within moments, not after the timeout.
  void shutdown(bool wait_for_all = true);

 private:
  struct Impl;
  [[noreturn]] void fail(const std::string& op, const std::string& cause);
  template <typename F>
  void guarded(const char* op, F&& f);

  DistOptions opts_;
  std::unique_ptr<Impl> impl_;
  std::unique_ptr<GradientReducer> reducer_;
  bool broken_ = false;
  bool closed_ = false;
  std::mutex mu_;  // one operation at a time, in program order
};

// Data-parallel gradients the way torch DDP reduces them: parameters are grouped, in reverse order (the order
// backward produces their gradients), into flat buckets of at most bucket_bytes. A hook on each parameter
// copies its gradient times `weight` into its bucket as backward produces it, and a bucket whose gradients are
// all in starts its all-reduce at once, while backward goes on. Buckets start strictly in index order, so
// every rank issues the same collectives in the same order, whatever its batch (an empty one included).
class GradientReducer {
 public:
  // Plans the buckets and allocates them once; a ProcessGroup keeps one across steps (gradient_reducer()).
  GradientReducer(ProcessGroup& group, const std::vector<at::Tensor>& params);
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  // Whether it was made for exactly these parameters (the same tensors in the same order).
  bool serves(const std::vector<at::Tensor>& params) const;
  // Starts a step whose gradients count `weight` times (this rank's rows).
  void begin(double weight);
  // Hooks every parameter (call before backward).
  void attach();
  // After backward, or instead of it: removes the hooks, starts the buckets not started yet (a parameter
  // without a gradient counts as zeros) and waits for all of them.
  void finish();
  // Writes each parameter's summed gradient times `scale` into its .grad.
  void write_grads(double scale);

 private:
  struct Bucket {
    at::Tensor flat;  // the members' gradients (where_ says where each one is), times weight
    int64_t members = 0;
    int64_t pending = 0;
    std::shared_ptr<ProcessGroup::Pending> work;
  };
  void on_grad(size_t param, const at::Tensor& grad);
  void start_ready();
  void detach();

  ProcessGroup& group_;
  std::vector<at::Tensor> params_;
  double weight_ = 0;
  std::vector<Bucket> buckets_;
  std::vector<std::pair<size_t, int64_t>> where_;  // param -> (bucket, offset)
  std::vector<bool> seen_;
  std::vector<unsigned> hooks_;
  size_t next_ = 0;  // the next bucket to start
  bool finishing_ = false;
  std::mutex mu_;
};

}  // namespace bp
