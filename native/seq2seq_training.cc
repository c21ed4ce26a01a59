#include "seq2seq_training.h"

#include <c10/core/GradMode.h>

#include <cmath>

#include "errors.h"

namespace bp {

namespace {

// Train mode and cleared gradients for the scope; eval mode and no gradients after it, on every path (an
// exception included), so that a later forward or generate never sees dropout or a stale gradient.
struct TrainScope {
  Seq2SeqImpl& model;
  explicit TrainScope(Seq2SeqImpl& m) : model(m) {
    clear();
    model.train();
  }
  ~TrainScope() {
    clear();
    model.eval();
  }
  void clear() {
    for (auto& p : model.parameters()) p.mutable_grad() = at::Tensor();
  }
};

const at::Tensor& output(const NamedTensors& out, const std::string& name) {
  for (const auto& [n, t] : out)
    if (n == name) return t;
  throw Error("E_INVALID_ARG", "the model gave no '" + name + "' output");
}

void require_labels(const Seq2SeqBatch& batch) {
  if (!batch.labels.defined()) throw Error("E_INVALID_ARG", "a train step needs labels (target token ids, -100 ignored; class ids for classification)");
}

}  // namespace

at::Tensor seq2seq_distillation_loss(const at::Tensor& student, const at::Tensor& teacher, const at::Tensor& labels, double temperature) {
  if (teacher.sizes() != student.sizes())
    throw Error("E_SHAPE", "teacher logits " + shape_str(teacher.sizes().vec()) + " vs student logits " + shape_str(student.sizes().vec()) +
                               ": the teacher must be a model of the same vocabulary (or labels) and task");
  const int64_t classes = student.size(-1);
  auto s = at::log_softmax(student.reshape({-1, classes}) / temperature, -1);
  auto t = at::log_softmax(teacher.to(student.device()).reshape({-1, classes}) / temperature, -1);
  // Both in log space (log_target): a teacher equal to the student gives exactly 0, not a rounding residue.
  auto kl = at::kl_div(s, t, at::Reduction::None, /*log_target=*/true).sum(-1);
  if (student.dim() == 3 && labels.defined()) {
    const auto keep = labels.reshape({-1}).to(student.device()).ne(-100);
    const auto n = keep.sum();
    // No target token at all: 0 (as CE's mean would be NaN, the caller's task loss says so).
    return (kl * keep.to(kl.scalar_type())).sum() / n.clamp_min(1).to(kl.scalar_type()) * (temperature * temperature);
  }
  return kl.mean() * (temperature * temperature);
}

Seq2SeqStepResult seq2seq_train_step(Seq2SeqImpl& model, AdamW& optimizer, const Seq2SeqBatch& batch, const Seq2SeqTrainOptions& opts,
                                     Seq2SeqImpl* teacher) {
  require_labels(batch);
  if (teacher == &model) throw Error("E_INVALID_ARG", "the teacher must be another model than the student");
  if ((opts.set_threshold || opts.regularization != "disabled") && !model.is_patched())
    throw Error("E_INVALID_ARG", "a threshold or a regularization needs a model patched for pruning");
  if (opts.set_threshold) set_threshold(model, opts.threshold);
  Seq2SeqStepResult out;
  TrainScope scope(model);
  at::AutoGradMode grad(true);
  const NamedTensors o = model.forward(batch, {});
  const at::Tensor& logits = output(o, "logits");
  const at::Tensor task = output(o, "loss");
  at::Tensor loss = task;
  out.tokens = logits.dim() == 3 ? batch.labels.ne(-100).sum().item<int64_t>() : batch.labels.size(0);
  if (teacher) {
    at::Tensor t_logits;
    {
      at::NoGradGuard no_grad;
      teacher->eval();
      t_logits = output(teacher->forward(batch, {}), "logits");
    }
    const auto kd = seq2seq_distillation_loss(logits, t_logits, batch.labels, opts.temperature);
    loss = opts.alpha_teacher * kd + opts.alpha_ce * task;
    out.distil_loss = kd.item<double>();
  }
  if (opts.regularization != "disabled") {
    out.regu = regularization(model, opts.regularization, opts.lambdas);
    out.regu_loss = out.regu.loss.item<double>();
    loss = loss + opts.lambda * out.regu.loss.to(loss.device());
  } else if (model.is_patched()) {
    at::NoGradGuard no_grad;
    out.regu = regularization(model, "l1", opts.lambdas);
    for (auto& g : out.regu.groups) g.loss = 0;  // densities only: nothing of it is in the loss
    out.regu.loss = at::zeros({}, at::kFloat);
  }
  out.loss = loss.item<double>();
  out.task_loss = task.item<double>();
  if (!std::isfinite(out.loss)) throw Error("E_NUMERIC", "the loss is " + std::to_string(out.loss) + ": no step taken (lower the learning rate?)");
  loss.backward();
  out.grad_norm = clip_grad_norm(model, opts.max_grad_norm);
  optimizer.step(model, opts.adam, opts.lr_scale);
  return out;
}

NamedTensors seq2seq_gradients(Seq2SeqImpl& model, const Seq2SeqBatch& batch, double* loss) {
  require_labels(batch);
  TrainScope scope(model);
  at::AutoGradMode grad(true);
  const at::Tensor l = output(model.forward(batch, {}), "loss");
  l.backward();
  if (loss) *loss = l.item<double>();
  NamedTensors grads;
  for (auto& item : model.named_parameters()) {
    const auto& g = item.value().grad();
    grads.emplace_back(item.key(), g.defined() ? g.detach().to(at::kCPU).clone() : at::zeros_like(item.value(), at::kCPU));
  }
  return grads;
}

}  // namespace bp
