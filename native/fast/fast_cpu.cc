#include "fast/fast_cpu.h"

#include <ATen/Parallel.h>
#include <immintrin.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "fast/kernels.h"
#include "runtime.h"

namespace bp::fast {
namespace {

// The widest kernel set the CPU runs; BLOCKPRUNE_CPU_KERNELS=avx2|none asks for a narrower one (tests, and
// machines whose AVX-512 clocks down).
const KernelTable* pick() {
  const char* env = std::getenv("BLOCKPRUNE_CPU_KERNELS");
  const std::string want = env ? env : "";
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (want == "none") return nullptr;
  if (want != "avx2" && __builtin_cpu_supports("avx512f")) {
    if (auto* t = kernels_avx512()) return t;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return kernels_avx2();
#endif
  return nullptr;
}

const KernelTable* kernels() {
  static const KernelTable* t = pick();
  return t;
}

std::atomic<bool>& switch_on() {
  static std::atomic<bool> on{[] {
    const char* env = std::getenv("BLOCKPRUNE_FAST_KERNELS");
    return !(env && (std::strcmp(env, "0") == 0 || std::strcmp(env, "false") == 0 || std::strcmp(env, "off") == 0));
  }()};
  return on;
}

// A fork-join pool: the caller and threads-1 workers take chunks of [0, n) from one atomic counter. Workers
// spin (with pause and yield) for a short while after a job, so the back-to-back calls of a forward pass find
// them awake, then sleep on a condition variable: an idle process costs nothing. One job at a time; a
// caller that finds the pool busy (two models running at once) does its job alone on its own thread.
// Threads the pool uses: libtorch's setting (OMP_NUM_THREADS, setNumThreads), never more than the CPUs this
// process may run on. Why the cap: the caller waits for every worker to check in, so one worker more than
// there are cores (OMP_NUM_THREADS=8 on 2 vCPUs) makes each call wait for a time slice (tens of ms).
int pool_threads() {
  static const int cpus = available_cpus();
  return std::max(1, std::min(at::get_num_threads(), cpus));
}

class Pool {
 public:
  ~Pool() { stop(); }

  void run(int64_t n, int64_t chunk, const std::function<void(int64_t, int64_t)>& fn) {
    const int threads = pool_threads();
    std::unique_lock<std::mutex> job(busy_, std::try_to_lock);
    if (!job.owns_lock() || threads == 1 || n <= chunk) {
      fn(0, n);
      return;
    }
    if (static_cast<int>(workers_.size()) != threads - 1) resize(threads - 1);
    fn_ = &fn;
    total_ = n;
    chunk_ = chunk;
    next_.store(0, std::memory_order_relaxed);
    active_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
    bool wake;
    {
      std::lock_guard<std::mutex> lk(m_);
      generation_.fetch_add(1, std::memory_order_release);
      wake = sleepers_ > 0;
    }
    if (wake) cv_.notify_all();
    work();
    // Wait for every worker to check in, yielding now and then: a worker that the scheduler put on this
    // core (libuv runs each call on whichever of its threads is free, so the caller's core changes from call
    // to call) only runs when this thread lets it. A pure spin here held such a worker off for a whole time
    // slice: 1 call in 50 took 2-4x the median from Node, while the same loop on one thread never did.
    for (int spins = 1; active_.load(std::memory_order_acquire) != 0; ++spins) {
      _mm_pause();
      if ((spins & 63) == 0) sched_yield();
    }
    fn_ = nullptr;
  }

 private:
  void work() {
    for (;;) {
      const int64_t i = next_.fetch_add(chunk_, std::memory_order_relaxed);
      if (i >= total_) return;
      (*fn_)(i, std::min(total_, i + chunk_));
    }
  }

  // `seen` is the generation when the worker was made: a job posted before the thread first runs is not missed.
  void loop(uint64_t seen) {
    for (;;) {
      auto start = std::chrono::steady_clock::now();
      for (int spins = 0; generation_.load(std::memory_order_acquire) == seen; ++spins) {
        _mm_pause();
        if ((spins & 255) != 255) continue;
        sched_yield();  // let a runnable thread (libtorch's OpenMP pool) have this core
        if (std::chrono::steady_clock::now() - start < kSpin) continue;
        std::unique_lock<std::mutex> lk(m_);
        ++sleepers_;
        cv_.wait(lk, [&] { return stopping_ || generation_.load(std::memory_order_acquire) != seen; });
        --sleepers_;
        break;
      }
      if (stopping_) return;
      seen = generation_.load(std::memory_order_acquire);
      work();
      active_.fetch_sub(1, std::memory_order_release);
    }
  }

  void resize(int n) {
    stop();
    stopping_ = false;
    const uint64_t g = generation_.load(std::memory_order_acquire);
    for (int i = 0; i < n; ++i) workers_.emplace_back([this, g] { loop(g); });
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lk(m_);
      stopping_ = true;
      generation_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

  static constexpr std::chrono::microseconds kSpin{1000};
  std::mutex busy_;
  std::vector<std::thread> workers_;
  std::mutex m_;
  std::condition_variable cv_;
  int sleepers_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> generation_{0};
  std::atomic<int64_t> next_{0};
  std::atomic<int> active_{0};
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t total_ = 0, chunk_ = 1;
};

Pool& pool() {
  static Pool* p = new Pool();  // never destroyed: workers may outlive static destruction order at exit
  return *p;
}

// Chunks of about a quarter of a thread's share: enough to even out a late worker, few enough to keep a
// thread on consecutive tiles (one packed panel).
int64_t chunk_for(int64_t n) {
  const int64_t threads = pool_threads();
  return std::max<int64_t>(1, n / (threads * 4));
}

}  // namespace

bool enabled() { return kernels() != nullptr && switch_on().load(); }
void set_enabled(bool on) { switch_on().store(on); }
const char* isa() { return kernels() ? kernels()->name : "none"; }

PackedLinear::PackedLinear(const float* weight, const float* bias, int64_t n, int64_t k) : n_(n), k_(k) {
  const KernelTable* t = kernels();
  data_.resize(static_cast<size_t>(t->packed_size(n, k) + 16));
  auto addr = reinterpret_cast<uintptr_t>(data_.data());
  float* aligned = reinterpret_cast<float*>((addr + 63) & ~uintptr_t{63});
  t->pack_nk(weight, k, n, k, aligned);
  packed_ = aligned;
  if (bias) bias_.assign(bias, bias + n);
}

void PackedLinear::forward(const float* x, int64_t m, float* y, int act, const float* residual) const {
  const KernelTable* t = kernels();
  Gemm g{x, k_, m, k_, n_, packed_, y, n_, Epilogue{bias_.empty() ? nullptr : bias_.data(), residual, n_, act}};
  const int64_t tiles = t->tiles(g);
  pool().run(tiles, chunk_for(tiles), [&](int64_t t0, int64_t t1) { t->run(g, t0, t1); });
}

void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn) { pool().run(n, chunk_for(n), fn); }

void layer_norm(float* x, int64_t rows, int64_t n, const float* gamma, const float* beta, float eps) {
  const KernelTable* t = kernels();
  pool().run(rows, chunk_for(rows), [&](int64_t r0, int64_t r1) { t->layer_norm(x + r0 * n, r1 - r0, n, gamma, beta, eps); });
}

namespace {

// Every (sequence, head) of packed or padded sequences: sequence i is rows [offsets[i], offsets[i] + lengths[i])
// of qkv and ctx; mask_add, when given, holds a row of `lengths[i]` additive scores per sequence.
void attention_heads(const float* qkv, const int64_t* offsets, const int64_t* lengths, int64_t sequences, int64_t heads,
                     int64_t head_dim, const float* mask_add, float* ctx) {
  const KernelTable* t = kernels();
  const int64_t width = heads * head_dim, ld = 3 * width;
  const int64_t longest = sequences ? std::max<int64_t>(1, *std::max_element(lengths, lengths + sequences)) : 1;
  const int64_t scratch = t->attention_scratch(longest, head_dim);
  pool().run(sequences * heads, 1, [&](int64_t i0, int64_t i1) {
    thread_local std::vector<float> buf;
    if (static_cast<int64_t>(buf.size()) < scratch) buf.resize(static_cast<size_t>(scratch));
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t b = i / heads, h = i % heads, row = offsets[b];
      if (lengths[b] == 0) continue;
      const float* q = qkv + row * ld + h * head_dim;
      t->attention_head(q, q + width, q + 2 * width, ld, lengths[b], head_dim, mask_add ? mask_add + row : nullptr,
                        ctx + row * width + h * head_dim, width, buf.data());
    }
  });
}

}  // namespace

void attention(const float* qkv, int64_t batch, int64_t seq, int64_t heads, int64_t head_dim, const float* mask_add,
               float* ctx) {
  std::vector<int64_t> offsets(static_cast<size_t>(batch));
  for (int64_t b = 0; b < batch; ++b) offsets[static_cast<size_t>(b)] = b * seq;
  const std::vector<int64_t> lengths(static_cast<size_t>(batch), seq);
  attention_heads(qkv, offsets.data(), lengths.data(), batch, heads, head_dim, mask_add, ctx);
}

void attention_varlen(const float* qkv, const int64_t* offsets, const int64_t* lengths, int64_t sequences, int64_t heads,
                      int64_t head_dim, float* ctx) {
  attention_heads(qkv, offsets, lengths, sequences, heads, head_dim, nullptr, ctx);
}

namespace {
std::atomic<bool> g_profiling{false};
std::mutex g_profile_mutex;
std::vector<std::pair<std::string, double>> g_profile;
}  // namespace

void set_profiling(bool on) { g_profiling.store(on, std::memory_order_relaxed); }
bool profiling() { return g_profiling.load(std::memory_order_relaxed); }

void profile_add(const char* stage, double ms) {
  std::lock_guard<std::mutex> lk(g_profile_mutex);
  for (auto& [name, total] : g_profile)
    if (name == stage) {
      total += ms;
      return;
    }
  g_profile.emplace_back(stage, ms);
}

std::vector<std::pair<std::string, double>> profile_take() {
  std::lock_guard<std::mutex> lk(g_profile_mutex);
  return std::exchange(g_profile, {});
}

}  // namespace bp::fast
