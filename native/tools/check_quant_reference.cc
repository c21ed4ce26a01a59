// Check of the quantized kernels (native/fast/quant.h) against the plain-tensor reference of the same
// semantics (LinearImpl::forward of a quantized linear, native/bert.cc), on the *same* input: a model-level
// comparison cannot be this strict, since the fp32 parts of the two paths (attention, LayerNorm) differ in
// the last bits and an int8 or bf16 rounding of the next layer's input may then land one step apart.
//
//   check_quant_reference  prints one line per case; exits 1 if any differs by more than 1e-5 relative to the
//                      largest |output|, 3 if this CPU has no kernels for either format (nothing checked)
//
// Cases: int8 per channel and per tensor, bf16; shapes with remainders on every tiling edge; a row of zeros
// (scale 1 by the rule) and rows of very different magnitudes; with and without GELU + residual epilogues.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <cstdio>
#include <tuple>
#include <vector>

#include "bert.h"

int main() {
  using bp::fast::QuantFormat;
  at::NoGradGuard no_grad;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(7);
  struct Shape {
    int64_t n, k, m;
  };
  const std::vector<Shape> shapes = {{1, 1, 1}, {7, 33, 5}, {48, 96, 3}, {100, 80, 17}, {130, 257, 9}, {768, 3072, 4}, {3072, 768, 2}};
  int failures = 0, checked = 0;
  for (const auto& [format, per_channel, name] : {std::tuple{QuantFormat::kInt8, true, "int8 per channel"},
                                                 std::tuple{QuantFormat::kInt8, false, "int8 per tensor"},
                                                 std::tuple{QuantFormat::kBf16, true, "bf16"}}) {
    if (!bp::fast::quant_supported(format)) {
      std::printf("%s: no kernels for this CPU (%s): skipped\n", name, bp::fast::quant_isa(format));
      continue;
    }
    for (const auto& s : shapes) {
      bp::Linear lin(s.k, s.n);
      lin->weight.copy_(at::normal(0.0, 0.05, {s.n, s.k}, gen));
      lin->bias.copy_(at::normal(0.0, 0.1, {s.n}, gen));
      if (s.n > 2) lin->weight[1].zero_();  // a zero row: scale 1
      lin->quantize(format, per_channel);
      auto x = at::normal(0.0, 1.0, {s.m, s.k}, gen);
      x.mul_(at::pow(10.0, at::arange(s.m, at::kFloat).remainder(5).sub(2)).unsqueeze(1));  // rows 1e-2 .. 1e2
      if (s.m > 2) x[2].zero_();  // a zero row of activations: scale 1
      auto residual = at::normal(0.0, 1.0, {s.m, s.n}, gen);
      const auto w = lin->weight.contiguous(), b = lin->bias.contiguous();
      const auto q = format == QuantFormat::kInt8
                         ? bp::fast::QuantLinear::int8(w.data_ptr<int8_t>(), lin->weight_scale.contiguous().data_ptr<float>(), b.data_ptr<float>(), s.n, s.k)
                         : bp::fast::QuantLinear::bf16(reinterpret_cast<const uint16_t*>(w.data_ptr<at::BFloat16>()), b.data_ptr<float>(), s.n, s.k);
      const auto ref = lin->forward(x);
      for (const bool epilogue : {false, true}) {
        const auto expect = epilogue ? at::gelu(ref).add(residual) : ref;
        auto y = at::empty({s.m, s.n});
        q.forward(x.data_ptr<float>(), s.m, y.data_ptr<float>(), epilogue ? bp::fast::kActGelu : bp::fast::kActNone,
                  epilogue ? residual.data_ptr<float>() : nullptr);
        const double diff = (y - expect).abs().max().item<double>();
        const double scale = std::max(1.0, expect.abs().max().item<double>());
        const bool ok = diff / scale <= 1e-5;
        failures += !ok;
        ++checked;
        std::printf("%s%s [n %lld, k %lld, m %lld]%s: max |kernel - reference| %.3g (relative %.3g)\n", ok ? "" : "FAIL ", name,
                    static_cast<long long>(s.n), static_cast<long long>(s.k), static_cast<long long>(s.m), epilogue ? " + GELU + residual" : "",
                    diff, diff / scale);
      }
    }
  }
  std::printf("check_quant_reference: %d cases, %d failures\n", checked, failures);
  if (checked == 0) return 3;
  return failures ? 1 : 0;
}
