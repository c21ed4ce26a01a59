#include "bert.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <c10/core/InferenceMode.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <initializer_list>
#include <mutex>
#include <vector>

#include "dropout.h"
#include "mixed_precision.h"
#include "errors.h"

namespace bp {

// ---- building blocks ---------------------------------------------------------------------------

LinearImpl::LinearImpl(int64_t in, int64_t out, bool with_bias) {
  weight = register_parameter("weight", at::empty({out, in}));
  if (with_bias) bias = register_parameter("bias", at::zeros({out}));
}

namespace {
// fast/quant.h's int8 product with tensor ops: activations quantized per row, the integer product exact (in
// float64: |acc| <= 127 * 127 * K < 2^53), then dequantized. Every float operation is the one quant.h names,
// in the same precision, so the kernels can be held to it within rounding of the last steps.
at::Tensor int8_linear(const at::Tensor& x_in, const at::Tensor& q, const at::Tensor& wscale, const at::Tensor& bias) {
  const auto x = x_in.to(at::kFloat);
  const auto amax = x.abs().amax(-1, /*keepdim=*/true);
  const auto live = amax.gt(0);
  const auto one = at::ones_like(amax);
  const auto inv = at::where(live, at::full_like(amax, 127.0f).div(amax), one);
  const auto xq = x.mul(inv).round().clamp(-127, 127);  // round(): half to even, as nearbyint
  const auto xscale = at::where(live, amax.div(127.0f), one);
  const auto acc = at::matmul(xq.to(at::kDouble), q.to(at::kDouble).t()).to(at::kFloat);
  auto y = acc.mul(xscale.mul(wscale));
  return bias.defined() ? y.add(bias) : y;
}
}  // namespace

at::Tensor LinearImpl::forward(const at::Tensor& x) const {
  if (mask) return masked_linear(x, weight, bias, *mask, is_training());
  if (weight.scalar_type() == at::kChar) return int8_linear(x, weight, weight_scale, bias);
  // bf16: x and w rounded to bf16, products summed in fp32.
  if (weight.scalar_type() == at::kBFloat16) return at::linear(x.to(at::kBFloat16).to(at::kFloat), weight.to(at::kFloat), bias);
  return train_linear(x, weight, bias);  // at::linear, or bf16 products in a bf16 training step
}

void LinearImpl::quantize(fast::QuantFormat format, bool per_channel) {
  at::NoGradGuard no_grad;
  const auto w = weight.detach().to(at::kFloat);
  at::Tensor q;
  if (format == fast::QuantFormat::kBf16) {
    q = w.to(at::kBFloat16);  // round to nearest even
  } else {
    // quant.h: scale = max |w| / 127 per row (or over the tensor), 1 for zeros; q = clamp(nearbyint(w / scale)).
    const auto amax = per_channel ? w.abs().amax(1) : w.abs().max().expand({w.size(0)});
    auto scale = at::where(amax.gt(0), amax.div(127.0f), at::ones_like(amax)).contiguous();
    q = w.div(scale.unsqueeze(1)).round().clamp(-127, 127).to(at::kChar);
    if (weight_scale.defined())
      weight_scale = parameters_["weight_scale"] = scale;
    else
      weight_scale = register_parameter("weight_scale", scale, /*requires_grad=*/false);
  }
  q.set_requires_grad(false);
  // The registered parameter is replaced, not copied into: its dtype changes.
  weight = parameters_["weight"] = q;
}

at::Tensor LinearImpl::float_weight() const {
  if (weight.scalar_type() == at::kChar) return weight.to(at::kFloat).mul(weight_scale.unsqueeze(1));
  return weight.to(at::kFloat);
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

at::Tensor activation(const at::Tensor& x, const std::string& act) {
  if (act == "gelu") return at::gelu(x);  // exact erf GELU, as HF's "gelu"
  if (act == "gelu_new" || act == "gelu_pytorch_tanh") return at::gelu(x, "tanh");
  if (act == "relu") return at::relu(x);
  if (act == "silu" || act == "swish") return at::silu(x);
  if (act == "tanh") return at::tanh(x);
  throw Error("E_BAD_CONFIG", "unsupported hidden_act '" + act + "'");
}

// Registers `m` at a dotted path under `root`, creating the plain container modules on the way: the family
// table says where each module lives ("attention.self.query" or "attention.q_lin").
template <typename M>
M put(torch::nn::Module& root, const std::string& path, M m) {
  torch::nn::Module* parent = &root;
  size_t from = 0;
  for (size_t dot = path.find('.'); dot != std::string::npos; from = dot + 1, dot = path.find('.', from)) {
    const std::string name = path.substr(from, dot - from);
    std::shared_ptr<torch::nn::Module> next;
    for (const auto& child : parent->named_children())
      if (child.key() == name) next = child.value();
    if (!next) next = parent->register_module(name, std::make_shared<torch::nn::Module>(name));
    parent = next.get();
  }
  return parent->register_module(path.substr(from), std::move(m));
}

BertEmbeddingsImpl::BertEmbeddingsImpl(const BertConfig& c)
    : dropout(c.hidden_dropout_prob), positions(c.family->positions), padding_idx(c.pad_token_id) {
  word_embeddings = register_module("word_embeddings", Embedding(c.vocab_size, c.hidden_size, c.pad_token_id));
  // RoBERTa's position table has padding_idx too (its row pad_token_id gets no gradient).
  position_embeddings = register_module("position_embeddings", Embedding(c.max_position_embeddings, c.hidden_size,
                                                                         positions == PositionIds::FromInputIds ? c.pad_token_id : -1));
  if (c.family->token_types)
    token_type_embeddings = register_module("token_type_embeddings", Embedding(c.type_vocab_size, c.hidden_size));
  LayerNorm_ = register_module("LayerNorm", LayerNorm(c.hidden_size, c.layer_norm_eps));
}

at::Tensor BertEmbeddingsImpl::position_ids(const at::Tensor& input_ids) const {
  if (positions == PositionIds::Arange) return at::arange(input_ids.size(1), input_ids.options()).unsqueeze(0);
  // HF create_position_ids_from_input_ids: real tokens count from padding_idx + 1, padding gets padding_idx.
  auto real = input_ids.ne(padding_idx).to(at::kLong);
  return real.cumsum(1).mul(real).add(padding_idx);
}

at::Tensor BertEmbeddingsImpl::forward(const at::Tensor& input_ids, const at::Tensor& token_type_ids) const {
  // Same association order as HF: (word + token_type) + position.
  auto e = word_embeddings->forward(input_ids);
  if (!token_type_embeddings.is_empty()) e = e + token_type_embeddings->forward(token_type_ids);
  e = e + position_embeddings->forward(position_ids(input_ids));
  return bp::dropout(LayerNorm_->forward(e), dropout, is_training());
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
    if (const auto& s = (*l)->weight_scale; s.defined()) key.insert(key.end(), {s._version(), reinterpret_cast<int64_t>(s.data_ptr())});
  }
  return key;
}
// Whether a linear can run on the CPU kernels: no mask patched in, a bias, fp32 weights (or, where the caller
// takes them, quantized ones).
bool kernel_ready(const Linear& l, bool quantized_ok = false) {
  return !l->mask && l->bias.defined() && l->bias.scalar_type() == at::kFloat &&
         (l->weight.scalar_type() == at::kFloat || (quantized_ok && l->quantized()));
}

// A linear's weight [out, in] and bias packed for the CPU kernels.
fast::PackedLinear pack(const at::Tensor& w, const at::Tensor& b) {
  auto wc = w.contiguous(), bc = b.contiguous();
  return fast::PackedLinear(wc.data_ptr<float>(), bc.data_ptr<float>(), wc.size(0), wc.size(1));
}

// Said once per format and process: the layers still run, in fp32, and the user should know why it is slower.
void say_no_quant_kernels(fast::QuantFormat f) {
  static std::once_flag once[2];
  const bool int8 = f == fast::QuantFormat::kInt8;
  std::call_once(once[int8 ? 0 : 1], [int8] {
    std::fprintf(stderr, "%s\n", int8 ? "blockprune: no int8 kernels for this CPU (needs AVX-512 VNNI or AVX2): running int8 layers in fp32"
                                       : "blockprune: no bf16 kernels for this CPU (needs AVX-512 BF16): running bf16 layers in fp32");
  });
}

// Quantized linears (one, or q/k/v concatenated: same format, rows stacked) for the CPU path: on the quantized
// kernels where this CPU has them, else their fp32 values on the fp32 kernels. The first `scale_cols` output
// columns are multiplied by `scale` after the product (the query's 1/sqrt(head_dim)).
FastLinear pack_quantized(std::initializer_list<const Linear*> linears, int64_t scale_cols, float scale) {
  const Linear& first = **linears.begin();
  const auto format = first->quant_format();
  std::vector<at::Tensor> ws, ss, bs;
  for (const Linear* l : linears) {
    if ((*l)->weight.scalar_type() != first->weight.scalar_type())
      throw Error("E_BAD_CHECKPOINT", "a layer mixes quantized formats (" + std::string(c10::toString((*l)->weight.scalar_type())) +
                                          " and " + c10::toString(first->weight.scalar_type()) + ")");
    ws.push_back(fast::quant_supported(format) ? (*l)->weight : (*l)->float_weight());
    if ((*l)->weight_scale.defined()) ss.push_back((*l)->weight_scale);
    bs.push_back((*l)->bias);
  }
  const auto w = at::cat(ws, 0).contiguous(), b = at::cat(bs, 0).contiguous();
  FastLinear f;
  f.scale_cols = scale_cols;
  f.scale = scale;
  if (!fast::quant_supported(format)) {
    say_no_quant_kernels(format);
    f.fp32 = pack(w, b);
  } else if (format == fast::QuantFormat::kInt8) {
    const auto s = at::cat(ss, 0).contiguous();
    f.quant = fast::QuantLinear::int8(w.data_ptr<int8_t>(), s.data_ptr<float>(), b.data_ptr<float>(), w.size(0), w.size(1));
  } else {
    f.quant = fast::QuantLinear::bf16(reinterpret_cast<const uint16_t*>(w.data_ptr<at::BFloat16>()), b.data_ptr<float>(), w.size(0), w.size(1));
  }
  return f;
}
}  // namespace

void FastLinear::forward(const float* x, int64_t m, float* y, int act, const float* residual) const {
  if (quant.empty())
    fp32.forward(x, m, y, act, residual);
  else
    quant.forward(x, m, y, act, residual);
  if (scale_cols == 0) return;
  const int64_t ld = n();
  for (int64_t r = 0; r < m; ++r)
    for (int64_t c = 0; c < scale_cols; ++c) y[r * ld + c] *= scale;
}

void set_fused_qkv(bool on) { g_fused_qkv = on; }

BertLayerImpl::BertLayerImpl(const BertConfig& c, int64_t i)
    : heads(c.layer_heads(i)), head_dim(c.head_dim()), act(c.hidden_act), attention_dropout(c.attention_probs_dropout_prob),
      hidden_dropout(c.hidden_dropout_prob) {
  const Family& f = *c.family;
  const int64_t all = heads * head_dim, width = c.layer_intermediate(i);
  // Registration order is HF's (it sets the order of named_parameters, hence of random initialisation).
  query = put(*this, f.query, Linear(c.hidden_size, all));
  key = put(*this, f.key, Linear(c.hidden_size, all));
  value = put(*this, f.value, Linear(c.hidden_size, all));
  attn_out = put(*this, f.attn_out, Linear(all, c.hidden_size));
  attn_norm = put(*this, f.attn_norm, LayerNorm(c.hidden_size, c.layer_norm_eps));
  inter = put(*this, f.inter, Linear(c.hidden_size, width));
  out = put(*this, f.out, Linear(width, c.hidden_size));
  out_norm = put(*this, f.out_norm, LayerNorm(c.hidden_size, c.layer_norm_eps));
}

at::Tensor BertLayerImpl::fused_qkv(const at::Tensor& h) const {
  if (!g_fused_qkv || query->mask || key->mask || value->mask || !query->bias.defined() || query->quantized()) return at::Tensor();
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

bool BertLayerImpl::prepare_fast(const at::Tensor& h) const {
  const std::initializer_list<const Linear*> linears = {&query, &key, &value, &attn_out, &inter, &out};
  if (fast_act() < 0 || heads == 0 || inter->weight.size(0) == 0 || !h.device().is_cpu() ||
      h.scalar_type() != at::kFloat)
    return false;
  for (const Linear* l : linears)
    if (!kernel_ready(*l, /*quantized_ok=*/true)) return false;
  for (const LayerNorm* ln : {&attn_norm, &out_norm})
    if ((*ln)->weight.scalar_type() != at::kFloat || !(*ln)->weight.is_contiguous() || !(*ln)->bias.is_contiguous())
      return false;
  const auto versions = weights_key(linears);
  if (versions != packed_.versions) {
    // 1/sqrt(head_dim) folded into the query rows, so the scores need no division.
    const double qs = 1.0 / std::sqrt(static_cast<double>(head_dim));
    if (query->quantized()) {
      packed_.qkv = pack_quantized({&query, &key, &value}, query->weight.size(0), static_cast<float>(qs));
      packed_.attn_out = pack_quantized({&attn_out}, 0, 1.0f);
      packed_.inter = pack_quantized({&inter}, 0, 1.0f);
      packed_.out = pack_quantized({&out}, 0, 1.0f);
    } else {
      packed_.qkv = {pack(at::cat({query->weight * qs, key->weight, value->weight}, 0), at::cat({query->bias * qs, key->bias, value->bias}, 0))};
      packed_.attn_out = {pack(attn_out->weight, attn_out->bias)};
      packed_.inter = {pack(inter->weight, inter->bias)};
      packed_.out = {pack(out->weight, out->bias)};
    }
    packed_.versions = versions;
  }
  return true;
}

int BertLayerImpl::fast_act() const {
  return act == "gelu" ? fast::kActGelu : act == "relu" ? fast::kActRelu : -1;
}

at::Tensor BertLayerImpl::forward_fast(const at::Tensor& h, const at::Tensor& ext_mask, const Varlen* varlen) const {
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
  auto ctx = at::empty({rows, heads * head_dim}, x.options());
  auto a = at::empty(h.sizes(), x.options());
  auto mid = at::empty({rows, packed_.inter.n()}, x.options());
  auto o = at::empty(h.sizes(), x.options());
  stage("qkv product", [&] { packed_.qkv.forward(x.data_ptr<float>(), rows, qkv.data_ptr<float>(), fast::kActNone, nullptr); });
  stage("attention (scores, softmax, context)", [&] {
    if (varlen)
      fast::attention_varlen(qkv.data_ptr<float>(), varlen->offsets.data(), varlen->lengths.data(),
                             static_cast<int64_t>(varlen->lengths.size()), heads, head_dim, ctx.data_ptr<float>());
    else
      fast::attention(qkv.data_ptr<float>(), B, S, heads, head_dim, mask.data_ptr<float>(), ctx.data_ptr<float>());
  });
  stage("attention output product + residual", [&] {
    packed_.attn_out.forward(ctx.data_ptr<float>(), rows, a.data_ptr<float>(), fast::kActNone, x.data_ptr<float>());
  });
  stage("LayerNorm", [&] {
    fast::layer_norm(a.data_ptr<float>(), rows, hidden, attn_norm->weight.data_ptr<float>(),
                     attn_norm->bias.data_ptr<float>(), static_cast<float>(attn_norm->eps));
  });
  stage("FFN in product + GELU", [&] { packed_.inter.forward(a.data_ptr<float>(), rows, mid.data_ptr<float>(), kact, nullptr); });
  stage("FFN out product + residual", [&] {
    packed_.out.forward(mid.data_ptr<float>(), rows, o.data_ptr<float>(), fast::kActNone, a.data_ptr<float>());
  });
  stage("LayerNorm", [&] {
    fast::layer_norm(o.data_ptr<float>(), rows, hidden, out_norm->weight.data_ptr<float>(),
                     out_norm->bias.data_ptr<float>(), static_cast<float>(out_norm->eps));
  });
  return o;
}

at::Tensor BertLayerImpl::forward(const at::Tensor& h, const at::Tensor& ext_mask, at::Tensor* probs) const {
  const bool train = is_training();
  if (!train && !probs && !at::GradMode::is_enabled() && fast::enabled() && ext_mask.scalar_type() == at::kFloat &&
      prepare_fast(h))
    return forward_fast(h, ext_mask);
  at::Tensor attn_dense;
  if (heads > 0) {
    const int64_t B = h.size(0), S = h.size(1);
    // [B, S, H*D] -> [B, H, S, D]
    auto split = [&](const at::Tensor& x) { return x.view({B, S, heads, head_dim}).transpose(1, 2); };
    at::Tensor q, k, v;
    at::Tensor qkv = (!train && !at::GradMode::is_enabled()) ? fused_qkv(h) : at::Tensor();
    if (qkv.defined()) {
      // [B, S, 3, H, D] -> three [B, H, S, D] views, no copies.
      auto parts = qkv.view({B, S, 3, heads, head_dim}).permute({2, 0, 3, 1, 4});
      q = parts[0];
      k = parts[1];
      v = parts[2];
    } else {
      q = split(query->forward(h));
      k = split(key->forward(h));
      v = split(value->forward(h));
    }
    // HF: scores = q k^T / sqrt(d) + mask; softmax; dropout; p v.
    at::Tensor scores;
    if (qkv.defined()) {
      scores = at::matmul(q, k.transpose(-1, -2));
      if (!fused_scaled()) scores.div_(std::sqrt(static_cast<double>(head_dim)));
      scores.add_(ext_mask);
    } else {
      scores = at::matmul(q, k.transpose(-1, -2)) / std::sqrt(static_cast<double>(head_dim));
      scores = scores + ext_mask;
    }
    auto p = at::softmax(scores, -1);
    if (probs) *probs = p;
    p = bp::dropout(p, attention_dropout, train);
    auto ctx = at::matmul(p, v).transpose(1, 2).reshape({B, S, heads * head_dim});
    attn_dense = attn_out->forward(ctx);
  } else {
    // Every head of this layer was pruned: the attention block reduces to its output bias.
    if (probs) *probs = at::empty({h.size(0), 0, h.size(1), h.size(1)}, h.options());
    attn_dense = attn_out->bias.expand_as(h);
  }
  auto a = attn_norm->forward(bp::dropout(attn_dense, hidden_dropout, train) + h);
  auto ffn = activation(inter->forward(a), act);
  auto o = out->forward(ffn);
  return out_norm->forward(bp::dropout(o, hidden_dropout, train) + a);
}

// ---- the model ---------------------------------------------------------------------------------

BertImpl::BertImpl(BertConfig config, TaskKind kind) : config_(std::move(config)), kind_(kind) {
  config_.validate("model configuration");
  const Family& f = *config_.family;
  embeddings = put(*this, f.prefix + ".embeddings", BertEmbeddings(config_));
  auto list = put(*this, f.prefix + "." + f.layers, torch::nn::ModuleList());
  for (int64_t i = 0; i < config_.num_hidden_layers; ++i) {
    layers_.push_back(BertLayer(config_, i));
    list->push_back(layers_.back());
  }
  // HF's *ForQuestionAnswering (and RoBERTa's classifier) are built with add_pooling_layer=False.
  const bool pooler = f.pooler && (kind_ == TaskKind::Bare || (kind_ == TaskKind::SequenceClassification && f.cls_pre_is_pooler));
  if (pooler) pooler_dense = put(*this, f.pooler_dense(), Linear(config_.hidden_size, config_.hidden_size));
  if (kind_ == TaskKind::SequenceClassification) {
    cls_pre = f.cls_pre_is_pooler ? pooler_dense : put(*this, f.cls_pre, Linear(config_.hidden_size, config_.hidden_size));
    cls_out = put(*this, f.cls_out, Linear(config_.hidden_size, config_.num_labels));
  }
  if (kind_ == TaskKind::QuestionAnswering) qa_outputs = put(*this, f.qa_out, Linear(config_.hidden_size, 2));
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
  // HF zeroes the padding row of every embedding that has one.
  for (const Embedding* e : {&embeddings->word_embeddings, &embeddings->position_embeddings})
    if ((*e)->padding_idx >= 0) (*e)->weight[(*e)->padding_idx].zero_();
}

void BertImpl::init_head(uint64_t seed, const std::set<std::string>& missing) {
  at::NoGradGuard no_grad;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (const auto& item : named_modules("", /*include_self=*/false)) {
    auto* lin = item.value()->as<LinearImpl>();
    if (!lin || !missing.count(item.key() + ".weight")) continue;
    lin->weight.copy_(at::normal(0.0, config_.initializer_range, lin->weight.sizes(), gen));
    if (lin->bias.defined()) lin->bias.zero_();
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
  if (S > config_.max_sequence_length())
    throw Error("E_INVALID_ARG", "sequence length " + std::to_string(S) + " exceeds the " + std::to_string(config_.max_sequence_length()) +
                                     " positions of this model (max_position_embeddings " + std::to_string(config_.max_position_embeddings) + ")");
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
  // A family without token types (DistilBERT) ignores them, as its tokenizer gives none.
  if (family().token_types) range(b.token_type_ids, "token_type_ids (vs type_vocab_size)", config_.type_vocab_size);
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
      x.scalar_type() != at::kFloat || !kernel_ready(head))
    return head->forward(x);
  auto& cache = head_packed_[slot];
  const auto versions = weights_key({&head});
  if (versions != cache.versions) {
    cache.linear = pack(w, b);
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
  if (has_pooler()) pooled = at::tanh(head_forward(pooler_dense, h.select(1, 0), 0));
  if (kind_ == TaskKind::Bare || opts.extras) {
    out.emplace_back("last_hidden_state", h);
    if (pooled.defined()) out.emplace_back("pooler_output", pooled);
  }
  if (kind_ == TaskKind::SequenceClassification) {
    // BERT: classifier(dropout(pooler)); RoBERTa: out_proj(dropout(tanh(dense(dropout(h0))))); DistilBERT:
    // classifier(dropout(relu(pre_classifier(h0)))).
    at::Tensor x = pooled;
    if (!family().cls_pre_is_pooler) {
      x = h.select(1, 0);
      if (family().cls_act == "tanh") x = bp::dropout(x, config_.classifier_dropout, train);
      x = activation(head_forward(cls_pre, x, 0), family().cls_act);
    }
    auto logits = head_forward(cls_out, bp::dropout(x, config_.classifier_dropout, train), 1);
    out.emplace_back("logits", logits);
    if (batch.labels.defined()) {
      auto labels = batch.labels.to(dev);
      out.emplace_back("loss", config_.num_labels == 1
                                   ? at::mse_loss(logits.squeeze(-1), labels.to(logits.scalar_type()))
                                   : at::cross_entropy_loss(logits, labels));
    }
  } else if (kind_ == TaskKind::QuestionAnswering) {
    auto logits = head_forward(qa_outputs, bp::dropout(h, config_.qa_dropout, train), 2);
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
