// T5ForConditionalGeneration as transformers 4.4.2 computes it (t5.h; semantics in ../shared/fixtures/README.md).
#include "t5.h"

#include <cmath>

#include "checkpoint.h"
#include "config.h"
#include "dropout.h"
#include "errors.h"
#include "kv_append.h"
#include "mixed_precision.h"

namespace bp {

namespace {

[[noreturn]] void bad_config(const std::string& source, const std::string& what) {
  throw Error("E_BAD_CONFIG", "invalid config " + source + ": " + what);
}

// A required positive size: a config without it cannot say how big the model is.
int64_t size_field(const nlohmann::json& j, const char* key, const std::string& source, int64_t def = -1) {
  if (!j.contains(key) || j[key].is_null()) {
    if (def >= 0) return def;
    bad_config(source, std::string("field '") + key + "' is missing");
  }
  if (!j[key].is_number_integer() || j[key].get<int64_t>() < 1)
    bad_config(source, std::string("field '") + key + "' must be a positive integer, got " + j[key].dump());
  return j[key].get<int64_t>();
}

int64_t id_field(const nlohmann::json& j, const char* key, const std::string& source, int64_t def) {
  if (!j.contains(key) || j[key].is_null()) return def;
  if (!j[key].is_number_integer() || j[key].get<int64_t>() < 0)
    bad_config(source, std::string("field '") + key + "' must be a token id (an integer >= 0), got " + j[key].dump());
  return j[key].get<int64_t>();
}

// Attention bias of a 0/1 mask [B, K] -> [B, 1, 1, K]: (1 - mask) * fill, as 4.4.2 (-10000 for self-attention,
// -1e9 for cross-attention).
at::Tensor mask_bias(const at::Tensor& mask, double fill) { return mask.to(at::kFloat).neg().add(1.0).mul(fill).unsqueeze(1).unsqueeze(1); }

// Checks an id tensor: [B, T] with B = `batch` (when >= 0) and every id in [0, vocab) (or -100 when `ignore`).
void check_ids(const at::Tensor& t, const char* name, int64_t batch, int64_t vocab, bool ignore = false) {
  if (t.dim() != 2 || t.size(0) < 1 || t.size(1) < 1 || (batch >= 0 && t.size(0) != batch))
    throw Error("E_SHAPE", std::string(name) + " is " + shape_str(t.sizes().vec()) + ", expected [" + (batch >= 0 ? std::to_string(batch) : "batch") +
                               ", length >= 1]");
  const auto ids = t.to(at::kLong);
  auto bad = ids.lt(0).logical_or(ids.ge(vocab));
  if (ignore) bad = bad.logical_and(ids.ne(-100));
  if (bad.any().item<bool>()) {
    const auto pos = bad.flatten().nonzero()[0].item<int64_t>();
    throw Error("E_INVALID_ARG", std::string(name) + "[" + std::to_string(pos / t.size(1)) + "][" + std::to_string(pos % t.size(1)) + "] is " +
                                     std::to_string(ids.flatten()[pos].item<int64_t>()) + ", outside the vocabulary [0, " + std::to_string(vocab) + ")" +
                                     (ignore ? " (or -100, ignored)" : ""));
  }
}

void check_mask(const at::Tensor& m, const char* name, const at::Tensor& like) {
  if (m.sizes() != like.sizes()) throw Error("E_SHAPE", std::string(name) + " is " + shape_str(m.sizes().vec()) + ", expected " + shape_str(like.sizes().vec()));
  if (m.ne(0).logical_and(m.ne(1)).any().item<bool>()) throw Error("E_INVALID_ARG", std::string(name) + " must hold only 0 and 1");
}

// The plain container module `name` under `parent`, made on first use: HF's "layer", "0", "DenseReluDense"
// hold no weights of their own, they only make the state-dict names.
torch::nn::Module& container(torch::nn::Module& parent, const std::string& name) {
  for (const auto& child : parent.named_children())
    if (child.key() == name) return *child.value();
  return *parent.register_module(name, std::make_shared<torch::nn::Module>(name));
}

// The config's sizes against the checkpoint before anything is allocated: a config asking for a huge model
// (vocab_size 1e10, num_layers 1e8) next to a tiny checkpoint is refused, not built. load_named checks the rest.
void check_sizes(const T5Config& c, const NamedTensors& weights, const std::string& config_path, const std::string& source) {
  auto expect = [&](const std::string& name, std::vector<int64_t> shape, const std::string& fields) {
    for (const auto& [key, t] : weights) {
      if (key != name) continue;
      if (t.sizes().vec() == shape) return;
      throw Error("E_BAD_CONFIG", config_path + " (" + fields + ") implies '" + name + "' " + shape_str(shape) + " but " + source + " holds " +
                                      shape_str(t.sizes().vec()));
    }
    throw Error("E_BAD_CHECKPOINT", source + " has no tensor '" + name + "' (" + fields + ")");
  };
  expect("shared.weight", {c.vocab_size, c.d_model}, "vocab_size, d_model");
  for (const auto& [stack, layers] : {std::pair<std::string, int64_t>{"encoder", c.num_layers}, {"decoder", c.num_decoder_layers}}) {
    const auto last = stack + ".block." + std::to_string(layers - 1) + ".layer.0.SelfAttention.q.weight";
    const int64_t inner = static_cast<int64_t>(c.structure.kept_heads(stack, "self", layers - 1, c.num_heads).size()) * c.d_kv;
    expect(last, {inner, c.d_model},
           (stack == "encoder" ? "num_layers, num_heads, d_kv" : "num_decoder_layers, num_heads, d_kv") + std::string(", ") + stack + "_pruned_heads");
    expect(stack + ".block.0.layer.0.SelfAttention.relative_attention_bias.weight", {c.relative_attention_num_buckets, c.num_heads},
           "relative_attention_num_buckets, num_heads");
    expect(stack + ".block.0.layer." + (stack == "encoder" ? "1" : "2") + ".DenseReluDense.wo.weight", {c.d_model, c.structure.ffn_width(stack, 0, c.d_ff)},
           "d_model, d_ff, " + stack + "_intermediate_sizes");
  }
}

}  // namespace

T5Config T5Config::from_json(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object()) bad_config(source, "not a JSON object");
  const auto arch = j.value("architectures", nlohmann::json::array());
  if (arch.is_array() && !arch.empty() && arch[0] != "T5ForConditionalGeneration")
    throw Error("E_BAD_CONFIG", source + ": architectures[0] " + arch[0].dump() + " is not supported for t5 (T5ForConditionalGeneration)");
  T5Config c;
  c.raw = j;
  c.vocab_size = size_field(j, "vocab_size", source);
  c.d_model = size_field(j, "d_model", source);
  c.d_kv = size_field(j, "d_kv", source);
  c.d_ff = size_field(j, "d_ff", source);
  c.num_layers = size_field(j, "num_layers", source);
  c.num_decoder_layers = size_field(j, "num_decoder_layers", source, c.num_layers);  // T5Config: num_layers when absent
  c.num_heads = size_field(j, "num_heads", source);
  c.relative_attention_num_buckets = size_field(j, "relative_attention_num_buckets", source, 32);
  // Fewer than 4 buckets leave no exact bucket (max_exact 0) and 4.4.2's log bucket divides by zero.
  if (c.relative_attention_num_buckets < 4) bad_config(source, "field 'relative_attention_num_buckets' must be at least 4");
  if (j.contains("layer_norm_epsilon") && !j["layer_norm_epsilon"].is_null()) {
    if (!j["layer_norm_epsilon"].is_number() || !(j["layer_norm_epsilon"].get<double>() >= 0))
      bad_config(source, "field 'layer_norm_epsilon' must be a number >= 0, got " + j["layer_norm_epsilon"].dump());
    c.layer_norm_epsilon = j["layer_norm_epsilon"].get<double>();
  }
  const auto rate = j.value("dropout_rate", nlohmann::json(0.1));
  if (!rate.is_number() || !(rate.get<double>() >= 0 && rate.get<double>() < 1))
    bad_config(source, "field 'dropout_rate' must be a number in [0, 1), got " + rate.dump());
  c.dropout_rate = rate.get<double>();
  const auto ff = j.value("feed_forward_proj", nlohmann::json("relu"));
  if (ff != "relu" && ff != "gated-gelu") bad_config(source, "field 'feed_forward_proj' must be \"relu\" or \"gated-gelu\" (as 4.4.2), got " + ff.dump());
  c.gated_gelu = ff == "gated-gelu";
  const auto tie = j.value("tie_word_embeddings", nlohmann::json(true));
  if (!tie.is_boolean()) bad_config(source, "field 'tie_word_embeddings' must be a boolean, got " + tie.dump());
  c.tie_word_embeddings = tie.get<bool>();
  c.pad_token_id = id_field(j, "pad_token_id", source, 0);
  c.eos_token_id = id_field(j, "eos_token_id", source, 1);
  c.decoder_start_token_id = id_field(j, "decoder_start_token_id", source, -1);
  for (const auto& [key, id] : {std::pair<const char*, int64_t>{"pad_token_id", c.pad_token_id}, {"eos_token_id", c.eos_token_id},
                                {"decoder_start_token_id", c.decoder_start_token_id}})
    if (id >= c.vocab_size) bad_config(source, std::string("field '") + key + "' is " + std::to_string(id) + ", outside the vocabulary");
  c.structure = Seq2SeqStructure::from_json(j, source, c.num_layers, c.num_decoder_layers, c.num_heads, c.num_heads, c.d_ff, c.d_ff);
  return c;
}

at::Tensor t5_relative_buckets(const at::Tensor& rel_in, bool bidirectional, int64_t num_buckets) {
  auto rel = rel_in.to(at::kLong);
  auto buckets = at::zeros_like(rel);
  int64_t n = num_buckets;
  if (bidirectional) {
    n /= 2;
    buckets = buckets.add(rel.gt(0).to(at::kLong).mul(n));
    rel = rel.abs();
  } else {
    rel = rel.clamp_max(0).neg();
  }
  const int64_t exact = n / 2;
  // Far positions share log-spaced buckets up to max_distance 128 (hard-coded in 4.4.2); float32 as there.
  auto large = rel.to(at::kFloat).div(static_cast<double>(exact)).log().div(std::log(128.0 / static_cast<double>(exact))).mul(static_cast<double>(n - exact));
  large = large.to(at::kLong).add(exact).clamp_max(n - 1);
  return buckets.add(at::where(rel.lt(exact), rel, large));
}

T5LayerNormImpl::T5LayerNormImpl(int64_t dim, double eps_) : eps(eps_) { weight = register_parameter("weight", at::ones({dim})); }

at::Tensor T5LayerNormImpl::forward(const at::Tensor& x) const {
  const auto variance = x.to(at::kFloat).pow(2).mean(-1, /*keepdim=*/true);
  return weight.mul(x.mul(variance.add(eps).rsqrt()));
}

T5AttentionImpl::T5AttentionImpl(const T5Config& c, bool has_relative_bias, bool bidirectional_, const std::vector<int64_t>& kept)
    : heads(static_cast<int64_t>(kept.size())), d_kv(c.d_kv), buckets(c.relative_attention_num_buckets), bidirectional(bidirectional_) {
  if (heads < c.num_heads) kept_heads = kept;
  const int64_t inner = heads * c.d_kv;
  q = register_module("q", Linear(c.d_model, inner, false));
  k = register_module("k", Linear(c.d_model, inner, false));
  v = register_module("v", Linear(c.d_model, inner, false));
  o = register_module("o", Linear(inner, c.d_model, false));
  if (has_relative_bias) relative_attention_bias = register_module("relative_attention_bias", Embedding(buckets, c.num_heads));
  dropout = c.dropout_rate;
}

at::Tensor T5AttentionImpl::compute_bias(int64_t q_len, int64_t k_len, int64_t q_from) const {
  const auto opts = at::TensorOptions().dtype(at::kLong).device(relative_attention_bias->weight.device());
  const auto rel = at::arange(k_len, opts).unsqueeze(0).sub(at::arange(q_from, q_from + q_len, opts).unsqueeze(1));
  const auto b = relative_attention_bias->forward(t5_relative_buckets(rel, bidirectional, buckets));  // [q, k, H]
  return b.permute({2, 0, 1}).unsqueeze(0);
}

at::Tensor T5AttentionImpl::heads_of(const Linear& proj, const at::Tensor& x) const {
  return proj->forward(x).view({x.size(0), x.size(1), heads, d_kv}).transpose(1, 2);
}

at::Tensor T5AttentionImpl::attend(const at::Tensor& q_, const at::Tensor& k_, const at::Tensor& v_, const at::Tensor& bias, at::Tensor* probs) const {
  // The stack's bias has a column per original head (block 0's table): this block adds its kept heads' columns.
  // A bias of one head column (the cross-attention's mask) broadcasts as it is.
  const bool cut = !kept_heads.empty() && bias.size(1) > 1;
  const auto own = cut ? bias.index_select(1, at::tensor(kept_heads, at::kLong).to(bias.device())) : bias;
  const auto scores = at::matmul(q_, k_.transpose(-1, -2)).add(own);
  const auto p = at::softmax(scores.to(at::kFloat), -1).to(scores.scalar_type());
  if (probs) *probs = p;
  return o->forward(at::matmul(bp::dropout(p, dropout, is_training()), v_).transpose(1, 2).reshape({q_.size(0), q_.size(2), heads * d_kv}));
}

at::Tensor T5AttentionImpl::forward(const at::Tensor& x, const at::Tensor& kv, const at::Tensor& bias, at::Tensor* probs) const {
  return attend(heads_of(q, x), heads_of(k, kv), heads_of(v, kv), bias, probs);
}

T5BlockImpl::T5BlockImpl(const T5Config& c, bool decoder, int64_t layer) : dropout(c.dropout_rate) {
  const std::string stack = decoder ? "decoder" : "encoder";
  const bool has_relative_bias = layer == 0;
  const int64_t d_ff = c.structure.ffn_width(stack, layer, c.d_ff);
  auto& layers = container(*this, "layer");
  auto& l0 = container(layers, "0");
  self_attn = l0.register_module("SelfAttention", T5Attention(c, has_relative_bias, !decoder, c.structure.kept_heads(stack, "self", layer, c.num_heads)));
  self_norm = l0.register_module("layer_norm", T5LayerNorm(c.d_model, c.layer_norm_epsilon));
  if (decoder) {
    auto& l1 = container(layers, "1");
    cross_attn = l1.register_module("EncDecAttention", T5Attention(c, false, true, c.structure.kept_heads(stack, "cross", layer, c.num_heads)));
    cross_norm = l1.register_module("layer_norm", T5LayerNorm(c.d_model, c.layer_norm_epsilon));
  }
  auto& lf = container(layers, decoder ? "2" : "1");
  // 4.4.2 names the FFN DenseReluDense whichever activation it has.
  auto& dense = container(lf, "DenseReluDense");
  if (c.gated_gelu) {
    wi_0 = dense.register_module("wi_0", Linear(c.d_model, d_ff, false));
    wi_1 = dense.register_module("wi_1", Linear(c.d_model, d_ff, false));
  } else {
    wi = dense.register_module("wi", Linear(c.d_model, d_ff, false));
  }
  wo = dense.register_module("wo", Linear(d_ff, c.d_model, false));
  ffn_norm = lf.register_module("layer_norm", T5LayerNorm(c.d_model, c.layer_norm_epsilon));
}

at::Tensor T5BlockImpl::ffn(const at::Tensor& x) const {
  // gated-gelu: 4.4.2's T5DenseGatedGeluDense uses gelu_new (the tanh approximation).
  const bool train = is_training();
  if (wi_0) return wo->forward(bp::dropout(at::gelu(wi_0->forward(x), "tanh").mul(wi_1->forward(x)), dropout, train));
  return wo->forward(bp::dropout(at::relu(wi->forward(x)), dropout, train));
}

at::Tensor T5BlockImpl::forward(const at::Tensor& x_in, const at::Tensor& self_bias, const at::Tensor& enc, const at::Tensor& cross_bias,
                                at::Tensor* self_probs, at::Tensor* cross_probs) const {
  const bool train = is_training();
  auto h = self_norm->forward(x_in);
  auto x = x_in.add(bp::dropout(self_attn->forward(h, h, self_bias, self_probs), dropout, train));
  if (cross_attn) x = x.add(bp::dropout(cross_attn->forward(cross_norm->forward(x), enc, cross_bias, cross_probs), dropout, train));
  return x.add(bp::dropout(ffn(ffn_norm->forward(x)), dropout, train));
}

at::Tensor T5BlockImpl::step(const at::Tensor& x_in, const at::Tensor& self_bias, at::Tensor& self_k, at::Tensor& self_v, const at::Tensor& cross_k,
                             const at::Tensor& cross_v, const at::Tensor& cross_bias) const {
  const auto& sa = *self_attn;
  const auto h = self_norm->forward(x_in);
  self_k = append_positions(self_k, sa.heads_of(sa.k, h));
  self_v = append_positions(self_v, sa.heads_of(sa.v, h));
  auto x = x_in.add(sa.attend(sa.heads_of(sa.q, h), self_k, self_v, self_bias, nullptr));
  x = x.add(cross_attn->attend(cross_attn->heads_of(cross_attn->q, cross_norm->forward(x)), cross_k, cross_v, cross_bias, nullptr));
  return x.add(ffn(ffn_norm->forward(x)));
}

T5StackImpl::T5StackImpl(const T5Config& c, bool decoder) : dropout(c.dropout_rate) {
  const int64_t L = decoder ? c.num_decoder_layers : c.num_layers;
  auto& list = container(*this, "block");
  for (int64_t i = 0; i < L; ++i) blocks.push_back(list.register_module(std::to_string(i), T5Block(c, decoder, i)));
  final_layer_norm = register_module("final_layer_norm", T5LayerNorm(c.d_model, c.layer_norm_epsilon));
}

T5StackImpl::Out T5StackImpl::forward(const at::Tensor& embeds, const at::Tensor& bias, const at::Tensor& enc, const at::Tensor& cross_bias,
                                      const Seq2SeqFlags& flags) const {
  Out out;
  auto x = bp::dropout(embeds, dropout, is_training());
  for (const auto& block : blocks) {
    if (flags.hidden_states) out.hidden.push_back(x);
    at::Tensor sp, cp;
    x = block->forward(x, bias, enc, cross_bias, flags.attentions ? &sp : nullptr, flags.attentions && enc.defined() ? &cp : nullptr);
    if (flags.attentions) {
      out.self_probs.push_back(sp);
      if (cp.defined()) out.cross_probs.push_back(cp);
    }
  }
  // HF's last hidden state is the final norm's output; the last block's raw output is not exposed.
  out.last = bp::dropout(final_layer_norm->forward(x), dropout, is_training());
  if (flags.hidden_states) out.hidden.push_back(out.last);
  return out;
}

T5Model::T5Model(const T5Config& c, std::string json) : config(c), config_json(std::move(json)) {
  shared = register_module("shared", Embedding(c.vocab_size, c.d_model));
  encoder = register_module("encoder", T5Stack(c, false));
  decoder = register_module("decoder", T5Stack(c, true));
  if (!c.tie_word_embeddings) lm_head = register_module("lm_head", Linear(c.d_model, c.vocab_size, false));
}

std::vector<std::pair<std::string, std::string>> T5Model::tied_aliases() const {
  std::vector<std::pair<std::string, std::string>> a = {{"encoder.embed_tokens.weight", "shared.weight"}, {"decoder.embed_tokens.weight", "shared.weight"}};
  if (config.tie_word_embeddings) a.emplace_back("lm_head.weight", "shared.weight");
  return a;
}

at::Tensor T5Model::shift_right(const at::Tensor& labels) const {
  if (config.decoder_start_token_id < 0)
    throw Error("E_BAD_CONFIG", "config.json has no decoder_start_token_id: decoder inputs cannot be derived from labels (pass decoderInputIds)");
  auto shifted = at::full_like(labels, config.decoder_start_token_id);
  shifted.narrow(1, 1, labels.size(1) - 1).copy_(labels.narrow(1, 0, labels.size(1) - 1));
  return shifted.masked_fill(shifted.eq(-100), config.pad_token_id);
}

NamedTensors T5Model::forward(const Seq2SeqBatch& in, const Seq2SeqFlags& flags) {
  const int64_t V = config.vocab_size;
  if (!in.input_ids.defined()) throw Error("E_INVALID_ARG", "input_ids is required");
  check_ids(in.input_ids, "input_ids", -1, V);
  const int64_t B = in.input_ids.size(0);
  if (in.labels.defined()) check_ids(in.labels, "labels", B, V, /*ignore=*/true);
  if (in.decoder_input_ids.defined()) check_ids(in.decoder_input_ids, "decoder_input_ids", B, V);
  if (!in.decoder_input_ids.defined() && !in.labels.defined()) throw Error("E_INVALID_ARG", "T5 needs decoder_input_ids or labels (to shift right)");
  if (in.labels.defined() && in.decoder_input_ids.defined() && in.labels.sizes() != in.decoder_input_ids.sizes())
    throw Error("E_SHAPE", "labels is " + shape_str(in.labels.sizes().vec()) + " but decoder_input_ids is " + shape_str(in.decoder_input_ids.sizes().vec()));
  if (in.attention_mask.defined()) check_mask(in.attention_mask, "attention_mask", in.input_ids);

  const auto dev = shared->weight.device();
  const auto ids = in.input_ids.to(dev, at::kLong);
  const auto dec_ids = (in.decoder_input_ids.defined() ? in.decoder_input_ids : shift_right(in.labels.to(at::kLong))).to(dev, at::kLong);
  if (in.decoder_attention_mask.defined()) check_mask(in.decoder_attention_mask, "decoder_attention_mask", dec_ids);
  const int64_t S = ids.size(1), T = dec_ids.size(1);
  const auto enc_mask = in.attention_mask.defined() ? in.attention_mask.to(dev) : at::ones({B, S}, ids.options());
  const auto dec_mask = in.decoder_attention_mask.defined() ? in.decoder_attention_mask.to(dev) : at::ones({B, T}, ids.options());

  // Block 0's position bias plus the mask, computed once per stack and added by every block (as 4.4.2 passes it on).
  const auto enc_bias = encoder->blocks[0]->self_attn->compute_bias(S, S).add(mask_bias(enc_mask, -10000.0));
  const auto causal = at::ones({T, T}, ids.options()).tril().unsqueeze(0).mul(dec_mask.unsqueeze(1));  // [B, T, T]
  const auto dec_bias = decoder->blocks[0]->self_attn->compute_bias(T, T).add(causal.to(at::kFloat).neg().add(1.0).mul(-10000.0).unsqueeze(1));
  const auto cross_bias = mask_bias(enc_mask, -1e9);

  const auto enc = encoder->forward(shared->forward(ids), enc_bias, at::Tensor(), at::Tensor(), flags);
  const auto dec = decoder->forward(shared->forward(dec_ids), dec_bias, enc.last, cross_bias, flags);
  const auto logits = head(dec.last);

  NamedTensors out{{"logits", logits}};
  if (in.labels.defined())
    out.emplace_back("loss", at::cross_entropy_loss(logits.reshape({-1, V}), in.labels.to(dev, at::kLong).reshape({-1}), {}, at::Reduction::Mean, -100));
  out.emplace_back("encoder_last_hidden_state", enc.last);
  auto add = [&](const std::string& prefix, const std::vector<at::Tensor>& ts) {
    for (size_t i = 0; i < ts.size(); ++i) out.emplace_back(prefix + "." + std::to_string(i), ts[i]);
  };
  add("encoder_hidden_states", enc.hidden);
  add("decoder_hidden_states", dec.hidden);
  add("encoder_attentions", enc.self_probs);
  add("decoder_attentions", dec.self_probs);
  add("cross_attentions", dec.cross_probs);
  return out;
}

at::Tensor T5Model::head(const at::Tensor& h) const {
  // Tied head: 4.4.2 scales the decoder output by d_model^-0.5 first (only when tied).
  return lm_head ? lm_head->forward(h) : rows_linear(h.mul(std::pow(static_cast<double>(config.d_model), -0.5)), shared->weight, {});
}

namespace {

// What T5 keeps between decoding steps, per decoder block: the cross-attention keys and values of the encoder
// output (computed once by start), and the self-attention keys and values of the positions fed so far. The
// encoder output itself is not kept: nothing reads it once its keys and values are made.
struct T5Cache : DecoderCache {
  at::Tensor cross_bias;                        // [N, 1, 1, S]: the source padding, -1e9 as forward
  std::vector<at::Tensor> cross_k, cross_v;     // [N, H, S, d_kv] per block
  std::vector<at::Tensor> self_k, self_v;       // [N, H, steps, d_kv] per block
  int64_t steps = 0;                            // positions fed: the next step must be at this position
};

T5Cache& t5_cache(DecoderCache& cache) {
  auto* c = dynamic_cast<T5Cache*>(&cache);
  if (!c) throw Error("E_INVALID_ARG", "this decoder cache was not made by a t5 model's start()");
  return *c;
}

}  // namespace

std::unique_ptr<DecoderCache> T5Model::start(const at::Tensor& input_ids, const at::Tensor& attention_mask) {
  at::NoGradGuard no_grad;  // the cache must hold values, not graphs
  if (!input_ids.defined()) throw Error("E_INVALID_ARG", "input_ids is required");
  check_ids(input_ids, "input_ids", -1, config.vocab_size);
  if (attention_mask.defined()) check_mask(attention_mask, "attention_mask", input_ids);
  const auto dev = shared->weight.device();
  const auto ids = input_ids.to(dev, at::kLong);
  const int64_t N = ids.size(0), S = ids.size(1);
  const auto mask = attention_mask.defined() ? attention_mask.to(dev) : at::ones({N, S}, ids.options());
  const auto enc_bias = encoder->blocks[0]->self_attn->compute_bias(S, S).add(mask_bias(mask, -10000.0));
  const auto enc = encoder->forward(shared->forward(ids), enc_bias, at::Tensor(), at::Tensor(), Seq2SeqFlags{}).last;
  auto cache = std::make_unique<T5Cache>();
  cache->cross_bias = mask_bias(mask, -1e9);
  for (const auto& block : decoder->blocks) {
    const auto& ca = *block->cross_attn;
    cache->cross_k.push_back(ca.heads_of(ca.k, enc));
    cache->cross_v.push_back(ca.heads_of(ca.v, enc));
    const auto empty = at::empty({N, block->self_attn->heads, 0, config.d_kv}, enc.options());  // a compact block's own heads
    cache->self_k.push_back(empty);
    cache->self_v.push_back(empty);
  }
  return cache;
}

at::Tensor T5Model::step(DecoderCache& cache_in, const at::Tensor& tokens, int64_t position) {
  at::NoGradGuard no_grad;
  auto& cache = t5_cache(cache_in);
  const int64_t N = cache.cross_bias.size(0);
  if (position != cache.steps)
    throw Error("E_INVALID_ARG", "step at position " + std::to_string(position) + " but the cache holds " + std::to_string(cache.steps) +
                                     " positions: steps go 0, 1, 2, ... in order");
  if (!tokens.defined() || tokens.dim() != 1 || tokens.size(0) != N)
    throw Error("E_SHAPE", "tokens is " + (tokens.defined() ? shape_str(tokens.sizes().vec()) : std::string("undefined")) + ", expected [" +
                               std::to_string(N) + "] (one per cache row)");
  check_ids(tokens.unsqueeze(1), "tokens", N, config.vocab_size);
  auto x = shared->forward(tokens.to(shared->weight.device(), at::kLong).unsqueeze(1));  // [N, 1, D]
  // Keys 0..position are all visible to the newest query: no causal mask, only block 0's bias row.
  const auto bias = decoder->blocks[0]->self_attn->compute_bias(1, position + 1, position);
  for (size_t i = 0; i < decoder->blocks.size(); ++i)
    x = decoder->blocks[i]->step(x, bias, cache.self_k[i], cache.self_v[i], cache.cross_k[i], cache.cross_v[i], cache.cross_bias);
  ++cache.steps;
  return head(decoder->final_layer_norm->forward(x)).squeeze(1);
}

void T5Model::select(DecoderCache& cache_in, const at::Tensor& index) {
  at::NoGradGuard no_grad;
  auto& cache = t5_cache(cache_in);
  const int64_t N = cache.cross_bias.size(0);
  if (!index.defined() || index.dim() != 1 || index.size(0) < 1)
    throw Error("E_SHAPE", "index is " + (index.defined() ? shape_str(index.sizes().vec()) : std::string("undefined")) + ", expected [rows >= 1]");
  const auto idx = index.to(cache.cross_bias.device(), at::kLong);
  if (idx.lt(0).logical_or(idx.ge(N)).any().item<bool>())
    throw Error("E_INVALID_ARG", "index holds a row outside the cache's " + std::to_string(N) + " rows");
  cache.cross_bias = cache.cross_bias.index_select(0, idx);
  for (auto* list : {&cache.cross_k, &cache.cross_v, &cache.self_k, &cache.self_v})
    for (auto& t : *list) t = t.index_select(0, idx);
}

Seq2SeqInfo T5Model::info() const {
  Seq2SeqInfo i;
  i.model_type = "t5";
  i.architecture = "T5ForConditionalGeneration";
  i.config_json = config_json;
  i.vocab_size = config.vocab_size;
  i.d_model = config.d_model;
  i.encoder_layers = config.num_layers;
  i.decoder_layers = config.num_decoder_layers;
  i.heads = config.num_heads;
  i.pad_token_id = config.pad_token_id;
  i.eos_token_id = config.eos_token_id;
  i.decoder_start_token_id = config.decoder_start_token_id;
  i.num_parameters = count_parameters(*this);  // mask scores of a patched model not counted, as BERT's
  return i;
}

std::vector<PrunableBlock> T5Model::prunable_blocks() const {
  std::vector<PrunableBlock> out;
  const auto& c = config;
  for (const bool decoder : {false, true}) {
    const std::string stack = decoder ? "decoder" : "encoder";
    for (int64_t i = 0; i < (decoder ? c.num_decoder_layers : c.num_layers); ++i) {
      const std::string p = stack + ".block." + std::to_string(i) + ".layer.";
      auto attention = [&](const std::string& name, const std::string& role) {
        const std::string a = p + name + ".";
        const auto heads = static_cast<int64_t>(c.structure.kept_heads(stack, role, i, c.num_heads).size());
        out.push_back({"attention", stack, i, role, {a + "q", a + "k", a + "v", a + "o"}, heads, c.d_kv, 0});
      };
      attention("0.SelfAttention", "self");
      if (decoder) attention("1.EncDecAttention", "cross");
      const std::string f = p + (decoder ? "2" : "1") + ".DenseReluDense.";
      out.push_back({"ffn", stack, i, "",
                     c.gated_gelu ? std::vector<std::string>{f + "wi_0", f + "wi_1", f + "wo"} : std::vector<std::string>{f + "wi", f + "wo"}, 0, 0,
                     c.structure.ffn_width(stack, i, c.d_ff)});
    }
  }
  return out;
}

std::shared_ptr<Seq2SeqImpl> load_t5(const nlohmann::json& j, const std::string& path, const std::string& dir, const std::string& device) {
  const auto config = T5Config::from_json(j, path);
  std::string source;
  const auto weights = read_weights(dir, &source);
  check_sizes(config, weights, path, source);
  auto model = std::make_shared<T5Model>(config, j.dump());
  load_named(*model, weights, model->tied_aliases(), source);
  model->to(parse_device(device));
  model->eval();
  return model;
}

}  // namespace bp
