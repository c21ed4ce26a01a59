// Losses and gradients: the arithmetic the sparse trainer needs from C++. Loss = task loss (CE, or the
// mean of start/end CE for QA) + lambda x regularization of the mask scores (l1 / l0, by group).
#pragma once

#include <string>

#include "bert.h"
#include "patch.h"

namespace bp {

struct LossOptions {
  std::string regularization = "disabled";  // "disabled" | "l1" | "l0"
  double lambda = 0;                        // the schedule's current regularization lambda
  double attention_lambda = 1, dense_lambda = 1;
};

struct LossResult {
  at::Tensor loss, task_loss, regu_loss;  // scalars
  NamedTensors outputs;                   // the forward's outputs (logits ...)
  RegularizationResult regu;
};

// One forward in the model's current mode (train/eval) with the task loss from the batch's labels or
// positions, plus the regularization term. Keeps the autograd graph.
LossResult compute_loss(Bert& model, const Batch& batch, const LossOptions& opts);

// Train-mode forward and backward from zeroed gradients; returns every parameter's gradient under its
// state-dict name (zeros where none flowed). The model is left in eval mode, its gradients cleared.
NamedTensors compute_gradients(Bert& model, const Batch& batch, const LossOptions& opts, LossResult* result);

}  // namespace bp
