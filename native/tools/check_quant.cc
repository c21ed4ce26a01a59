// check_quant: the quantized linear layers (native/fast/quant.h) against a scalar reference written from
// quant.h's text, over a grid of shapes and every epilogue; and, with --bench, their speed against the fp32
// PackedLinear at BERT's shapes, in one run with alternating rounds.
//
//   check_quant [--check] [--format int8|bf16]   compare (both formats by default); exit 0 when nothing is out
//                                                of tolerance, 1 otherwise
//   check_quant --isa         print the kernel sets this CPU and environment give, and exit
//   check_quant --bench [--rounds 7] [--runs 20]
//
// Tolerances (an output y is a mismatch when |y - ref| > tol):
//   int8: the int32 sums are exact and the dequantization is the reference's expression, so the only freedom
//     is the compiler fusing float(acc) * s + bias into one FMA: tol = 2^-22 (|float(acc) * s| + |bias|),
//     two ulps of the operands.
//   bf16: products of bf16 values are exact in fp32; summing k of them in fp32 in any order is off by at most
//     (k - 1) 2^-24 sum|x w| (the standard bound), so tol = (k + 1) 2^-24 (sum|x w| + |bias|) against a
//     double-precision sum of the same bf16-rounded inputs.
//   then GELU (slope <= 1.13) adds the kernels' erf approximation (|err| <= 1.5e-7, A&S 7.1.26) times |x| / 2
//   plus a few float roundings: tol = 1.13 tol + 4e-7 |x|; a residual adds half an ulp of the sum: 2^-23 |y|.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "args.h"
#include "fast/fast_cpu.h"
#include "fast/quant.h"
#include "tool_common.h"

namespace {

using bp::fast::QuantFormat;
using bp::fast::QuantLinear;

uint16_t bf16_bits(float f) {  // round to nearest even, as torch's .to(torch.bfloat16)
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // a quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

float bf16_float(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// quant.h, int8: per-row activation quantization.
float quantize_row(const float* x, int64_t k, int8_t* q) {
  float amax = 0.0f;
  for (int64_t j = 0; j < k; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float inv = amax > 0 ? 127.0f / amax : 1.0f;
  for (int64_t j = 0; j < k; ++j) q[j] = static_cast<int8_t>(std::min(127.0f, std::max(-127.0f, std::nearbyint(x[j] * inv))));
  return amax > 0 ? amax / 127.0f : 1.0f;
}

struct Layer {
  int64_t m, n, k;
  std::vector<float> x, w, bias, res;
  std::vector<int8_t> q;  // int8 weights, per channel
  std::vector<float> wscale;
  std::vector<uint16_t> wb;  // bf16 weights
};

Layer make_layer(int64_t m, int64_t n, int64_t k, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Layer l{m, n, k, {}, {}, {}, {}, {}, {}, {}};
  l.x.resize(static_cast<size_t>(m * k));
  l.w.resize(static_cast<size_t>(n * k));
  l.bias.resize(static_cast<size_t>(n));
  l.res.resize(static_cast<size_t>(m * n));
  for (auto& v : l.x) v = normal(rng);
  for (auto& v : l.w) v = 0.05f * normal(rng);
  for (auto& v : l.bias) v = 0.1f * normal(rng);
  for (auto& v : l.res) v = normal(rng);
  // The edges of quant.h: a row of zeros (scale 1), a row with one outlier; a weight row of zeros.
  if (m > 2) {
    std::fill(l.x.begin(), l.x.begin() + k, 0.0f);
    l.x[static_cast<size_t>(k + k / 2)] = 40.0f;
  }
  if (n > 2) std::fill(l.w.begin() + k, l.w.begin() + 2 * k, 0.0f);
  l.q.resize(l.w.size());
  l.wscale.resize(static_cast<size_t>(n));
  l.wb.resize(l.w.size());
  for (int64_t c = 0; c < n; ++c) {
    float amax = 0.0f;
    for (int64_t j = 0; j < k; ++j) amax = std::max(amax, std::fabs(l.w[c * k + j]));
    const float s = amax > 0 ? amax / 127.0f : 1.0f;
    l.wscale[c] = s;
    for (int64_t j = 0; j < k; ++j)
      l.q[c * k + j] = static_cast<int8_t>(std::min(127.0f, std::max(-127.0f, std::nearbyint(l.w[c * k + j] / s))));
  }
  for (size_t i = 0; i < l.w.size(); ++i) l.wb[i] = bf16_bits(l.w[i]);
  return l;
}

// The reference before the epilogue: pre = x W^T + b as quant.h defines it, and tol0, its allowed error.
void reference(const Layer& l, QuantFormat f, std::vector<float>* pre, std::vector<double>* tol0) {
  pre->assign(static_cast<size_t>(l.m * l.n), 0.0f);
  tol0->assign(pre->size(), 0.0);
  std::vector<int8_t> xq(static_cast<size_t>(l.k));
  std::vector<float> xb(static_cast<size_t>(l.k)), wf(l.w.size());
  for (size_t i = 0; i < wf.size(); ++i) wf[i] = bf16_float(l.wb[i]);
  for (int64_t r = 0; r < l.m; ++r) {
    const float* x = l.x.data() + r * l.k;
    const float xs = quantize_row(x, l.k, xq.data());
    for (int64_t j = 0; j < l.k; ++j) xb[j] = bf16_float(bf16_bits(x[j]));
    for (int64_t c = 0; c < l.n; ++c) {
      const size_t o = static_cast<size_t>(r * l.n + c);
      if (f == QuantFormat::kInt8) {
        int64_t acc = 0;
        for (int64_t j = 0; j < l.k; ++j) acc += int64_t{xq[j]} * l.q[c * l.k + j];
        const float p = static_cast<float>(acc) * (xs * l.wscale[c]);
        (*pre)[o] = p + l.bias[c];
        (*tol0)[o] = std::ldexp(std::fabs(p) + std::fabs(l.bias[c]), -22);
      } else {
        double s = 0, mag = 0;
        for (int64_t j = 0; j < l.k; ++j) {
          const double prod = double{xb[j]} * wf[c * l.k + j];
          s += prod;
          mag += std::fabs(prod);
        }
        (*pre)[o] = static_cast<float>(s + l.bias[c]);
        (*tol0)[o] = std::ldexp(static_cast<double>(l.k + 1) * (mag + std::fabs(l.bias[c])), -24);
      }
    }
  }
}

struct Tally {
  int64_t cases = 0, outputs = 0, mismatches = 0, bitwise = 0, plain = 0;
  double worst = 0;  // max |err| / tol
};

// One layer in one format: every epilogue (act x residual) against the reference.
void check_layer(const Layer& l, QuantFormat f, bool with_bias, Tally* t) {
  const float* bias = with_bias ? l.bias.data() : nullptr;
  const QuantLinear ql = f == QuantFormat::kInt8 ? QuantLinear::int8(l.q.data(), l.wscale.data(), bias, l.n, l.k)
                                                 : QuantLinear::bf16(l.wb.data(), bias, l.n, l.k);
  Layer ref = l;
  if (!with_bias) std::fill(ref.bias.begin(), ref.bias.end(), 0.0f);
  std::vector<float> pre;
  std::vector<double> tol0;
  reference(ref, f, &pre, &tol0);
  std::vector<float> y(pre.size());
  for (int act : {bp::fast::kActNone, bp::fast::kActGelu, bp::fast::kActRelu})
    for (bool residual : {false, true}) {
      std::fill(y.begin(), y.end(), NAN);
      ql.forward(l.x.data(), l.m, y.data(), act, residual ? l.res.data() : nullptr);
      ++t->cases;
      for (size_t o = 0; o < y.size(); ++o) {
        const double p = pre[o];
        double want = p, tol = tol0[o];
        if (act == bp::fast::kActGelu) {
          want = 0.5 * p * (1.0 + std::erf(p / std::sqrt(2.0)));
          tol = 1.13 * tol + 4e-7 * std::fabs(p);
        } else if (act == bp::fast::kActRelu) {
          want = p > 0 ? p : 0.0;
        }
        if (residual) {
          want = static_cast<double>(static_cast<float>(want)) + l.res[o];
          tol += std::ldexp(std::fabs(want), -23);
        }
        tol += 1e-30;
        const double err = std::fabs(static_cast<double>(y[o]) - want);
        ++t->outputs;
        if (act != bp::fast::kActGelu && !residual) {
          ++t->plain;
          t->bitwise += static_cast<float>(want) == y[o];
        }
        t->worst = std::max(t->worst, err / tol);
        if (!(err <= tol)) {  // NaN (an output never written) counts
          if (t->mismatches < 5)
            std::fprintf(stderr, "mismatch %lldx%lldx%lld act %d residual %d bias %d at [%lld, %lld]: %.9g vs %.9g (tol %.3g)\n",
                         static_cast<long long>(l.m), static_cast<long long>(l.n), static_cast<long long>(l.k), act, residual,
                         with_bias, static_cast<long long>(o / l.n), static_cast<long long>(o % l.n), y[o], want, tol);
          ++t->mismatches;
        }
      }
    }
  if (f == QuantFormat::kBf16) {
    // The same weights packed from fp32 (rounded while packing: bf16_from_float), row-major and through a
    // transposed view: the same layer, so the same outputs bit for bit.
    std::vector<float> wt(l.w.size());
    for (int64_t c = 0; c < l.n; ++c)
      for (int64_t j = 0; j < l.k; ++j) wt[static_cast<size_t>(j * l.n + c)] = l.w[static_cast<size_t>(c * l.k + j)];
    const QuantLinear rows = QuantLinear::bf16_from_float(l.w.data(), l.k, 1, bias, l.n, l.k);
    const QuantLinear view = QuantLinear::bf16_from_float(wt.data(), 1, l.n, bias, l.n, l.k);
    std::vector<float> a(y.size()), b(y.size()), c(y.size());
    ql.forward(l.x.data(), l.m, a.data(), bp::fast::kActNone, nullptr);
    rows.forward(l.x.data(), l.m, b.data(), bp::fast::kActNone, nullptr);
    view.forward(l.x.data(), l.m, c.data(), bp::fast::kActNone, nullptr);
    ++t->cases;
    for (size_t o = 0; o < a.size(); ++o) {
      ++t->outputs;
      if (a[o] == b[o] && a[o] == c[o]) continue;
      if (t->mismatches < 5)
        std::fprintf(stderr, "bf16_from_float %lldx%lldx%lld at %zu: %.9g / %.9g / %.9g\n", static_cast<long long>(l.m),
                     static_cast<long long>(l.n), static_cast<long long>(l.k), o, a[o], b[o], c[o]);
      ++t->mismatches;
    }
  }
}

const char* name_of(QuantFormat f) { return f == QuantFormat::kInt8 ? "int8" : "bf16"; }

void print_isa() {
  std::printf("isa int8=%s bf16=%s fp32=%s\n", bp::fast::quant_isa(QuantFormat::kInt8), bp::fast::quant_isa(QuantFormat::kBf16),
              bp::fast::enabled() ? bp::fast::isa() : "none");
}

int check(const std::string& only) {
  print_isa();
  bool ok = true;
  for (QuantFormat f : {QuantFormat::kInt8, QuantFormat::kBf16}) {
    if (!only.empty() && only != name_of(f)) continue;
    if (!bp::fast::quant_supported(f)) {
      // Then building a layer must say so, not crash.
      std::string msg = "did not throw";
      try {
        const int8_t q[1] = {1};
        const uint16_t w[1] = {0x3f80};
        const float s[1] = {1.0f};
        if (f == QuantFormat::kInt8) QuantLinear::int8(q, s, nullptr, 1, 1);
        else QuantLinear::bf16(w, nullptr, 1, 1);
      } catch (const std::exception& e) {
        msg = e.what();
      }
      const bool said = msg.find("quant_isa: none") != std::string::npos;
      ok = ok && said;
      std::printf("%s none: skipped (no kernels here); building a layer throws: %s\n", name_of(f), msg.c_str());
      continue;
    }
    Tally t;
    uint32_t seed = 1;
    const int64_t ms[] = {1, 2, 3, 7, 8, 9, 16, 17, 33, 64, 127, 128, 129, 130};
    const int64_t nks[][2] = {{1, 1}, {5, 3}, {47, 5}, {48, 64}, {49, 13}, {97, 67}, {130, 99}, {16, 258}};
    for (int64_t m : ms)
      for (const auto& nk : nks) check_layer(make_layer(m, nk[0], nk[1], seed), f, seed % 2 == 1, &t), ++seed;
    const int64_t bert[][3] = {{128, 768, 768}, {128, 3072, 768}, {128, 768, 3072}, {1, 3072, 768}};
    for (const auto& s : bert) check_layer(make_layer(s[0], s[1], s[2], seed++), f, true, &t);
    std::printf("%s %s: %lld cases, %lld outputs, %lld mismatches, max err/tol %.3f, bitwise equal (no gelu, no residual) %lld/%lld\n",
                name_of(f), bp::fast::quant_isa(f), static_cast<long long>(t.cases), static_cast<long long>(t.outputs),
                static_cast<long long>(t.mismatches), t.worst, static_cast<long long>(t.bitwise), static_cast<long long>(t.plain));
    ok = ok && t.mismatches == 0;
  }
  return ok ? 0 : 1;
}

int bench(int64_t rounds, int64_t runs) {
  print_isa();
  if (!bp::fast::enabled()) {
    std::printf("bench: fast kernels off, nothing to time\n");
    return 0;
  }
  std::printf("m x n x k, epilogue: median of %lld rounds x %lld runs (variants alternate within each round)\n",
              static_cast<long long>(rounds), static_cast<long long>(runs));
  const int64_t shapes[][3] = {{128, 768, 768}, {128, 3072, 768}, {128, 768, 3072}};
  for (const auto& s : shapes) {
    const int64_t m = s[0], n = s[1], k = s[2];
    // BERT's use: the intermediate (n = 3072) has GELU, the output dense (k = 3072) a residual.
    const int act = n > k ? bp::fast::kActGelu : bp::fast::kActNone;
    const Layer l = make_layer(m, n, k, 7);
    const float* res = k > n ? l.res.data() : nullptr;
    std::vector<float> y(static_cast<size_t>(m * n));
    const bp::fast::PackedLinear fp32(l.w.data(), l.bias.data(), n, k);
    std::vector<std::pair<const char*, std::function<void()>>> variants = {{"fp32", [&] { fp32.forward(l.x.data(), m, y.data(), act, res); }}};
    QuantLinear i8, b16;
    if (bp::fast::quant_supported(QuantFormat::kInt8)) {
      i8 = QuantLinear::int8(l.q.data(), l.wscale.data(), l.bias.data(), n, k);
      variants.push_back({"int8", [&] { i8.forward(l.x.data(), m, y.data(), act, res); }});
    }
    if (bp::fast::quant_supported(QuantFormat::kBf16)) {
      b16 = QuantLinear::bf16(l.wb.data(), l.bias.data(), n, k);
      variants.push_back({"bf16", [&] { b16.forward(l.x.data(), m, y.data(), act, res); }});
    }
    const size_t nv = variants.size();
    std::vector<std::vector<double>> ms(nv);
    for (auto& v : variants)
      for (int i = 0; i < 5; ++i) v.second();  // warm: caches, the pool's threads
    for (int64_t r = 0; r < rounds; ++r)
      for (size_t j = 0; j < nv; ++j) {
        const size_t v = (j + static_cast<size_t>(r)) % nv;  // rotate the order: no variant always runs first
        const double t0 = tools::now_ms();
        for (int64_t i = 0; i < runs; ++i) variants[v].second();
        ms[v].push_back((tools::now_ms() - t0) / static_cast<double>(runs));
      }
    auto median = [](std::vector<double> v) {
      std::sort(v.begin(), v.end());
      return v[v.size() / 2];
    };
    const double ops = 2.0 * static_cast<double>(m * n * k);
    std::printf("%lldx%lldx%lld %s:", static_cast<long long>(m), static_cast<long long>(n), static_cast<long long>(k),
                act == bp::fast::kActGelu ? "gelu" : (res ? "residual" : "none"));
    for (size_t v = 0; v < nv; ++v) {
      std::vector<double> ratio;
      for (int64_t r = 0; r < rounds; ++r) ratio.push_back(ms[0][r] / ms[v][r]);
      std::printf("  %s %.3f ms %.0f GOP/s", variants[v].first, median(ms[v]), ops / median(ms[v]) / 1e6);
      if (v > 0) std::printf(" (%.2fx fp32)", median(ratio));
    }
    std::printf("\n");
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = "check", format;
  int64_t rounds = 7, runs = 20;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--check" || a == "--bench" || a == "--isa") mode = a.substr(2);
    else if (a == "--format" && i + 1 < argc && (std::strcmp(argv[i + 1], "int8") == 0 || std::strcmp(argv[i + 1], "bf16") == 0))
      format = argv[++i];
    else if (a == "--rounds" && i + 1 < argc) rounds = tools::int_arg("--rounds", argv[++i], 1, 1000);
    else if (a == "--runs" && i + 1 < argc) runs = tools::int_arg("--runs", argv[++i], 1, 100000);
    else {
      std::fprintf(stderr, "unknown argument %s (check_quant [--check [--format int8|bf16] | --isa | --bench [--rounds N] [--runs N]])\n", argv[i]);
      return 2;
    }
  }
  try {
    if (mode == "isa") {
      print_isa();
      return 0;
    }
    return mode == "bench" ? bench(rounds, runs) : check(format);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "check_quant: %s\n", e.what());
    return 1;
  }
}
