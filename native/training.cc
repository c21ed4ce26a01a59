#include "training.h"

#include <ATen/record_function.h>
#include <torch/csrc/autograd/autograd.h>

#include "checkpoint.h"
#include "errors.h"
#include "mixed_precision.h"
#include "quantize.h"

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <memory>
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
  if (opts.budget) {
    r.budget = std::make_shared<BudgetCost>(budget_cost(model, *opts.budget, /*with_grad=*/true));
    r.loss = r.loss + r.budget->term.to(r.loss.device());
  }
  return r;
}

NamedTensors compute_gradients(Bert& model, const Batch& batch, const LossOptions& opts, LossResult* result) {
  refuse_quantized(model, "gradients");
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

TrainStepResult train_step(Bert& model, AdamW& optimizer, const Batch* batch, const TrainStepOptions& opts, Bert* teacher) {
  ProcessGroup* group = opts.group.get();
  if (!batch && !group) throw Error("E_INVALID_ARG", "a train step needs a batch");
  refuse_quantized(model, "a train step");
  if (opts.set_threshold && is_patched(model)) set_threshold(model, opts.threshold);
  model->train();
  for (auto& p : model->parameters()) p.mutable_grad() = at::Tensor();
  TrainStepResult out;
  double loss_value = 0;
  const int64_t rows = batch ? batch->input_ids.size(0) : 0;
  // Data-parallel: gradients (times this rank's row count) go into buckets whose all-reduce starts while
  // backward still runs (BLOCKPRUNE_DDP_OVERLAP=0: all after backward, for comparison).
  GradientReducer* reducer = nullptr;
  std::vector<at::Tensor> params;
  if (group) {
    for (auto& p : model->parameters())
      if (p.requires_grad()) params.push_back(p);
    reducer = &group->gradient_reducer(params);
    reducer->begin(static_cast<double>(rows));
  }
  if (batch) {
    // Scopes named "bp::*" give a profile (native/tools/bench_train --profile) its stages; free when off.
    LossResult r;
    {
      RECORD_USER_SCOPE("bp::forward");
      Bf16Training bf16(opts.bf16);
      r = compute_loss(model, *batch, opts.loss);
    }
    at::Tensor loss = r.loss;
    if (teacher) {
      NamedTensors teacher_out;
      {
        at::NoGradGuard no_grad;
        (*teacher)->eval();
        teacher_out = (*teacher)->forward(*batch);
      }
      auto kd = distillation_loss(r.outputs, teacher_out, opts.distil.temperature);
      loss = opts.distil.alpha_teacher * kd + opts.distil.alpha_ce * r.task_loss;
      if (r.regu_loss.defined() && opts.loss.regularization != "disabled") loss = loss + opts.loss.lambda * r.regu_loss;
      if (r.budget) loss = loss + r.budget->term.to(loss.device());
      out.distil_loss = kd.item<double>();
    }
    loss_value = loss.item<double>();
    // Alone, a bad loss stops here; in a group every rank must reach the all-reduce, and the check runs on the
    // global loss after it (so that all ranks fail at the same step).
    if (!group && !std::isfinite(loss_value))
      throw Error("E_NUMERIC", "the loss is " + std::to_string(loss_value) + ": no step taken (lower the learning rate?)");
    if (reducer) {
      const char* overlap = std::getenv("BLOCKPRUNE_DDP_OVERLAP");
      if (!(overlap && std::string(overlap) == "0")) reducer->attach();
    }
    RECORD_USER_SCOPE("bp::backward");
    loss.backward();
    out.task_loss = r.task_loss.item<double>();
    out.regu_loss = r.regu_loss.defined() ? r.regu_loss.item<double>() : 0.0;
    out.regu = r.regu;
    out.budget = r.budget;
  } else if (opts.loss.regularization != "disabled" && is_patched(model)) {
    at::NoGradGuard no_grad;
    out.regu = regularization(model, opts.loss.regularization, opts.loss.attention_lambda, opts.loss.dense_lambda);
    out.regu_loss = out.regu.loss.item<double>();
  }
  if (opts.loss.budget && !out.budget) out.budget = std::make_shared<BudgetCost>(budget_cost(model, *opts.loss.budget, /*with_grad=*/false));
  if (out.budget) {
    // Reported, not differentiated: the graph goes with the step.
    out.budget->expected = out.budget->expected.detach();
    out.budget->term = out.budget->term.detach();
  }
  out.examples = rows;
  if (group) {
    const auto sync_start = std::chrono::steady_clock::now();
    reducer->finish();
    const double w = static_cast<double>(rows);
    const auto dev = params.empty() ? at::Device(at::kCPU) : params[0].device();
    at::Tensor scalars = at::tensor({w, loss_value * w, out.task_loss * w, out.regu_loss * w, out.distil_loss * w, opts.stop_vote ? 1.0 : 0.0},
                                    at::TensorOptions().dtype(at::kDouble))
                             .to(dev);
    group->allreduce_sum({scalars}, "loss all-reduce");
    scalars = scalars.cpu();
    const double* s = scalars.data_ptr<double>();
    const double n = s[0];
    if (!(n > 0)) throw Error("E_DISTRIBUTED", "no rank had rows in this step's batch");
    reducer->write_grads(1.0 / n);
    out.sync_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - sync_start).count();
    loss_value = s[1] / n;
    out.task_loss = s[2] / n;
    out.regu_loss = s[3] / n;
    out.distil_loss = s[4] / n;
    out.stop = s[5] > 0;
    out.examples = static_cast<int64_t>(n);
    if (!std::isfinite(loss_value)) {
      for (auto& p : model->parameters()) p.mutable_grad() = at::Tensor();
      throw Error("E_NUMERIC", "the loss over the global batch is " + std::to_string(loss_value) + ": no step taken on any rank (lower the learning rate?)");
    }
  }
  {
    RECORD_USER_SCOPE("bp::clip_grad_norm");
    out.grad_norm = clip_grad_norm(model, opts.max_grad_norm);
  }
  {
    RECORD_USER_SCOPE("bp::adamw");
    optimizer.step(model, opts.adam, opts.lr_scale);
  }
  for (auto& p : model->parameters()) p.mutable_grad() = at::Tensor();
  out.loss = loss_value;
  return out;
}

void sync_model(Bert& model, ProcessGroup& group) {
  // Fingerprint: count, total size and a hash of every name and shape; compared across ranks first, so that
  // different models fail with a message instead of a collective on mismatched sizes.
  const auto sd = state_dict(model);
  std::vector<at::Tensor> tensors;
  uint64_t h = 1469598103934665603ull;
  int64_t numel = 0;
  auto mix = [&](uint64_t v) { h = (h ^ v) * 1099511628211ull; };
  for (const auto& [name, t] : sd) {
    for (char c : name) mix(static_cast<uint8_t>(c));
    for (auto d : t.sizes()) mix(static_cast<uint64_t>(d));
    numel += t.numel();
  }
  for (auto& p : model->parameters()) tensors.push_back(p);
  for (auto& b : model->buffers()) tensors.push_back(b);
  at::Tensor fp = at::tensor({static_cast<int64_t>(sd.size()), numel, static_cast<int64_t>(h >> 1)}, at::TensorOptions().dtype(at::kLong));
  if (!tensors.empty()) fp = fp.to(tensors[0].device());
  auto all = group.allgather(fp, "model check");
  for (size_t r = 0; r < all.size(); ++r) {
    if (!at::equal(all[r].cpu(), all[0].cpu())) {
      auto a = all[0].cpu(), b = all[r].cpu();
      throw Error("E_DISTRIBUTED", "rank " + std::to_string(r) + "'s model differs from rank 0's (" + std::to_string(b[0].item<int64_t>()) + " tensors, " +
                                       std::to_string(b[1].item<int64_t>()) + " values vs " + std::to_string(a[0].item<int64_t>()) + ", " +
                                       std::to_string(a[1].item<int64_t>()) + "): start every rank from the same checkpoint, task and pruning config");
    }
  }
  group.broadcast(tensors, 0, "model broadcast");
}

}  // namespace bp
