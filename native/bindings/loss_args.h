// Loss options from JS and regularization results to JS: shared by the model's methods (regularization,
// gradients) and the training state's (trainStep).
#pragma once

#include <napi.h>

#include "patch.h"
#include "training.h"

namespace bpn {

// {regularization?, lambda?, attentionLambda?, denseLambda?}, checked (TypeError / RangeError naming the key).
bp::LossOptions read_loss_options(const Napi::Object& o);

// {loss, groups: {name: {loss, density, tensors}}}.
Napi::Object regularization_to_js(Napi::Env env, const bp::RegularizationResult& r);

}  // namespace bpn
