// Pruning to a budget (issue 17): the cost of the compact model the current masks would give, as a function of
// each layer's kept heads and FFN units (lib/pruning/cost-model.ts: constant + per-layer piecewise-linear costs),
// evaluated on the *expected* heads and units (differentiable in the mask scores) and on the hard masks; and the
// Lagrangian term lambda1 (cost - target) + lambda2 (cost - target)^2 of CoFi pruning (Xia et al., 2022), on the
// cost relative to the dense model's, whose multipliers the trainer raises by gradient ascent.
//
// Expected counts. Each score s gives the probability that its weights survive at the final threshold t:
//   sigmoied_threshold  sigmoid(s - logit(t))      (the mask is sigmoid(s) > t)
//   threshold           sigmoid(s - t)             (the mask is s > t)
//   l0                  sigmoid(s - (2/3) ln(0.1/1.1))   (P(hard-concrete sample > 0), CoFi's expected L0)
// topK and magnitude have no such probability and are refused. A head survives compaction when each of its q,
// k and v rows has a kept weight somewhere (compact.cc), an FFN unit when its intermediate row and its output
// column do. The hard counts are exactly that (the binarizers' own masks at t, with their minimum-kept rule,
// and compaction's at least one head and one unit per layer). The expected counts use the mean keep
// probability of the distinct scores covering a head's rows (a unit's row or column) instead of P(any kept),
// whose derivative vanishes while most blocks are kept (budget.cc says why); a head's (unit's) value is the
// product over q, k, v (intermediate, output) of distinct score tensors (joint q/k/v and the 1d_alt pair
// share theirs: one factor).
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "bert.h"

namespace bp {

struct PiecewiseLinear {
  std::vector<double> x, y;  // x strictly increasing, at least two points; linear beyond the ends
  double at(double v) const;
  double slope(double v) const;  // of the segment `at` uses for v
};

struct BudgetSpec {
  double constant = 0;
  PiecewiseLinear heads, units;  // one layer's cost of its kept heads / kept FFN units
  double target = 0;             // in the cost's unit
  double dense = 1;              // the unpruned model's cost: the term works on cost / dense
  double lambda1 = 0, lambda2 = 0;
  double threshold = 0.1;        // the final threshold: the masks the budget is about
  void validate() const;         // E_INVALID_ARG naming the field
};

struct BudgetCost {
  at::Tensor expected;                           // scalar, differentiable in the scores
  at::Tensor term;                               // lambda1 r + lambda2 r^2, r = (expected - target) / dense
  double hard = 0;                               // the cost of the hard masks' compact model
  std::vector<double> heads, units;              // expected per layer
  std::vector<int64_t> hard_heads, hard_units;   // the compact model's per layer
};

// `with_grad` false: no autograd graph (reporting). Throws E_INVALID_ARG for an unpatched model or a method
// without probabilities.
BudgetCost budget_cost(const Bert& model, const BudgetSpec& spec, bool with_grad);

}  // namespace bp
