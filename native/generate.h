// Text generation for encoder-decoder models (issue 18), as transformers 4.4.2's generate() computes it with
// do_sample false: greedy search (num_beams 1) and beam search, over a family's incremental decoding
// (Seq2SeqImpl::start / step / select in seq2seq.h: the cross-attention keys and values computed once, the
// self-attention ones cached). Options left unset take the model's config.json values, then 4.4.2's defaults.
#pragma once

#include <ATen/ATen.h>

#include <functional>

#include "seq2seq.h"

namespace bp {

struct GenerateOptions {
  // -1 (or NaN): from config.json, else 4.4.2's default (in brackets).
  int64_t max_length = -1;            // [20] total decoder length, the start token included
  int64_t min_length = -1;            // [0] eos is forbidden before this length
  int64_t num_beams = -1;             // [1]
  double length_penalty = NAN;        // [1.0] beam score = sum of log-probs / length ** length_penalty
  int early_stopping = -1;            // [0] 1: a batch row is done when num_beams hypotheses are finished
  int64_t no_repeat_ngram_size = -1;  // [0]
  int64_t num_return_sequences = 1;   // <= num_beams
  // Special tokens, -2: from config.json (forced_bos_token_id / forced_eos_token_id: none when absent).
  int64_t forced_bos_token_id = -2, forced_eos_token_id = -2;
};

struct GenerateResult {
  at::Tensor sequences;  // [B * num_return_sequences, L] int64, rows padded with pad_token_id after eos
  at::Tensor scores;     // beam search: [B * num_return_sequences] float (the finished hypotheses' scores)
};

// `on_step`, when given, is called after each step with the tokens chosen for every row ([B] for greedy
// search): what streaming reads. Throws bp::Error (E_INVALID_ARG naming the option) for inconsistent options.
GenerateResult generate(Seq2SeqImpl& model, const at::Tensor& input_ids, const at::Tensor& attention_mask, const GenerateOptions& options,
                        const std::function<void(const at::Tensor&)>& on_step = {});

}  // namespace bp
