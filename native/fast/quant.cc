// QuantLinear (quant.h): the kernel set for this CPU, the packed weights, and a forward that prepares the
// activations (per-row int8 quantization or bf16 rounding) and then runs the GEMM tiles, both split over the
// fp32 kernels' pool (fast_cpu.cc).
#include "fast/quant.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "fast/fast_cpu.h"
#include "fast/quant_kernels.h"

namespace bp::fast {
namespace {

// The widest set the CPU runs, within the fp32 kernels' choice (fast_cpu.cc: CPU features, and
// BLOCKPRUNE_CPU_KERNELS=avx2 keeps to AVX2, so int8 by vpmaddubsw and no bf16; =none to nothing). The AVX-512
// sets are compiled with BW and VL as well, so they need those too.
const QuantKernels* pick(QuantFormat f) {
#if defined(__x86_64__)
  const std::string isa = fast::isa();
  if (isa == "none") return nullptr;
  __builtin_cpu_init();
  const bool avx512 = isa == "avx512" && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
  if (f == QuantFormat::kBf16) return avx512 && __builtin_cpu_supports("avx512bf16") ? quant_kernels_bf16() : nullptr;
  if (avx512 && __builtin_cpu_supports("avx512vnni"))
    if (auto* t = quant_kernels_vnni()) return t;
  return quant_kernels_avx2();  // the fp32 kernels run here: AVX2 and FMA
#endif
  return nullptr;
}

// Null when the format cannot run here: no kernels for this CPU, or the fast path switched off
// (BLOCKPRUNE_FAST_KERNELS=0, set_enabled(false), no fp32 kernels): then callers run the layer in fp32.
const QuantKernels* kernels_for(QuantFormat f) {
  static const QuantKernels* int8 = pick(QuantFormat::kInt8);
  static const QuantKernels* bf16 = pick(QuantFormat::kBf16);
  if (!enabled()) return nullptr;
  return f == QuantFormat::kInt8 ? int8 : bf16;
}

const char* format_name(QuantFormat f) { return f == QuantFormat::kInt8 ? "int8" : "bf16"; }

// The sums stay exact in int32 while k * 255 * 127 < 2^31 (VNNI adds u8 up to 255 times q up to 127).
constexpr int64_t kMaxK = 65536;

}  // namespace

const char* quant_isa(QuantFormat f) {
  const QuantKernels* t = kernels_for(f);
  return t ? t->name : "none";
}

namespace {
// QuantLinear::Impl's contents, named here so the builder below (not a member) can fill them.
struct Packed {
  const QuantKernels* kern = nullptr;
  std::vector<uint8_t> data;  // over-allocated by 64 bytes; packed is its 64-byte aligned start
  const uint8_t* packed = nullptr;
  std::vector<int32_t> comp;  // int8: [panels * nr]
  std::vector<float> wscale;  // int8: [panels * nr]
  std::vector<float> bias;    // [n] or empty
  int64_t groups = 0;
};
}  // namespace

struct QuantLinear::Impl : Packed {};

namespace {

// The layer's kernels and its packed weights (`pack` writes them, given the kernels and the aligned buffer); the
// checks come before any allocation.
template <typename PackFn>
void build(QuantFormat f, bool have_w, const float* bias, int64_t n, int64_t k, Packed* impl, const PackFn& pack) {
  const QuantKernels* t = kernels_for(f);
  const std::string what = std::string("QuantLinear::") + format_name(f);
  if (!t)
    throw std::runtime_error(what + ": no " + format_name(f) + " kernels on this CPU or fast kernels off (quant_isa: none)");
  // The bound on k keeps int8's int32 sums exact; bf16 sums in fp32 and has none.
  const int64_t max_k = f == QuantFormat::kInt8 ? kMaxK : std::numeric_limits<int64_t>::max();
  if (!have_w || n <= 0 || k <= 0 || k > max_k)
    throw std::invalid_argument(what + ": expected weights [n, k] with n >= 1 and 1 <= k" +
                                (f == QuantFormat::kInt8 ? " <= " + std::to_string(kMaxK) : std::string()) + ", got [" + std::to_string(n) +
                                ", " + std::to_string(k) + "]");
  impl->kern = t;
  impl->groups = (k + t->kgroup - 1) / t->kgroup;
  impl->data.resize(static_cast<size_t>(t->packed_bytes(n, k) + 64));
  uint8_t* aligned = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(impl->data.data()) + 63) & ~uintptr_t{63});
  pack(t, aligned);
  impl->packed = aligned;
  if (bias) impl->bias.assign(bias, bias + n);
}

// bf16 bits of an fp32 value, rounded to nearest even as torch's .to(torch.bfloat16) and _mm512_cvtne2ps_pbh;
// a NaN stays a (quiet) NaN.
inline uint16_t to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

}  // namespace

QuantLinear QuantLinear::int8(const int8_t* q, const float* wscale, const float* bias, int64_t n, int64_t k) {
  if (wscale == nullptr) throw std::invalid_argument("QuantLinear::int8: wscale is null");
  auto impl = std::make_shared<Impl>();
  build(QuantFormat::kInt8, q != nullptr, bias, n, k, impl.get(), [&](const QuantKernels* t, uint8_t* out) { t->pack(q, n, k, out); });
  const int64_t padded = (n + impl->kern->nr - 1) / impl->kern->nr * impl->kern->nr;
  impl->comp.assign(static_cast<size_t>(padded), 0);
  impl->wscale.assign(static_cast<size_t>(padded), 0.0f);
  for (int64_t c = 0; c < n; ++c) {
    int32_t sum = 0;
    for (int64_t kk = 0; kk < k; ++kk) sum += q[c * k + kk];
    impl->comp[static_cast<size_t>(c)] = -impl->kern->offset * sum;
    impl->wscale[static_cast<size_t>(c)] = wscale[c];
  }
  return QuantLinear(std::move(impl), QuantFormat::kInt8, n, k);
}

QuantLinear QuantLinear::bf16(const uint16_t* w, const float* bias, int64_t n, int64_t k) {
  auto impl = std::make_shared<Impl>();
  build(QuantFormat::kBf16, w != nullptr, bias, n, k, impl.get(), [&](const QuantKernels* t, uint8_t* out) { t->pack(w, n, k, out); });
  return QuantLinear(std::move(impl), QuantFormat::kBf16, n, k);
}

QuantLinear QuantLinear::bf16_from_float(const float* w, int64_t col_stride, int64_t k_stride, const float* bias, int64_t n, int64_t k) {
  auto impl = std::make_shared<Impl>();
  // The packed layout (quant_impl.h pack): panels of nr columns, in each, groups of kgroup k, in each, nr lanes
  // of kgroup bf16: written here in that order, so the writes are sequential and the padding is zeros.
  build(QuantFormat::kBf16, w != nullptr, bias, n, k, impl.get(), [&](const QuantKernels* t, uint8_t* out) {
    auto* dst = reinterpret_cast<uint16_t*>(out);
    const int64_t nr = t->nr, kg = t->kgroup, groups = (k + kg - 1) / kg;
    for (int64_t p = 0; p * nr < n; ++p)
      for (int64_t g = 0; g < groups; ++g)
        for (int64_t c = 0; c < nr; ++c) {
          const int64_t col = p * nr + c;
          for (int64_t e = 0; e < kg; ++e) {
            const int64_t kk = g * kg + e;
            *dst++ = col < n && kk < k ? to_bf16(w[col * col_stride + kk * k_stride]) : uint16_t{0};
          }
        }
  });
  return QuantLinear(std::move(impl), QuantFormat::kBf16, n, k);
}

size_t QuantLinear::bytes() const {
  if (!impl_) return 0;
  return impl_->data.size() + impl_->comp.size() * sizeof(int32_t) + (impl_->wscale.size() + impl_->bias.size()) * sizeof(float);
}

void QuantLinear::forward(const float* x, int64_t m, float* y, int act, const float* residual) const {
  if (!impl_) throw std::logic_error("QuantLinear::forward on an empty layer");
  if (m <= 0) return;
  const Impl& l = *impl_;
  const QuantKernels* t = l.kern;
  // Per calling thread (two models may run at once); the pool's workers read them while this thread waits.
  thread_local std::vector<uint8_t> rows;
  thread_local std::vector<float> xscale;
  const int64_t lda = t->row_bytes(k_);
  rows.resize(static_cast<size_t>(m * lda));
  xscale.resize(static_cast<size_t>(m));
  uint8_t* a = rows.data();
  float* xs = xscale.data();
  parallel_for(m, [&](int64_t r0, int64_t r1) { t->prepare(x, k_, r0, r1, a, lda, xs); });
  const bool int8 = format_ == QuantFormat::kInt8;
  const QGemm g{a,        lda,      int8 ? xs : nullptr, m, l.groups, n_, l.packed, int8 ? l.comp.data() : nullptr,
                int8 ? l.wscale.data() : nullptr, y, n_, Epilogue{l.bias.empty() ? nullptr : l.bias.data(), residual, n_, act}};
  const int64_t tiles = t->tiles(g);
  parallel_for(tiles, [&](int64_t t0, int64_t t1) { t->run(g, t0, t1); });
}

}  // namespace bp::fast
