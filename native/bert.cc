#include "bert.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <c10/core/InferenceMode.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <initializer_list>
#include <vector>

#include "errors.h"

namespace bp {

// ---- building blocks ---------------------------------------------------------------------------

LinearImpl::LinearImpl(int64_t in, int64_t out, bool with_bias) {
  weight = register_parameter("weight", at::empty({out, in}));
  if (with_bias) bias = register_parameter("bias", at::zeros({out}));
}

at::Tensor LinearImpl::forward(const at::Tensor& x) const {
  if (mask) return masked_linear(x, weight, bias, *mask, is_training());
  return at::linear(x, weight, bias);
}

LayerNormImpl::LayerNormImpl(int64_t dim, double eps_) : eps(eps_) {
  weight = register_parameter("weight", at::ones({dim}));
  bias = register_parameter("bias", at::zeros({dim}));
}

at::Tensor LayerNormImpl::forward(const at::Tensor& x) const {
  return at::layer_norm(x, {weight.size(0)}, weight, bias, eps);
}

EmbeddingImpl::EmbeddingImpl(int64_t num, int64_t dim, int64_t padding_idx_) : padding_idx(padding_idx_) {
  weight = register_parameter("weight", at::empty({num, dim}));
}

at::Tensor EmbeddingImpl::forward(const at::Tensor& ids) const { return at::embedding(weight, ids, padding_idx); }

namespace {

at::Tensor dropout(const at::Tensor& x, double p, bool train) {
  return (train && p > 0) ? at::dropout(x, p, /*train=*/true) : x;
}

at::Tensor activation(const at::Tensor& x, const std::string& act) {
  if (act == "gelu") return at::gelu(x);  // exact erf GELU, as HF's "gelu"
  if (act == "gelu_new" || act == "gelu_pytorch_tanh") return at::gelu(x, "tanh");
  if (act == "relu") return at::relu(x);
  if (act == "silu" || act == "swish") return at::silu(x);
  if (act == "tanh") return at::tanh(x);
  throw Error("E_BAD_CONFIG", "unsupported hidden_act '" + act + "'");
}

}  // namespace

BertEmbeddingsImpl::BertEmbeddingsImpl(const BertConfig& c) : dropout(c.hidden_dropout_prob) {
  word_embeddings = register_module("word_embeddings", Embedding(c.vocab_size, c.hidden_size, c.pad_token_id));
  position_embeddings = register_module("position_embeddings", Embedding(c.max_position_embeddings, c.hidden_size));
  token_type_embeddings = register_module("token_type_embeddings", Embedding(c.type_vocab_size, c.hidden_size));
  LayerNorm_ = register_module("LayerNorm", LayerNorm(c.hidden_size, c.layer_norm_eps));
}

at::Tensor BertEmbeddingsImpl::forward(const at::Tensor& input_ids, const at::Tensor& token_type_ids) const {
  const int64_t seq = input_ids.size(1);
  auto positions = at::arange(seq, input_ids.options()).unsqueeze(0);
  // Same association order as HF: (word + token_type) + position.
  auto e = word_embeddings->forward(input_ids) + token_type_embeddings->forward(token_type_ids);
  e = e + position_embeddings->forward(positions);
  return bp::dropout(LayerNorm_->forward(e), dropout, is_training());
}

BertSelfAttentionImpl::BertSelfAttentionImpl(const BertConfig& c, int64_t heads_)
    : heads(heads_), head_dim(c.head_dim()), dropout(c.attention_probs_dropout_prob) {
  const int64_t all = heads * head_dim;
  query = register_module("query", Linear(c.hidden_size, all));
  key = register_module("key", Linear(c.hidden_size, all));
  value = register_module("value", Linear(c.hidden_size, all));
}

namespace {
std::atomic<bool> g_fused_qkv{true};

// What a cache built from these layers' weights depends on: each weight's and bias's version counter (moved
// by every in-place update: training steps, loadState) and storage address (moved by reassignment).
std::vector<int64_t> weights_key(std::initializer_list<const Linear*> linears) {
  std::vector<int64_t> key;
  for (const Linear* l : linears) {
    const auto& w = (*l)->weight;
    const auto& b = (*l)->bias;
    key.insert(key.end(), {w._version(), b._version(), reinterpret_cast<int64_t>(w.data_ptr()), reinterpret_cast<int64_t>(b.data_ptr())});
  }
  return key;
}
}  // namespace

void set_fused_qkv(bool on) { g_fused_qkv = on; }

at::Tensor BertSelfAttentionImpl::fused_qkv(const at::Tensor& h) const {
  if (!g_fused_qkv || query->mask || key->mask || value->mask || !query->bias.defined()) return at::Tensor();
  const auto versions = weights_key({&query, &key, &value});
  if (!fused_weight_.defined() || versions != fused_versions_ || fused_weight_.device() != h.device()) {
    at::NoGradGuard no_grad;
    // Built outside inference mode so the cache is a normal tensor, usable by any later call.
    c10::InferenceMode off(false);
    const double root = std::sqrt(static_cast<double>(head_dim));
    fused_scaled_ = root == std::exp2(std::round(std::log2(root)));  // exact: scaling by a power of two
    const double qs = fused_scaled_ ? 1.0 / root : 1.0;
    fused_weight_ = at::cat({query->weight * qs, key->weight, value->weight}, 0).detach();
    fused_bias_ = at::cat({query->bias * qs, key->bias, value->bias}, 0).detach();
    fused_versions_ = versions;
  }
  return at::linear(h, fused_weight_, fused_bias_);
}

BertSelfOutputImpl::BertSelfOutputImpl(const BertConfig& c, int64_t heads) {
  dense = register_module("dense", Linear(heads * c.head_dim(), c.hidden_size));
  LayerNorm_ = register_module("LayerNorm", LayerNorm(c.hidden_size, c.layer_norm_eps));
}

BertAttentionImpl::BertAttentionImpl(const BertConfig& c, int64_t heads) {
  self = register_module("self", BertSelfAttention(c, heads));
  output = register_module("output", BertSelfOutput(c, heads));
}

BertIntermediateImpl::BertIntermediateImpl(const BertConfig& c, int64_t width) {
  dense = register_module("dense", Linear(c.hidden_size, width));
}

BertOutputImpl::BertOutputImpl(const BertConfig& c, int64_t width) {
  dense = register_module("dense", Linear(width, c.hidden_size));
  LayerNorm_ = register_module("LayerNorm", LayerNorm(c.hidden_size, c.layer_norm_eps));
}

BertLayerImpl::BertLayerImpl(const BertConfig& c, int64_t i) : act(c.hidden_act), hidden_dropout(c.hidden_dropout_prob) {
  attention = register_module("attention", BertAttention(c, c.layer_heads(i)));
  intermediate = register_module("intermediate", BertIntermediate(c, c.layer_intermediate(i)));
  output = register_module("output", BertOutput(c, c.layer_intermediate(i)));
}

bool BertLayerImpl::prepare_fast(const at::Tensor& h) const {
  const auto& sa = *attention->self;
  const auto& so = *attention->output;
  const std::initializer_list<const Linear*> linears = {&sa.query, &sa.key, &sa.value, &so.dense, &intermediate->dense, &output->dense};
  if (fast_act() < 0 || sa.heads == 0 || intermediate->dense->weight.size(0) == 0 || !h.device().is_cpu() ||
      h.scalar_type() != at::kFloat)
    return false;
  for (const Linear* l : linears) {
    const auto& w = (*l)->weight;
    const auto& b = (*l)->bias;
    if ((*l)->mask || !b.defined() || w.scalar_type() != at::kFloat || b.scalar_type() != at::kFloat) return false;
  }
  for (const LayerNorm* ln : {&so.LayerNorm_, &output->LayerNorm_})
    if ((*ln)->weight.scalar_type() != at::kFloat || !(*ln)->weight.is_contiguous() || !(*ln)->bias.is_contiguous())
      return false;
  const auto versions = weights_key(linears);
  if (versions != packed_.versions) {
    auto pack = [](const at::Tensor& w, const at::Tensor& b) {
      auto wc = w.contiguous(), bc = b.contiguous();
      return fast::PackedLinear(wc.data_ptr<float>(), bc.data_ptr<float>(), wc.size(0), wc.size(1));
    };
    // 1/sqrt(head_dim) folded into the query rows, so the scores need no division.
    const double qs = 1.0 / std::sqrt(static_cast<double>(sa.head_dim));
    packed_.qkv = pack(at::cat({sa.query->weight * qs, sa.key->weight, sa.value->weight}, 0),
                       at::cat({sa.query->bias * qs, sa.key->bias, sa.value->bias}, 0));
    packed_.attn_out = pack(so.dense->weight, so.dense->bias);
    packed_.inter = pack(intermediate->dense->weight, intermediate->dense->bias);
    packed_.out = pack(output->dense->weight, output->dense->bias);
    packed_.versions = versions;
  }
  return true;
}

int BertLayerImpl::fast_act() const {
  return act == "gelu" ? fast::kActGelu : act == "relu" ? fast::kActRelu : -1;
}

at::Tensor BertLayerImpl::forward_fast(const at::Tensor& h, const at::Tensor& ext_mask, const Varlen* varlen) const {
  const auto& sa = *attention->self;
  const auto& so = *attention->output;
  const int kact = fast_act();
  // Padded: h is [B, S, hidden] and ext_mask [B, 1, 1, S]. Packed (varlen): h is [T, hidden], the real tokens
  // of every sequence one after the other, and each sequence attends within its own rows.
  const int64_t hidden = h.size(-1), rows = h.numel() / hidden;
  const int64_t B = varlen ? 0 : h.size(0), S = varlen ? 0 : h.size(1);
  // Each stage timed when profiling (bench_forward --profile), for the README's "where the time goes".
  auto stage = [](const char* name, const auto& fn) {
    if (!fast::profiling()) return fn();
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    fast::profile_add(name, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  };
  auto x = h.contiguous();
  auto mask = varlen ? at::Tensor() : ext_mask.contiguous();
  auto qkv = at::empty({rows, packed_.qkv.n()}, x.options());
  auto ctx = at::empty({rows, sa.heads * sa.head_dim}, x.options());
  auto a = at::empty(h.sizes(), x.options());
  auto inter = at::empty({rows, packed_.inter.n()}, x.options());
  auto o = at::empty(h.sizes(), x.options());
  stage("qkv product", [&] { packed_.qkv.forward(x.data_ptr<float>(), rows, qkv.data_ptr<float>(), fast::kActNone, nullptr); });
  stage("attention (scores, softmax, context)", [&] {
    if (varlen)
      fast::attention_varlen(qkv.data_ptr<float>(), varlen->offsets.data(), varlen->lengths.data(),
                             static_cast<int64_t>(varlen->lengths.size()), sa.heads, sa.head_dim, ctx.data_ptr<float>());
    else
      fast::attention(qkv.data_ptr<float>(), B, S, sa.heads, sa.head_dim, mask.data_ptr<float>(), ctx.data_ptr<float>());
  });
  stage("attention output product + residual", [&] {
    packed_.attn_out.forward(ctx.data_ptr<float>(), rows, a.data_ptr<float>(), fast::kActNone, x.data_ptr<float>());
  });
  stage("LayerNorm", [&] {
    fast::layer_norm(a.data_ptr<float>(), rows, hidden, so.LayerNorm_->weight.data_ptr<float>(),
                     so.LayerNorm_->bias.data_ptr<float>(), static_cast<float>(so.LayerNorm_->eps));
  });
  stage("FFN in product + GELU", [&] { packed_.inter.forward(a.data_ptr<float>(), rows, inter.data_ptr<float>(), kact, nullptr); });
  stage("FFN out product + residual", [&] {
    packed_.out.forward(inter.data_ptr<float>(), rows, o.data_ptr<float>(), fast::kActNone, a.data_ptr<float>());
  });
  stage("LayerNorm", [&] {
    fast::layer_norm(o.data_ptr<float>(), rows, hidden, output->LayerNorm_->weight.data_ptr<float>(),
                     output->LayerNorm_->bias.data_ptr<float>(), static_cast<float>(output->LayerNorm_->eps));
  });
  return o;
}

at::Tensor BertLayerImpl::forward(const at::Tensor& h, const at::Tensor& ext_mask, at::Tensor* probs) const {
  const bool train = is_training();
  if (!train && !probs && !at::GradMode::is_enabled() && fast::enabled() && ext_mask.scalar_type() == at::kFloat &&
      prepare_fast(h))
    return forward_fast(h, ext_mask);
  const auto& sa = *attention->self;
  const auto& so = *attention->output;
  at::Tensor attn_dense;
  if (sa.heads > 0) {
    const int64_t B = h.size(0), S = h.size(1);
    // [B, S, H*D] -> [B, H, S, D]
    auto split = [&](const at::Tensor& x) { return x.view({B, S, sa.heads, sa.head_dim}).transpose(1, 2); };
    at::Tensor q, k, v;
    at::Tensor qkv = (!train && !at::GradMode::is_enabled()) ? sa.fused_qkv(h) : at::Tensor();
    if (qkv.defined()) {
      // [B, S, 3, H, D] -> three [B, H, S, D] views, no copies.
      auto parts = qkv.view({B, S, 3, sa.heads, sa.head_dim}).permute({2, 0, 3, 1, 4});
      q = parts[0];
      k = parts[1];
      v = parts[2];
    } else {
      q = split(sa.query->forward(h));
      k = split(sa.key->forward(h));
      v = split(sa.value->forward(h));
    }
    // HF: scores = q k^T / sqrt(d) + mask; softmax; dropout; p v.
    at::Tensor scores;
    if (qkv.defined()) {
      scores = at::matmul(q, k.transpose(-1, -2));
      if (!sa.fused_scaled()) scores.div_(std::sqrt(static_cast<double>(sa.head_dim)));
      scores.add_(ext_mask);
    } else {
      scores = at::matmul(q, k.transpose(-1, -2)) / std::sqrt(static_cast<double>(sa.head_dim));
      scores = scores + ext_mask;
    }
    auto p = at::softmax(scores, -1);
    if (probs) *probs = p;
    p = bp::dropout(p, sa.dropout, train);
    auto ctx = at::matmul(p, v).transpose(1, 2).reshape({B, S, sa.heads * sa.head_dim});
    attn_dense = so.dense->forward(ctx);
  } else {
    // Every head of this layer was pruned: the attention block reduces to its output bias.
    if (probs) *probs = at::empty({h.size(0), 0, h.size(1), h.size(1)}, h.options());
    attn_dense = so.dense->bias.expand_as(h);
  }
  auto a = so.LayerNorm_->forward(bp::dropout(attn_dense, hidden_dropout, train) + h);
  auto inter = activation(intermediate->dense->forward(a), act);
  auto o = output->dense->forward(inter);
  return output->LayerNorm_->forward(bp::dropout(o, hidden_dropout, train) + a);
}

// ---- the model ---------------------------------------------------------------------------------

BertImpl::BertImpl(BertConfig config, TaskKind kind) : config_(std::move(config)), kind_(kind) {
  config_.validate("model configuration");
  auto bert = register_module("bert", std::make_shared<torch::nn::Module>("BertModel"));
  embeddings = bert->register_module("embeddings", BertEmbeddings(config_));
  auto encoder = bert->register_module("encoder", std::make_shared<torch::nn::Module>("BertEncoder"));
  auto list = encoder->register_module("layer", torch::nn::ModuleList());
  for (int64_t i = 0; i < config_.num_hidden_layers; ++i) {
    layers_.push_back(BertLayer(config_, i));
    list->push_back(layers_.back());
  }
  // HF's BertForQuestionAnswering is built with add_pooling_layer=False.
  if (kind_ != TaskKind::QuestionAnswering) {
    auto pooler = bert->register_module("pooler", std::make_shared<torch::nn::Module>("BertPooler"));
    pooler_dense = pooler->register_module("dense", Linear(config_.hidden_size, config_.hidden_size));
  }
  if (kind_ == TaskKind::SequenceClassification)
    classifier = register_module("classifier", Linear(config_.hidden_size, config_.num_labels));
  if (kind_ == TaskKind::QuestionAnswering) qa_outputs = register_module("qa_outputs", Linear(config_.hidden_size, 2));
  init_weights(0);
}

at::Device BertImpl::device() const { return embeddings->word_embeddings->weight.device(); }

void BertImpl::init_weights(uint64_t seed) {
  at::NoGradGuard no_grad;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const double std = config_.initializer_range;
  for (auto& m : modules(/*include_self=*/false)) {
    if (auto* lin = m->as<LinearImpl>()) {
      lin->weight.copy_(at::normal(0.0, std, lin->weight.sizes(), gen));
      if (lin->bias.defined()) lin->bias.zero_();
    } else if (auto* emb = m->as<EmbeddingImpl>()) {
      emb->weight.copy_(at::normal(0.0, std, emb->weight.sizes(), gen));
    } else if (auto* ln = m->as<LayerNormImpl>()) {
      ln->weight.fill_(1.0);
      ln->bias.zero_();
    }
  }
  embeddings->word_embeddings->weight[config_.pad_token_id].zero_();
}

void BertImpl::init_head(uint64_t seed) {
  at::NoGradGuard no_grad;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (Linear* head : {&classifier, &qa_outputs}) {
    if (head->is_empty()) continue;
    (*head)->weight.copy_(at::normal(0.0, config_.initializer_range, (*head)->weight.sizes(), gen));
    (*head)->bias.zero_();
  }
}

void BertImpl::check_batch(const Batch& b) const {
  auto need = [&](const at::Tensor& t, const char* name) {
    if (!t.defined()) return;
    if (t.dim() != 2 || t.sizes() != b.input_ids.sizes())
      throw Error("E_INVALID_ARG", std::string("Expected ") + name + " of shape " +
                                       shape_str(b.input_ids.sizes().vec()) + " but received " +
                                       shape_str(t.sizes().vec()));
  };
  if (!b.input_ids.defined() || b.input_ids.dim() != 2)
    throw Error("E_INVALID_ARG", "Expected input_ids of shape [batch, seq]");
  const int64_t B = b.input_ids.size(0), S = b.input_ids.size(1);
  if (B == 0 || S == 0) throw Error("E_INVALID_ARG", "Expected a non-empty batch but received " + shape_str({B, S}));
  if (S > config_.max_position_embeddings)
    throw Error("E_INVALID_ARG", "sequence length " + std::to_string(S) + " exceeds max_position_embeddings " +
                                     std::to_string(config_.max_position_embeddings));
  need(b.attention_mask, "attention_mask");
  need(b.token_type_ids, "token_type_ids");
  auto range = [&](const at::Tensor& t, const char* name, int64_t hi) {
    if (!t.defined()) return;
    const int64_t mn = t.min().item<int64_t>(), mx = t.max().item<int64_t>();
    if (mn < 0 || mx >= hi)
      throw Error("E_INVALID_ARG", std::string(name) + " must be in [0, " + std::to_string(hi) + ") but holds " +
                                       std::to_string(mn < 0 ? mn : mx));
  };
  range(b.input_ids, "input_ids (token id vs vocab_size)", config_.vocab_size);
  range(b.token_type_ids, "token_type_ids (vs type_vocab_size)", config_.type_vocab_size);
  range(b.attention_mask, "attention_mask", 2);
  auto per_row = [&](const at::Tensor& t, const char* name) {
    if (t.defined() && (t.dim() != 1 || t.size(0) != B))
      throw Error("E_INVALID_ARG", std::string("Expected ") + name + " of shape [" + std::to_string(B) +
                                       "] but received " + shape_str(t.sizes().vec()));
  };
  // Labels of another task would be ignored by the loss: a training run would learn nothing, silently.
  auto refuse = [&](const at::Tensor& t, const char* field, const char* for_task) {
    if (t.defined())
      throw Error("E_INVALID_ARG", std::string(field) + " are labels of a " + for_task + " model, but this model is " +
                                       task_name(kind_) + ": remove them, or load the model with task '" + for_task + "'");
  };
  if (kind_ != TaskKind::SequenceClassification) refuse(b.labels, "labels", "text-classification");
  if (kind_ != TaskKind::QuestionAnswering) {
    refuse(b.start_positions, "startPositions (start_positions)", "question-answering");
    refuse(b.end_positions, "endPositions (end_positions)", "question-answering");
  }
  per_row(b.labels, "labels");
  per_row(b.start_positions, "start_positions");
  per_row(b.end_positions, "end_positions");
  range(b.labels, "labels", config_.num_labels);
  if (b.start_positions.defined() != b.end_positions.defined())
    throw Error("E_INVALID_ARG", "start_positions and end_positions must be given together");
}

bool BertImpl::packable(const at::Tensor& h, const at::Tensor& mask, const ForwardOptions& opts,
                        BertLayerImpl::Varlen* varlen) const {
  if (kind_ != TaskKind::SequenceClassification || opts.hidden_states || opts.attentions || opts.extras ||
      is_training() || at::GradMode::is_enabled() || !fast::enabled() || !h.device().is_cpu())
    return false;
  // Every row a run of 1s then 0s (padding at the end), at least one token, and some padding somewhere.
  auto m = mask.to(at::kLong).contiguous();
  const int64_t B = m.size(0), S = m.size(1);
  const int64_t* p = m.data_ptr<int64_t>();
  bool padded = false;
  int64_t total = 0;
  for (int64_t b = 0; b < B; ++b) {
    int64_t len = 0;
    while (len < S && p[b * S + len] != 0) ++len;
    for (int64_t i = len; i < S; ++i)
      if (p[b * S + i] != 0) return false;
    if (len == 0) return false;
    padded = padded || len < S;
    varlen->offsets.push_back(total);
    varlen->lengths.push_back(len);
    total += len;
  }
  if (!padded) return false;
  for (const auto& layer : layers_)
    if (!layer->prepare_fast(h)) return false;
  return true;
}

at::Tensor BertImpl::head_forward(const Linear& head, const at::Tensor& x, size_t slot) const {
  const auto& w = head->weight;
  const auto& b = head->bias;
  if (is_training() || at::GradMode::is_enabled() || !fast::enabled() || !x.device().is_cpu() ||
      x.scalar_type() != at::kFloat || head->mask || !b.defined() || w.scalar_type() != at::kFloat ||
      b.scalar_type() != at::kFloat)
    return head->forward(x);
  auto& cache = head_packed_[slot];
  const auto versions = weights_key({&head});
  if (versions != cache.versions) {
    auto wc = w.contiguous(), bc = b.contiguous();
    cache.linear = fast::PackedLinear(wc.data_ptr<float>(), bc.data_ptr<float>(), wc.size(0), wc.size(1));
    cache.versions = versions;
  }
  const int64_t k = x.size(-1), m = x.numel() / k;
  auto xc = x.contiguous();
  std::vector<int64_t> shape = x.sizes().vec();
  shape.back() = w.size(0);
  auto y = at::empty(shape, x.options());
  cache.linear.forward(xc.data_ptr<float>(), m, y.data_ptr<float>(), fast::kActNone, nullptr);
  return y;
}

NamedTensors BertImpl::forward(const Batch& batch, const ForwardOptions& opts) {
  check_batch(batch);
  const auto dev = device();
  auto ids = batch.input_ids.to(dev);
  auto mask = batch.attention_mask.defined() ? batch.attention_mask.to(dev) : at::ones_like(ids);
  auto types = batch.token_type_ids.defined() ? batch.token_type_ids.to(dev) : at::zeros_like(ids);
  const bool train = is_training();

  NamedTensors out;
  // HF 4.x extended mask: (1 - mask) * -10000, broadcast over heads and query positions.
  auto ext = (1.0 - mask.to(at::kFloat)).mul(-10000.0).view({ids.size(0), 1, 1, ids.size(1)});
  auto h = embeddings->forward(ids, types);
  if (opts.hidden_states) out.emplace_back("hidden_states.0", h);
  BertLayerImpl::Varlen varlen;
  if (packable(h, mask, opts, &varlen)) {
    // Classification of padded sequences on the CPU kernels: only the real tokens go through the layers,
    // packed one sequence after another, each attending within itself. Their values are what the padded
    // computation gives (a masked score adds -10000: its weight is exactly 0 in float); padding rows, which
    // no output of a classifier reads, are left at 0.
    const int64_t B = h.size(0), S = h.size(1), hidden = h.size(2);
    std::vector<int64_t> rows;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t i = 0; i < varlen.lengths[static_cast<size_t>(b)]; ++i) rows.push_back(b * S + i);
    auto idx = at::tensor(rows, at::kLong);
    auto hp = h.reshape({B * S, hidden}).index_select(0, idx);
    for (auto& layer : layers_) hp = layer->forward_fast(hp, at::Tensor(), &varlen);
    h = at::zeros({B * S, hidden}, h.options()).index_copy_(0, idx, hp).view({B, S, hidden});
  } else {
    for (size_t i = 0; i < layers_.size(); ++i) {
      at::Tensor probs;
      h = layers_[i]->forward(h, ext, opts.attentions ? &probs : nullptr);
      if (opts.hidden_states) out.emplace_back("hidden_states." + std::to_string(i + 1), h);
      if (opts.attentions) out.emplace_back("attentions." + std::to_string(i), probs);
    }
  }
  at::Tensor pooled;
  if (has_pooler() && (kind_ != TaskKind::QuestionAnswering))
    pooled = at::tanh(head_forward(pooler_dense, h.select(1, 0), 0));
  if (kind_ == TaskKind::Bare || opts.extras) {
    out.emplace_back("last_hidden_state", h);
    if (pooled.defined()) out.emplace_back("pooler_output", pooled);
  }
  if (kind_ == TaskKind::SequenceClassification) {
    auto logits = head_forward(classifier, bp::dropout(pooled, config_.hidden_dropout_prob, train), 1);
    out.emplace_back("logits", logits);
    if (batch.labels.defined()) {
      auto labels = batch.labels.to(dev);
      out.emplace_back("loss", config_.num_labels == 1
                                   ? at::mse_loss(logits.squeeze(-1), labels.to(logits.scalar_type()))
                                   : at::cross_entropy_loss(logits, labels));
    }
  } else if (kind_ == TaskKind::QuestionAnswering) {
    auto logits = head_forward(qa_outputs, h, 2);
    auto start = logits.select(-1, 0).contiguous(), end = logits.select(-1, 1).contiguous();
    out.emplace_back("start_logits", start);
    out.emplace_back("end_logits", end);
    if (batch.start_positions.defined()) {
      // HF: positions outside the sequence are clamped to S and ignored.
      const int64_t S = ids.size(1);
      auto sp = batch.start_positions.to(dev).clamp(0, S), ep = batch.end_positions.to(dev).clamp(0, S);
      auto ls = at::cross_entropy_loss(start, sp, {}, at::Reduction::Mean, S);
      auto le = at::cross_entropy_loss(end, ep, {}, at::Reduction::Mean, S);
      out.emplace_back("loss", (ls + le) / 2);
    }
  }
  return out;
}

}  // namespace bp
