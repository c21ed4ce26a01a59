// BART (issue 18) as transformers 4.4.2's modeling_bart computes it: BartForConditionalGeneration and
// BartForSequenceClassification behind seq2seq.h's interface. Modules are registered under HF's state-dict names
// ("model.encoder.layers.0.self_attn.q_proj.weight"), so load_named maps a checkpoint 1:1; the token table is
// registered once, as "model.shared" (the encoder's and decoder's embed_tokens and the LM head use it), and the
// LM head's final_logits_bias is a persistent buffer. Declared here so that pruning (patching, compaction) can
// reach the layers later.
#pragma once

#include <torch/nn/modules/container/modulelist.h>

#include <string>

#include "bert.h"
#include "seq2seq.h"

namespace bp {

// BartConfig's fields that the forward reads. Sizes and token ids are required in config.json
// (E_BAD_CONFIG naming a missing one); the rest takes BartConfig's defaults.
struct BartConfig {
  int64_t vocab_size = 0, d_model = 0, encoder_layers = 0, decoder_layers = 0;
  int64_t encoder_attention_heads = 0, decoder_attention_heads = 0, encoder_ffn_dim = 0, decoder_ffn_dim = 0;
  int64_t max_position_embeddings = 0;
  int64_t pad_token_id = 1, eos_token_id = 2, decoder_start_token_id = 2;
  int64_t num_labels = 3;  // BartConfig's default in 4.4.2; id2label's size when present
  std::string activation_function = "gelu";
  bool scale_embedding = false;
  double dropout = 0.1, attention_dropout = 0.0, activation_dropout = 0.0, classifier_dropout = 0.0;
  bool classification = false;  // BartForSequenceClassification (else BartForConditionalGeneration)
  Seq2SeqStructure structure;    // a compact model's heads and FFN widths (seq2seq.h)
  std::string config_json;

  static BartConfig from_json(const nlohmann::json& j, const std::string& source);
};

// BartAttention: q = q_proj(x) * head_dim^-0.5 (after the bias), softmax(q k^T + mask) v, out_proj. Keys and
// values come from `kv` (x itself for self-attention, the encoder output for cross-attention).
struct BartAttentionImpl : torch::nn::Module {
  // `heads` of `head_dim` each (a compact block has fewer than d_model / head_dim).
  BartAttentionImpl(int64_t d_model, int64_t heads, int64_t head_dim, double dropout);
  // mask: additive, broadcastable to [B, heads, T, S]; `probs` receives the softmax when non-null.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& kv, const at::Tensor& mask, at::Tensor* probs) const;
  // The two halves of forward, for incremental decoding: `kv`'s keys and values split by head ([B, heads, S,
  // head_dim]), and x's attention over given ones (mask undefined = none).
  std::pair<at::Tensor, at::Tensor> keys_values(const at::Tensor& kv) const;
  at::Tensor attend(const at::Tensor& x, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask, at::Tensor* probs) const;
  Linear k_proj{nullptr}, v_proj{nullptr}, q_proj{nullptr}, out_proj{nullptr};
  int64_t heads, head_dim;
  double dropout;
};
TORCH_MODULE(BartAttention);

// BartEncoderLayer / BartDecoderLayer (post-LN): x = LN(x + SelfAttn(x)); decoder only x = LN(x + CrossAttn(x,
// enc)); x = LN(x + fc2(act(fc1(x)))).
struct BartLayerImpl : torch::nn::Module {
  BartLayerImpl(const BartConfig& c, bool decoder, int64_t layer);
  // `enc`/`cross_mask` only in the decoder; `self_probs`/`cross_probs` receive the attention maps when non-null.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& self_mask, const at::Tensor& enc, const at::Tensor& cross_mask,
                     at::Tensor* self_probs, at::Tensor* cross_probs) const;
  // One decoder step ([N, 1, d_model]): appends x's self-attention keys and values to `self` and attends over
  // them (a step sees every earlier position: no causal mask), then over the cached cross keys and values.
  at::Tensor step(const at::Tensor& x, std::pair<at::Tensor, at::Tensor>& self, const std::pair<at::Tensor, at::Tensor>& cross,
                  const at::Tensor& cross_mask) const;
  // x = LN(x + fc2(act(fc1(x)))): the end of both.
  at::Tensor feed_forward(const at::Tensor& h) const;
  BartAttention self_attn{nullptr}, encoder_attn{nullptr};
  LayerNorm self_attn_layer_norm{nullptr}, encoder_attn_layer_norm{nullptr}, final_layer_norm{nullptr};
  Linear fc1{nullptr}, fc2{nullptr};
  std::string act;
  double dropout, activation_dropout;
};
TORCH_MODULE(BartLayer);

// BartEncoder / BartDecoder: its own learned positions (offset 2), layernorm_embedding, the layers. The token
// table is the model's shared one (not registered here).
struct BartStackImpl : torch::nn::Module {
  BartStackImpl(const BartConfig& c, bool decoder);
  int64_t max_length() const { return embed_positions->weight.size(0) - kPositionOffset; }
  static constexpr int64_t kPositionOffset = 2;  // BartLearnedPositionalEmbedding's fixed offset
  Embedding embed_positions{nullptr};
  LayerNorm layernorm_embedding{nullptr};
  torch::nn::ModuleList layers;
  std::vector<BartLayer> layer_list;
  double embed_scale, dropout;
};
TORCH_MODULE(BartStack);

// BartModel: "shared", "encoder", "decoder".
struct BartModelImpl : torch::nn::Module {
  explicit BartModelImpl(const BartConfig& c);
  Embedding shared{nullptr};
  BartStack encoder{nullptr}, decoder{nullptr};
};
TORCH_MODULE(BartModel);

class BartImpl : public Seq2SeqImpl {
 public:
  explicit BartImpl(BartConfig c);
  NamedTensors forward(const Seq2SeqBatch& batch, const Seq2SeqFlags& flags) override;
  Seq2SeqInfo info() const override;
  // Per layer: self_attn, (decoder) encoder_attn, then fc1/fc2.
  std::vector<PrunableBlock> prunable_blocks() const override;
  // Incremental decoding (seq2seq.h): the encoder once, each decoder layer's cross keys and values once, its
  // self-attention keys and values appended per step (BartCache in bart.cc). Classification refuses.
  std::unique_ptr<DecoderCache> start(const at::Tensor& input_ids, const at::Tensor& attention_mask) override;
  at::Tensor step(DecoderCache& cache, const at::Tensor& tokens, int64_t position) override;
  void select(DecoderCache& cache, const at::Tensor& index) override;
  // Shapes and ranges of a batch (and, for classification, the eos rule); E_SHAPE / E_INVALID_ARG naming the
  // input. Reads only the config.
  void check_batch(const Seq2SeqBatch& b) const;
  const BartConfig& config() const { return config_; }

  BartModel model{nullptr};
  at::Tensor final_logits_bias;               // [1, vocab], conditional generation only
  Linear cls_dense{nullptr}, cls_out{nullptr};  // "classification_head.dense" / ".out_proj"

 private:
  // Token embedding (scaled) + learned positions from `position` on, then layernorm_embedding and dropout.
  at::Tensor embed(const BartStackImpl& stack, const at::Tensor& ids, int64_t position) const;
  // The encoder over ids and its additive padding mask; each layer's output (and map) into `out` when asked.
  at::Tensor encode(const at::Tensor& ids, const at::Tensor& src_mask, const Seq2SeqFlags& flags, NamedTensors& out) const;
  at::Device device() const;

  const BartConfig config_;
};

// shift_tokens_right (4.4.2): [start, ids[:-1]] with -100 replaced by pad.
at::Tensor bart_shift_tokens_right(const at::Tensor& ids, int64_t pad_token_id, int64_t decoder_start_token_id);

}  // namespace bp
