// rows_linear's matrix-vector products (mixed_precision.h): y = W x + b for one fp32 row (or up to 8), W [N, K] row-major as
// nn.Linear stores it. Memory-bound: a decoding step streams every weight once, so what matters is reading W
// at full bandwidth. OpenBLAS's sgemv reached 6.2 GB/s on the 32128x512 LM head (one thread), a plain sum of
// the same tensor 9.2-9.9; rows_avx512 below 14.4 (10.5 ms -> 4.6 ms).
// Rows are split over the kernels' pool (fast::parallel_for), as the BERT kernels are.
#include <ATen/ATen.h>
#include <immintrin.h>

#include <cstring>
#include <utility>

#include "fast/fast_cpu.h"
#include "mixed_precision.h"

namespace bp {

namespace {

// Rows [r0, r1) of y = W x (+ b), one row after the other so W is read as one sequential stream (four rows
// interleaved made four short streams: 10.0 GB/s against 12.7 on the 32128x512 head), four accumulators per row,
// and a prefetch 4 KiB ahead (14.4 GB/s; a sum of the tensor reads 9.9 in the same run).
__attribute__((target("avx512f,fma"))) void rows_avx512(const float* w, const float* x, const float* b, float* y, int64_t r0, int64_t r1, int64_t k) {
  constexpr int64_t kAhead = 1024;  // floats
  const int64_t blocks = k / 64 * 64, full = k / 16 * 16;
  const __mmask16 tail = static_cast<__mmask16>((1u << (k - full)) - 1u);
  for (int64_t i = r0; i < r1; ++i) {
    const float* r = w + i * k;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t j = 0;
    for (; j < blocks; j += 64) {
      for (int64_t p = 0; p < 64; p += 16) _mm_prefetch(reinterpret_cast<const char*>(r + j + kAhead + p), _MM_HINT_T0);
      a0 = _mm512_fmadd_ps(_mm512_loadu_ps(r + j), _mm512_loadu_ps(x + j), a0);
      a1 = _mm512_fmadd_ps(_mm512_loadu_ps(r + j + 16), _mm512_loadu_ps(x + j + 16), a1);
      a2 = _mm512_fmadd_ps(_mm512_loadu_ps(r + j + 32), _mm512_loadu_ps(x + j + 32), a2);
      a3 = _mm512_fmadd_ps(_mm512_loadu_ps(r + j + 48), _mm512_loadu_ps(x + j + 48), a3);
    }
    for (; j < full; j += 16) a0 = _mm512_fmadd_ps(_mm512_loadu_ps(r + j), _mm512_loadu_ps(x + j), a0);
    if (tail) a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, r + full), _mm512_maskz_loadu_ps(tail, x + full), a1);
    y[i] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3))) + (b ? b[i] : 0.0f);
  }
}

__attribute__((target("avx2,fma"))) float hsum256(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps(t, t, 1)));
}

__attribute__((target("avx2,fma"))) void rows_avx2(const float* w, const float* x, const float* b, float* y, int64_t r0, int64_t r1, int64_t k) {
  const int64_t full = k / 8 * 8;
  int64_t i = r0;
  for (; i + 4 <= r1; i += 4) {
    const float* r = w + i * k;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t j = 0; j < full; j += 8) {
      const __m256 xv = _mm256_loadu_ps(x + j);
      a0 = _mm256_fmadd_ps(_mm256_loadu_ps(r + j), xv, a0);
      a1 = _mm256_fmadd_ps(_mm256_loadu_ps(r + k + j), xv, a1);
      a2 = _mm256_fmadd_ps(_mm256_loadu_ps(r + 2 * k + j), xv, a2);
      a3 = _mm256_fmadd_ps(_mm256_loadu_ps(r + 3 * k + j), xv, a3);
    }
    float s[4] = {hsum256(a0), hsum256(a1), hsum256(a2), hsum256(a3)};
    for (int64_t j = full; j < k; ++j)
      for (int q = 0; q < 4; ++q) s[q] += r[q * k + j] * x[j];
    for (int q = 0; q < 4; ++q) y[i + q] = s[q] + (b ? b[i + q] : 0.0f);
  }
  for (; i < r1; ++i) {
    const float* r = w + i * k;
    __m256 a = _mm256_setzero_ps();
    for (int64_t j = 0; j < full; j += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(r + j), _mm256_loadu_ps(x + j), a);
    float s = hsum256(a);
    for (int64_t j = full; j < k; ++j) s += r[j] * x[j];
    y[i] = s + (b ? b[i] : 0.0f);
  }
}

// Rows [r0, r1) of Y = X W^T (+ b) for M rows of X at once (beams, a small batch): each weight row is read once
// for all M, so the step stays one pass over W instead of M (or GEMM's packing of all of W per call).
template <int M>
__attribute__((target("avx512f,fma"))) void rows_m_avx512(const float* w, const float* x, const float* b, float* y, int64_t n, int64_t r0, int64_t r1, int64_t k) {
  constexpr int64_t kAhead = 1024;
  const int64_t full = k / 16 * 16;
  const __mmask16 tail = static_cast<__mmask16>((1u << (k - full)) - 1u);
  for (int64_t i = r0; i < r1; ++i) {
    const float* r = w + i * k;
    __m512 a[M];
    for (int q = 0; q < M; ++q) a[q] = _mm512_setzero_ps();
    int64_t j = 0;
    for (; j < full; j += 16) {
      _mm_prefetch(reinterpret_cast<const char*>(r + j + kAhead), _MM_HINT_T0);
      const __m512 wv = _mm512_loadu_ps(r + j);
      for (int q = 0; q < M; ++q) a[q] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x + q * k + j), a[q]);
    }
    if (tail) {
      const __m512 wv = _mm512_maskz_loadu_ps(tail, r + full);
      for (int q = 0; q < M; ++q) a[q] = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(tail, x + q * k + full), a[q]);
    }
    for (int q = 0; q < M; ++q) y[q * n + i] = _mm512_reduce_add_ps(a[q]) + (b ? b[i] : 0.0f);
  }
}

template <int M>
__attribute__((target("avx2,fma"))) void rows_m_avx2(const float* w, const float* x, const float* b, float* y, int64_t n, int64_t r0, int64_t r1, int64_t k) {
  const int64_t full = k / 8 * 8;
  for (int64_t i = r0; i < r1; ++i) {
    const float* r = w + i * k;
    __m256 a[M];
    for (int q = 0; q < M; ++q) a[q] = _mm256_setzero_ps();
    for (int64_t j = 0; j < full; j += 8) {
      const __m256 wv = _mm256_loadu_ps(r + j);
      for (int q = 0; q < M; ++q) a[q] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + q * k + j), a[q]);
    }
    for (int q = 0; q < M; ++q) {
      float s = hsum256(a[q]);
      for (int64_t j = full; j < k; ++j) s += r[j] * x[q * k + j];
      y[q * n + i] = s + (b ? b[i] : 0.0f);
    }
  }
}

using RowsM = void (*)(const float*, const float*, const float*, float*, int64_t, int64_t, int64_t, int64_t);

template <int... Ms>
RowsM pick_rows(int m, bool avx512, std::integer_sequence<int, Ms...>) {
  RowsM out = nullptr;
  ((m == Ms + 2 ? (out = avx512 ? &rows_m_avx512<Ms + 2> : &rows_m_avx2<Ms + 2>, 0) : 0), ...);
  return out;
}

}  // namespace

at::Tensor matvec_rows(const at::Tensor& w_in, const at::Tensor& x_in, const at::Tensor& b_in) {
  const int64_t m = x_in.size(0);
  if (m == 1) return matvec(w_in, x_in.reshape({-1}), b_in).unsqueeze(0);
  const bool avx512 = std::strcmp(fast::isa(), "avx512") == 0, avx2 = std::strcmp(fast::isa(), "avx2") == 0;
  if (!fast::enabled() || !(avx512 || avx2) || m > kMatvecRows) return at::linear(x_in, w_in, b_in);
  const auto w = w_in.contiguous(), x = x_in.contiguous();
  const auto b = b_in.defined() ? b_in.contiguous() : b_in;
  const int64_t n = w.size(0), k = w.size(1);
  auto y = at::empty({m, n}, x.options());
  const float *wp = w.data_ptr<float>(), *xp = x.data_ptr<float>(), *bp_ = b.defined() ? b.data_ptr<float>() : nullptr;
  float* yp = y.data_ptr<float>();
  const RowsM rows = pick_rows(static_cast<int>(m), avx512, std::make_integer_sequence<int, kMatvecRows - 1>{});
  fast::parallel_for(n, [&](int64_t r0, int64_t r1) { rows(wp, xp, bp_, yp, n, r0, r1, k); });
  return y;
}

at::Tensor matvec(const at::Tensor& w_in, const at::Tensor& x_in, const at::Tensor& b_in) {
  const bool avx512 = std::strcmp(fast::isa(), "avx512") == 0, avx2 = std::strcmp(fast::isa(), "avx2") == 0;
  if (!fast::enabled() || !(avx512 || avx2)) return b_in.defined() ? at::addmv(b_in, w_in, x_in) : at::mv(w_in, x_in);
  const auto w = w_in.contiguous(), x = x_in.contiguous();
  const auto b = b_in.defined() ? b_in.contiguous() : b_in;
  const int64_t n = w.size(0), k = w.size(1);
  auto y = at::empty({n}, x.options());
  const float *wp = w.data_ptr<float>(), *xp = x.data_ptr<float>(), *bp_ = b.defined() ? b.data_ptr<float>() : nullptr;
  float* yp = y.data_ptr<float>();
  fast::parallel_for(n, [&](int64_t r0, int64_t r1) { (avx512 ? rows_avx512 : rows_avx2)(wp, xp, bp_, yp, r0, r1, k); });
  return y;
}

}  // namespace bp
