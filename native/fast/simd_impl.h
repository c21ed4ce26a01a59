// The vector type and the element-wise math every kernel set shares (the fp32 GEMM of kernels_impl.h and the
// quantized GEMMs of quant_impl.h), written once and compiled per instruction set. The including file defines
// BP_KERNEL_NS (a namespace of its own per translation unit, so nothing compiled with wider instructions can be
// merged into another ISA's code by the linker) and BP_KERNEL_AVX512 (1: 512-bit vectors; 0: AVX2 + FMA).
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>

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

// The epilogue after the product and the bias, in HF's order (kernels.h): activation, then residual, stored to
// the first lanes of `m`. One function, so every GEMM (fp32, int8, bf16) finishes a tile the same way.
inline void finish(float* c, V::Mask m, T y, int act, const float* res) {
  if (act == kActGelu) y = vgelu(y);
  else if (act == kActRelu) y = V::max(y, V::zero());
  if (res) y = V::add(y, V::maskz_loadu(m, res));
  V::mask_storeu(c, m, y);
}

}  // namespace
}  // namespace bp::fast::BP_KERNEL_NS
