#include "training.h"

#include <torch/csrc/autograd/autograd.h>

#include "checkpoint.h"
#include "errors.h"

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

}  // namespace bp
