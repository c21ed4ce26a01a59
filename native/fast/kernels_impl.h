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

namespace bp::fast::BP_KERNEL_NS {
namespace {

#if BP_KERNEL_AVX512
struct V {
  using T = __m512;
  using Mask = __mmask16;
  static constexpr int W = 16;
  static T zero() { return _mm512_setzero_ps(); }
  static T set1(float x) { return _mm512_set1_ps(x); }
  static T load(const float* p) { return _mm512_load_ps(p); }
  static T loadu(const float* p) { return _mm512_loadu_ps(p); }
  static void storeu(float* p, T x) { _mm512_storeu_ps(p, x); }
  static Mask mask(int64_t n) {  // the first n lanes
    return n >= W ? static_cast<Mask>(0xFFFF) : (n <= 0 ? static_cast<Mask>(0) : static_cast<Mask>((1u << n) - 1));
  }
  static T maskz_loadu(Mask m, const float* p) { return _mm512_maskz_loadu_ps(m, p); }
  static void mask_storeu(float* p, Mask m, T x) { _mm512_mask_storeu_ps(p, m, x); }
  static T add(T a, T b) { return _mm512_add_ps(a, b); }
  static T sub(T a, T b) { return _mm512_sub_ps(a, b); }
  static T mul(T a, T b) { return _mm512_mul_ps(a, b); }
  static T div(T a, T b) { return _mm512_div_ps(a, b); }
  static T fmadd(T a, T b, T c) { return _mm512_fmadd_ps(a, b, c); }
  static T max(T a, T b) { return _mm512_max_ps(a, b); }
  static T min(T a, T b) { return _mm512_min_ps(a, b); }
  static T abs(T a) { return _mm512_abs_ps(a); }
  static T copysign(T mag, T sign) {  // |mag| with the sign of `sign`
    const __m512i sbit = _mm512_set1_epi32(static_cast<int>(0x80000000u));
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_andnot_si512(sbit, _mm512_castps_si512(mag)),
                                               _mm512_and_si512(sbit, _mm512_castps_si512(sign))));
  }
  static T round(T a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static T ldexp(T y, T n) { return _mm512_scalef_ps(y, n); }  // y * 2^n
  static float sum(T a) { return _mm512_reduce_add_ps(a); }
  static float hmax(T a) { return _mm512_reduce_max_ps(a); }
};
#else
struct V {
  using T = __m256;
  using Mask = __m256i;
  static constexpr int W = 8;
  static T zero() { return _mm256_setzero_ps(); }
  static T set1(float x) { return _mm256_set1_ps(x); }
  static T load(const float* p) { return _mm256_load_ps(p); }
  static T loadu(const float* p) { return _mm256_loadu_ps(p); }
  static void storeu(float* p, T x) { _mm256_storeu_ps(p, x); }
  static Mask mask(int64_t n) {
    alignas(32) static const int32_t table[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    const int64_t k = std::min<int64_t>(W, std::max<int64_t>(0, n));
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(table + W - k));
  }
  static T maskz_loadu(Mask m, const float* p) { return _mm256_maskload_ps(p, m); }
  static void mask_storeu(float* p, Mask m, T x) { _mm256_maskstore_ps(p, m, x); }
  static T add(T a, T b) { return _mm256_add_ps(a, b); }
  static T sub(T a, T b) { return _mm256_sub_ps(a, b); }
  static T mul(T a, T b) { return _mm256_mul_ps(a, b); }
  static T div(T a, T b) { return _mm256_div_ps(a, b); }
  static T fmadd(T a, T b, T c) { return _mm256_fmadd_ps(a, b, c); }
  static T max(T a, T b) { return _mm256_max_ps(a, b); }
  static T min(T a, T b) { return _mm256_min_ps(a, b); }
  static T abs(T a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
  static T copysign(T mag, T sign) {
    const T sbit = _mm256_set1_ps(-0.0f);
    return _mm256_or_ps(_mm256_andnot_ps(sbit, mag), _mm256_and_ps(sbit, sign));
  }
  static T round(T a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static T ldexp(T y, T n) {  // n is integral and within [-126, 127] here
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
  }
  static float sum(T a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static float hmax(T a) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
};
#endif

using T = V::T;

// exp(x): Cephes' expf (range reduction by ln 2 in two parts, degree-6 polynomial), about 1 ulp. Inputs
// are clamped to [-87.3, 88.3], so far-negative scores (masked positions) give ~1e-38 rather than 0.
inline T vexp(T x) {
  x = V::min(V::max(x, V::set1(-87.3f)), V::set1(88.3f));
  const T n = V::round(V::mul(x, V::set1(1.44269504088896341f)));
  T r = V::fmadd(n, V::set1(-0.693359375f), x);
  r = V::fmadd(n, V::set1(2.12194440e-4f), r);
  T p = V::set1(1.9875691500E-4f);
  p = V::fmadd(p, r, V::set1(1.3981999507E-3f));
  p = V::fmadd(p, r, V::set1(8.3334519073E-3f));
  p = V::fmadd(p, r, V::set1(4.1665795894E-2f));
  p = V::fmadd(p, r, V::set1(1.6666665459E-1f));
  p = V::fmadd(p, r, V::set1(5.0000001201E-1f));
  const T y = V::add(V::fmadd(V::mul(p, r), r, r), V::set1(1.0f));
  return V::ldexp(y, n);
}

// erf(x): Abramowitz & Stegun 7.1.26 (absolute error <= 1.5e-7), the sign restored after.
inline T verf(T x) {
  const T a = V::abs(x);
  const T t = V::div(V::set1(1.0f), V::fmadd(V::set1(0.3275911f), a, V::set1(1.0f)));
  T p = V::set1(1.061405429f);
  p = V::fmadd(p, t, V::set1(-1.453152027f));
  p = V::fmadd(p, t, V::set1(1.421413741f));
  p = V::fmadd(p, t, V::set1(-0.284496736f));
  p = V::fmadd(p, t, V::set1(0.254829592f));
  p = V::mul(p, t);
  const T e = vexp(V::sub(V::zero(), V::mul(a, a)));
  const T y = V::sub(V::set1(1.0f), V::mul(p, e));
  return V::copysign(y, x);
}

// HF "gelu": x * 0.5 * (1 + erf(x / sqrt(2))).
inline T vgelu(T x) {
  const T e = verf(V::mul(x, V::set1(0.70710678118654752f)));
  return V::mul(V::mul(x, V::set1(0.5f)), V::add(V::set1(1.0f), e));
}

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
    for (int i = 0; i < R; ++i) {
      T y = V::add(acc[i][j], bb);
      if (act == kActGelu) y = vgelu(y);
      else if (act == kActRelu) y = V::max(y, V::zero());
      if (res) y = V::add(y, V::maskz_loadu(m, res + i * ldr + j * V::W));
      V::mask_storeu(c + i * ldc + j * V::W, m, y);
    }
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
