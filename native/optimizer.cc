#include "optimizer.h"

#include <c10/core/GradMode.h>

#include <cmath>

#include "errors.h"
#include "train_kernels.h"

namespace bp {

ParamGroup param_group(const std::string& name) {
  if (name.find("mask_scores") != std::string::npos) return ParamGroup::MaskScores;
  if (name.find("bias") != std::string::npos || name.find("LayerNorm.weight") != std::string::npos) return ParamGroup::NoDecay;
  return ParamGroup::Decay;
}

namespace {

bool fusable(const at::Tensor& p, const at::Tensor& g, const at::Tensor& m, const at::Tensor& v) {
  for (const at::Tensor* t : {&p, &g, &m, &v})
    if (!t->device().is_cpu() || t->scalar_type() != at::kFloat || !t->is_contiguous()) return false;
  return true;
}

}  // namespace

void AdamW::step(torch::nn::Module& model, const AdamWOptions& o, double lr_scale) {
  at::NoGradGuard no_grad;
  ++steps_;
  for (auto& item : model.named_parameters()) {
    at::Tensor& p = item.value();
    const at::Tensor& g = p.grad();
    if (!g.defined()) continue;
    const ParamGroup group = param_group(item.key());
    const double lr = (group == ParamGroup::MaskScores ? o.mask_lr : o.lr) * lr_scale;
    const double wd = group == ParamGroup::Decay ? o.weight_decay : 0.0;
    Slot& s = slots_[item.key()];
    if (!s.exp_avg.defined()) {
      s.exp_avg = at::zeros_like(p);
      s.exp_avg_sq = at::zeros_like(p);
    }
    s.step += 1;
    const double step_size =
        lr * std::sqrt(1.0 - std::pow(o.beta2, static_cast<double>(s.step))) / (1.0 - std::pow(o.beta1, static_cast<double>(s.step)));
    if (fusable(p, g, s.exp_avg, s.exp_avg_sq)) {
      // One pass over p, g and the moments instead of seven and a temporary (train_kernels.h).
      const train_kernels::AdamWScalars k{static_cast<float>(o.beta1), static_cast<float>(1.0 - o.beta1), static_cast<float>(o.beta2),
                                          static_cast<float>(1.0 - o.beta2), static_cast<float>(o.eps), static_cast<float>(-step_size),
                                          static_cast<float>(-lr * wd)};
      train_kernels::adamw(p.data_ptr<float>(), g.data_ptr<float>(), s.exp_avg.data_ptr<float>(), s.exp_avg_sq.data_ptr<float>(), p.numel(), k);
      // Written through raw pointers: the version counters move as an in-place op's would, so that whatever
      // was built from the old values (the inference path's packed weights, the fused q/k/v cache: see
      // weights_key in bert.cc) is rebuilt.
      for (const at::Tensor* t : {&p, &s.exp_avg, &s.exp_avg_sq}) t->unsafeGetTensorImpl()->bump_version();
      continue;
    }
    s.exp_avg.mul_(o.beta1).add_(g, 1.0 - o.beta1);
    s.exp_avg_sq.mul_(o.beta2).addcmul_(g, g, 1.0 - o.beta2);
    auto denom = s.exp_avg_sq.sqrt().add_(o.eps);
    p.addcdiv_(s.exp_avg, denom, -step_size);
    if (wd > 0) p.add_(p, -lr * wd);
  }
}

NamedTensors AdamW::state() const {
  NamedTensors out;
  for (const auto& [name, s] : slots_) {
    out.emplace_back("exp_avg." + name, s.exp_avg.detach().to(at::kCPU));
    out.emplace_back("exp_avg_sq." + name, s.exp_avg_sq.detach().to(at::kCPU));
    out.emplace_back("step." + name, at::tensor({s.step}, at::kLong));
  }
  out.emplace_back("optimizer_steps", at::tensor({steps_}, at::kLong));
  return out;
}

void AdamW::load_state(const NamedTensors& state, const torch::nn::Module& model, const std::string& source) {
  std::map<std::string, at::Tensor> by_name(state.begin(), state.end());
  std::map<std::string, Slot> slots;
  auto params = model.named_parameters();
  for (const auto& [key, t] : by_name) {
    if (key == "optimizer_steps") continue;
    const auto dot = key.find('.');
    const std::string kind = key.substr(0, dot), name = key.substr(dot + 1);
    if (kind != "exp_avg" && kind != "exp_avg_sq" && kind != "step")
      throw Error("E_BAD_CHECKPOINT", source + ": unexpected optimizer tensor '" + key + "'");
    const at::Tensor* p = params.find(name);
    if (!p) throw Error("E_BAD_CHECKPOINT", source + ": optimizer state for '" + name + "', which the model does not have");
    Slot& s = slots[name];
    if (kind == "step") {
      s.step = t.item<int64_t>();
      continue;
    }
    if (t.sizes() != p->sizes())
      throw Error("E_BAD_CHECKPOINT", source + ": optimizer tensor '" + key + "' has shape " + shape_str(t.sizes().vec()) +
                                          " but the parameter's is " + shape_str(p->sizes().vec()));
    (kind == "exp_avg" ? s.exp_avg : s.exp_avg_sq) = t.to(p->device(), p->scalar_type()).clone();
  }
  for (const auto& [name, s] : slots)
    if (!s.exp_avg.defined() || !s.exp_avg_sq.defined())
      throw Error("E_BAD_CHECKPOINT", source + ": incomplete optimizer state for '" + name + "'");
  auto it = by_name.find("optimizer_steps");
  steps_ = it == by_name.end() ? 0 : it->second.item<int64_t>();
  slots_ = std::move(slots);
}

int64_t AdamW::bytes() const {
  int64_t n = 0;
  for (const auto& [name, s] : slots_) n += s.exp_avg.nbytes() + s.exp_avg_sq.nbytes();
  return n;
}

double clip_grad_norm(torch::nn::Module& model, double max_norm) {
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> grads;
  for (auto& p : model.parameters())
    if (p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return 0.0;
  // One pass per gradient, no temporary (g.pow(2).sum() wrote a squared copy of every gradient), and one read
  // of the result (on CUDA, one wait): torch's clip_grad_norm_ computes the same, the norm of the per-tensor norms.
  std::vector<at::Tensor> norms;
  norms.reserve(grads.size());
  for (const auto& g : grads) norms.push_back(at::linalg_vector_norm(g, 2));
  const double norm = at::linalg_vector_norm(at::stack(norms), 2).item<double>();
  if (max_norm > 0) {
    const double coef = max_norm / (norm + 1e-6);
    if (coef < 1.0)
      for (auto& g : grads) g.mul_(coef);
  }
  return norm;
}

}  // namespace bp
