// Losses and gradients: the arithmetic the sparse trainer needs from C++. Loss = task loss (CE, or the
// mean of start/end CE for QA) + lambda x regularization of the mask scores (l1 / l0, by group).
#pragma once

#include <memory>
#include <string>

#include "bert.h"
#include "budget.h"
#include "distributed.h"
#include "optimizer.h"
#include "patch.h"

namespace bp {

struct LossOptions {
  std::string regularization = "disabled";  // "disabled" | "l1" | "l0"
  double lambda = 0;                        // the schedule's current regularization lambda
  double attention_lambda = 1, dense_lambda = 1;
  // Pruning to a budget (budget.h): its Lagrangian term joins the loss; null: none.
  std::shared_ptr<const BudgetSpec> budget;
};

struct LossResult {
  at::Tensor loss, task_loss, regu_loss;  // scalars
  NamedTensors outputs;                   // the forward's outputs (logits ...)
  RegularizationResult regu;
  std::shared_ptr<BudgetCost> budget;  // with LossOptions::budget: the costs (budget->term is in `loss`)
};

// One forward in the model's current mode (train/eval) with the task loss from the batch's labels or
// positions, plus the regularization term. Keeps the autograd graph.
LossResult compute_loss(Bert& model, const Batch& batch, const LossOptions& opts);

// Train-mode forward and backward from zeroed gradients; returns every parameter's gradient under its
// state-dict name (zeros where none flowed). The model is left in eval mode, its gradients cleared.
NamedTensors compute_gradients(Bert& model, const Batch& batch, const LossOptions& opts, LossResult* result);

struct DistilOptions {
  double alpha_ce = 0.5, alpha_teacher = 0.5, temperature = 2.0;
};

struct TrainStepOptions {
  LossOptions loss;
  AdamWOptions adam;
  double lr_scale = 1.0;       // warm-up / decay factor for this step
  double max_grad_norm = 1.0;  // <= 0: no clipping
  bool set_threshold = false;  // patched models: the schedule's threshold for this step
  double threshold = 0;
  DistilOptions distil;
  // Data-parallel: this rank's part of the global batch (possibly empty) joins the others' (see train_step).
  std::shared_ptr<ProcessGroup> group;
  bool stop_vote = false;  // this rank asks every rank to stop after this step
  bool bf16 = false;       // the linears' products in bf16 (mixed_precision.h); weights and optimizer stay fp32
};

struct TrainStepResult {
  // With a group: averages over the global batch (every rank gets the same values).
  double loss = 0, task_loss = 0, regu_loss = 0, distil_loss = 0, grad_norm = 0;
  RegularizationResult regu;
  std::shared_ptr<BudgetCost> budget;  // with a budget: expected and hard cost, per-layer counts (term detached)
  int64_t examples = 0;  // rows in the (global) batch
  double sync_ms = 0;    // data-parallel: time spent waiting for the all-reduce after this rank's backward
  bool stop = false;     // some rank voted to stop
};

// Knowledge distillation (reference): KL(log_softmax(s/T) || softmax(t/T)), batchmean, times T^2,
// averaged over the logit outputs (start/end for QA, logits for classification).
at::Tensor distillation_loss(const NamedTensors& student, const NamedTensors& teacher, double temperature);

// One optimisation step: train-mode forward, loss = CE (+ lambda x regularization), or with a teacher
// alpha_teacher x KD + alpha_ce x CE (+ lambda x regularization); backward; clip; AdamW. The model is
// left in train mode.
//
// With opts.group (data-parallel), `batch` is this rank's part of the global batch and may be null (a rank
// with no rows in a short last batch). Each rank's gradients are weighted by its row count; one bucketed
// all-reduce sums them together with the rank's loss terms and stop vote, and dividing by the global row count
// gives exactly the gradient of the mean loss over the global batch. Every rank then holds the same gradient,
// clips and steps identically, and a non-finite global loss fails on every rank at the same step.
TrainStepResult train_step(Bert& model, AdamW& optimizer, const Batch* batch, const TrainStepOptions& opts, Bert* teacher);

// Data-parallel start: checks that every rank holds a model of the same structure (names and shapes), then
// copies rank 0's parameters and buffers to every rank.
void sync_model(Bert& model, ProcessGroup& group);

}  // namespace bp
