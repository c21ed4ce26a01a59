#include "mixed_precision.h"

#include <torch/csrc/autograd/custom_function.h>

#include "fast/quant.h"

namespace bp {
namespace {

thread_local bool t_bf16 = false;

// out[m, n] = a[m, k] b[n, k]^T (+ bias) on the bf16 kernels: b (any strides: a transposed view too) is rounded
// to bf16 while it is packed for this call, a is rounded row by row inside the kernel.
at::Tensor bf16_product(const at::Tensor& a, const at::Tensor& b, const at::Tensor& bias) {
  const auto a2 = a.contiguous();
  const auto bias2 = bias.defined() ? bias.contiguous() : at::Tensor();
  const int64_t m = a2.size(0), n = b.size(0), k = b.size(1);
  auto layer = fast::QuantLinear::bf16_from_float(b.data_ptr<float>(), b.stride(0), b.stride(1),
                                                  bias2.defined() ? bias2.data_ptr<float>() : nullptr, n, k);
  auto out = at::empty({m, n}, a2.options());
  layer.forward(a2.data_ptr<float>(), m, out.data_ptr<float>(), fast::kActNone, nullptr);
  return out;
}

struct Bf16Linear : public torch::autograd::Function<Bf16Linear> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
    const int64_t in = w.size(1), out = w.size(0);
    const auto x2 = x.reshape({-1, in}).contiguous();
    ctx->save_for_backward({x2, w});
    ctx->saved_data["has_bias"] = b.defined();
    auto sizes = x.sizes().vec();
    sizes.back() = out;
    return bf16_product(x2, w, b).view(sizes);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& x2 = saved[0];
    const at::Tensor& w = saved[1];
    const int64_t in = w.size(1), out = w.size(0);
    const auto g = grads[0].reshape({-1, out}).contiguous();
    auto sizes = grads[0].sizes().vec();
    sizes.back() = in;
    // grad_x[rows, in] = g[rows, out] w[out, in]; grad_w[out, in] = g^T[out, rows] x[rows, in].
    const auto grad_x = bf16_product(g, w.t(), at::Tensor()).view(sizes);
    const auto grad_w = bf16_product(g.t(), x2.t(), at::Tensor());
    const auto grad_b = ctx->saved_data["has_bias"].toBool() ? g.sum(0) : at::Tensor();
    return {grad_x, grad_w, grad_b};
  }
};

// What the kernels take: fp32 CPU tensors, a 2-d weight, at least one row and one unit.
bool fits(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  if (!x.device().is_cpu() || x.scalar_type() != at::kFloat || w.scalar_type() != at::kFloat || w.dim() != 2 || x.dim() < 2)
    return false;
  if (b.defined() && b.scalar_type() != at::kFloat) return false;
  return x.size(-1) == w.size(1) && x.numel() > 0 && w.size(0) > 0 && w.size(1) > 0;
}

}  // namespace

bool bf16_training() { return t_bf16; }
Bf16Training::Bf16Training(bool on) : previous_(t_bf16) { t_bf16 = on; }
Bf16Training::~Bf16Training() { t_bf16 = previous_; }

bool bf16_training_supported() { return fast::quant_supported(fast::QuantFormat::kBf16); }

at::Tensor train_linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  if (!t_bf16 || !bf16_training_supported() || !fits(x, w, b)) return rows_linear(x, w, b);
  return Bf16Linear::apply(x, w, b);
}

at::Tensor rows_linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  const int64_t rows = x.dim() >= 1 && x.size(-1) > 0 ? x.numel() / x.size(-1) : 0;
  const bool few_rows = rows >= 1 && rows <= kMatvecRows && w.dim() == 2 && x.size(-1) == w.size(1);
  if (!few_rows || at::GradMode::is_enabled() || !x.device().is_cpu() || x.scalar_type() != at::kFloat || w.scalar_type() != at::kFloat ||
      (b.defined() && b.scalar_type() != at::kFloat))
    return at::linear(x, w, b);
  auto y = matvec_rows(w, x.reshape({rows, x.size(-1)}), b.defined() ? b.reshape({-1}) : b);
  auto shape = x.sizes().vec();
  shape.back() = w.size(0);
  return y.view(shape);
}

}  // namespace bp
