// Weights on 2 MiB pages for batch-1 decoding (issue 18). A decoding step is a matrix-vector product per linear:
// it streams every weight once (t5-small: 150 MB per token), so the 4 KiB pages' TLB misses are paid on every
// token; and where the weights land (what other allocations sit near them) moved a t5-small's ms per token by
// 10-30% between copies of the same weights. Linux backs memory advised MADV_HUGEPAGE with 2 MiB pages
// (transparent_hugepage "madvise" mode, this machine's default; "always" does it unadvised; "never" ignores it).
#pragma once

#include <torch/nn/module.h>

namespace bp {

// Moves the CPU float parameters of `module` that hold at least `min_bytes` into one arena aligned to 2 MiB and
// advised MADV_HUGEPAGE (64-byte aligned each; freed when the last of them is), values and autograd flags unchanged;
// every holder of a tied tensor sees the move (set_data). Returns the bytes moved (0 where nothing qualified or
// the arena could not be had, or BLOCKPRUNE_HUGE_PAGES=0: the weights then stay where they were). Call it before
// other threads use the module.
int64_t place_weights_on_huge_pages(torch::nn::Module& module, int64_t min_bytes = 256 << 10);

}  // namespace bp
