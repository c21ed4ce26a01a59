#include "bart.h"

#include <ATen/ATen.h>

#include <cmath>
#include <limits>

#include "checkpoint.h"
#include "config.h"
#include "dropout.h"
#include "errors.h"
#include "kv_append.h"
#include "mixed_precision.h"

namespace bp {

// ---- config ------------------------------------------------------------------------------------

namespace {

[[noreturn]] void bad_config(const std::string& source, const std::string& what) {
  throw Error("E_BAD_CONFIG", "invalid config " + source + ": " + what);
}

// A size or token id the model cannot be built without: E_BAD_CONFIG naming the field when absent.
int64_t required_int(const nlohmann::json& j, const char* key, int64_t lo, const std::string& source) {
  if (!j.contains(key) || j[key].is_null()) bad_config(source, std::string("field '") + key + "' is missing");
  if (!j[key].is_number_integer() || j[key].get<int64_t>() < lo)
    bad_config(source, std::string("field '") + key + "' must be an integer >= " + std::to_string(lo) + ", got " + j[key].dump());
  return j[key].get<int64_t>();
}

template <typename T>
T optional_field(const nlohmann::json& j, const char* key, T def, const std::string& source) {
  if (!j.contains(key) || j[key].is_null()) return def;
  try {
    return j[key].get<T>();
  } catch (const nlohmann::json::exception&) {
    bad_config(source, std::string("field '") + key + "' has the wrong type: " + j[key].dump());
  }
}

}  // namespace

BartConfig BartConfig::from_json(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object()) bad_config(source, "not a JSON object");
  BartConfig c;
  c.config_json = j.dump(2);
  c.vocab_size = required_int(j, "vocab_size", 1, source);
  c.d_model = required_int(j, "d_model", 1, source);
  c.encoder_layers = required_int(j, "encoder_layers", 0, source);
  c.decoder_layers = required_int(j, "decoder_layers", 0, source);
  c.encoder_attention_heads = required_int(j, "encoder_attention_heads", 1, source);
  c.decoder_attention_heads = required_int(j, "decoder_attention_heads", 1, source);
  c.encoder_ffn_dim = required_int(j, "encoder_ffn_dim", 1, source);
  c.decoder_ffn_dim = required_int(j, "decoder_ffn_dim", 1, source);
  c.max_position_embeddings = required_int(j, "max_position_embeddings", 1, source);
  c.pad_token_id = required_int(j, "pad_token_id", 0, source);
  c.eos_token_id = required_int(j, "eos_token_id", 0, source);
  c.decoder_start_token_id = required_int(j, "decoder_start_token_id", 0, source);
  using Field = std::vector<std::pair<const char*, int64_t>>;
  for (const auto& [name, v] : Field{{"pad_token_id", c.pad_token_id}, {"eos_token_id", c.eos_token_id}, {"decoder_start_token_id", c.decoder_start_token_id}})
    if (v >= c.vocab_size) bad_config(source, std::string("field '") + name + "' is " + std::to_string(v) + ", not below vocab_size");
  for (const auto& [name, heads] : Field{{"encoder_attention_heads", c.encoder_attention_heads}, {"decoder_attention_heads", c.decoder_attention_heads}})
    if (c.d_model % heads) bad_config(source, std::string("d_model ") + std::to_string(c.d_model) + " is not a multiple of " + name + " " + std::to_string(heads));
  c.activation_function = optional_field<std::string>(j, "activation_function", "gelu", source);
  try {
    activation(at::zeros({1}), c.activation_function);
  } catch (const Error&) {
    bad_config(source, "field 'activation_function' names an unsupported activation '" + c.activation_function + "'");
  }
  c.scale_embedding = optional_field<bool>(j, "scale_embedding", false, source);
  c.dropout = optional_field<double>(j, "dropout", 0.1, source);
  c.attention_dropout = optional_field<double>(j, "attention_dropout", 0.0, source);
  c.activation_dropout = optional_field<double>(j, "activation_dropout", 0.0, source);
  c.classifier_dropout = optional_field<double>(j, "classifier_dropout", 0.0, source);
  // PretrainedConfig: id2label decides num_labels when present (save_pretrained writes it).
  if (j.contains("id2label") && j["id2label"].is_object() && !j["id2label"].empty())
    c.num_labels = static_cast<int64_t>(j["id2label"].size());
  else if (j.contains("num_labels"))
    c.num_labels = required_int(j, "num_labels", 1, source);
  c.structure = Seq2SeqStructure::from_json(j, source, c.encoder_layers, c.decoder_layers, c.encoder_attention_heads, c.decoder_attention_heads,
                                            c.encoder_ffn_dim, c.decoder_ffn_dim);
  const auto archs = optional_field<std::vector<std::string>>(j, "architectures", {}, source);
  for (const auto& a : archs) {
    if (a == "BartForSequenceClassification") c.classification = true;
    else if (a != "BartForConditionalGeneration")
      bad_config(source, "architecture '" + a + "' is not one blockprune builds (BartForConditionalGeneration, BartForSequenceClassification)");
  }
  return c;
}

// ---- modules -----------------------------------------------------------------------------------

at::Tensor bart_shift_tokens_right(const at::Tensor& ids, int64_t pad_token_id, int64_t decoder_start_token_id) {
  auto shifted = at::empty_like(ids);
  shifted.narrow(1, 1, ids.size(1) - 1).copy_(ids.narrow(1, 0, ids.size(1) - 1));
  shifted.select(1, 0).fill_(decoder_start_token_id);
  return shifted.masked_fill_(shifted.eq(-100), pad_token_id);
}

BartAttentionImpl::BartAttentionImpl(int64_t d_model, int64_t heads_, int64_t head_dim_, double dropout_)
    : heads(heads_), head_dim(head_dim_), dropout(dropout_) {
  // 4.4.2's registration order (k, v, q, out): the order named_parameters and a random init follow.
  const int64_t inner = heads * head_dim;
  k_proj = register_module("k_proj", Linear(d_model, inner));
  v_proj = register_module("v_proj", Linear(d_model, inner));
  q_proj = register_module("q_proj", Linear(d_model, inner));
  out_proj = register_module("out_proj", Linear(inner, d_model));
}

std::pair<at::Tensor, at::Tensor> BartAttentionImpl::keys_values(const at::Tensor& kv) const {
  const auto split = [&](const at::Tensor& t) { return t.view({kv.size(0), kv.size(1), heads, head_dim}).transpose(1, 2); };
  return {split(k_proj->forward(kv)), split(v_proj->forward(kv))};
}

at::Tensor BartAttentionImpl::attend(const at::Tensor& x, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask, at::Tensor* probs) const {
  const int64_t B = x.size(0), T = x.size(1);
  // The scaling comes after the bias, as in 4.4.2 (q_proj(x) * scaling), not folded into the weights.
  const auto q = (q_proj->forward(x) * std::pow(static_cast<double>(head_dim), -0.5)).view({B, T, heads, head_dim}).transpose(1, 2);
  auto scores = at::matmul(q, k.transpose(-1, -2));
  auto p = at::softmax(mask.defined() ? scores + mask : scores, -1);
  if (probs) *probs = p;
  p = bp::dropout(p, dropout, is_training());
  return out_proj->forward(at::matmul(p, v).transpose(1, 2).reshape({B, T, heads * head_dim}));
}

at::Tensor BartAttentionImpl::forward(const at::Tensor& x, const at::Tensor& kv, const at::Tensor& mask, at::Tensor* probs) const {
  const auto [k, v] = keys_values(kv);
  return attend(x, k, v, mask, probs);
}

BartLayerImpl::BartLayerImpl(const BartConfig& c, bool decoder, int64_t layer)
    : act(c.activation_function), dropout(c.dropout), activation_dropout(c.activation_dropout) {
  const std::string stack = decoder ? "decoder" : "encoder";
  const int64_t heads = decoder ? c.decoder_attention_heads : c.encoder_attention_heads;
  const int64_t head_dim = c.d_model / heads;
  // A compact model's blocks keep fewer heads, its FFNs fewer units (c.structure).
  const auto kept = [&](const char* role) { return static_cast<int64_t>(c.structure.kept_heads(stack, role, layer, heads).size()); };
  const int64_t ffn = c.structure.ffn_width(stack, layer, decoder ? c.decoder_ffn_dim : c.encoder_ffn_dim);
  self_attn = register_module("self_attn", BartAttention(c.d_model, kept("self"), head_dim, c.attention_dropout));
  self_attn_layer_norm = register_module("self_attn_layer_norm", LayerNorm(c.d_model, 1e-5));
  if (decoder) {
    encoder_attn = register_module("encoder_attn", BartAttention(c.d_model, kept("cross"), head_dim, c.attention_dropout));
    encoder_attn_layer_norm = register_module("encoder_attn_layer_norm", LayerNorm(c.d_model, 1e-5));
  }
  fc1 = register_module("fc1", Linear(c.d_model, ffn));
  fc2 = register_module("fc2", Linear(ffn, c.d_model));
  final_layer_norm = register_module("final_layer_norm", LayerNorm(c.d_model, 1e-5));
}

at::Tensor BartLayerImpl::forward(const at::Tensor& x, const at::Tensor& self_mask, const at::Tensor& enc, const at::Tensor& cross_mask,
                                  at::Tensor* self_probs, at::Tensor* cross_probs) const {
  const bool train = is_training();
  auto h = self_attn_layer_norm->forward(x + bp::dropout(self_attn->forward(x, x, self_mask, self_probs), dropout, train));
  if (encoder_attn) h = encoder_attn_layer_norm->forward(h + bp::dropout(encoder_attn->forward(h, enc, cross_mask, cross_probs), dropout, train));
  return feed_forward(h);
}

at::Tensor BartLayerImpl::feed_forward(const at::Tensor& h) const {
  const bool train = is_training();
  auto f = bp::dropout(activation(fc1->forward(h), act), activation_dropout, train);
  return final_layer_norm->forward(h + bp::dropout(fc2->forward(f), dropout, train));
}

at::Tensor BartLayerImpl::step(const at::Tensor& x, std::pair<at::Tensor, at::Tensor>& self, const std::pair<at::Tensor, at::Tensor>& cross,
                               const at::Tensor& cross_mask) const {
  auto [k, v] = self_attn->keys_values(x);
  self.first = append_positions(self.first, k);
  self.second = append_positions(self.second, v);
  const auto h = self_attn_layer_norm->forward(x + self_attn->attend(x, self.first, self.second, {}, nullptr));
  return feed_forward(encoder_attn_layer_norm->forward(h + encoder_attn->attend(h, cross.first, cross.second, cross_mask, nullptr)));
}

BartStackImpl::BartStackImpl(const BartConfig& c, bool decoder)
    : embed_scale(c.scale_embedding ? std::sqrt(static_cast<double>(c.d_model)) : 1.0), dropout(c.dropout) {
  embed_positions = register_module("embed_positions", Embedding(c.max_position_embeddings + kPositionOffset, c.d_model, c.pad_token_id));
  layernorm_embedding = register_module("layernorm_embedding", LayerNorm(c.d_model, 1e-5));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0, n = decoder ? c.decoder_layers : c.encoder_layers; i < n; ++i) {
    layer_list.push_back(BartLayer(c, decoder, i));
    layers->push_back(layer_list.back());
  }
}

BartModelImpl::BartModelImpl(const BartConfig& c) {
  shared = register_module("shared", Embedding(c.vocab_size, c.d_model, c.pad_token_id));
  encoder = register_module("encoder", BartStack(c, false));
  decoder = register_module("decoder", BartStack(c, true));
}

BartImpl::BartImpl(BartConfig c) : config_(std::move(c)) {
  model = register_module("model", BartModel(config_));
  if (config_.classification) {
    auto head = register_module("classification_head", std::make_shared<torch::nn::Module>("BartClassificationHead"));
    cls_dense = head->register_module("dense", Linear(config_.d_model, config_.d_model));
    cls_out = head->register_module("out_proj", Linear(config_.d_model, config_.num_labels));
  } else {
    final_logits_bias = register_buffer("final_logits_bias", at::zeros({1, config_.vocab_size}));
  }
}

// ---- forward -----------------------------------------------------------------------------------

namespace {

void check_shape(const at::Tensor& t, const char* name, const std::vector<int64_t>& shape) {
  if (t.scalar_type() != at::kLong) throw Error("E_INVALID_ARG", std::string(name) + " must be int64");
  if (t.sizes().vec() != shape) throw Error("E_SHAPE", std::string("Expected ") + name + " of shape " + shape_str(shape) + " but received " + shape_str(t.sizes().vec()));
}

// Every value in [lo, hi), or `ignore`.
void check_range(const at::Tensor& t, const char* name, int64_t lo, int64_t hi, const char* what, int64_t ignore = std::numeric_limits<int64_t>::min()) {
  const auto bad = t.lt(lo).logical_or(t.ge(hi)).logical_and(t.ne(ignore));
  if (bad.any().item<bool>()) {
    const auto v = t.masked_select(bad)[0].item<int64_t>();
    throw Error("E_INVALID_ARG", std::string(name) + " must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + ") (" + what + ") but holds " + std::to_string(v));
  }
}

// 4.4.2's _expand_mask: keys with mask 0 get finfo.min, broadcast to [B, 1, 1, S].
at::Tensor padding_mask(const at::Tensor& mask, const at::TensorOptions& opts) {
  const auto lowest = std::numeric_limits<float>::lowest();
  return at::zeros(mask.sizes(), opts).masked_fill(mask.eq(0), lowest).unsqueeze(1).unsqueeze(1);
}

}  // namespace

void BartImpl::check_batch(const Seq2SeqBatch& b) const {
  const auto& c = config_;
  if (!b.input_ids.defined() || b.input_ids.dim() != 2) throw Error("E_SHAPE", "Expected input_ids of shape [batch, seq]");
  const int64_t B = b.input_ids.size(0), S = b.input_ids.size(1);
  if (B == 0 || S == 0) throw Error("E_SHAPE", "Expected a non-empty batch but received input_ids of shape " + shape_str({B, S}));
  check_shape(b.input_ids, "input_ids", {B, S});
  check_range(b.input_ids, "input_ids", 0, c.vocab_size, "vocab_size");
  const auto too_long = [&](const char* name, int64_t n) {
    if (n > c.max_position_embeddings)
      throw Error("E_INVALID_ARG", std::string(name) + ": length " + std::to_string(n) + " exceeds max_position_embeddings " + std::to_string(c.max_position_embeddings));
  };
  too_long("input_ids", S);
  if (b.attention_mask.defined()) {
    check_shape(b.attention_mask, "attention_mask", {B, S});
    check_range(b.attention_mask, "attention_mask", 0, 2, "0 or 1");
  }
  // The decoder's length: its inputs', else the token labels', else (shifted input_ids) the source's.
  int64_t T = S;
  if (b.decoder_input_ids.defined()) {
    if (b.decoder_input_ids.dim() != 2 || b.decoder_input_ids.size(0) != B || b.decoder_input_ids.size(1) == 0)
      throw Error("E_SHAPE", "Expected decoder_input_ids of shape [" + std::to_string(B) + ", target] but received " + shape_str(b.decoder_input_ids.sizes().vec()));
    T = b.decoder_input_ids.size(1);
    check_shape(b.decoder_input_ids, "decoder_input_ids", {B, T});
    check_range(b.decoder_input_ids, "decoder_input_ids", 0, c.vocab_size, "vocab_size");
  } else if (b.labels.defined() && !c.classification) {
    if (b.labels.dim() != 2 || b.labels.size(0) != B || b.labels.size(1) == 0)
      throw Error("E_SHAPE", "Expected labels of shape [" + std::to_string(B) + ", target] but received " + shape_str(b.labels.sizes().vec()));
    T = b.labels.size(1);
  }
  too_long("decoder inputs", T);
  if (b.decoder_attention_mask.defined()) {
    check_shape(b.decoder_attention_mask, "decoder_attention_mask", {B, T});
    check_range(b.decoder_attention_mask, "decoder_attention_mask", 0, 2, "0 or 1");
  }
  if (b.labels.defined()) {
    if (c.classification) {
      check_shape(b.labels, "labels", {B});
      check_range(b.labels, "labels", 0, c.num_labels, "num_labels");
    } else {
      check_shape(b.labels, "labels", {B, T});
      check_range(b.labels, "labels", 0, c.vocab_size, "vocab_size, or -100 to ignore", -100);
    }
  }
  if (c.classification) {
    // 4.4.2 pools the decoder output at each row's last eos, and needs the same eos count in every row.
    const auto counts = b.input_ids.eq(c.eos_token_id).sum(1);
    if (counts.ne(counts[0]).any().item<bool>())
      throw Error("E_INVALID_ARG", "input_ids: All examples must have the same number of <eos> tokens (eos_token_id " + std::to_string(c.eos_token_id) + ")");
    if (counts[0].item<int64_t>() == 0)
      throw Error("E_INVALID_ARG", "input_ids: every row needs an <eos> token (eos_token_id " + std::to_string(c.eos_token_id) + "): classification reads the decoder there");
  }
}

NamedTensors BartImpl::forward(const Seq2SeqBatch& in, const Seq2SeqFlags& flags) {
  check_batch(in);
  const auto& c = config_;
  const auto dev = final_logits_bias.defined() ? final_logits_bias.device() : cls_out->weight.device();
  const auto on = [&](const at::Tensor& t) { return t.defined() ? t.to(dev) : t; };
  const auto input_ids = on(in.input_ids), labels = on(in.labels);
  const auto opts = model->shared->weight.options();
  const int64_t B = input_ids.size(0), S = input_ids.size(1);
  // BartModel derives the decoder's inputs from input_ids when none are given; the generation head from labels.
  at::Tensor dec_ids = on(in.decoder_input_ids);
  if (!dec_ids.defined())
    dec_ids = bart_shift_tokens_right(labels.defined() && !c.classification ? labels : input_ids, c.pad_token_id, c.decoder_start_token_id);
  const int64_t T = dec_ids.size(1);

  NamedTensors out;
  // Encoder.
  const auto src_mask = in.attention_mask.defined() ? padding_mask(on(in.attention_mask), opts) : at::zeros({B, 1, 1, S}, opts);
  const auto enc = encode(input_ids, src_mask, flags, out);
  // Decoder: causal -inf above the diagonal, plus the decoder's own padding when given (not HF's default).
  auto self_mask = at::full({T, T}, -std::numeric_limits<float>::infinity(), opts).triu(1).view({1, 1, T, T});
  if (in.decoder_attention_mask.defined()) self_mask = self_mask + padding_mask(on(in.decoder_attention_mask), opts);
  auto dec = embed(*model->decoder, dec_ids, 0);
  if (flags.hidden_states) out.emplace_back("decoder_hidden_states.0", dec);
  for (size_t i = 0; i < model->decoder->layer_list.size(); ++i) {
    at::Tensor ps, pc;
    const bool a = flags.attentions;
    dec = model->decoder->layer_list[i]->forward(dec, self_mask, enc, src_mask, a ? &ps : nullptr, a ? &pc : nullptr);
    if (flags.hidden_states) out.emplace_back("decoder_hidden_states." + std::to_string(i + 1), dec);
    if (a) {
      out.emplace_back("decoder_attentions." + std::to_string(i), ps);
      out.emplace_back("cross_attentions." + std::to_string(i), pc);
    }
  }
  at::Tensor logits, loss;
  if (c.classification) {
    // The decoder output at each row's last eos (check_batch: every row has the same count, at least one).
    const auto pos = at::arange(S, input_ids.options()).mul(input_ids.eq(c.eos_token_id)).argmax(1);
    const auto rep = dec.index({at::arange(B, pos.options()), pos});
    logits = cls_out->forward(bp::dropout(at::tanh(cls_dense->forward(bp::dropout(rep, c.classifier_dropout, is_training()))), c.classifier_dropout, is_training()));
    if (labels.defined()) loss = at::cross_entropy_loss(logits, labels);
  } else {
    logits = at::linear(dec, model->shared->weight) + final_logits_bias;
    if (labels.defined()) loss = at::cross_entropy_loss(logits.reshape({-1, c.vocab_size}), labels.reshape({-1}));
  }
  out.emplace(out.begin(), "encoder_last_hidden_state", enc);
  if (loss.defined()) out.emplace(out.begin(), "loss", loss);
  out.emplace(out.begin(), "logits", logits);
  return out;
}

at::Device BartImpl::device() const { return model->shared->weight.device(); }

at::Tensor BartImpl::embed(const BartStackImpl& stack, const at::Tensor& ids, int64_t position) const {
  const auto h = model->shared->forward(ids) * stack.embed_scale +
                 stack.embed_positions->weight.narrow(0, BartStackImpl::kPositionOffset + position, ids.size(1)).unsqueeze(0);
  return bp::dropout(stack.layernorm_embedding->forward(h), stack.dropout, is_training());
}

at::Tensor BartImpl::encode(const at::Tensor& ids, const at::Tensor& src_mask, const Seq2SeqFlags& flags, NamedTensors& out) const {
  auto enc = embed(*model->encoder, ids, 0);
  if (flags.hidden_states) out.emplace_back("encoder_hidden_states.0", enc);
  for (size_t i = 0; i < model->encoder->layer_list.size(); ++i) {
    at::Tensor p;
    enc = model->encoder->layer_list[i]->forward(enc, src_mask, {}, {}, flags.attentions ? &p : nullptr, nullptr);
    if (flags.hidden_states) out.emplace_back("encoder_hidden_states." + std::to_string(i + 1), enc);
    if (flags.attentions) out.emplace_back("encoder_attentions." + std::to_string(i), p);
  }
  return enc;
}

// ---- incremental decoding ----------------------------------------------------------------------

namespace {

// What BART's decoder reads at each step: the source padding mask, each layer's cross-attention keys and
// values (computed once by start: the encoder output is read only through them, so it is not kept) and its
// self-attention keys and values so far ([N, heads, t, head_dim]). Rows are the decoding rows (beams).
struct BartCache : DecoderCache {
  at::Tensor src_mask;  // [N, 1, 1, S] additive
  std::vector<std::pair<at::Tensor, at::Tensor>> cross, self;
  int64_t next_position = 0;  // steps must come in order: the self keys and values are appended
  int64_t rows() const { return src_mask.size(0); }
};

BartCache& bart_cache(DecoderCache& cache) {
  auto* c = dynamic_cast<BartCache*>(&cache);
  if (!c) throw Error("E_INVALID_ARG", "this decoder cache was not made by a BART model's start()");
  return *c;
}

}  // namespace

std::unique_ptr<DecoderCache> BartImpl::start(const at::Tensor& input_ids, const at::Tensor& attention_mask) {
  if (config_.classification) return Seq2SeqImpl::start(input_ids, attention_mask);  // refuses
  Seq2SeqBatch b;
  b.input_ids = input_ids;
  b.attention_mask = attention_mask;
  check_batch(b);
  at::NoGradGuard no_grad;
  const auto ids = input_ids.to(device());
  const auto opts = model->shared->weight.options();
  auto cache = std::make_unique<BartCache>();
  cache->src_mask = attention_mask.defined() ? padding_mask(attention_mask.to(device()), opts) : at::zeros({ids.size(0), 1, 1, ids.size(1)}, opts);
  NamedTensors unused;
  const auto enc = encode(ids, cache->src_mask, {}, unused);
  for (const auto& layer : model->decoder->layer_list) {
    cache->cross.push_back(layer->encoder_attn->keys_values(enc));
    cache->self.emplace_back();
  }
  return cache;
}

at::Tensor BartImpl::step(DecoderCache& base, const at::Tensor& tokens, int64_t position) {
  auto& cache = bart_cache(base);
  const int64_t N = cache.rows();
  if (tokens.dim() != 1 || tokens.size(0) != N) throw Error("E_SHAPE", "Expected tokens of shape " + shape_str({N}) + " but received " + shape_str(tokens.sizes().vec()));
  check_shape(tokens, "tokens", {N});
  check_range(tokens, "tokens", 0, config_.vocab_size, "vocab_size");
  if (position != cache.next_position)
    throw Error("E_INVALID_ARG", "step position " + std::to_string(position) + ": the cache holds " + std::to_string(cache.next_position) + " positions, steps come in order");
  if (position >= model->decoder->max_length())
    throw Error("E_INVALID_ARG", "step position " + std::to_string(position) + " exceeds max_position_embeddings " + std::to_string(config_.max_position_embeddings));
  at::NoGradGuard no_grad;
  auto h = embed(*model->decoder, tokens.to(device()).unsqueeze(1), position);
  for (size_t i = 0; i < model->decoder->layer_list.size(); ++i)
    h = model->decoder->layer_list[i]->step(h, cache.self[i], cache.cross[i], cache.src_mask);
  ++cache.next_position;
  return rows_linear(h, model->shared->weight, final_logits_bias).squeeze(1);  // one row: one matrix-vector product
}

void BartImpl::select(DecoderCache& base, const at::Tensor& index) {
  auto& cache = bart_cache(base);
  if (index.dim() != 1 || index.scalar_type() != at::kLong) throw Error("E_SHAPE", "Expected a 1-d int64 row index for select");
  check_range(index, "select index", 0, cache.rows(), "the cache's rows");
  const auto idx = index.to(device());
  const auto take = [&](at::Tensor& t) {
    if (t.defined()) t = t.index_select(0, idx);
  };
  take(cache.src_mask);
  for (auto* list : {&cache.cross, &cache.self})
    for (auto& [k, v] : *list) {
      take(k);
      take(v);
    }
}

Seq2SeqInfo BartImpl::info() const {
  Seq2SeqInfo i;
  const auto& c = config_;
  i.model_type = "bart";
  i.architecture = c.classification ? "BartForSequenceClassification" : "BartForConditionalGeneration";
  i.config_json = c.config_json;
  i.vocab_size = c.vocab_size;
  i.d_model = c.d_model;
  i.encoder_layers = c.encoder_layers;
  i.decoder_layers = c.decoder_layers;
  i.heads = c.encoder_attention_heads;
  i.num_labels = c.classification ? c.num_labels : 0;
  i.pad_token_id = c.pad_token_id;
  i.eos_token_id = c.eos_token_id;
  i.decoder_start_token_id = c.decoder_start_token_id;
  i.num_parameters = count_parameters(*this);  // mask scores of a patched model not counted, as BERT's
  return i;
}

std::vector<PrunableBlock> BartImpl::prunable_blocks() const {
  std::vector<PrunableBlock> out;
  const auto& c = config_;
  for (const bool decoder : {false, true}) {
    const std::string stack = decoder ? "decoder" : "encoder";
    const int64_t layers = decoder ? c.decoder_layers : c.encoder_layers;
    const int64_t heads = decoder ? c.decoder_attention_heads : c.encoder_attention_heads;
    for (int64_t i = 0; i < layers; ++i) {
      const std::string p = "model." + stack + ".layers." + std::to_string(i) + ".";
      for (const std::string attn : decoder ? std::vector<std::string>{"self_attn", "encoder_attn"} : std::vector<std::string>{"self_attn"}) {
        const std::string role = attn == "self_attn" ? "self" : "cross";
        out.push_back({"attention", stack, i, role, {p + attn + ".q_proj", p + attn + ".k_proj", p + attn + ".v_proj", p + attn + ".out_proj"},
                       static_cast<int64_t>(c.structure.kept_heads(stack, role, i, heads).size()), c.d_model / heads, 0});
      }
      out.push_back({"ffn", stack, i, "", {p + "fc1", p + "fc2"}, 0, 0, c.structure.ffn_width(stack, i, decoder ? c.decoder_ffn_dim : c.encoder_ffn_dim)});
    }
  }
  return out;
}

std::shared_ptr<Seq2SeqImpl> load_bart(const nlohmann::json& config, const std::string& config_path, const std::string& dir, const std::string& device) {
  auto model = std::make_shared<BartImpl>(BartConfig::from_json(config, config_path));
  std::string source;
  const NamedTensors weights = read_weights(dir, &source);
  // The token table is stored once (model.shared.weight); older checkpoints also keep the tied copies.
  std::vector<std::pair<std::string, std::string>> aliases;
  for (const char* tied : {"model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight", "lm_head.weight"})
    aliases.emplace_back(tied, "model.shared.weight");
  load_named(*model, weights, aliases, source);
  model->to(parse_device(device));
  model->eval();
  return model;
}

}  // namespace bp
