// T5 (T5ForConditionalGeneration) as transformers 4.4.2 computes it, behind seq2seq.h's interface. Modules are
// registered under HF's state-dict names ("encoder.block.0.layer.0.SelfAttention.q.weight"), so load_named maps
// a checkpoint 1:1. The embedding is registered once, as "shared": the stacks' embed_tokens and (when tied)
// lm_head use that tensor, so the tie holds in training too, not only on load.
#pragma once

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "bert.h"
#include "seq2seq.h"

namespace bp {

struct T5Config {
  int64_t vocab_size = 0, d_model = 0, d_kv = 0, d_ff = 0, num_layers = 0, num_decoder_layers = 0, num_heads = 0;
  int64_t relative_attention_num_buckets = 32;
  double layer_norm_epsilon = 1e-6;
  double dropout_rate = 0.1;  // T5Config's default; active in train mode only (training: seq2seq_training.h)
  bool gated_gelu = false;  // feed_forward_proj "gated-gelu" (t5 v1.1): wi_0, wi_1; else "relu": wi
  bool tie_word_embeddings = true;
  int64_t pad_token_id = 0, eos_token_id = 1;
  int64_t decoder_start_token_id = -1;  // -1: not in config.json (4.4.2 then refuses to shift labels)
  nlohmann::json raw;
  Seq2SeqStructure structure;  // a compact model's heads and FFN widths (seq2seq.h)

  // E_BAD_CONFIG naming `source` and the field. The sizes are required (they must match the weights); the
  // other fields take T5Config's defaults.
  static T5Config from_json(const nlohmann::json& j, const std::string& source);
};

// T5's position buckets of `rel` (key position - query position), 4.4.2's _relative_position_bucket with
// max_distance 128, in the same float32 operations.
at::Tensor t5_relative_buckets(const at::Tensor& rel, bool bidirectional, int64_t num_buckets);

// T5LayerNorm: an RMS norm, w * x / sqrt(mean(x^2) + eps); no mean subtraction, no bias.
struct T5LayerNormImpl : torch::nn::Module {
  T5LayerNormImpl(int64_t dim, double eps);
  at::Tensor forward(const at::Tensor& x) const;
  at::Tensor weight;
  double eps;
};
TORCH_MODULE(T5LayerNorm);

// T5Attention: q, k, v, o without bias, no 1/sqrt(d_kv) scaling; block 0 of a self-attention stack owns
// relative_attention_bias [buckets, heads].
struct T5AttentionImpl : torch::nn::Module {
  // `kept`: the original indices of the heads this block has (a compact block has fewer than num_heads); the
  // relative bias table (block 0) keeps all num_heads columns, since every block of the stack adds it.
  T5AttentionImpl(const T5Config& c, bool has_relative_bias, bool bidirectional, const std::vector<int64_t>& kept);
  // [1, H, q_len, k_len]: the bias every block of the stack adds (block 0's table), for query positions
  // q_from .. q_from + q_len - 1 (incremental decoding asks for one row) against keys 0 .. k_len - 1.
  at::Tensor compute_bias(int64_t q_len, int64_t k_len, int64_t q_from = 0) const;
  // x [B, Tq, D]; kv [B, Tk, D] (x itself for self-attention); bias [B|1, H, Tq, Tk], position bias plus mask.
  // Writes the probabilities to *probs when given.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& kv, const at::Tensor& bias, at::Tensor* probs) const;
  // [B, T, D] through `proj` (q, k or v) -> [B, H, T, d_kv]: what incremental decoding caches.
  at::Tensor heads_of(const Linear& proj, const at::Tensor& x) const;
  // The attention of projected q [B, H, Tq, d_kv] on k, v [B, H, Tk, d_kv], through o: [B, Tq, D]. A bias of
  // all num_heads (block 0's) is cut to this block's kept heads.
  at::Tensor attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& bias, at::Tensor* probs) const;
  Linear q{nullptr}, k{nullptr}, v{nullptr}, o{nullptr};
  Embedding relative_attention_bias{nullptr};
  int64_t heads, d_kv, buckets;
  std::vector<int64_t> kept_heads;  // empty: all num_heads
  bool bidirectional;
  double dropout;  // on the attention probabilities (train mode)
};
TORCH_MODULE(T5Attention);

// One block: layer.0 self-attention, (decoder) layer.1 cross-attention, then the FFN layer, each pre-normed
// and residual.
struct T5BlockImpl : torch::nn::Module {
  T5BlockImpl(const T5Config& c, bool decoder, int64_t layer);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& self_bias, const at::Tensor& enc, const at::Tensor& cross_bias,
                     at::Tensor* self_probs, at::Tensor* cross_probs) const;
  at::Tensor ffn(const at::Tensor& x) const;
  // One decoder position, x [N, 1, D]: appends this position's self-attention keys and values to self_k /
  // self_v ([N, H, t, d_kv]) and attends to them and to the cached cross-attention cross_k / cross_v.
  at::Tensor step(const at::Tensor& x, const at::Tensor& self_bias, at::Tensor& self_k, at::Tensor& self_v, const at::Tensor& cross_k,
                  const at::Tensor& cross_v, const at::Tensor& cross_bias) const;
  T5Attention self_attn{nullptr}, cross_attn{nullptr};
  T5LayerNorm self_norm{nullptr}, cross_norm{nullptr}, ffn_norm{nullptr};
  Linear wi{nullptr}, wi_0{nullptr}, wi_1{nullptr}, wo{nullptr};
  double dropout;  // 4.4.2's places: each sublayer's output, inside the FFN (train mode)
};
TORCH_MODULE(T5Block);

// T5Stack: blocks then final_layer_norm. The embedding is the model's "shared" table, passed in.
struct T5StackImpl : torch::nn::Module {
  T5StackImpl(const T5Config& c, bool decoder);
  struct Out {
    at::Tensor last;
    std::vector<at::Tensor> hidden, self_probs, cross_probs;
  };
  // bias: position bias plus the self-attention mask [B, H, T, T]; enc / cross_bias for the decoder.
  Out forward(const at::Tensor& embeds, const at::Tensor& bias, const at::Tensor& enc, const at::Tensor& cross_bias, const Seq2SeqFlags& flags) const;
  std::vector<T5Block> blocks;
  T5LayerNorm final_layer_norm{nullptr};
  double dropout;  // on the embeddings and after the final norm (train mode)
};
TORCH_MODULE(T5Stack);

class T5Model : public Seq2SeqImpl {
 public:
  T5Model(const T5Config& c, std::string config_json);
  NamedTensors forward(const Seq2SeqBatch& batch, const Seq2SeqFlags& flags) override;
  Seq2SeqInfo info() const override;
  // Per block: layer.0 SelfAttention, (decoder) layer.1 EncDecAttention, then the DenseReluDense pair (wi, wo; or
  // gated: wi_0, wi_1 as the gate, wo).
  std::vector<PrunableBlock> prunable_blocks() const override;
  // Incremental decoding (seq2seq.h): the cache is a T5Cache (t5.cc); step adds block 0's position bias of
  // the one query row `position` against keys 0..position, recomputed per step (a [H, position + 1] lookup).
  std::unique_ptr<DecoderCache> start(const at::Tensor& input_ids, const at::Tensor& attention_mask) override;
  at::Tensor step(DecoderCache& cache, const at::Tensor& tokens, int64_t position) override;
  void select(DecoderCache& cache, const at::Tensor& index) override;
  // The LM head on the decoder's final output: lm_head, or (tied) shared^T after the d_model^-0.5 scaling.
  at::Tensor head(const at::Tensor& h) const;
  // 4.4.2's _shift_right: [decoder_start_token_id, labels[:-1]] with -100 -> pad.
  at::Tensor shift_right(const at::Tensor& labels) const;
  // The names a checkpoint may store for the shared table (older checkpoints keep their tied copies).
  std::vector<std::pair<std::string, std::string>> tied_aliases() const;

  T5Config config;
  std::string config_json;
  Embedding shared{nullptr};
  T5Stack encoder{nullptr}, decoder{nullptr};
  Linear lm_head{nullptr};  // untied models only (tie_word_embeddings false)
};

}  // namespace bp
