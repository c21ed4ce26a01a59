// Quantized linear layers for CPU inference (issue 16): int8 weights with dynamically quantized activations,
// or bf16 weights and activations with fp32 accumulation. The number semantics are pinned here because three
// places compute them and must agree: these kernels, the plain libtorch path of a quantized model (the
// reference, native/bert.cc), and the int8 ONNX export (lib/model/onnx*.ts), which onnxruntime runs.
//
// int8 (the weights are quantized once, by whoever builds the layer):
//   weight   w[n][k] ~= q[n][k] * wscale[n], q in [-127, 127]; per channel: wscale[n] = max_k |w[n][k]| / 127
//            (per tensor: one max over all of w; a row or tensor of zeros gets scale 1), q = clamp(nearbyint(w /
//            wscale[n]), -127, 127), nearbyint rounding half to even.
//   activations, per call, per row r of x: amax = max_k |x[r][k]|; inv = (amax > 0 ? 127.0f / amax : 1.0f);
//            xq[r][k] = clamp(nearbyint(x[r][k] * inv), -127, 127); xscale[r] = (amax > 0 ? amax / 127.0f : 1.0f).
//   product  acc[r][n] = sum_k xq[r][k] * q[n][k] in int32 (exact), then
//            y[r][n] = float(acc[r][n]) * (xscale[r] * wscale[n]) + bias[n], then the epilogue (kernels.h).
// bf16:
//   weight   stored as bf16 (the fp32 value rounded to nearest even, as torch's .to(torch.bfloat16));
//   activations rounded the same way per call; products summed in fp32 (order unspecified), + bias, epilogue.
#pragma once

#include <cstdint>
#include <memory>
#include <utility>

#include "fast/kernels.h"

namespace bp::fast {

enum class QuantFormat { kInt8, kBf16 };

// The kernel set this CPU runs for a format ("avx512-vnni", "avx2" for int8; "avx512-bf16" for bf16), or
// "none": then QuantLinear cannot be built and callers run the layer in fp32 (dequantized weights on the fp32
// kernels) and say so once.
const char* quant_isa(QuantFormat f);
inline bool quant_supported(QuantFormat f) { return quant_isa(f)[0] != 'n'; }

// A quantized linear packed for the kernels; built once per weight change, then read by any number of calls.
class QuantLinear {
 public:
  QuantLinear() = default;
  // q [n, k] row-major int8, wscale [n], bias [n] (or null). Requires quant_supported(kInt8).
  static QuantLinear int8(const int8_t* q, const float* wscale, const float* bias, int64_t n, int64_t k);
  // w [n, k] row-major bf16 bits (the upper 16 bits of the fp32 value after rounding), bias [n] (or null).
  // Requires quant_supported(kBf16).
  static QuantLinear bf16(const uint16_t* w, const float* bias, int64_t n, int64_t k);
  // The same from fp32 weights rounded here (as torch's .to(torch.bfloat16)): element (col, kk) of w is
  // w[col * col_stride + kk * k_stride], so a transposed view packs without a copy (bf16 training, whose
  // weights change every step: mixed_precision.cc).
  static QuantLinear bf16_from_float(const float* w, int64_t col_stride, int64_t k_stride, const float* bias, int64_t n, int64_t k);

  bool empty() const { return n_ == 0; }
  int64_t n() const { return n_; }
  int64_t k() const { return k_; }
  QuantFormat format() const { return format_; }
  // Bytes the packed weights, scales, sums and bias hold.
  size_t bytes() const;
  // y[M, N] = epilogue(x[M, K] W^T + b), with the semantics above; act and residual as PackedLinear::forward.
  void forward(const float* x, int64_t m, float* y, int act, const float* residual) const;

 private:
  struct Impl;
  QuantLinear(std::shared_ptr<const Impl> impl, QuantFormat format, int64_t n, int64_t k)
      : impl_(std::move(impl)), format_(format), n_(n), k_(k) {}
  std::shared_ptr<const Impl> impl_;
  QuantFormat format_ = QuantFormat::kInt8;
  int64_t n_ = 0, k_ = 0;
};

}  // namespace bp::fast
