#include "dropout.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <mutex>

#include "train_kernels.h"

namespace bp {
namespace {

struct Fused : public torch::autograd::Function<Fused> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, double p) {
    uint64_t seed;
    {
      auto gen = at::detail::getDefaultCPUGenerator();
      std::lock_guard<std::mutex> lock(gen.mutex());
      seed = gen.get<at::CPUGeneratorImpl>()->random64();
    }
    ctx->saved_data["seed"] = static_cast<int64_t>(seed);
    ctx->saved_data["p"] = p;
    return run(x, seed, p);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grad) {
    const auto seed = static_cast<uint64_t>(ctx->saved_data["seed"].toInt());
    return {run(grad[0], seed, ctx->saved_data["p"].toDouble()), at::Tensor()};
  }
  static at::Tensor run(const at::Tensor& x, uint64_t seed, double p) {
    auto in = x.contiguous();
    auto out = at::empty_like(in);
    // Kept when the draw is >= p * 2^32 (at least 1: p > 0 here): probability 1 - p within 2^-32. The scale
    // is torch's, 1 / (1 - p) in float.
    const auto cut = static_cast<uint32_t>(std::clamp(p * 4294967296.0, 1.0, 4294967295.0));
    train_kernels::dropout(in.data_ptr<float>(), out.data_ptr<float>(), in.numel(), seed, cut, 1.0f / static_cast<float>(1.0 - p));
    return out;
  }
};

}  // namespace

at::Tensor dropout(const at::Tensor& x, double p, bool train) {
  if (!train || p <= 0) return x;
  if (p >= 1 || !x.device().is_cpu() || x.scalar_type() != at::kFloat || x.numel() >= (int64_t{1} << 32))
    return at::dropout(x, p, /*train=*/true);
  return Fused::apply(x, p);
}

}  // namespace bp
