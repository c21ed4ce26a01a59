#include "quantize.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <nlohmann/json.hpp>

#include "errors.h"
#include "patch.h"

namespace bp {

QuantSpec quant_spec(const BertConfig& config, const std::string& source) {
  QuantSpec spec;
  const auto it = config.raw.find("quantization_config");
  if (it == config.raw.end() || it->is_null()) return spec;
  const nlohmann::json& q = *it;
  auto field = [&](const char* name, std::initializer_list<const char*> allowed) -> std::string {
    const bool is_string = q.is_object() && q.contains(name) && q[name].is_string();
    const std::string got = is_string ? q[name].get<std::string>() : "";
    std::string list;
    for (const char* a : allowed) {
      if (got == a) return got;
      list += std::string(list.empty() ? "" : " or ") + "'" + a + "'";
    }
    throw Error("E_BAD_CONFIG", "invalid config " + source + ": quantization_config." + name + " must be " + list + " but is " +
                                    (q.is_object() && q.contains(name) ? q[name].dump() : "missing"));
  };
  if (!q.is_object()) throw Error("E_BAD_CONFIG", "invalid config " + source + ": quantization_config must be an object but is " + q.dump());
  field("quant_method", {"blockprune"});
  spec.quantized = true;
  if (field("dtype", {"int8", "bf16"}) == "int8") {
    spec.per_channel = field("weights", {"symmetric-per-channel", "symmetric-per-tensor"}) == "symmetric-per-channel";
    field("activations", {"dynamic-per-row"});
  } else {
    spec.format = fast::QuantFormat::kBf16;
    field("weights", {"bf16"});
    field("activations", {"bf16"});
  }
  return spec;
}

const char* dtype_name(const QuantSpec& spec) {
  if (!spec.quantized) return "fp32";
  return spec.format == fast::QuantFormat::kInt8 ? "int8" : "bf16";
}

namespace {
nlohmann::json config_of(const QuantSpec& s) {
  const bool int8 = s.format == fast::QuantFormat::kInt8;
  return {{"quant_method", "blockprune"},
          {"dtype", dtype_name(s)},
          {"weights", int8 ? (s.per_channel ? "symmetric-per-channel" : "symmetric-per-tensor") : "bf16"},
          {"activations", int8 ? "dynamic-per-row" : "bf16"}};
}
}  // namespace

bool is_weight_scale(const std::string& name) {
  static const std::string suffix = ".weight_scale";
  return name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

void check_quantized_values(const at::Tensor& stored, at::ScalarType param, bool scale, const std::string& what) {
  if (param == at::kChar && stored.numel() > 0 && stored.min().item<int64_t>() < -127)
    throw Error("E_BAD_CHECKPOINT", what + " holds -128, outside the symmetric int8 range [-127, 127]");
  if (scale && !(stored.gt(0).all().item<bool>())) throw Error("E_BAD_CHECKPOINT", what + " holds a scale that is not positive");
}

void refuse_quantized(const Bert& model, const std::string& what) {
  const QuantSpec s = quant_spec(model->config(), "model configuration");
  if (s.quantized)
    throw Error("E_INVALID_ARG", what + " needs an fp32 model, but this model is quantized (" + dtype_name(s) +
                                     "): run it on the fp32 model, then quantize again");
}

void apply_quant_layout(Bert& model) {
  const QuantSpec s = quant_spec(model->config(), "model configuration");
  if (!s.quantized) return;
  for (int64_t i = 0; i < model->num_layers(); ++i) {
    auto& l = model->layers_[static_cast<size_t>(i)];
    for (Linear* lin : {&l->query, &l->key, &l->value, &l->attn_out, &l->inter, &l->out}) (*lin)->quantize(s.format, s.per_channel);
  }
}

Bert quantize_model(const Bert& model, const std::string& dtype, bool per_channel) {
  if (dtype != "int8" && dtype != "bf16")
    throw Error("E_INVALID_ARG", "Expected 'int8' or 'bf16' for dtype but received '" + dtype + "'");
  if (is_patched(model))
    throw Error("E_INVALID_ARG", "quantize: the model is patched for pruning (its masks are not in the weights): compile() or compact() it first");
  const QuantSpec had = quant_spec(model->config(), "model configuration");
  if (had.quantized) throw Error("E_INVALID_ARG", std::string("quantize: the model is already quantized (") + dtype_name(had) + "): quantize its fp32 original");
  QuantSpec s;
  s.quantized = true;
  s.format = dtype == "int8" ? fast::QuantFormat::kInt8 : fast::QuantFormat::kBf16;
  s.per_channel = per_channel;
  BertConfig c = model->config();
  c.raw["quantization_config"] = config_of(s);
  Bert out(c, model->kind());
  {
    at::NoGradGuard no_grad;
    auto src = model->named_parameters();
    for (auto& item : out->named_parameters()) item.value().copy_(src[item.key()]);
  }
  apply_quant_layout(out);
  out->to(model->device());
  out->eval();
  return out;
}

}  // namespace bp
