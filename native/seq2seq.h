// Encoder-decoder models (issue 18): BART and T5, as transformers 4.4.2 computes them. One interface for both
// families (the binding and the TypeScript Seq2SeqModel know only this file); each family implements it in its
// own file (bart.cc, t5.cc) with a loader that load_seq2seq picks by config.json model_type.
//
// Names: parameters under their HF state-dict names ("model.encoder.layers.0.self_attn.q_proj.weight",
// "encoder.block.0.layer.0.SelfAttention.q.weight"); tied embeddings are stored once ("model.shared.weight" /
// "shared.weight") and tied on load, as current checkpoints do.
//
// Outputs, by HF's names (the fixtures' io.safetensors): "logits" (conditional generation [B, T, vocab];
// classification [B, labels]), "loss" (with labels), "encoder_last_hidden_state", and when asked
// "encoder_hidden_states.{0..L}", "decoder_hidden_states.{0..L}", "encoder_attentions.i",
// "decoder_attentions.i", "cross_attentions.i" ([B, heads, target, source]).
#pragma once

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include <nlohmann/json.hpp>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "masks.h"
#include "safetensors.h"

namespace bp {

struct Seq2SeqBatch {
  at::Tensor input_ids;               // [B, S] int64
  at::Tensor attention_mask;          // [B, S] int64 (1 token, 0 padding); undefined = all ones
  at::Tensor decoder_input_ids;       // [B, T] int64; undefined: shifted right from labels (the family's rule)
  at::Tensor decoder_attention_mask;  // [B, T] int64; undefined = all ones (HF's default)
  at::Tensor labels;                  // generation: [B, T] int64, -100 ignored; classification: [B]
};

struct Seq2SeqFlags {
  bool hidden_states = false;
  bool attentions = false;
};

// The structure of a compact model (compact_seq2seq), as its config.json carries it; BERT's conventions
// (config.h: pruned_heads, intermediate_sizes) per stack. Absent fields: the full model. Both families read them.
//   "encoder_pruned_heads": {"layer": [heads]}  encoder self-attention heads removed (original indices)
//   "decoder_pruned_heads": {"layer": [heads]}  decoder self-attention
//   "cross_pruned_heads":   {"layer": [heads]}  decoder cross-attention
//   "encoder_intermediate_sizes": [width per layer]  FFN widths (BART encoder_ffn_dim, T5 d_ff when absent)
//   "decoder_intermediate_sizes": [width per layer]
// A config that names a layer or head the model lacks, removes every head of a block, or lists the wrong number
// of widths is E_BAD_CONFIG naming the field; weights of another shape are E_BAD_CHECKPOINT naming the tensor.
// T5: block 0's relative_attention_bias stays [buckets, num_heads] (every block adds it); a block with removed
// heads adds the columns of its kept heads.
struct Seq2SeqStructure {
  std::map<int64_t, std::set<int64_t>> encoder_pruned_heads, decoder_pruned_heads, cross_pruned_heads;
  std::vector<int64_t> encoder_intermediate_sizes, decoder_intermediate_sizes;  // empty: the config's one width

  // Reads (and checks) the fields above of `j` for a model of these sizes.
  static Seq2SeqStructure from_json(const nlohmann::json& j, const std::string& source, int64_t encoder_layers, int64_t decoder_layers,
                                    int64_t encoder_heads, int64_t decoder_heads, int64_t encoder_ffn, int64_t decoder_ffn);
  // Writes them into `j` (removing those that are empty).
  void to_json(nlohmann::json& j) const;
  // The original indices of the heads a block keeps (stack "encoder" | "decoder", role "self" | "cross").
  std::vector<int64_t> kept_heads(const std::string& stack, const std::string& role, int64_t layer, int64_t heads) const;
  // A layer's FFN width (`full` unless given).
  int64_t ffn_width(const std::string& stack, int64_t layer, int64_t full) const;
};

// What compact_seq2seq did.
struct Seq2SeqCompactReport {
  int64_t parameters_before = 0, parameters_after = 0;
  struct Block {  // prunable_blocks() order
    std::string kind, stack, role;
    int64_t layer = 0;
    std::vector<int64_t> kept, removed;         // attention: original head indices
    int64_t width_before = 0, width_after = 0;  // ffn
  };
  std::vector<Block> blocks;
};

// What a model says of itself (the binding's info()).
struct Seq2SeqInfo {
  std::string model_type;    // "bart" | "t5"
  std::string architecture;  // "BartForConditionalGeneration", "BartForSequenceClassification", "T5ForConditionalGeneration"
  std::string config_json;   // config.json as loaded
  int64_t vocab_size = 0, d_model = 0, encoder_layers = 0, decoder_layers = 0, heads = 0, num_labels = 0;
  int64_t pad_token_id = 0, eos_token_id = 0, decoder_start_token_id = 0;
  int64_t num_parameters = 0;  // tied tensors once
};

// A part pruning masks as one unit (patch.h), listed by the family in forward order, with HF module names.
//   attention: linears {q, k, v, out} of one attention block (encoder self, decoder self or cross);
//   ffn: linears {intermediate, output} of one FFN, or {intermediate, gate, output} for T5's gated GELU
//   (wi_0, wi_1, wo: the gate shares the intermediate's unit scores).
struct PrunableBlock {
  std::string kind;   // "attention" | "ffn"
  std::string stack;  // "encoder" | "decoder"
  int64_t layer = 0;
  std::string role;  // attention: "self" | "cross"; ffn: ""
  std::vector<std::string> linears;
  int64_t heads = 0, head_dim = 0;  // attention
  int64_t width = 0;                // ffn: intermediate units
};

// What incremental decoding keeps between steps: the family's own (the encoder output and its mask, the
// cross-attention keys and values computed once, the self-attention keys and values of the steps so far).
struct DecoderCache {
  virtual ~DecoderCache() = default;
};

class Seq2SeqImpl : public torch::nn::Module {
 public:
  virtual ~Seq2SeqImpl() = default;

  // Incremental decoding, what generation (native/generate.h) drives; eval mode, no autograd. The defaults
  // refuse (E_INVALID_ARG: a classification model does not generate).
  // start: runs the encoder on [N, S] ids and mask (undefined = all ones); the cache holds N rows.
  virtual std::unique_ptr<DecoderCache> start(const at::Tensor& input_ids, const at::Tensor& attention_mask);
  // step: one token per row ([N] int64) at decoder position `position` (0 = the decoder start token); appends
  // to the cache and returns the next-token logits [N, vocab] exactly as forward() would give them at that
  // position (final_logits_bias, T5's d_model^-0.5 scaling included; no generation processing).
  virtual at::Tensor step(DecoderCache& cache, const at::Tensor& tokens, int64_t position);
  // select: keeps the cache rows `index` ([N'] int64) in that order (beams expanded after start, or reordered).
  virtual void select(DecoderCache& cache, const at::Tensor& index);

  // One eval-mode forward (no autograd) unless the caller enables grad; throws bp::Error (E_INVALID_ARG /
  // E_SHAPE) naming the input for bad shapes or ids out of range.
  virtual NamedTensors forward(const Seq2SeqBatch& batch, const Seq2SeqFlags& flags) = 0;
  virtual Seq2SeqInfo info() const = 0;
  // The attention blocks and FFNs pruning may mask, in forward order (encoder layers, then decoder layers).
  virtual std::vector<PrunableBlock> prunable_blocks() const = 0;

  // Pruning (patch.h: patch_seq2seq): the threshold every masked linear reads, null until patched, and the plan
  // applied. The masks live on the linears (LinearImpl::mask), so forward, start and step compute with W * M.
  std::shared_ptr<PruningState> pruning_state;
  nlohmann::json pruning_plan;
  bool is_patched() const { return pruning_state != nullptr; }
};

// Compaction of an encoder-decoder model (seq2seq_compact.cc), compact.h's rules for every attention block
// (encoder self, decoder self, cross) and both stacks' FFNs. Works on the baked weights of the model (patched:
// W * M and BART's bias masks at the current threshold); `model` is untouched (the caller holds its lock).
//   FFN cross-zeroing: an intermediate unit is dead when its row in wi (BART fc1; T5 gated: wi_0 or wi_1) or its
//   column in wo (fc2) is all zero; a dead unit's rows and column are zeroed everywhere.
//   Heads, rule "exact" (the default): a head goes when its output is zero whatever it attends to: its value
//   rows (and their bias) or its output projection's columns all zero; the outputs are then exactly the masked
//   model's. Rule "reference" (nn_pruning's, BERT's compact.h): a head survives only if its slice has a non-zero
//   weight in q, k AND v, so a head with zero queries or keys also goes, although it still attended (uniformly,
//   or by T5's position bias) and added its values' mean: the outputs change (the fixtures' quirk_dead_matrix_head).
//   Either way, if no head of a block would survive, head 0 stays.
//   FFN units: "exact" counts an input row as zero only when its bias is zero too (act(bias) need not be 0).
//   mode "dense": dead FFN units go (at least one stays); "heads": FFN widths unchanged.
// The result is unpatched, eval mode, on the model's device, with the structure in its config (above).
std::shared_ptr<Seq2SeqImpl> compact_seq2seq(const Seq2SeqImpl& model, const std::string& mode, Seq2SeqCompactReport* report,
                                             const std::string& rule = "exact");

// The families' loaders (bart.cc, t5.cc): the model of `dir` on `device`, from its config.json (`config`, read
// once by load_seq2seq from `config_path`) and its weights; E_BAD_CONFIG / E_BAD_CHECKPOINT naming the file and
// the field or tensor. (Called by name, not registered from static initialisers: the core is a static library,
// whose linker drops objects nothing references.)
std::shared_ptr<Seq2SeqImpl> load_bart(const nlohmann::json& config, const std::string& config_path, const std::string& dir, const std::string& device);
std::shared_ptr<Seq2SeqImpl> load_t5(const nlohmann::json& config, const std::string& config_path, const std::string& dir, const std::string& device);

// The model of `dir` by its config.json model_type; E_BAD_CONFIG naming the types known for another.
std::shared_ptr<Seq2SeqImpl> load_seq2seq(const std::string& dir, const std::string& device = "cpu");

// The families read config.json with read_json_file (config.h) and their weights with read_weights
// (checkpoint.h: model.safetensors, a sharded index or pytorch_model.bin), and load them with load_named.

// Copies `weights` into `module`'s parameters and buffers by name: every parameter and buffer (register only
// persistent ones) must be given with its shape, and no stored tensor may be left unused; E_BAD_CHECKPOINT
// names the first missing, unexpected or misshapen tensor. `aliases` maps a module name to the stored name it
// shares (e.g. "lm_head.weight" -> "model.shared.weight"); a stored tensor under an aliased module name (an
// older checkpoint's own copy) is accepted and left, the tie wins.
void load_named(torch::nn::Module& module, const NamedTensors& weights, const std::vector<std::pair<std::string, std::string>>& aliases,
                const std::string& source);

}  // namespace bp
