#include "masks.h"

#include <torch/csrc/autograd/custom_function.h>

#include <cmath>

#include "errors.h"
#include "mixed_precision.h"

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

// The hard (0/1) decision of the threshold and topK binarizers; no autograd. `rep` > 1: `s` is a vector
// that stands for a matrix in which each of its values appears `rep` times (1d_alt: a unit's score over a
// whole row or column); the threshold rules then count matrix elements exactly as on the expanded matrix.
at::Tensor hard_mask(const at::Tensor& s, MaskMethod method, double t, double min_elements, int64_t rep = 1) {
  at::NoGradGuard no_grad;
  if (rep > 1) {
    const int64_t n = s.numel() * rep;
    auto mask = (method == MaskMethod::SigmoiedThreshold ? at::sigmoid(s) : s).gt(t).to(s.scalar_type());
    const int64_t nb_min = static_cast<int64_t>(min_elements * static_cast<double>(n)) + 1;
    if (mask.sum().item<double>() * static_cast<double>(rep) < static_cast<double>(nb_min)) {
      // The k-th smallest of the expanded matrix is the vector's value at sorted index (k - 1) / rep.
      const int64_t k = std::max<int64_t>(n - nb_min, 1);
      auto sorted = std::get<0>(s.flatten().sort());
      auto kth = sorted[(k - 1) / rep];
      mask = s.gt(kth).to(s.scalar_type());
    }
    return mask;
  }
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
                            double min_elements, int64_t rep) {
    return hard_mask(scores, static_cast<MaskMethod>(method), t, min_elements, rep);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext*,
                                                 torch::autograd::variable_list grad) {
    return {grad[0], at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

bool is_threshold(MaskMethod m) { return m == MaskMethod::Threshold || m == MaskMethod::SigmoiedThreshold; }

// A vector's mask standing for `rep` copies of each value (threshold methods), straight-through.
at::Tensor binarize_vector(const at::Tensor& scores, MaskMethod method, double t, double min_elements, int64_t rep) {
  return StraightThrough::apply(scores, static_cast<int64_t>(method), t, min_elements, rep);
}

constexpr double kL0Left = -0.1, kL0Right = 1.1, kL0Beta = 2.0 / 3.0;

}  // namespace

at::Tensor binarize(const at::Tensor& scores, MaskMethod method, double t, double min_elements, bool training) {
  switch (method) {
    case MaskMethod::TopK:
    case MaskMethod::Threshold:
    case MaskMethod::SigmoiedThreshold:
      return StraightThrough::apply(scores, static_cast<int64_t>(method), t, min_elements, int64_t{1});
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

FactoredMask compute_factored_mask(const MaskState& m, const at::Tensor& weight, bool training) {
  const double t = m.state ? m.state->threshold : 1.0;
  const int64_t out = weight.size(0), in = weight.size(1);
  FactoredMask f;
  if (m.method == MaskMethod::Magnitude) {
    f.full = hard_mask(weight.detach().abs(), MaskMethod::TopK, t, 0.0);
    return f;
  }
  // Vectors stand for the full matrix: the reference binarizes the expanded matrix, so the minimum-kept
  // rule and topK count matrix elements. Threshold methods get the same answer from the vector itself
  // (binarize_vector, each value standing for a row of `in` or a column of `out` elements); topK (ties across
  // copies) and l0 (noise per element) binarize the expanded matrix.
  const bool from_vector = is_threshold(m.method);
  auto rows_full = [&] { return binarize(m.scores.unsqueeze(1).expand({out, in}), m.method, t, m.min_elements, training); };
  switch (m.layout) {
    case MaskLayout::Block:
      f.block = binarize(m.scores, m.method, t, m.min_elements, training);
      f.block_rows = m.block_rows;
      f.block_cols = m.block_cols;
      return f;
    case MaskLayout::Rows:
      if (from_vector) f.rows = binarize_vector(m.scores, m.method, t, m.min_elements, in);
      else f.full = rows_full();
      return f;
    case MaskLayout::Cols:
      if (from_vector) f.cols = binarize_vector(m.scores, m.method, t, m.min_elements, out);
      else f.full = binarize(m.scores.unsqueeze(0).expand({out, in}), m.method, t, m.min_elements, training);
      return f;
    case MaskLayout::RowsCols:
      if (from_vector) {
        f.rows = binarize_vector(m.scores, m.method, t, m.min_elements, in);
        f.cols = binarize_vector(m.col_scores, m.method, t, m.min_elements, out);
      } else {
        f.full = rows_full() * binarize(m.col_scores.unsqueeze(0).expand({out, in}), m.method, t, m.min_elements, training);
      }
      return f;
  }
  return f;
}

at::Tensor FactoredMask::apply(const at::Tensor& w) const {
  if (full.defined()) return w * full;
  if (block.defined()) {
    if (block_rows == 1 && block_cols == 1) return w * block;
    const int64_t R = block.size(0), C = block.size(1);
    return (w.view({R, block_rows, C, block_cols}) * block.view({R, 1, C, 1})).view(w.sizes());
  }
  at::Tensor r = w;
  if (rows.defined()) r = r * rows.unsqueeze(1);
  if (cols.defined()) r = r * cols.unsqueeze(0);
  return r;
}

at::Tensor FactoredMask::expand(int64_t out, int64_t in) const {
  if (full.defined()) return full;
  if (block.defined()) {
    if (block_rows == 1 && block_cols == 1) return block;
    return block.repeat_interleave(block_rows, 0).repeat_interleave(block_cols, 1);
  }
  at::Tensor r = at::ones({out, in}, (rows.defined() ? rows : cols).options());
  if (rows.defined()) r = r * rows.unsqueeze(1);
  if (cols.defined()) r = r * cols.unsqueeze(0);
  return r;
}

at::Tensor FactoredMask::row_any(int64_t out, int64_t in) const {
  at::NoGradGuard no_grad;
  if (full.defined()) return full.ne(0).any(1);
  if (block.defined()) return block.ne(0).any(1).repeat_interleave(block_rows);
  at::Tensor r = rows.defined() ? rows.ne(0) : at::ones({out}, cols.options().dtype(at::kBool));
  if (cols.defined()) r = r & cols.ne(0).any();
  (void)in;
  return r;
}

double FactoredMask::kept(int64_t out, int64_t in) const {
  at::NoGradGuard no_grad;
  if (full.defined()) return full.ne(0).sum().item<double>();
  if (block.defined()) return block.ne(0).sum().item<double>() * static_cast<double>(block_rows * block_cols);
  const double r = rows.defined() ? rows.ne(0).sum().item<double>() : static_cast<double>(out);
  const double c = cols.defined() ? cols.ne(0).sum().item<double>() : static_cast<double>(in);
  return r * c;
}

at::Tensor compute_mask(const MaskState& m, const at::Tensor& weight, bool training) {
  return compute_factored_mask(m, weight, training).expand(weight.size(0), weight.size(1));
}

at::Tensor masked_linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, const MaskState& m,
                         bool training) {
  auto f = compute_factored_mask(m, weight, training);
  at::Tensor b = bias;
  if (bias.defined() && m.bias_mask) b = bias * f.row_any(weight.size(0), weight.size(1)).to(bias.scalar_type());
  return train_linear(x, f.apply(weight), b);  // at::linear, or bf16 products in a bf16 training step
}

at::Tensor score_regularization(const at::Tensor& scores, const std::string& kind) {
  if (kind == "l1") return at::sigmoid(scores).mean();
  if (kind == "l0") return at::sigmoid(scores - (2.0 / 3.0) * std::log(0.1 / 1.1)).mean();
  throw Error("E_INVALID_ARG", "unknown regularization '" + kind + "' (expected l1 or l0)");
}

}  // namespace bp
