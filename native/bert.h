// BERT-family encoders in libtorch, mirroring HF transformers' modeling_bert (and modeling_roberta,
// modeling_distilbert) module by module. Submodules are registered under the family's HF names (family.h), so
// named_parameters() yields HF state-dict keys ("bert.encoder.layer.0.attention.self.query.weight",
// "distilbert.transformer.layer.0.attention.q_lin.weight") and checkpoints load with no mapping table. Every layer has its own head count and FFN
// width, read from the config's per-layer fields and checked against the weights: compact models need that.
#pragma once

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>

#include <set>
#include <string>
#include <utility>
#include <vector>

#include "config.h"
#include "fast/fast_cpu.h"
#include "fast/quant.h"
#include "masks.h"

namespace bp {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

// Inference uses one fused q/k/v product per layer (default on); off only to measure what it brings.
void set_fused_qkv(bool on);

// HF's ACT2FN by name ("gelu" = exact erf GELU, "gelu_new", "relu", "silu", "tanh"); E_BAD_CONFIG for others.
at::Tensor activation(const at::Tensor& x, const std::string& act);

// A linear layer y = x W^T + b held as plain parameters ("weight" [out, in], "bias" [out]).
// Mirrors torch.nn.Linear; kept our own so the pruning core can swap in masked variants.
// When patched (pruning), `mask` holds the scores and method: the layer computes with W * M.
// Quantized (issue 16, native/quantize.h), `weight` is int8 [out, in] with `weight_scale` fp32 [out], or bf16
// [out, in]; the bias stays fp32. forward() then computes fast/quant.h's semantics with plain tensor ops: the
// reference the CPU kernels are checked against.
struct LinearImpl : torch::nn::Module {
  LinearImpl(int64_t in, int64_t out, bool bias = true);
  at::Tensor forward(const at::Tensor& x) const;
  // Replaces the fp32 weight by its quantized form, by quant.h's weight rule (per output channel, or one
  // scale for the whole tensor stored once per row).
  void quantize(fast::QuantFormat format, bool per_channel);
  bool quantized() const { return weight.scalar_type() == at::kChar || weight.scalar_type() == at::kBFloat16; }
  fast::QuantFormat quant_format() const { return weight.scalar_type() == at::kChar ? fast::QuantFormat::kInt8 : fast::QuantFormat::kBf16; }
  // The weight as fp32 (q * scale for int8, exact for bf16; the weight itself when not quantized).
  at::Tensor float_weight() const;
  at::Tensor weight, bias;
  at::Tensor weight_scale;  // int8 only
  std::shared_ptr<MaskState> mask;
};
TORCH_MODULE(Linear);

// torch.nn.LayerNorm over the last dimension.
struct LayerNormImpl : torch::nn::Module {
  LayerNormImpl(int64_t dim, double eps);
  at::Tensor forward(const at::Tensor& x) const;
  at::Tensor weight, bias;
  double eps;
};
TORCH_MODULE(LayerNorm);

// torch.nn.Embedding (a lookup table).
// padding_idx (HF: pad_token_id for word embeddings) gets no gradient, as in torch.nn.Embedding.
struct EmbeddingImpl : torch::nn::Module {
  EmbeddingImpl(int64_t num, int64_t dim, int64_t padding_idx = -1);
  at::Tensor forward(const at::Tensor& ids) const;
  at::Tensor weight;
  int64_t padding_idx;
};
TORCH_MODULE(Embedding);

// HF BertEmbeddings / RobertaEmbeddings / DistilBERT Embeddings: word + position (+ token type when the
// family has them), LayerNorm, dropout. RoBERTa's positions follow input_ids (family.h).
struct BertEmbeddingsImpl : torch::nn::Module {
  explicit BertEmbeddingsImpl(const BertConfig& c);
  at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& token_type_ids) const;
  // The position of each token: arange, or RoBERTa's create_position_ids_from_input_ids.
  at::Tensor position_ids(const at::Tensor& input_ids) const;
  Embedding word_embeddings{nullptr}, position_embeddings{nullptr}, token_type_embeddings{nullptr};
  LayerNorm LayerNorm_{nullptr};
  double dropout;
  PositionIds positions;
  int64_t padding_idx;
};
TORCH_MODULE(BertEmbeddings);

// One linear of the layers' CPU inference path (BertLayerImpl::forward_fast): fp32 weights on the fp32
// kernels, or a quantized linear on its own kernels (fast/quant.h). A quantized q/k/v product keeps its weights as they are and scales the query columns
// after the product (scale_cols, scale): folding 1/sqrt(head_dim) into int8 or bf16 weights would change
// what they round to.
struct FastLinear {
  fast::PackedLinear fp32;
  fast::QuantLinear quant;
  int64_t scale_cols = 0;
  float scale = 1.0f;
  int64_t n() const { return quant.empty() ? fp32.n() : quant.n(); }
  void forward(const float* x, int64_t m, float* y, int act, const float* residual) const;
};

// One post-LN encoder layer (HF BertLayer, RobertaLayer, DistilBERT's TransformerBlock: the same math), its
// modules registered where the family puts them ("attention.self.query" or "attention.q_lin", ...). `heads`
// heads of size head_dim (0: the layer skips attention) and an FFN of `width` units, both per layer.
struct BertLayerImpl : torch::nn::Module {
  BertLayerImpl(const BertConfig& c, int64_t layer_index);
  // Returns the layer output; `probs` receives the attention probabilities when non-null.
  at::Tensor forward(const at::Tensor& h, const at::Tensor& ext_mask, at::Tensor* probs) const;
  Linear query{nullptr}, key{nullptr}, value{nullptr}, attn_out{nullptr}, inter{nullptr}, out{nullptr};
  LayerNorm attn_norm{nullptr}, out_norm{nullptr};
  int64_t heads, head_dim;
  std::string act;
  double attention_dropout, hidden_dropout;

  // Inference: q, k and v in one product [B*S, H] x [H, 3*heads*D] with the weights concatenated once and
  // cached; the cache is rebuilt when any of the six tensors changes (their version counters move on every
  // in-place update: training steps, loadState). Returns an undefined tensor when masks are patched in.
  // When the head size is a power of 4, 1/sqrt(head_dim) is a power of two and is folded into the cached
  // query weights exactly (fused_scaled() is then true and the scores need no division).
  at::Tensor fused_qkv(const at::Tensor& h) const;
  bool fused_scaled() const { return fused_scaled_; }

  // Sequences packed without padding: sequence i is rows [offsets[i], offsets[i] + lengths[i]).
  struct Varlen {
    std::vector<int64_t> offsets, lengths;
  };
  // Whether the CPU inference path (fast_cpu.h) applies to this layer for h (no masks patched in, heads and
  // FFN units left, an activation it has, fp32 on CPU); packs (or re-packs) the weights when it does.
  bool prepare_fast(const at::Tensor& h) const;
  // That path, once prepare_fast(h) said yes; the caller checks eval mode and grad. With `varlen`, h is
  // [T, hidden] packed sequences and ext_mask is unused; without, ext_mask is fp32 [B, 1, 1, S].
  at::Tensor forward_fast(const at::Tensor& h, const at::Tensor& ext_mask, const Varlen* varlen = nullptr) const;

 private:
  int fast_act() const;
  mutable at::Tensor fused_weight_, fused_bias_;
  mutable std::vector<int64_t> fused_versions_;
  mutable bool fused_scaled_ = false;
  // Weights packed for it, rebuilt when any of the twelve tensors changes (version counters and storage).
  struct Packed {
    FastLinear qkv, attn_out, inter, out;
    std::vector<int64_t> versions;
  };
  mutable Packed packed_;
};
TORCH_MODULE(BertLayer);

struct ForwardOptions {
  bool hidden_states = false;  // "hidden_states.{0..L}" (0 = embeddings output)
  bool attentions = false;     // "attentions.{0..L-1}" (softmax probabilities)
  bool extras = false;         // "last_hidden_state" and "pooler_output" for task models too
};

struct Batch {
  at::Tensor input_ids;       // [B, S] int64
  at::Tensor attention_mask;  // [B, S] int64 (1 = token, 0 = padding); undefined = all ones
  at::Tensor token_type_ids;  // [B, S] int64; undefined = zeros
  at::Tensor labels;          // [B] int64 (classification), optional
  at::Tensor start_positions, end_positions;  // [B] int64 (question answering), optional
};

// An encoder of any family (config.family): HF BertModel / RobertaModel / DistilBertModel (embeddings, the
// layers, optional pooler) plus the task head of *ForSequenceClassification or *ForQuestionAnswering.
// Parameters live under the family's prefix ("bert.", "roberta.", "distilbert.") as in the task models; a
// bare checkpoint is mapped on load/save.
class BertImpl : public torch::nn::Module {
 public:
  BertImpl(BertConfig config, TaskKind kind);

  // Outputs by name: "logits" | "start_logits","end_logits" | "last_hidden_state","pooler_output",
  // plus "loss" when the batch has labels/positions, plus what `opts` asks for.
  NamedTensors forward(const Batch& batch, const ForwardOptions& opts = {});

  // HF's _init_weights: N(0, initializer_range) for linear and embedding weights, zero biases,
  // LayerNorm (1, 0), padding row zero. Deterministic for a seed.
  void init_weights(uint64_t seed);
  // Initialises the head linears whose weights a checkpoint lacked (`missing` holds parameter names), as HF
  // does for a task head (or RoBERTa's pooler) the checkpoint has not got.
  void init_head(uint64_t seed, const std::set<std::string>& missing);

  // Checks ranges and shapes of a batch, and that its labels are this task's; throws bp::Error E_INVALID_ARG
  // naming the field. Reads only the config and the task.
  void check_batch(const Batch& b) const;

  // The config and the task never change after construction (compaction builds a new model): the binding
  // checks batches against them on the main thread while a job may be running.
  const BertConfig& config() const { return config_; }
  // Pruning: the schedule's current threshold, shared by every masked linear; null until patched.
  std::shared_ptr<PruningState> pruning_state;
  // The patch plan (JSON) when patched, saved in config.json so a patched checkpoint reloads as patched.
  nlohmann::json pruning_plan;
  TaskKind kind() const { return kind_; }
  const Family& family() const { return *config_.family; }
  bool has_pooler() const { return !pooler_dense.is_empty(); }
  int64_t num_layers() const { return static_cast<int64_t>(layers_.size()); }
  const BertLayerImpl& layer(int64_t i) const { return *layers_[static_cast<size_t>(i)]; }
  at::Device device() const;

  BertEmbeddings embeddings{nullptr};
  std::vector<BertLayer> layers_;
  // Whether forward() may run the layers on packed sequences (varlen); fills `varlen` when so.
  bool packable(const at::Tensor& h, const at::Tensor& mask, const ForwardOptions& opts,
                BertLayerImpl::Varlen* varlen) const;
  // The bare model's pooler, and BERT's classification pre-layer (the same module there).
  Linear pooler_dense{nullptr};
  // Classification: cls_pre (+ the family's activation) then cls_out; BERT: pooler_dense and "classifier".
  Linear cls_pre{nullptr}, cls_out{nullptr};
  Linear qa_outputs{nullptr};

 private:
  // A head linear (pooler or pre-classifier, classifier, QA) of x [..., K]: on the CPU kernels when the layers may use them
  // (eval, no grad, fp32 CPU), else libtorch's. Why: the heads were the only BLAS calls left in inference,
  // and one OpenBLAS call wakes its threads, which then busy-wait (~0.1 s with OPENBLAS_CORETYPE=Haswell)
  // against the kernels' pool on a 2-core machine: p90 latency 4x the median (README, Performance).
  at::Tensor head_forward(const Linear& head, const at::Tensor& x, size_t slot) const;
  struct HeadPacked {
    fast::PackedLinear linear;
    std::vector<int64_t> versions;
  };
  mutable HeadPacked head_packed_[3];  // cls_pre, cls_out, qa_outputs

  const BertConfig config_;
  const TaskKind kind_;
};
TORCH_MODULE(Bert);

}  // namespace bp
