// Training-mode dropout in one pass each way: the keep decisions come from a counter-based hash of (seed,
// element index) instead of a stored mask, so forward writes only the output and backward recomputes them.
// Why: libtorch 1.13's CPU dropout (no MKL) draws bernoulli_ serially from the generator, then divides and
// multiplies in two more passes: 7% of a bert-base training step at 8x128 (native/tools/bench_train --profile).
#pragma once

#include <ATen/ATen.h>

namespace bp {

// HF's nn.Dropout(p) in training: each element kept with probability 1 - p and scaled by 1 / (1 - p).
// fp32 CPU tensors take the fused path, seeded from the default CPU generator (so manual seeds and saved RNG
// states reproduce it); anything else goes to at::dropout. Identity when !train or p == 0.
at::Tensor dropout(const at::Tensor& x, double p, bool train);

}  // namespace bp
