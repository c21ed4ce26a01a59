#include "loss_args.h"

#include <cmath>

#include "worker.h"

namespace bpn {

bp::LossOptions read_loss_options(const Napi::Object& o) {
  bp::LossOptions lo;
  lo.regularization = get_string_opt(o, "regularization", "disabled");
  if (lo.regularization != "disabled" && lo.regularization != "l1" && lo.regularization != "l0")
    throw_range_error(o.Env(), "Expected 'disabled', 'l1' or 'l0' for regularization but received '" + lo.regularization + "'");
  auto num = [&](const char* key, double def) {
    Napi::Value v = o.Get(key);
    if (v.IsUndefined() || v.IsNull()) return def;
    if (!v.IsNumber() || !std::isfinite(v.As<Napi::Number>().DoubleValue()))
      throw_type_error(o.Env(), std::string("Expected a finite number for ") + key + " but received " + describe(v));
    return v.As<Napi::Number>().DoubleValue();
  };
  lo.lambda = num("lambda", 0);
  lo.attention_lambda = num("attentionLambda", 1);
  lo.dense_lambda = num("denseLambda", 1);
  return lo;
}

Napi::Object regularization_to_js(Napi::Env env, const bp::RegularizationResult& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("loss", Napi::Number::New(env, r.loss.defined() ? r.loss.item<double>() : 0.0));
  Napi::Object groups = Napi::Object::New(env);
  for (const auto& g : r.groups) {
    Napi::Object gj = Napi::Object::New(env);
    gj.Set("loss", g.loss);
    gj.Set("density", g.density);
    gj.Set("tensors", Napi::Number::New(env, static_cast<double>(g.tensors)));
    groups.Set(g.name, gj);
  }
  o.Set("groups", groups);
  return o;
}

}  // namespace bpn
