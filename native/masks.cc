#include "masks.h"

#include <torch/csrc/autograd/custom_function.h>

#include <cmath>

#include "errors.h"

namespace bp {

MaskMethod parse_mask_method(const std::string& s) {
  if (s == "disabled") return MaskMethod::Disabled;
  if (s == "topK") return MaskMethod::TopK;
  if (s == "threshold") return MaskMethod::Threshold;
  if (s == "sigmoied_threshold") return MaskMethod::SigmoiedThreshold;
  if (s == "magnitude") return MaskMethod::Magnitude;
  if (s == "l0") return MaskMethod::L0;
  throw Error("E_INVALID_ARG", "unknown pruning method '" + s +
                                   "' (expected disabled, topK, threshold, sigmoied_threshold, magnitude or l0)");
}

const char* mask_method_name(MaskMethod m) {
  switch (m) {
    case MaskMethod::Disabled: return "disabled";
    case MaskMethod::TopK: return "topK";
    case MaskMethod::Threshold: return "threshold";
    case MaskMethod::SigmoiedThreshold: return "sigmoied_threshold";
    case MaskMethod::Magnitude: return "magnitude";
    case MaskMethod::L0: return "l0";
  }
  return "?";
}

MaskLayout parse_mask_layout(const std::string& s) {
  if (s == "block") return MaskLayout::Block;
  if (s == "rows") return MaskLayout::Rows;
  if (s == "cols") return MaskLayout::Cols;
  if (s == "rows_cols") return MaskLayout::RowsCols;
  throw Error("E_INVALID_ARG", "unknown mask layout '" + s + "' (expected block, rows, cols or rows_cols)");
}

const char* mask_layout_name(MaskLayout l) {
  switch (l) {
    case MaskLayout::Block: return "block";
    case MaskLayout::Rows: return "rows";
    case MaskLayout::Cols: return "cols";
    case MaskLayout::RowsCols: return "rows_cols";
  }
  return "?";
}

namespace {

// The hard (0/1) decision of the threshold and topK binarizers; no autograd.
at::Tensor hard_mask(const at::Tensor& s, MaskMethod method, double t, double min_elements) {
  at::NoGradGuard no_grad;
  const int64_t n = s.numel();
  if (method == MaskMethod::TopK) {
    auto flat = s.flatten();
    auto order = std::get<1>(flat.sort(/*dim=*/0, /*descending=*/true));
    const int64_t keep = std::min<int64_t>(n, std::max<int64_t>(0, static_cast<int64_t>(t * static_cast<double>(n))));
    auto out = at::zeros_like(flat);
    if (keep > 0) out.index_fill_(0, order.slice(0, 0, keep), 1.0);
    return out.view_as(s);
  }
  auto mask = (method == MaskMethod::SigmoiedThreshold ? at::sigmoid(s) : s).gt(t).to(s.scalar_type());
  const int64_t nb_min = static_cast<int64_t>(min_elements * static_cast<double>(n)) + 1;
  if (nb_min != 0 && mask.sum().item<double>() < static_cast<double>(nb_min)) {
    // Keep at least nb_min: the k-th smallest score is the cut-off (ties can still keep fewer, as in the
    // reference: with 1d_alt the expanded copies of one score tie).
    const int64_t k = std::max<int64_t>(n - nb_min, 1);
    auto kth = std::get<0>(s.flatten().kthvalue(k));
    mask = s.gt(kth).to(s.scalar_type());
  }
  return mask;
}

struct StraightThrough : public torch::autograd::Function<StraightThrough> {
  static at::Tensor forward(torch::autograd::AutogradContext*, const at::Tensor& scores, int64_t method, double t,
                            double min_elements) {
    return hard_mask(scores, static_cast<MaskMethod>(method), t, min_elements);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext*,
                                                 torch::autograd::variable_list grad) {
    return {grad[0], at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

constexpr double kL0Left = -0.1, kL0Right = 1.1, kL0Beta = 2.0 / 3.0;

}  // namespace

at::Tensor binarize(const at::Tensor& scores, MaskMethod method, double t, double min_elements, bool training) {
  switch (method) {
    case MaskMethod::TopK:
    case MaskMethod::Threshold:
    case MaskMethod::SigmoiedThreshold:
      return StraightThrough::apply(scores, static_cast<int64_t>(method), t, min_elements);
    case MaskMethod::L0: {
      at::Tensor s;
      if (training) {
        auto u = at::empty_like(scores).uniform_(1e-4, 0.9999);
        s = at::sigmoid((at::log(u) - at::log(1 - u) + scores) / kL0Beta);
      } else {
        s = at::sigmoid(scores);
      }
      return at::clamp(s * (kL0Right - kL0Left) + kL0Left, 0.0, 1.0);
    }
    default:
      throw Error("E_INVALID_ARG", std::string("binarize: method ") + mask_method_name(method) + " has no scores");
  }
}

at::Tensor compute_mask(const MaskState& m, const at::Tensor& weight, bool training) {
  const double t = m.state ? m.state->threshold : 1.0;
  const int64_t out = weight.size(0), in = weight.size(1);
  if (m.method == MaskMethod::Magnitude) return hard_mask(weight.detach().abs(), MaskMethod::TopK, t, 0.0);
  switch (m.layout) {
    case MaskLayout::Block: {
      auto small = binarize(m.scores, m.method, t, m.min_elements, training);
      if (m.block_rows == 1 && m.block_cols == 1) return small;
      return small.repeat_interleave(m.block_rows, 0).repeat_interleave(m.block_cols, 1);
    }
    // The vector is expanded to the full matrix *before* binarizing, as the reference does, so the
    // minimum-kept rule and topK count matrix elements.
    case MaskLayout::Rows:
      return binarize(m.scores.unsqueeze(1).expand({out, in}), m.method, t, m.min_elements, training);
    case MaskLayout::Cols:
      return binarize(m.scores.unsqueeze(0).expand({out, in}), m.method, t, m.min_elements, training);
    case MaskLayout::RowsCols:
      return binarize(m.scores.unsqueeze(1).expand({out, in}), m.method, t, m.min_elements, training) *
             binarize(m.col_scores.unsqueeze(0).expand({out, in}), m.method, t, m.min_elements, training);
  }
  return at::Tensor();
}

at::Tensor masked_linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, const MaskState& m,
                         bool training) {
  auto mask = compute_mask(m, weight, training);
  at::Tensor b = bias;
  if (bias.defined() && m.bias_mask) b = bias * mask.detach().ne(0).any(1).to(bias.scalar_type());
  return at::linear(x, weight * mask, b);
}

at::Tensor score_regularization(const at::Tensor& scores, const std::string& kind) {
  if (kind == "l1") return at::sigmoid(scores).mean();
  if (kind == "l0") return at::sigmoid(scores - (2.0 / 3.0) * std::log(0.1 / 1.1)).mean();
  throw Error("E_INVALID_ARG", "unknown regularization '" + kind + "' (expected l1 or l0)");
}

}  // namespace bp
