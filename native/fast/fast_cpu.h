// The CPU inference path for fp32 BERT layers: weights packed once for our own GEMM (kernels in fast/),
// fused epilogues, attention computed head by head without copies, all run on a small thread pool whose
// workers spin briefly between calls. Why not libtorch's ops: on this class of machine (2 vCPUs, OpenBLAS)
// the BLAS reaches 130-180 GFLOP/s at 128 rows and each OpenMP region pays a wake-up, while these kernels run
// at 210-230 GFLOP/s (measured; README, Performance). Used only for inference (no grad, eval mode, no masks);
// training and anything unusual go through the plain libtorch path, which stays the reference.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "fast/kernels.h"

namespace bp::fast {

// Kernels exist for this CPU (AVX-512 or AVX2+FMA) and are switched on: the default, unless the environment
// has BLOCKPRUNE_FAST_KERNELS=0 or set_enabled(false) was called.
bool enabled();
void set_enabled(bool on);
// "avx512" | "avx2" | "none" (no kernels for this CPU).
const char* isa();

// A linear layer's weight [N, K] (row-major, as nn.Linear) and bias [N], packed for the GEMM.
class PackedLinear {
 public:
  PackedLinear() = default;
  PackedLinear(const float* weight, const float* bias, int64_t n, int64_t k);
  bool empty() const { return n_ == 0; }
  int64_t n() const { return n_; }
  int64_t k() const { return k_; }
  size_t bytes() const { return (data_.size() + bias_.size()) * sizeof(float); }
  // y[M, N] = act(x[M, K] W^T + b) (+ residual[M, N]); act is kActNone / kActGelu / kActRelu (kernels.h).
  void forward(const float* x, int64_t m, float* y, int act, const float* residual) const;

 private:
  std::vector<float> data_;  // over-allocated by 64 bytes; packed_ is its 64-byte aligned start
  const float* packed_ = nullptr;
  std::vector<float> bias_;
  int64_t n_ = 0, k_ = 0;
};

// fn(i0, i1) over chunks of [0, n) on the kernels' thread pool, the caller taking part; returns when all are
// done. The quantized layers (quant.cc) run on it too: one pool for every kernel, one job at a time.
void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn);

// In place over [rows, n]: LayerNorm with gamma, beta.
void layer_norm(float* x, int64_t rows, int64_t n, const float* gamma, const float* beta, float eps);

// Self-attention from the fused product qkv [B*S, 3*H*D] (query columns already scaled by 1/sqrt(D)):
// ctx [B*S, H*D] = softmax(q k^T + mask_add[b]) v for each sequence b and head; mask_add is [B, S].
void attention(const float* qkv, int64_t batch, int64_t seq, int64_t heads, int64_t head_dim, const float* mask_add,
               float* ctx);

// The same over packed sequences (no padding): sequence i is rows [offsets[i], offsets[i] + lengths[i]) of
// qkv [T, 3*H*D] and ctx [T, H*D], and attends only within them.
void attention_varlen(const float* qkv, const int64_t* offsets, const int64_t* lengths, int64_t sequences, int64_t heads,
                      int64_t head_dim, float* ctx);

// Wall time per stage of the layers' fast path, summed over calls (bench_forward --profile). Off by default;
// when off a stage costs one relaxed atomic load.
void set_profiling(bool on);
bool profiling();
void profile_add(const char* stage, double ms);
// The sums so far in first-seen order, then cleared.
std::vector<std::pair<std::string, double>> profile_take();

}  // namespace bp::fast
