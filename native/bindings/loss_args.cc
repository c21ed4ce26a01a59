#include "loss_args.h"

#include <cmath>

#include "errors.h"
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
  Napi::Value budget = o.Get("budget");
  if (!budget.IsUndefined() && !budget.IsNull()) lo.budget = std::make_shared<const bp::BudgetSpec>(read_budget(get_object(budget, "budget")));
  return lo;
}

bp::BudgetSpec read_budget(const Napi::Object& o) {
  Napi::Env env = o.Env();
  auto finite = [&](const Napi::Value& v, const std::string& key) {
    if (!v.IsNumber() || !std::isfinite(v.As<Napi::Number>().DoubleValue()))
      throw_type_error(env, "Expected a finite number for budget." + key + " but received " + describe(v));
    return v.As<Napi::Number>().DoubleValue();
  };
  auto num = [&](const Napi::Object& from, const std::string& key) { return finite(from.Get(key), key); };
  auto table = [&](const char* key) {
    Napi::Object t = get_object(o.Get(key), std::string("budget.") + key);
    bp::PiecewiseLinear f;
    for (const char* axis : {"x", "y"}) {
      Napi::Value a = t.Get(axis);
      if (!a.IsArray()) throw_type_error(env, std::string("Expected an array for budget.") + key + "." + axis + " but received " + describe(a));
      Napi::Array arr = a.As<Napi::Array>();
      auto& into = axis[0] == 'x' ? f.x : f.y;
      for (uint32_t i = 0; i < arr.Length(); ++i) into.push_back(finite(arr.Get(i), std::string(key) + "." + axis + "[" + std::to_string(i) + "]"));
    }
    return f;
  };
  bp::BudgetSpec b;
  b.constant = num(o, "constant");
  b.heads = table("heads");
  b.units = table("units");
  b.target = num(o, "target");
  b.dense = num(o, "dense");
  b.lambda1 = num(o, "lambda1");
  b.lambda2 = num(o, "lambda2");
  b.threshold = num(o, "threshold");
  try {
    b.validate();
  } catch (const bp::Error& e) {
    throw_range_error(env, e.what());
  }
  return b;
}

Napi::Object budget_to_js(Napi::Env env, const bp::BudgetCost& c) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("expected", Napi::Number::New(env, c.expected.item<double>()));
  o.Set("term", Napi::Number::New(env, c.term.item<double>()));
  o.Set("hard", Napi::Number::New(env, c.hard));
  auto list = [&](const auto& xs) {
    Napi::Array a = Napi::Array::New(env, xs.size());
    for (size_t i = 0; i < xs.size(); ++i) a.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(xs[i])));
    return a;
  };
  o.Set("heads", list(c.heads));
  o.Set("units", list(c.units));
  o.Set("hardHeads", list(c.hard_heads));
  o.Set("hardUnits", list(c.hard_units));
  return o;
}

nlohmann::json read_plan(Napi::Env env, const Napi::Value& text) {
  const std::string plan_text = get_string(text, "plan");
  nlohmann::json plan;
  guarded(env, [&] {
    try {
      plan = nlohmann::json::parse(plan_text);
    } catch (const nlohmann::json::exception& e) {
      throw bp::Error("E_INVALID_ARG", std::string("pruning plan is not valid JSON (") + e.what() + ")");
    }
  });
  return plan;
}

Napi::Object patch_report_to_js(Napi::Env env, const bp::PatchReport& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("modules", strings_to_js(env, r.modules));
  o.Set("scoreParameters", Napi::Number::New(env, static_cast<double>(r.score_parameters)));
  return o;
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
