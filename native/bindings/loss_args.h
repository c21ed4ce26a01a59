// Loss options from JS and regularization results to JS: shared by the model's methods (regularization,
// gradients) and the training state's (trainStep); pruning plans from JS and patch reports to JS, shared by
// BERT's and the encoder-decoders' patch().
#pragma once

#include <napi.h>

#include "patch.h"
#include "training.h"

namespace bpn {

// {regularization?, lambda?, attentionLambda?, denseLambda?, budget?}, checked (TypeError / RangeError naming the key).
bp::LossOptions read_loss_options(const Napi::Object& o);

// {constant, heads: {x, y}, units: {x, y}, target, dense, lambda1, lambda2, threshold}, checked (TypeError /
// RangeError naming the field).
bp::BudgetSpec read_budget(const Napi::Object& o);

// {expected, term, hard, heads, units, hardHeads, hardUnits}.
Napi::Object budget_to_js(Napi::Env env, const bp::BudgetCost& c);

// A pruning plan's JSON text (E_INVALID_ARG when it does not parse), read on the main thread.
nlohmann::json read_plan(Napi::Env env, const Napi::Value& text);

// {modules, scoreParameters}.
Napi::Object patch_report_to_js(Napi::Env env, const bp::PatchReport& r);

// {loss, groups: {name: {loss, density, tensors}}}.
Napi::Object regularization_to_js(Napi::Env env, const bp::RegularizationResult& r);

}  // namespace bpn
