// Compaction (nn_pruning's optimize_model(model, "dense" | "heads")): a pruned model becomes a smaller
// *dense* one. Works on a copy; the input model is untouched.
//   1. a patched model is compiled first (masks baked into the weights);
//   2. FFN cross-zeroing: an all-zero intermediate row zeroes the matching output column, and back;
//   3. heads, rule "reference" (the default, nn_pruning's): a head survives if any weight of its slice is
//      non-zero in q, k AND v (so a head dead only in its key rows goes, although it still attended uniformly
//      and added its values' mean: the outputs change); rule "exact": a head goes only when its output is zero
//      whatever it attends to (value rows with their bias, or output columns, all zero), and an FFN row counts
//      as zero only with its bias; if all would go, head 0 of the layer stays;
//   4. ("dense") FFN: all-zero intermediate rows (and their bias) and the matching output columns go;
//      at least one unit stays.
// Deadness looks at weights only, as the reference does: with bias_mask (the default) a dead row's bias is
// already zero, so outputs are unchanged.
#pragma once

#include <string>
#include <vector>

#include "bert.h"

namespace bp {

struct CompactReport {
  int64_t parameters_before = 0, parameters_after = 0;
  std::vector<std::vector<int64_t>> removed_heads;  // per layer, indices into the original heads
  std::vector<int64_t> heads;                       // kept per layer
  std::vector<int64_t> ffn_widths;                  // per layer
};

// mode: "dense" (heads and FFN) or "heads".
Bert compact_model(const Bert& model, const std::string& mode, CompactReport* report, const std::string& rule = "reference");

// An HF-loadable copy: FFN widths padded back to config.intermediate_size with zero rows/columns (exactly
// the same outputs), heads via config.pruned_heads.
Bert pad_ffn_to_config(const Bert& model);

// The "filled" stage (reference): in every encoder linear weight, zeros become small noise,
// v += [v == 0] * (randn * std(v) * 0.01 + mean(v)), so the compact model can train them again.
// Returns how many weights were filled.
int64_t fill_zeros(Bert& model, uint64_t seed);

}  // namespace bp
