// The kernels of kernels.h, written once over a vector type and compiled once per instruction set. The
// including file defines BP_KERNEL_NS (a namespace of its own, so nothing compiled with wider instructions
// can be merged into another ISA's code by the linker) and BP_KERNEL_AVX512 (1 or 0: AVX2 + FMA).
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <utility>
#include <cmath>
#include <cstring>

#include "kernels.h"
#include "simd_impl.h"

namespace bp::fast::BP_KERNEL_NS {
namespace {

constexpr int NV = 3;          // vectors per packed panel row
constexpr int NR = NV * V::W;  // panel width: 48 (AVX-512) or 24 (AVX2)
constexpr int MR = V::W == 16 ? 8 : 4;  // rows per micro-kernel: 8x3 or 4x3 accumulators

int64_t panels_of(int64_t n) { return (n + NR - 1) / NR; }

int64_t packed_size(int64_t n, int64_t k) { return panels_of(n) * k * NR; }

void pack_nk(const float* w, int64_t ldw, int64_t n, int64_t k, float* out) {
  const int64_t panels = panels_of(n);
  for (int64_t p = 0; p < panels; ++p) {
    float* dst = out + p * k * NR;
    for (int64_t j = 0; j < NR; ++j) {
      const int64_t col = p * NR + j;
      if (col >= n) {
        for (int64_t kk = 0; kk < k; ++kk) dst[kk * NR + j] = 0.0f;
        continue;
      }
      const float* src = w + col * ldw;
      for (int64_t kk = 0; kk < k; ++kk) dst[kk * NR + j] = src[kk];
    }
  }
}

void pack_kn(const float* v, int64_t ldv, int64_t k, int64_t n, float* out) {
  const int64_t panels = panels_of(n);
  for (int64_t p = 0; p < panels; ++p) {
    float* dst = out + p * k * NR;
    const int64_t cols = std::min<int64_t>(NR, n - p * NR);
    for (int64_t kk = 0; kk < k; ++kk) {
      std::memcpy(dst + kk * NR, v + kk * ldv + p * NR, sizeof(float) * cols);
      for (int64_t j = cols; j < NR; ++j) dst[kk * NR + j] = 0.0f;
    }
  }
}

// C[R, nvalid] = A[R, K] x panel, then the epilogue; R <= MR rows. The panel (K x NR) is 64-byte aligned.
template <int R>
void micro(const float* a, int64_t lda, const float* b, int64_t k, float* c, int64_t ldc, int64_t nvalid,
           const float* bias, const float* res, int64_t ldr, int act) {
  T acc[R][NV];
  for (int i = 0; i < R; ++i)
    for (int j = 0; j < NV; ++j) acc[i][j] = V::zero();
#pragma GCC unroll 2
  for (int64_t kk = 0; kk < k; ++kk) {
    T bv[NV];
    for (int j = 0; j < NV; ++j) bv[j] = V::load(b + kk * NR + j * V::W);
    _mm_prefetch(reinterpret_cast<const char*>(b + (kk + 8) * NR), _MM_HINT_T0);
    for (int i = 0; i < R; ++i) {
      const T av = V::set1(a[i * lda + kk]);
      for (int j = 0; j < NV; ++j) acc[i][j] = V::fmadd(av, bv[j], acc[i][j]);
    }
  }
  for (int j = 0; j < NV; ++j) {
    const auto m = V::mask(nvalid - j * V::W);
    const T bb = bias ? V::maskz_loadu(m, bias + j * V::W) : V::zero();
    for (int i = 0; i < R; ++i)
      finish(c + i * ldc + j * V::W, m, V::add(acc[i][j], bb), act, res ? res + i * ldr + j * V::W : nullptr);
  }
}

using MicroFn = void (*)(const float*, int64_t, const float*, int64_t, float*, int64_t, int64_t, const float*,
                         const float*, int64_t, int);

template <int... I>
constexpr auto micro_table(std::integer_sequence<int, I...>) {
  return std::array<MicroFn, sizeof...(I)>{&micro<I + 1>...};
}
const auto kMicro = micro_table(std::make_integer_sequence<int, MR>{});

int64_t tiles(const Gemm& g) { return panels_of(g.n) * ((g.m + MR - 1) / MR); }

void run(const Gemm& g, int64_t t0, int64_t t1) {
  const int64_t mblocks = (g.m + MR - 1) / MR;
  for (int64_t t = t0; t < t1; ++t) {
    const int64_t p = t / mblocks, row = (t % mblocks) * MR, col = p * NR;
    const int rows = static_cast<int>(std::min<int64_t>(MR, g.m - row));
    kMicro[rows - 1](g.a + row * g.lda, g.lda, g.packed_b + p * g.k * NR, g.k, g.c + row * g.ldc + col, g.ldc,
                     std::min<int64_t>(NR, g.n - col), g.epi.bias ? g.epi.bias + col : nullptr,
                     g.epi.residual ? g.epi.residual + row * g.epi.ldr + col : nullptr, g.epi.ldr, g.epi.act);
  }
}

// Two passes over each row (mean, then variance about it), as at::layer_norm does, in float.
void layer_norm(float* x, int64_t rows, int64_t n, const float* gamma, const float* beta, float eps) {
  for (int64_t r = 0; r < rows; ++r) {
    float* row = x + r * n;
    T s = V::zero();
    int64_t j = 0;
    for (; j + V::W <= n; j += V::W) s = V::add(s, V::loadu(row + j));
    float mean = V::sum(s);
    for (; j < n; ++j) mean += row[j];
    mean /= static_cast<float>(n);
    const T mv = V::set1(mean);
    T q = V::zero();
    for (j = 0; j + V::W <= n; j += V::W) {
      const T d = V::sub(V::loadu(row + j), mv);
      q = V::fmadd(d, d, q);
    }
    float var = V::sum(q);
    for (; j < n; ++j) var += (row[j] - mean) * (row[j] - mean);
    var /= static_cast<float>(n);
    const float inv = 1.0f / std::sqrt(var + eps);
    const T iv = V::set1(inv);
    for (j = 0; j + V::W <= n; j += V::W) {
      const T y = V::mul(V::sub(V::loadu(row + j), mv), iv);
      V::storeu(row + j, V::fmadd(y, V::loadu(gamma + j), V::loadu(beta + j)));
    }
    for (; j < n; ++j) row[j] = (row[j] - mean) * inv * gamma[j] + beta[j];
  }
}

void softmax_row(float* x, int64_t n) {
  T mx = V::set1(-INFINITY);
  int64_t j = 0;
  for (; j + V::W <= n; j += V::W) mx = V::max(mx, V::loadu(x + j));
  float m = V::hmax(mx);
  for (; j < n; ++j) m = std::max(m, x[j]);
  const T mv = V::set1(m);
  T s = V::zero();
  for (j = 0; j + V::W <= n; j += V::W) {
    const T e = vexp(V::sub(V::loadu(x + j), mv));
    V::storeu(x + j, e);
    s = V::add(s, e);
  }
  float sum = V::sum(s);
  for (; j < n; ++j) {
    x[j] = std::exp(x[j] - m);
    sum += x[j];
  }
  const T inv = V::set1(1.0f / sum);
  for (j = 0; j + V::W <= n; j += V::W) V::storeu(x + j, V::mul(V::loadu(x + j), inv));
  for (; j < n; ++j) x[j] *= 1.0f / sum;
}

constexpr int64_t kAlign = 16;  // floats: 64 bytes
int64_t round_up(int64_t x) { return (x + kAlign - 1) / kAlign * kAlign; }

int64_t attention_scratch(int64_t s, int64_t d) {
  return round_up(packed_size(s, d)) + round_up(packed_size(d, s)) + round_up(s * s) + kAlign;
}

void attention_head(const float* q, const float* k, const float* v, int64_t ld, int64_t s, int64_t d,
                    const float* mask_add, float* ctx, int64_t ldc, float* scratch) {
  float* base = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(scratch) + 63) & ~uintptr_t{63});
  float* kp = base;
  float* vp = kp + round_up(packed_size(s, d));
  float* scores = vp + round_up(packed_size(d, s));
  pack_nk(k, ld, s, d, kp);  // scores = q k^T: B = K^T, K's rows are B's columns
  Gemm g1{q, ld, s, d, s, kp, scores, s, Epilogue{mask_add, nullptr, 0, kActNone}};
  run(g1, 0, tiles(g1));
  for (int64_t i = 0; i < s; ++i) softmax_row(scores + i * s, s);
  pack_kn(v, ld, s, d, vp);
  Gemm g2{scores, s, s, s, d, vp, ctx, ldc, Epilogue{}};
  run(g2, 0, tiles(g2));
}

}  // namespace

const KernelTable* table() {
  static const KernelTable t{
#if BP_KERNEL_AVX512
      "avx512",
#else
      "avx2",
#endif
      NR, MR, packed_size, pack_nk, pack_kn, tiles, run, layer_norm, attention_head, attention_scratch};
  return &t;
}

}  // namespace bp::fast::BP_KERNEL_NS
