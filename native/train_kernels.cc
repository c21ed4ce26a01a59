#include "train_kernels.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <cstring>

#include "fast/fast_cpu.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define BP_TRAIN_AVX2 1
#endif

namespace bp::train_kernels {
namespace {

constexpr uint32_t kGolden = 0x9e3779b9u;

// murmur3's 32-bit finaliser (a bijection with full avalanche) of a Weyl sequence, twice, the second time
// with the seed's high half mixed in: a uniform 32-bit draw per (seed, i).
inline uint32_t fmix(uint32_t h) {
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  return h ^ (h >> 16);
}
inline uint32_t draw(uint32_t lo, uint32_t hi, uint32_t i) { return fmix(fmix(i * kGolden + lo) ^ hi); }

void dropout_scalar(const float* in, float* out, int64_t begin, int64_t end, uint32_t lo, uint32_t hi, uint32_t cut, float scale) {
  for (int64_t i = begin; i < end; ++i) out[i] = draw(lo, hi, static_cast<uint32_t>(i)) >= cut ? in[i] * scale : 0.0f;
}

inline float adamw_one(float& p, float g, float& m, float& v, const AdamWScalars& s) {
  const float mi = m * s.b1 + g * s.c1;
  const float vi = v * s.b2 + s.c2 * g * g;
  m = mi;
  v = vi;
  float pi = p + s.neg_step * mi / (std::sqrt(vi) + s.eps);
  if (s.neg_decay != 0.0f) pi = pi + s.neg_decay * pi;
  return p = pi;
}

void adamw_scalar(float* p, const float* g, float* m, float* v, int64_t begin, int64_t end, const AdamWScalars& s) {
  for (int64_t i = begin; i < end; ++i) adamw_one(p[i], g[i], m[i], v[i], s);
}

#ifdef BP_TRAIN_AVX2
__attribute__((target("avx2"))) inline __m256i fmix8(__m256i h) {
  h = _mm256_xor_si256(h, _mm256_srli_epi32(h, 16));
  h = _mm256_mullo_epi32(h, _mm256_set1_epi32(static_cast<int>(0x85ebca6bu)));
  h = _mm256_xor_si256(h, _mm256_srli_epi32(h, 13));
  h = _mm256_mullo_epi32(h, _mm256_set1_epi32(static_cast<int>(0xc2b2ae35u)));
  return _mm256_xor_si256(h, _mm256_srli_epi32(h, 16));
}

__attribute__((target("avx2"))) void dropout_avx2(const float* in, float* out, int64_t begin, int64_t end, uint32_t lo, uint32_t hi,
                                                 uint32_t cut, float scale) {
  const __m256i step = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), golden = _mm256_set1_epi32(static_cast<int>(kGolden));
  const __m256i vlo = _mm256_set1_epi32(static_cast<int>(lo)), vhi = _mm256_set1_epi32(static_cast<int>(hi));
  // Unsigned h >= cut as signed (h ^ 2^31) > (cut ^ 2^31) - 1 (cut >= 1 here: p > 0).
  const __m256i sign = _mm256_set1_epi32(static_cast<int>(0x80000000u));
  const __m256i vcut = _mm256_set1_epi32(static_cast<int>((cut ^ 0x80000000u) - 1u));
  const __m256 vscale = _mm256_set1_ps(scale);
  int64_t i = begin;
  for (; i + 8 <= end; i += 8) {
    const __m256i idx = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(static_cast<uint32_t>(i))), step);
    const __m256i h = fmix8(_mm256_xor_si256(fmix8(_mm256_add_epi32(_mm256_mullo_epi32(idx, golden), vlo)), vhi));
    const __m256i keep = _mm256_cmpgt_epi32(_mm256_xor_si256(h, sign), vcut);
    const __m256 y = _mm256_mul_ps(_mm256_loadu_ps(in + i), vscale);
    _mm256_storeu_ps(out + i, _mm256_and_ps(y, _mm256_castsi256_ps(keep)));
  }
  dropout_scalar(in, out, i, end, lo, hi, cut, scale);
}

__attribute__((target("avx2"))) void adamw_avx2(float* p, const float* g, float* m, float* v, int64_t begin, int64_t end, const AdamWScalars& s) {
  const __m256 b1 = _mm256_set1_ps(s.b1), c1 = _mm256_set1_ps(s.c1), b2 = _mm256_set1_ps(s.b2), c2 = _mm256_set1_ps(s.c2);
  const __m256 eps = _mm256_set1_ps(s.eps), neg_step = _mm256_set1_ps(s.neg_step), neg_decay = _mm256_set1_ps(s.neg_decay);
  const bool decay = s.neg_decay != 0.0f;
  int64_t i = begin;
  for (; i + 8 <= end; i += 8) {
    const __m256 gi = _mm256_loadu_ps(g + i);
    const __m256 mi = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(m + i), b1), _mm256_mul_ps(gi, c1));
    const __m256 vi = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(v + i), b2), _mm256_mul_ps(_mm256_mul_ps(c2, gi), gi));
    _mm256_storeu_ps(m + i, mi);
    _mm256_storeu_ps(v + i, vi);
    __m256 pi = _mm256_add_ps(_mm256_loadu_ps(p + i), _mm256_div_ps(_mm256_mul_ps(neg_step, mi), _mm256_add_ps(_mm256_sqrt_ps(vi), eps)));
    if (decay) pi = _mm256_add_ps(pi, _mm256_mul_ps(neg_decay, pi));
    _mm256_storeu_ps(p + i, pi);
  }
  adamw_scalar(p, g, m, v, i, end, s);
}
#endif

// The fp32 kernels' choice (fast_cpu.cc: CPU features and BLOCKPRUNE_CPU_KERNELS): either set implies AVX2.
bool use_avx2() {
#ifdef BP_TRAIN_AVX2
  return std::strcmp(fast::isa(), "none") != 0;
#else
  return false;
#endif
}

}  // namespace

void dropout(const float* in, float* out, int64_t n, uint64_t seed, uint32_t cut, float scale) {
  const auto lo = static_cast<uint32_t>(seed), hi = static_cast<uint32_t>(seed >> 32);
  const bool avx2 = use_avx2();
  at::parallel_for(0, n, 1 << 15, [&](int64_t begin, int64_t end) {
#ifdef BP_TRAIN_AVX2
    if (avx2) return dropout_avx2(in, out, begin, end, lo, hi, cut, scale);
#endif
    dropout_scalar(in, out, begin, end, lo, hi, cut, scale);
  });
  (void)avx2;
}

void adamw(float* p, const float* g, float* m, float* v, int64_t n, const AdamWScalars& s) {
  const bool avx2 = use_avx2();
  at::parallel_for(0, n, 1 << 14, [&](int64_t begin, int64_t end) {
#ifdef BP_TRAIN_AVX2
    if (avx2) return adamw_avx2(p, g, m, v, begin, end, s);
#endif
    adamw_scalar(p, g, m, v, begin, end, s);
  });
  (void)avx2;
}

}  // namespace bp::train_kernels
