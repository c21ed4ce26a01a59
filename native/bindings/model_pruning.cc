// ModelHandle's pruning methods (lib/pruning/model-pruning.ts calls them): patch with a plan, the mask
// threshold, compile (bake the masks in), compact and its zero-padded export, masks, the scores' regularization,
// and the filled stage's fillZeros. Each is a job that holds the model's lock (see ModelCell in worker.h).
#include <ATen/ATen.h>

#include <cmath>

#include "compact.h"
#include "errors.h"
#include "loss_args.h"
#include "model_handle.h"
#include "patch.h"
#include "worker.h"

namespace bpn {

Napi::Value ModelHandle::Patch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bp::Bert m = cell(env)->model;
  const nlohmann::json plan = read_plan(env, info[0]);
  auto report = std::make_shared<bp::PatchReport>();
  return Queue(
      info, "blockprune.patch", After::Describe, [m, plan, report]() mutable { *report = bp::patch_model(m, plan); },
      [report](Napi::Env e) -> Napi::Value { return patch_report_to_js(e, *report); });
}

Napi::Value ModelHandle::SetThreshold(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bp::Bert m = cell(env)->model;
  if (!info[0].IsNumber() || !std::isfinite(info[0].As<Napi::Number>().DoubleValue()))
    throw_type_error(env, "Expected a finite number for threshold but received " + describe(info[0]));
  const double t = info[0].As<Napi::Number>().DoubleValue();
  return Queue(info, "blockprune.setThreshold", After::Describe, [m, t]() mutable { bp::set_threshold(m, t); },
               [](Napi::Env e) { return e.Undefined(); });
}

Napi::Value ModelHandle::Compile(const Napi::CallbackInfo& info) {
  bp::Bert m = cell(info.Env())->model;
  // Whether it is patched is checked by compile_model, under the lock: a patch queued before this call counts.
  return Queue(info, "blockprune.compile", After::Describe, [m]() mutable { bp::compile_model(m); },
               [](Napi::Env e) { return e.Undefined(); });
}

Napi::Value ModelHandle::Compact(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bp::Bert m = cell(env)->model;
  const std::string mode = info[0].IsUndefined() ? "dense" : get_string(info[0], "mode");
  if (mode != "dense" && mode != "heads")
    throw_range_error(env, "Expected 'dense' or 'heads' for mode but received '" + mode + "'");
  const std::string rule = info.Length() < 2 || info[1].IsUndefined() ? "reference" : get_string(info[1], "deadHeads");
  if (rule != "exact" && rule != "reference") throw_range_error(env, "Expected 'exact' or 'reference' for deadHeads but received '" + rule + "'");
  auto result = std::make_shared<std::pair<bp::Bert, bp::CompactReport>>(bp::Bert(nullptr), bp::CompactReport());
  return Queue(
      info, "blockprune.compact", After::Keep,
      [m, mode, rule, result]() { result->first = bp::compact_model(m, mode, &result->second, rule); },
      [result](Napi::Env e) -> Napi::Value {
        const auto& r = result->second;
        Napi::Object o = Napi::Object::New(e);
        o.Set("model", ModelHandle::Wrap(e, result->first));
        Napi::Object rep = Napi::Object::New(e);
        rep.Set("parametersBefore", Napi::Number::New(e, static_cast<double>(r.parameters_before)));
        rep.Set("parametersAfter", Napi::Number::New(e, static_cast<double>(r.parameters_after)));
        Napi::Array removed = Napi::Array::New(e, r.removed_heads.size());
        for (size_t i = 0; i < r.removed_heads.size(); ++i) {
          Napi::Array a = Napi::Array::New(e, r.removed_heads[i].size());
          for (size_t k = 0; k < r.removed_heads[i].size(); ++k)
            a.Set(static_cast<uint32_t>(k), Napi::Number::New(e, static_cast<double>(r.removed_heads[i][k])));
          removed.Set(static_cast<uint32_t>(i), a);
        }
        rep.Set("removedHeads", removed);
        Napi::Array heads = Napi::Array::New(e, r.heads.size()), widths = Napi::Array::New(e, r.ffn_widths.size());
        for (size_t i = 0; i < r.heads.size(); ++i) heads.Set(static_cast<uint32_t>(i), Napi::Number::New(e, static_cast<double>(r.heads[i])));
        for (size_t i = 0; i < r.ffn_widths.size(); ++i)
          widths.Set(static_cast<uint32_t>(i), Napi::Number::New(e, static_cast<double>(r.ffn_widths[i])));
        rep.Set("heads", heads);
        rep.Set("ffnWidths", widths);
        o.Set("report", rep);
        return o;
      });
}

Napi::Value ModelHandle::PadFfn(const Napi::CallbackInfo& info) {
  bp::Bert m = cell(info.Env())->model;
  auto result = std::make_shared<bp::Bert>(nullptr);
  return Queue(
      info, "blockprune.padFfn", After::Keep, [m, result]() { *result = bp::pad_ffn_to_config(m); },
      [result](Napi::Env e) -> Napi::Value { return ModelHandle::Wrap(e, *result); });
}

Napi::Value ModelHandle::Masks(const Napi::CallbackInfo& info) {
  bp::Bert m = cell(info.Env())->model;
  auto result = std::make_shared<bp::NamedTensors>();
  return Queue(
      info, "blockprune.masks", After::Keep,
      [m, result]() {
        *result = bp::current_masks(m);
        // 0/1 as bytes: a bert-base set of masks is 85 MB as floats, 21 MB as bytes.
        for (auto& [name, t] : *result) t = t.ne(0).to(at::kCPU);
      },
      [result](Napi::Env e) -> Napi::Value { return tensors_to_js(e, *result); });
}

Napi::Value ModelHandle::Regularization(const Napi::CallbackInfo& info) {
  bp::Bert m = cell(info.Env())->model;
  bp::LossOptions lo = read_loss_options(get_object(info[0], "options"));
  if (lo.regularization == "disabled") lo.regularization = "l1";
  auto result = std::make_shared<bp::RegularizationResult>();
  return Queue(
      info, "blockprune.regularization", After::Keep,
      [m, lo, result]() {
        at::NoGradGuard no_grad;
        *result = bp::regularization(m, lo.regularization, lo.attention_lambda, lo.dense_lambda);
      },
      [result](Napi::Env e) -> Napi::Value { return regularization_to_js(e, *result); });
}

Napi::Value ModelHandle::BudgetCost(const Napi::CallbackInfo& info) {
  bp::Bert m = cell(info.Env())->model;
  const bp::BudgetSpec spec = read_budget(get_object(info[0], "budget"));
  auto result = std::make_shared<bp::BudgetCost>();
  return Queue(
      info, "blockprune.budgetCost", After::Keep, [m, spec, result]() { *result = bp::budget_cost(m, spec, /*with_grad=*/false); },
      [result](Napi::Env e) -> Napi::Value { return budget_to_js(e, *result); });
}

Napi::Value ModelHandle::FillZeros(const Napi::CallbackInfo& info) {
  bp::Bert m = cell(info.Env())->model;
  const uint64_t seed = info[0].IsNumber() ? static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value()) : 0;
  auto count = std::make_shared<int64_t>(0);
  return Queue(
      info, "blockprune.fillZeros", After::Keep, [m, seed, count]() mutable { *count = bp::fill_zeros(m, seed); },
      [count](Napi::Env e) -> Napi::Value { return Napi::Number::New(e, static_cast<double>(*count)); });
}

}  // namespace bpn
