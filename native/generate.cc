#include "generate.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "config.h"
#include "errors.h"

namespace bp {

namespace {

[[noreturn]] void bad_option(const std::string& what) { throw Error("E_INVALID_ARG", "generate: " + what); }

// The options as 4.4.2's generate() resolves them: given, else config.json's, else PretrainedConfig's default.
struct Resolved {
  int64_t max_length, min_length, num_beams, no_repeat_ngram_size, num_return_sequences;
  double length_penalty;
  bool early_stopping;
  int64_t forced_bos, forced_eos;  // -1: none
  int64_t eos, pad, start, vocab;
};

int64_t config_int(const nlohmann::json& j, const char* key, int64_t def) {
  if (!j.contains(key) || j[key].is_null()) return def;
  if (!j[key].is_number_integer()) throw Error("E_BAD_CONFIG", std::string("config.json field '") + key + "' must be an integer, got " + j[key].dump());
  return j[key].get<int64_t>();
}

Resolved resolve(const Seq2SeqInfo& info, const GenerateOptions& o) {
  if (info.num_labels > 0) throw Error("E_INVALID_ARG", "a " + info.architecture + " does not generate text");
  const auto j = nlohmann::json::parse(info.config_json);
  // Processors this generate() does not apply: refused rather than silently ignored.
  if (j.contains("repetition_penalty") && j["repetition_penalty"].is_number() && j["repetition_penalty"].get<double>() != 1.0)
    throw Error("E_BAD_CONFIG", "config.json sets repetition_penalty " + j["repetition_penalty"].dump() + ", which blockprune's generate does not apply");
  for (const char* key : {"encoder_no_repeat_ngram_size", "num_beam_groups"})
    if (config_int(j, key, 0) > (std::string(key) == "num_beam_groups" ? 1 : 0))
      throw Error("E_BAD_CONFIG", std::string("config.json sets ") + key + " " + j[key].dump() + ", which blockprune's generate does not apply");
  if (j.contains("bad_words_ids") && !j["bad_words_ids"].is_null())
    throw Error("E_BAD_CONFIG", "config.json sets bad_words_ids, which blockprune's generate does not apply");

  Resolved r;
  const auto pick = [&](int64_t given, const char* key, int64_t def) { return given >= 0 ? given : config_int(j, key, def); };
  r.max_length = pick(o.max_length, "max_length", 20);
  r.min_length = pick(o.min_length, "min_length", 0);
  r.num_beams = pick(o.num_beams, "num_beams", 1);
  r.no_repeat_ngram_size = pick(o.no_repeat_ngram_size, "no_repeat_ngram_size", 0);
  r.num_return_sequences = o.num_return_sequences;
  r.length_penalty = !std::isnan(o.length_penalty) ? o.length_penalty
                     : j.contains("length_penalty") && j["length_penalty"].is_number() ? j["length_penalty"].get<double>()
                                                                                         : 1.0;
  r.early_stopping = o.early_stopping >= 0 ? o.early_stopping != 0 : j.contains("early_stopping") && j["early_stopping"].is_boolean() && j["early_stopping"].get<bool>();
  const auto forced = [&](int64_t given, const char* key) { return given >= -1 ? given : config_int(j, key, -1); };
  r.forced_bos = forced(o.forced_bos_token_id, "forced_bos_token_id");
  r.forced_eos = forced(o.forced_eos_token_id, "forced_eos_token_id");
  r.eos = info.eos_token_id;
  r.pad = info.pad_token_id;
  r.start = info.decoder_start_token_id;
  r.vocab = info.vocab_size;

  const auto at_least = [](const char* name, int64_t v, int64_t lo) {
    if (v < lo) bad_option(std::string(name) + " must be an integer >= " + std::to_string(lo) + ", got " + std::to_string(v));
  };
  at_least("max_length", r.max_length, 1);
  at_least("min_length", r.min_length, 0);
  at_least("num_beams", r.num_beams, 1);
  at_least("no_repeat_ngram_size", r.no_repeat_ngram_size, 0);
  at_least("num_return_sequences", r.num_return_sequences, 1);
  if (r.num_return_sequences > r.num_beams)
    bad_option("num_return_sequences " + std::to_string(r.num_return_sequences) + " must be <= num_beams " + std::to_string(r.num_beams));
  if (!std::isfinite(r.length_penalty)) bad_option("length_penalty must be a finite number");
  for (const auto& [name, id] : std::vector<std::pair<const char*, int64_t>>{{"forced_bos_token_id", r.forced_bos}, {"forced_eos_token_id", r.forced_eos}})
    if (id < -1 || id >= r.vocab) bad_option(std::string(name) + " must be a token id in [0, " + std::to_string(r.vocab) + ") or none, got " + std::to_string(id));
  // Learned positions (BART) bound the decoder's length: the last token is never fed back.
  const int64_t positions = config_int(j, "max_position_embeddings", -1);
  if (positions > 0 && r.max_length - 1 > positions)
    bad_option("max_length " + std::to_string(r.max_length) + " exceeds the decoder's max_position_embeddings " + std::to_string(positions) + " + 1");
  return r;
}

// 4.4.2's logits processors in its order (NoRepeatNGram, MinLength, ForcedBOS, ForcedEOS), in place on the
// step's scores [N, vocab] (CPU float) given the tokens so far (`seqs`, N rows of cur_len ids).
void process(const Resolved& r, const std::vector<std::vector<int64_t>>& seqs, at::Tensor& scores) {
  const int64_t cur_len = static_cast<int64_t>(seqs.front().size()), n = r.no_repeat_ngram_size;
  const float ninf = -std::numeric_limits<float>::infinity();
  auto acc = scores.accessor<float, 2>();
  if (n > 0 && cur_len + 1 >= n) {
    for (size_t row = 0; row < seqs.size(); ++row) {
      const auto& s = seqs[row];
      // Every earlier n-gram whose first n-1 tokens equal the last n-1: its last token is banned.
      for (int64_t i = 0; i + n <= cur_len; ++i)
        if (std::equal(s.begin() + i, s.begin() + i + n - 1, s.end() - (n - 1))) acc[row][s[i + n - 1]] = ninf;
    }
  }
  if (cur_len < r.min_length) scores.select(1, r.eos).fill_(ninf);
  const auto force = [&](int64_t id) {
    scores.fill_(ninf);
    scores.select(1, id).fill_(0.0);
  };
  if (r.forced_bos >= 0 && cur_len == 1) force(r.forced_bos);
  if (r.forced_eos >= 0 && cur_len == r.max_length - 1) force(r.forced_eos);
}

at::Tensor to_tensor(const std::vector<std::vector<int64_t>>& rows, int64_t width, int64_t fill) {
  auto t = at::full({static_cast<int64_t>(rows.size()), width}, fill, at::kLong);
  auto acc = t.accessor<int64_t, 2>();
  for (size_t i = 0; i < rows.size(); ++i)
    for (size_t k = 0; k < rows[i].size(); ++k) acc[i][k] = rows[i][k];
  return t;
}

at::Tensor step_scores(Seq2SeqImpl& model, DecoderCache& cache, const std::vector<std::vector<int64_t>>& seqs) {
  std::vector<int64_t> last;
  for (const auto& s : seqs) last.push_back(s.back());
  const auto tokens = at::tensor(last, at::kLong);
  return model.step(cache, tokens, static_cast<int64_t>(seqs.front().size()) - 1).to(at::kCPU, at::kFloat).contiguous();
}

GenerateResult greedy(Seq2SeqImpl& model, DecoderCache& cache, const Resolved& r, int64_t B, const std::function<void(const at::Tensor&)>& on_step) {
  std::vector<std::vector<int64_t>> seqs(B, std::vector<int64_t>{r.start});
  std::vector<bool> finished(B, false);
  while (static_cast<int64_t>(seqs.front().size()) < r.max_length) {
    auto scores = step_scores(model, cache, seqs);
    process(r, seqs, scores);
    const auto next = scores.argmax(1);
    auto acc = next.accessor<int64_t, 1>();
    bool all = true;
    for (int64_t b = 0; b < B; ++b) {
      // Rows that already produced eos get pad; the loop stops when every row has.
      const int64_t token = finished[b] ? r.pad : acc[b];
      seqs[b].push_back(token);
      acc[b] = token;
      if (token == r.eos) finished[b] = true;
      all = all && finished[b];
    }
    if (on_step) on_step(next);
    if (all) break;
  }
  return {to_tensor(seqs, static_cast<int64_t>(seqs.front().size()), r.pad), {}};
}

// BeamHypotheses (4.4.2): the num_beams best finished hypotheses of one batch row.
struct Hypotheses {
  std::vector<std::pair<double, std::vector<int64_t>>> beams;
  double worst = 1e9;
  void add(const Resolved& r, std::vector<int64_t> hyp, double sum_logprobs) {
    const double score = sum_logprobs / std::pow(static_cast<double>(hyp.size()), r.length_penalty);
    if (static_cast<int64_t>(beams.size()) < r.num_beams || score > worst) {
      beams.emplace_back(score, std::move(hyp));
      if (static_cast<int64_t>(beams.size()) > r.num_beams) {
        // sorted((score, index)): the lowest goes, the next lowest is the new worst.
        std::vector<std::pair<double, size_t>> order;
        for (size_t i = 0; i < beams.size(); ++i) order.emplace_back(beams[i].first, i);
        std::sort(order.begin(), order.end());
        beams.erase(beams.begin() + static_cast<std::ptrdiff_t>(order[0].second));
        worst = order[1].first;
      } else {
        worst = std::min(score, worst);
      }
    }
  }
  bool done(const Resolved& r, double best_sum_logprobs, int64_t cur_len) const {
    if (static_cast<int64_t>(beams.size()) < r.num_beams) return false;
    if (r.early_stopping) return true;
    return worst >= best_sum_logprobs / std::pow(static_cast<double>(cur_len), r.length_penalty);
  }
};

GenerateResult beam(Seq2SeqImpl& model, DecoderCache& cache, const Resolved& r, int64_t B, const std::function<void(const at::Tensor&)>& on_step) {
  const int64_t K = r.num_beams, V = r.vocab;
  // Every row's beams from its encoder rows: expanded once, after the encoder ran once per row.
  model.select(cache, at::arange(B, at::kLong).repeat_interleave(K));
  std::vector<std::vector<int64_t>> seqs(B * K, std::vector<int64_t>{r.start});
  auto beam_scores = at::zeros({B, K}, at::kFloat);
  beam_scores.narrow(1, 1, K - 1).fill_(-1e9);  // all beams start equal: only beam 0 may expand at first
  beam_scores = beam_scores.view({-1});
  std::vector<Hypotheses> hyps(B);
  std::vector<bool> done(B, false);
  while (static_cast<int64_t>(seqs.front().size()) < r.max_length) {
    const int64_t cur_len = static_cast<int64_t>(seqs.front().size());
    auto scores = at::log_softmax(step_scores(model, cache, seqs), -1);
    process(r, seqs, scores);
    scores = (scores + beam_scores.unsqueeze(1)).view({B, K * V});
    const auto [top_scores, top_ids] = at::topk(scores, 2 * K, 1, true, true);
    const auto ts = top_scores.accessor<float, 2>();
    const auto ti = top_ids.accessor<int64_t, 2>();
    auto next_scores = at::zeros({B * K}, at::kFloat);
    auto ns = next_scores.accessor<float, 1>();
    std::vector<int64_t> next_tokens(B * K), next_rows(B * K);
    for (int64_t b = 0; b < B; ++b) {
      if (done[b]) {
        // 4.4.2 keeps finished rows stepping on pad, fed from row 0 (never read again).
        for (int64_t k = 0; k < K; ++k) next_tokens[b * K + k] = r.pad, next_rows[b * K + k] = 0;
        continue;
      }
      int64_t filled = 0;
      for (int64_t rank = 0; rank < 2 * K && filled < K; ++rank) {
        const int64_t token = ti[b][rank] % V, row = b * K + ti[b][rank] / V;
        if (token == r.eos) {
          // An eos among the first num_beams candidates finishes a hypothesis (without the eos).
          if (rank < K) hyps[b].add(r, seqs[row], ts[b][rank]);
        } else {
          ns[b * K + filled] = ts[b][rank];
          next_tokens[b * K + filled] = token;
          next_rows[b * K + filled] = row;
          ++filled;
        }
      }
      if (filled < K) throw Error("E_NATIVE", "generate: beam search found fewer than num_beams continuations");
      done[b] = done[b] || hyps[b].done(r, top_scores[b].max().item<float>(), cur_len);
    }
    beam_scores = next_scores;
    std::vector<std::vector<int64_t>> next(B * K);
    for (int64_t i = 0; i < B * K; ++i) {
      next[i] = seqs[next_rows[i]];
      next[i].push_back(next_tokens[i]);
    }
    seqs = std::move(next);
    if (on_step) on_step(at::tensor(next_tokens, at::kLong));
    if (std::all_of(done.begin(), done.end(), [](bool d) { return d; })) break;
    if (static_cast<int64_t>(seqs.front().size()) < r.max_length) model.select(cache, at::tensor(next_rows, at::kLong));
  }
  // finalize: the live beams of unfinished rows join their hypotheses; the best num_return_sequences per row.
  const auto bs = beam_scores.accessor<float, 1>();
  for (int64_t b = 0; b < B; ++b)
    if (!done[b])
      for (int64_t k = 0; k < K; ++k) hyps[b].add(r, seqs[b * K + k], bs[b * K + k]);
  std::vector<std::vector<int64_t>> best;
  auto scores = at::zeros({B * r.num_return_sequences}, at::kFloat);
  for (int64_t b = 0; b < B; ++b) {
    auto sorted = hyps[b].beams;  // stable by score: among equals the later one is popped first
    std::stable_sort(sorted.begin(), sorted.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
    for (int64_t j = 0; j < r.num_return_sequences; ++j) {
      scores[b * r.num_return_sequences + j] = sorted.back().first;
      best.push_back(std::move(sorted.back().second));
      sorted.pop_back();
    }
  }
  size_t longest = 0;
  for (auto& h : best) {
    if (static_cast<int64_t>(h.size()) < r.max_length) h.push_back(r.eos);  // the eos the hypothesis ended with
    longest = std::max(longest, h.size());
  }
  return {to_tensor(best, static_cast<int64_t>(longest), r.pad), scores};
}

}  // namespace

GenerateResult generate(Seq2SeqImpl& model, const at::Tensor& input_ids, const at::Tensor& attention_mask, const GenerateOptions& options,
                        const std::function<void(const at::Tensor&)>& on_step) {
  const auto info = model.info();
  const Resolved r = resolve(info, options);
  at::NoGradGuard no_grad;
  model.eval();
  auto cache = model.start(input_ids, attention_mask);  // checks the inputs; a classification model refuses
  const int64_t B = input_ids.size(0);
  return r.num_beams == 1 ? greedy(model, *cache, r, B, on_step) : beam(model, *cache, r, B, on_step);
}

}  // namespace bp
