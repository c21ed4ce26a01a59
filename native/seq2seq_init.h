// Encoder-decoder models from a config alone (issue 18): random weights by HF's _init_weights rules, and the
// save that fromPretrained (load_seq2seq) reads back. For training from scratch and for tests that need a model
// of a given shape without a checkpoint.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "seq2seq.h"

namespace bp {

// The model `config_json` describes (model_type bart or t5, as load_seq2seq reads it; E_BAD_CONFIG naming the
// field otherwise), with init_seq2seq_weights(seed), on `device`, in eval mode.
std::shared_ptr<Seq2SeqImpl> create_seq2seq(const std::string& config_json, uint64_t seed, const std::string& device);

// The model of config.json's content `j` (model_type bart or t5; E_BAD_CONFIG naming `source` and the field
// otherwise), uninitialised, on the CPU: what create_seq2seq and compaction (seq2seq_compact.cc) build.
std::shared_ptr<Seq2SeqImpl> build_seq2seq(const nlohmann::json& j, const std::string& source);

// Random weights from a generator of its own seeded with `seed` (the process's generator is untouched; the same
// seed gives the same weights), drawn in named_modules order, as transformers 4.4.2's _init_weights sets them:
// - BART: Linear and Embedding weights normal(0, init_std (config, default 0.02)), biases 0, every embedding's
//   padding row 0, LayerNorm 1 and 0, final_logits_bias 0.
// - T5 (factor = initializer_factor, default 1): shared normal(0, factor); q normal(0, factor (d_model d_kv)^-0.5),
//   k and v factor d_model^-0.5, o factor (heads d_kv)^-0.5, relative_attention_bias factor d_model^-0.5; wi,
//   wi_0, wi_1 factor d_model^-0.5, wo factor d_ff^-0.5; T5LayerNorm weights factor. An untied lm_head, which
//   4.4.2's _init_weights does not visit, gets torch.nn.Linear's default: uniform(-d_model^-0.5, d_model^-0.5).
void init_seq2seq_weights(Seq2SeqImpl& model, uint64_t seed);

// Writes `dir`/config.json (the model's config as loaded) and `dir`/model.safetensors (every parameter and
// persistent buffer under its HF name; the tied token table once, as "model.shared.weight" / "shared.weight"),
// replacing `dir` atomically (write_directory_atomic: a failure or a kill leaves the previous content whole), with
// copies of `copy_files` (the tokenizer's) under their base names, as BERT's save_pretrained.
void save_seq2seq(const Seq2SeqImpl& model, const std::string& dir, const std::vector<std::string>& copy_files = {});

}  // namespace bp
