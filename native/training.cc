#include "training.h"

#include <torch/csrc/autograd/autograd.h>

#include "checkpoint.h"
#include "errors.h"

#include <cmath>
#include <map>

namespace bp {

LossResult compute_loss(Bert& model, const Batch& batch, const LossOptions& opts) {
  if (!batch.labels.defined() && !batch.start_positions.defined())
    throw Error("E_INVALID_ARG", "a loss needs labels (classification) or start/end positions (question answering)");
  LossResult r;
  r.outputs = model->forward(batch);
  for (const auto& [name, t] : r.outputs)
    if (name == "loss") r.task_loss = t;
  if (!r.task_loss.defined()) throw Error("E_INVALID_ARG", "this model's task has no loss for the given batch");
  r.loss = r.task_loss;
  if (opts.regularization != "disabled" && is_patched(model)) {
    r.regu = regularization(model, opts.regularization, opts.attention_lambda, opts.dense_lambda);
    r.regu_loss = r.regu.loss.to(r.loss.device());
    r.loss = r.loss + opts.lambda * r.regu_loss;
  } else {
    r.regu_loss = at::zeros({}, r.loss.options());
  }
  return r;
}

NamedTensors compute_gradients(Bert& model, const Batch& batch, const LossOptions& opts, LossResult* result) {
  model->train();
  for (auto& p : model->parameters()) p.mutable_grad() = at::Tensor();
  LossResult r;
  try {
    r = compute_loss(model, batch, opts);
    r.loss.backward();
  } catch (...) {
    model->eval();
    throw;
  }
  NamedTensors grads;
  const auto names = state_dict(model);  // HF names, same order as named_parameters()
  size_t i = 0;
  for (auto& item : model->named_parameters()) {
    const auto& g = item.value().grad();
    grads.emplace_back(names[i++].first, g.defined() ? g.detach().clone() : at::zeros_like(item.value()));
    item.value().mutable_grad() = at::Tensor();
  }
  model->eval();
  if (result) *result = r;
  return grads;
}

at::Tensor distillation_loss(const NamedTensors& student, const NamedTensors& teacher, double temperature) {
  std::map<std::string, at::Tensor> t(teacher.begin(), teacher.end());
  at::Tensor total;
  int64_t n = 0;
  for (const auto& [name, s] : student) {
    if (name != "logits" && name != "start_logits" && name != "end_logits") continue;
    auto it = t.find(name);
    if (it == t.end()) throw Error("E_INVALID_ARG", "the teacher has no '" + name + "' output: it must be a model of the same task");
    if (it->second.sizes() != s.sizes())
      throw Error("E_SHAPE", "teacher " + name + " " + shape_str(it->second.sizes().vec()) + " vs student " + shape_str(s.sizes().vec()));
    auto log_p = at::log_softmax(s / temperature, -1);
    auto q = at::softmax(it->second.to(s.device()) / temperature, -1);
    auto kl = at::kl_div(log_p, q, at::Reduction::Sum) / static_cast<double>(s.size(0)) * (temperature * temperature);
    total = total.defined() ? total + kl : kl;
    ++n;
  }
  if (n == 0) throw Error("E_INVALID_ARG", "distillation needs logits outputs");
  return total / static_cast<double>(n);
}

TrainStepResult train_step(Bert& model, AdamW& optimizer, const Batch& batch, const TrainStepOptions& opts, Bert* teacher) {
  if (opts.set_threshold && is_patched(model)) set_threshold(model, opts.threshold);
  model->train();
  for (auto& p : model->parameters()) p.mutable_grad() = at::Tensor();
  LossResult r = compute_loss(model, batch, opts.loss);
  TrainStepResult out;
  at::Tensor loss = r.loss;
  if (teacher) {
    NamedTensors teacher_out;
    {
      at::NoGradGuard no_grad;
      (*teacher)->eval();
      teacher_out = (*teacher)->forward(batch);
    }
    auto kd = distillation_loss(r.outputs, teacher_out, opts.distil.temperature);
    loss = opts.distil.alpha_teacher * kd + opts.distil.alpha_ce * r.task_loss;
    if (r.regu_loss.defined() && opts.loss.regularization != "disabled") loss = loss + opts.loss.lambda * r.regu_loss;
    out.distil_loss = kd.item<double>();
  }
  const double loss_value = loss.item<double>();
  if (!std::isfinite(loss_value))
    throw Error("E_NUMERIC", "the loss is " + std::to_string(loss_value) + ": no step taken (lower the learning rate?)");
  loss.backward();
  out.grad_norm = clip_grad_norm(model, opts.max_grad_norm);
  optimizer.step(model, opts.adam, opts.lr_scale);
  for (auto& p : model->parameters()) p.mutable_grad() = at::Tensor();
  out.loss = loss_value;
  out.task_loss = r.task_loss.item<double>();
  out.regu_loss = r.regu_loss.defined() ? r.regu_loss.item<double>() : 0.0;
  out.regu = r.regu;
  return out;
}

}  // namespace bp
