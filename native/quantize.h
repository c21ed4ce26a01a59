// Quantized models (issue 16): the six linears of every encoder layer hold int8 weights with per-channel (or
// per-tensor) scales, or bf16 weights (LinearImpl in bert.h; the number semantics are fast/quant.h's);
// embeddings, LayerNorms, the pooler and the heads stay fp32. The model's config says so in
// "quantization_config", saved in config.json: that is how a saved model reloads quantized.
//   {"quant_method": "blockprune", "dtype": "int8" | "bf16",
//    "weights": "symmetric-per-channel" | "symmetric-per-tensor" (int8) | "bf16",
//    "activations": "dynamic-per-row" (int8) | "bf16"}
// A quantized model is for inference: training, gradients, patching and compaction refuse it (coded errors
// naming the operation); quantize the fp32 model again after changing it.
#pragma once

#include <string>

#include "bert.h"

namespace bp {

struct QuantSpec {
  bool quantized = false;
  fast::QuantFormat format = fast::QuantFormat::kInt8;
  bool per_channel = true;
};

// What config.raw["quantization_config"] says (absent or null: not quantized). Throws E_BAD_CONFIG naming
// `source` and the field.
QuantSpec quant_spec(const BertConfig& config, const std::string& source);
// "fp32" | "int8" | "bf16".
const char* dtype_name(const QuantSpec& spec);

// A quantized copy of an fp32 model (the input is untouched), dtype "int8" or "bf16". Refuses a patched
// model (its masks are not baked in: compile or compact it first) and a model already quantized.
Bert quantize_model(const Bert& model, const std::string& dtype, bool per_channel);

// Quantizes, in place, the encoder linears of a model just built from a config that has a
// quantization_config (the loader then overwrites them with the checkpoint's values).
void apply_quant_layout(Bert& model);

// Whether parameter `name` is an int8 linear's scales ("....weight_scale"): fp32, but read as stored.
bool is_weight_scale(const std::string& name);

// Values a stored tensor for a quantized parameter must hold: int8 weights within [-127, 127] (quant.h's
// symmetric range), scales that are positive. Throws E_BAD_CHECKPOINT naming `what` (the file and tensor).
// Every reader of stored tensors into a model calls it: from_pretrained and loadState.
void check_quantized_values(const at::Tensor& stored, at::ScalarType param, bool scale, const std::string& what);

// Throws E_INVALID_ARG naming `what` (e.g. "a train step") when the model is quantized.
void refuse_quantized(const Bert& model, const std::string& what);

}  // namespace bp
