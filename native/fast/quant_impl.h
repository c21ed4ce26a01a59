// The quantized GEMMs of quant_kernels.h, written once and compiled once per instruction set. The including file
// defines BP_KERNEL_NS and BP_KERNEL_AVX512 (as for kernels_impl.h) and BP_QUANT_KIND: BP_QUANT_VNNI (int8 by
// vpdpbusd, AVX-512 VNNI), BP_QUANT_AVX2 (int8 by vpmaddubsw + vpmaddwd) or BP_QUANT_BF16 (vdpbf16ps).
// Only the product of one 32-bit lane differs between them (the Q structs below); packing, tiling and the
// epilogue are shared, and the epilogue is the fp32 GEMM's (simd_impl.h's finish).
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <utility>

#include "quant_kernels.h"
#include "simd_impl.h"

#define BP_QUANT_VNNI 1
#define BP_QUANT_AVX2 2
#define BP_QUANT_BF16 3

namespace bp::fast::BP_KERNEL_NS {
namespace {

inline int32_t lane_of(const uint8_t* p) {  // 4 activation bytes, broadcast to every lane by the callers
  int32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

#if BP_QUANT_KIND == BP_QUANT_VNNI
// u8 x s8 -> s32, 4 products per lane, no saturation: the activations are stored as xq + 128 (in [1, 255]),
// and the accumulators start at -128 * sum_k q[n][k] (comp), so each holds the exact signed sum of quant.h.
struct Q {
  static constexpr const char* kName = "avx512-vnni";
  static constexpr int KG = 4, ES = 1, OFFSET = 128, NV = 3, MR = 8;  // 8 x 48: 24 of 32 zmm accumulate
  using A = __m512i;
  using B = __m512i;
  static A init(const int32_t* comp) { return _mm512_loadu_si512(comp); }
  static B load(const uint8_t* p) { return _mm512_load_si512(p); }
  static B bcast(const uint8_t* p) { return _mm512_set1_epi32(lane_of(p)); }
  static A dot(A acc, B a, B b) { return _mm512_dpbusd_epi32(acc, a, b); }
  // quant.h: float(acc) * (xscale[r] * wscale[n]).
  static T value(A acc, float xs, T ws) { return V::mul(_mm512_cvtepi32_ps(acc), V::mul(V::set1(xs), ws)); }
  static void store_bytes(uint8_t* p, int64_t n, T q) {
    const __m512i v = _mm512_add_epi32(_mm512_cvtps_epi32(q), _mm512_set1_epi32(OFFSET));
    _mm512_mask_cvtepi32_storeu_epi8(p, V::mask(n), v);
  }
};
#elif BP_QUANT_KIND == BP_QUANT_AVX2
// Without VNNI: vpmaddubsw multiplies u8 by s8 and adds pairs into int16 with saturation, which u8 activations
// up to 255 against weights up to 127 would reach (2 * 255 * 127 > 32767). The sign trick keeps it exact:
// |xq| (<= 127) as the u8 operand, q with xq's sign as the s8 one, so a pair is at most 2 * 127 * 127 = 32258;
// vpmaddwd by ones then widens the pairs into the int32 lane.
struct Q {
  static constexpr const char* kName = "avx2";
  static constexpr int KG = 4, ES = 1, OFFSET = 0, NV = 2, MR = 4;  // 4 x 16: 8 accumulators of 16 ymm
  using A = __m256i;
  using B = __m256i;
  static A init(const int32_t* comp) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(comp)); }
  static B load(const uint8_t* p) { return _mm256_load_si256(reinterpret_cast<const __m256i*>(p)); }
  static B bcast(const uint8_t* p) { return _mm256_set1_epi32(lane_of(p)); }
  static A dot(A acc, B a, B b) {
    const __m256i pairs = _mm256_maddubs_epi16(_mm256_abs_epi8(a), _mm256_sign_epi8(b, a));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
  }
  static T value(A acc, float xs, T ws) { return V::mul(_mm256_cvtepi32_ps(acc), V::mul(V::set1(xs), ws)); }
  static void store_bytes(uint8_t* p, int64_t n, T q) {  // q in [-127, 127]: the signed packs do not clamp
    const __m256i v = _mm256_cvtps_epi32(q);
    const __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    alignas(16) uint8_t bytes[16];
    _mm_store_si128(reinterpret_cast<__m128i*>(bytes), _mm_packs_epi16(w, w));
    std::memcpy(p, bytes, static_cast<size_t>(std::min<int64_t>(n, V::W)));
  }
};
#elif BP_QUANT_KIND == BP_QUANT_BF16
// bf16 pairs -> fp32: each lane adds the two exact products of its pair to the fp32 accumulator.
struct Q {
  static constexpr const char* kName = "avx512-bf16";
  static constexpr int KG = 2, ES = 2, OFFSET = 0, NV = 3, MR = 8;
  using A = __m512;
  using B = __m512i;
  static A init(const int32_t*) { return _mm512_setzero_ps(); }
  static B load(const uint8_t* p) { return _mm512_load_si512(p); }
  static B bcast(const uint8_t* p) { return _mm512_set1_epi32(lane_of(p)); }
  static A dot(A acc, B a, B b) { return _mm512_dpbf16_ps(acc, (__m512bh)a, (__m512bh)b); }
  static T value(A acc, float, T) { return acc; }
};
#endif

constexpr int NV = Q::NV;
constexpr int NR = NV * V::W;  // panel width: 48 (AVX-512) or 16 (AVX2)
constexpr int MR = Q::MR;
constexpr int LANE = 4;  // bytes of one group of KG elements

int64_t panels_of(int64_t n) { return (n + NR - 1) / NR; }
int64_t groups_of(int64_t k) { return (k + Q::KG - 1) / Q::KG; }
int64_t packed_bytes(int64_t n, int64_t k) { return panels_of(n) * groups_of(k) * NR * LANE; }
int64_t row_bytes(int64_t k) { return (groups_of(k) * LANE + 63) / 64 * 64; }

void pack(const void* w, int64_t n, int64_t k, uint8_t* out) {
  const auto* src = static_cast<const uint8_t*>(w);
  const int64_t groups = groups_of(k);
  std::memset(out, 0, static_cast<size_t>(packed_bytes(n, k)));
  for (int64_t col = 0; col < n; ++col) {
    uint8_t* panel = out + (col / NR) * groups * NR * LANE + (col % NR) * LANE;
    for (int64_t kk = 0; kk < k; ++kk)
      std::memcpy(panel + (kk / Q::KG) * NR * LANE + (kk % Q::KG) * Q::ES, src + (col * k + kk) * Q::ES, Q::ES);
  }
}

inline T load_part(const float* p, int64_t n) { return n >= V::W ? V::loadu(p) : V::maskz_loadu(V::mask(n), p); }

#if BP_QUANT_KIND == BP_QUANT_BF16
// Each row rounded to bf16 (nearest even, as torch's .to(torch.bfloat16)); k padded with zeros.
void prepare(const float* x, int64_t k, int64_t r0, int64_t r1, uint8_t* a, int64_t lda, float*) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* row = x + r * k;
    auto* dst = reinterpret_cast<uint16_t*>(a + r * lda);
    for (int64_t j = 0; j < k; j += 2 * V::W) {
      const int64_t left = k - j;
      const __m512bh v = _mm512_cvtne2ps_pbh(left > V::W ? load_part(row + j + V::W, left - V::W) : V::zero(),
                                                   load_part(row + j, left));
      const __mmask32 m = left >= 32 ? ~__mmask32{0} : static_cast<__mmask32>((1u << left) - 1);
      _mm512_mask_storeu_epi16(dst + j, m, (__m512i)v);
    }
    std::memset(a + r * lda + k * 2, 0, static_cast<size_t>(lda - k * 2));
  }
}
#else
// quant.h's per-row quantization: amax, inv = 127 / amax, xq = clamp(nearbyint(x * inv), -127, 127), stored
// as xq + offset; the float operations are the reference's, so xq and xscale match it bit for bit.
void prepare(const float* x, int64_t k, int64_t r0, int64_t r1, uint8_t* a, int64_t lda, float* xscale) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* row = x + r * k;
    uint8_t* dst = a + r * lda;
    T mx = V::zero();
    for (int64_t j = 0; j < k; j += V::W) mx = V::max(mx, V::abs(load_part(row + j, k - j)));
    const float amax = V::hmax(mx);
    const float inv = amax > 0 ? 127.0f / amax : 1.0f;
    xscale[r] = amax > 0 ? amax / 127.0f : 1.0f;
    const T iv = V::set1(inv), lo = V::set1(-127.0f), hi = V::set1(127.0f);
    for (int64_t j = 0; j < k; j += V::W)
      Q::store_bytes(dst + j, k - j, V::min(V::max(V::round(V::mul(load_part(row + j, k - j), iv)), lo), hi));
    std::memset(dst + k, Q::OFFSET, static_cast<size_t>(lda - k));  // against zero weights: any value would do
  }
}
#endif

// Rows [row, row + R) x panel p of C, then the epilogue.
template <int R>
void micro(const QGemm& g, int64_t row, int64_t p) {
  const int64_t col = p * NR;
  const uint8_t* a = g.a + row * g.lda;
  const uint8_t* b = g.packed + p * g.groups * NR * LANE;
  // Every loop over i and j that touches acc is unrolled in full, and the epilogue reads a copy, so acc is only
  // ever indexed by constants and lives in registers: GCC 12 at -O2 otherwise keeps it in memory as well and
  // stores all 24 accumulators on every step (measured: 60% of the VNNI peak instead of ~90%).
  Q::A acc[R][NV];
#pragma GCC unroll 4
  for (int j = 0; j < NV; ++j) {
    const Q::A init = Q::init(g.comp ? g.comp + col + j * V::W : nullptr);
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) acc[i][j] = init;
  }
  for (int64_t gi = 0; gi < g.groups; ++gi) {
    Q::B bv[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) bv[j] = Q::load(b + (gi * NR + j * V::W) * LANE);
    _mm_prefetch(reinterpret_cast<const char*>(b + (gi + 8) * NR * LANE), _MM_HINT_T0);
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      const Q::B av = Q::bcast(a + i * g.lda + gi * LANE);
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) acc[i][j] = Q::dot(acc[i][j], av, bv[j]);
    }
  }
  alignas(64) Q::A out[R][NV];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) out[i][j] = acc[i][j];
  const int64_t nvalid = std::min<int64_t>(NR, g.n - col);
  const Epilogue& e = g.epi;
  for (int j = 0; j < NV; ++j) {
    const int64_t c0 = col + j * V::W;
    const auto m = V::mask(nvalid - j * V::W);
    const T bias = e.bias ? V::maskz_loadu(m, e.bias + c0) : V::zero();
    const T ws = g.wscale ? V::loadu(g.wscale + c0) : V::zero();  // wscale is padded to whole panels
    for (int i = 0; i < R; ++i) {
      const int64_t r = row + i;
      const T y = V::add(Q::value(out[i][j], g.xscale ? g.xscale[r] : 1.0f, ws), bias);
      finish(g.c + r * g.ldc + c0, m, y, e.act, e.residual ? e.residual + r * e.ldr + c0 : nullptr);
    }
  }
}

using MicroFn = void (*)(const QGemm&, int64_t, int64_t);

template <int... I>
constexpr auto micro_table(std::integer_sequence<int, I...>) {
  return std::array<MicroFn, sizeof...(I)>{&micro<I + 1>...};
}
const auto kMicro = micro_table(std::make_integer_sequence<int, MR>{});

int64_t tiles(const QGemm& g) { return panels_of(g.n) * ((g.m + MR - 1) / MR); }

// Panel-major, as the fp32 GEMM: a thread's consecutive tiles reuse one packed panel.
void run(const QGemm& g, int64_t t0, int64_t t1) {
  const int64_t mblocks = (g.m + MR - 1) / MR;
  for (int64_t t = t0; t < t1; ++t) {
    const int64_t p = t / mblocks, row = (t % mblocks) * MR;
    kMicro[std::min<int64_t>(MR, g.m - row) - 1](g, row, p);
  }
}

}  // namespace

const QuantKernels* quant_table() {
  static const QuantKernels t{Q::kName, NR,         MR,      Q::KG,   Q::ES, Q::OFFSET, packed_bytes,
                              pack,     row_bytes, prepare, tiles, run};
  return &t;
}

}  // namespace bp::fast::BP_KERNEL_NS
