// Loss options from JS and regularization results to JS: shared by the model's methods (regularization,
// gradients) and the training state's (trainStep).
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

// {loss, groups: {name: {loss, density, tensors}}}.
Napi::Object regularization_to_js(Napi::Env env, const bp::RegularizationResult& r);

}  // namespace bpn
