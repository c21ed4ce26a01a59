// Kept hand-written: OpenBLAS (libtorch's GEMM here) reached 130-180 GFLOP/s on BERT's shapes against 185-230 for these fused kernels, and oneDNN was slower still (README, Performance).
//
// CPU inference kernels for fp32 BERT: a GEMM on prepacked weights with fused epilogues (bias, GELU,
// residual), row-wise LayerNorm and softmax, and one attention head. Plain C++ with SIMD intrinsics, no
// libtorch: each instruction set is compiled in its own translation unit (kernels_avx512.cc,
// kernels_avx2.cc) from the template in kernels_impl.h, and fast_cpu.cc picks one at run time from what the
// CPU reports. Everything here is single-threaded; fast_cpu.cc splits the work across its thread pool.
#pragma once

#include <cstdint>

namespace bp::fast {

// What the GEMM adds after the product, in HF's order: y = act(x W^T + bias) (+ residual).
struct Epilogue {
  const float* bias = nullptr;      // [N], or null
  const float* residual = nullptr;  // [M, ldr], or null; added after the activation
  int64_t ldr = 0;
  int act = 0;  // kActNone | kActGelu | kActRelu
};
constexpr int kActNone = 0, kActGelu = 1, kActRelu = 2;

// One GEMM: C[M, N] (row stride ldc) = A[M, K] (row stride lda) x B, where B was packed by pack_nk or
// pack_kn into panels of `nr` columns. Work is cut into tiles (one panel x `mr` rows): tiles() counts them
// and run() computes tiles [t0, t1), panel-major so a thread's consecutive tiles reuse one packed panel.
struct Gemm {
  const float* a;
  int64_t lda;
  int64_t m, k, n;
  const float* packed_b;
  float* c;
  int64_t ldc;
  Epilogue epi;
};

struct KernelTable {
  const char* name;
  int nr;  // packed panel width (columns)
  int mr;  // rows per micro-kernel call
  // Floats needed to pack an N x K operand.
  int64_t (*packed_size)(int64_t n, int64_t k);
  // W[N, K] row-major (row stride ldw), as nn.Linear stores its weight: B = W^T.
  void (*pack_nk)(const float* w, int64_t ldw, int64_t n, int64_t k, float* out);
  // V[K, N] row-major (row stride ldv): B = V.
  void (*pack_kn)(const float* v, int64_t ldv, int64_t k, int64_t n, float* out);
  int64_t (*tiles)(const Gemm& g);
  void (*run)(const Gemm& g, int64_t t0, int64_t t1);
  // In place over `rows` rows of length n (row stride n): LayerNorm with gamma/beta.
  void (*layer_norm)(float* x, int64_t rows, int64_t n, const float* gamma, const float* beta, float eps);
  // One head of attention for one sequence: q, k, v are [S, D] views with row stride ld (slices of the fused
  // qkv product, the query already scaled by 1/sqrt(D)); mask_add [S] is added to every score row (null =
  // none); ctx [S, D] with row stride ldc. scratch holds scratch_size(S, D) floats.
  void (*attention_head)(const float* q, const float* k, const float* v, int64_t ld, int64_t s, int64_t d,
                         const float* mask_add, float* ctx, int64_t ldc, float* scratch);
  int64_t (*attention_scratch)(int64_t s, int64_t d);
};

const KernelTable* kernels_avx512();  // null when not compiled in
const KernelTable* kernels_avx2();

}  // namespace bp::fast
