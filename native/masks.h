// Score-based masks of block movement pruning (Sanh et al. 2020; Lagunas et al. 2021), as HF nn_pruning
// computes them. A MaskState attached to a Linear turns it into a masked linear: W' = M * W, bias kept only
// where a row of M is non-zero (bias_mask), with M computed from learnable scores by a binarizer whose
// backward pass is the identity (straight-through).
#pragma once

#include <ATen/ATen.h>

#include <memory>
#include <string>

namespace bp {

enum class MaskMethod { Disabled, TopK, Threshold, SigmoiedThreshold, Magnitude, L0 };

// How scores map onto the weight [out, in]:
//   Block   scores [out/rows, in/cols], expanded by repeat-interleave (rows = cols = 1: unstructured)
//   Rows    a vector [out] expanded over columns (the FFN intermediate rows with 1d_alt, or 1d rows)
//   Cols    a vector [in] expanded over rows (the FFN output columns with 1d_alt, sharing the Rows vector)
//   RowsCols  1d: a row vector and a column vector, M = B(rows) * B(cols)
enum class MaskLayout { Block, Rows, Cols, RowsCols };

MaskMethod parse_mask_method(const std::string& s);  // throws E_INVALID_ARG naming the method
const char* mask_method_name(MaskMethod m);
MaskLayout parse_mask_layout(const std::string& s);
const char* mask_layout_name(MaskLayout l);

// What the schedule says now; one per patched model, shared by its masked linears.
struct PruningState {
  double threshold = 1.0;  // topK: fraction kept; threshold: cut-off on S; sigmoied_threshold: on sigmoid(S)
};

struct MaskState {
  MaskMethod method = MaskMethod::TopK;
  MaskLayout layout = MaskLayout::Block;
  int64_t block_rows = 1, block_cols = 1;
  bool bias_mask = true;
  double min_elements = 0.005;  // threshold binarizers keep at least this fraction
  std::string group;            // regularization group: "attention" | "dense"
  at::Tensor scores;            // Block: [out/rows, in/cols]; Rows: [out]; Cols: [in]; RowsCols: rows [out]
  at::Tensor col_scores;        // RowsCols only: [in]
  bool owns_scores = true;      // false when the scores belong to another linear (1d_alt output, joint k/v)
  std::shared_ptr<PruningState> state;
};

// The binarizers, on a score tensor, straight-through: forward gives the 0/1 mask, backward passes the
// gradient to the scores unchanged (no sigmoid derivative), summed over each block by the expansion.
//   topK:               keep the first int(t * numel) scores, sorted descending
//   threshold:          M = [S > t]            } fewer than nb_min = int(min * numel) + 1 kept: the k-th value
//   sigmoied_threshold: M = [sigmoid(S) > t]   } of S, k = max(numel - nb_min, 1), is the cut-off: M = [S > kth]
//   l0 (hard concrete): differentiable; train s = sigmoid((log u - log(1-u) + S) / beta), eval s = sigmoid(S),
//                       M = clamp(s * (r - l) + l, 0, 1), l = -0.1, r = 1.1, beta = 2/3
at::Tensor binarize(const at::Tensor& scores, MaskMethod method, double t, double min_elements, bool training);

// A mask kept in its small form, so that a masked weight costs one broadcast multiply and never a
// full-size mask tensor (forward or backward): a block grid [out/rows, in/cols], a row factor [out], a
// column factor [in], or (unstructured, topK/l0 on vectors, magnitude) a full [out, in] mask.
struct FactoredMask {
  at::Tensor full, block, rows, cols;
  int64_t block_rows = 1, block_cols = 1;
  at::Tensor apply(const at::Tensor& weight) const;  // weight * M, differentiable in both
  at::Tensor expand(int64_t out, int64_t in) const;  // M itself, [out, in]
  at::Tensor row_any(int64_t out, int64_t in) const;  // [out]: 1 where row i of M has a non-zero
  double kept(int64_t out, int64_t in) const;         // non-zeros of M
};

FactoredMask compute_factored_mask(const MaskState& m, const at::Tensor& weight, bool training);

// The mask of a weight [out, in] (same shape), differentiable w.r.t. the scores as above.
at::Tensor compute_mask(const MaskState& m, const at::Tensor& weight, bool training);

// y = x (M * W)^T + b * [row of M non-zero]  (bias untouched when bias_mask is false)
at::Tensor masked_linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, const MaskState& m,
                         bool training);

// The regularization term of one score tensor: l1 = mean(sigmoid(S)), l0 = mean(sigmoid(S - (2/3) ln(0.1/1.1))).
at::Tensor score_regularization(const at::Tensor& scores, const std::string& kind);

}  // namespace bp
