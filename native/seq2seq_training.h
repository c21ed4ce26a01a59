// Training encoder-decoder models (issue 18): one optimisation step of a BART or T5 (seq2seq.h), with optional
// distillation from a dense teacher, and the gradients of one batch (what tests check against finite differences).
// The same AdamW and clipping as BERT's trainer (optimizer.h), over the model's named_parameters (HF names).
#pragma once

#include "optimizer.h"
#include "patch.h"
#include "seq2seq.h"

namespace bp {

struct Seq2SeqTrainOptions {
  AdamWOptions adam;
  double lr_scale = 1.0;       // warm-up / decay factor for this step
  double max_grad_norm = 1.0;  // <= 0: no clipping
  // With a teacher: loss = alpha_teacher x KD + alpha_ce x CE (training.h's DistilOptions, the same defaults).
  double alpha_ce = 0.5, alpha_teacher = 0.5, temperature = 2.0;
  // Fine-pruning (a patched model): the schedule's threshold, set before the forward; and lambda x the scores'
  // regularization (patch.h, nn_pruning's groups with the decoder's own) added to the loss. adam.mask_lr is
  // the scores' learning rate.
  bool set_threshold = false;
  double threshold = 0;
  std::string regularization = "disabled";  // "disabled" | "l1" | "l0"
  double lambda = 0;
  RegularizationLambdas lambdas;
};

struct Seq2SeqStepResult {
  double loss = 0, task_loss = 0, distil_loss = 0, grad_norm = 0;  // grad_norm before clipping
  int64_t tokens = 0;  // target tokens the loss counted (labels not -100); classification: rows
  double regu_loss = 0;     // the regularization before lambda (0 when disabled)
  RegularizationResult regu;  // a patched model's groups (density at the step's threshold; loss when enabled)
};

// Knowledge distillation per target token: KL(softmax(teacher/T) || softmax(student/T)) summed over the
// vocabulary at each position whose label is not -100, averaged over those positions ("batchmean" over target
// tokens), times T^2. Generation logits [B, T, vocab] with labels [B, T]; classification logits [B, labels]
// average over rows (labels undefined or [B]). E_SHAPE when the teacher's logits differ in shape.
at::Tensor seq2seq_distillation_loss(const at::Tensor& student, const at::Tensor& teacher, const at::Tensor& labels, double temperature);

// One step: train-mode forward with the batch's labels (dropout as the config says), the family's loss (CE,
// -100 ignored), with a teacher the distillation term (the teacher runs in eval mode without autograd); backward;
// clip_grad_norm; AdamW (state in `optimizer`). A patched model: the threshold first (when set), and
// + lambda x regularization in the loss (when enabled); its groups' densities in the result either way. A non-finite loss is E_NUMERIC and takes no step. The model is
// left in eval mode with no gradients, whatever happens.
Seq2SeqStepResult seq2seq_train_step(Seq2SeqImpl& model, AdamW& optimizer, const Seq2SeqBatch& batch, const Seq2SeqTrainOptions& opts,
                                     Seq2SeqImpl* teacher);

// The gradient of the batch's loss (train-mode forward: dropout as configured) for every parameter under its
// name (zeros where none flowed), without a step; `loss` receives the loss. The model is left in eval mode.
NamedTensors seq2seq_gradients(Seq2SeqImpl& model, const Seq2SeqBatch& batch, double* loss);

}  // namespace bp
