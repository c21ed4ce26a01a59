#include "family.h"

#include "errors.h"

namespace bp {
namespace {

Family bert_like(std::string model_type, std::string arch, std::string prefix) {
  Family f;
  f.model_type = std::move(model_type);
  f.arch = std::move(arch);
  f.prefix = std::move(prefix);
  f.layers = "encoder.layer";
  f.query = "attention.self.query";
  f.key = "attention.self.key";
  f.value = "attention.self.value";
  f.attn_out = "attention.output.dense";
  f.attn_norm = "attention.output.LayerNorm";
  f.inter = "intermediate.dense";
  f.out = "output.dense";
  f.out_norm = "output.LayerNorm";
  f.token_types = true;
  f.positions = PositionIds::Arange;
  f.pooler = true;
  f.cls_pre = f.prefix + ".pooler.dense";
  f.cls_act = "tanh";
  f.cls_out = "classifier";
  f.cls_pre_is_pooler = true;
  f.qa_out = "qa_outputs";
  f.distil_config = false;
  return f;
}

// RobertaForSequenceClassification's RobertaClassificationHead; its base model has no pooler in task models.
Family roberta_like(std::string model_type, std::string arch) {
  Family f = bert_like(std::move(model_type), std::move(arch), "roberta");
  f.positions = PositionIds::FromInputIds;
  f.cls_pre = "classifier.dense";
  f.cls_out = "classifier.out_proj";
  f.cls_pre_is_pooler = false;
  return f;
}

Family distilbert() {
  Family f = bert_like("distilbert", "DistilBert", "distilbert");
  f.layers = "transformer.layer";
  f.query = "attention.q_lin";
  f.key = "attention.k_lin";
  f.value = "attention.v_lin";
  f.attn_out = "attention.out_lin";
  f.attn_norm = "sa_layer_norm";
  f.inter = "ffn.lin1";
  f.out = "ffn.lin2";
  f.out_norm = "output_layer_norm";
  f.token_types = false;
  f.pooler = false;
  f.cls_pre = "pre_classifier";
  f.cls_act = "relu";
  f.cls_pre_is_pooler = false;
  f.distil_config = true;
  return f;
}

bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }

}  // namespace

std::vector<std::string> Family::layer_linears(int64_t i) const {
  const auto p = layer_prefix(i);
  return {p + query, p + key, p + value, p + attn_out, p + inter, p + out};
}

bool Family::is_head(const std::string& name) const {
  for (const auto* m : {&cls_out, &qa_out})
    if (starts_with(name, *m + ".")) return true;
  return !cls_pre_is_pooler && starts_with(name, cls_pre + ".");
}

const std::vector<const Family*>& all_families() {
  static const Family bert = bert_like("bert", "Bert", "bert");
  static const Family roberta = roberta_like("roberta", "Roberta");
  static const Family xlmr = roberta_like("xlm-roberta", "XLMRoberta");
  static const Family distil = distilbert();
  static const std::vector<const Family*> all = {&bert, &roberta, &xlmr, &distil};
  return all;
}

const Family& family_bert() { return *all_families()[0]; }

const Family& family_for(const std::string& model_type, const std::string& source) {
  std::string known;
  for (const Family* f : all_families()) {
    if (f->model_type == model_type) return *f;
    known += (known.empty() ? "'" : ", '") + f->model_type + "'";
  }
  throw Error("E_BAD_CONFIG", "invalid config " + source + ": model_type '" + model_type + "' is not supported (supported: " + known + ")");
}

const Family* family_for_architecture(const std::string& architecture) {
  const Family* best = nullptr;
  // The longest prefix wins: "XLMRobertaFor..." is not a "Roberta...", and "DistilBert..." not a "Bert...".
  for (const Family* f : all_families())
    if (starts_with(architecture, f->arch) && (!best || f->arch.size() > best->arch.size())) best = f;
  return best;
}

}  // namespace bp
