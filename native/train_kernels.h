// The elementwise loops of a training step that libtorch runs as several passes: dropout (draw, scale,
// multiply) and the AdamW update (seven ops and a temporary). One pass each, AVX2 where the CPU has it (and
// fast::isa() is not "none": BLOCKPRUNE_CPU_KERNELS=none forces the scalar loops, which give identical bits:
// the same IEEE operations in the same order, no FMA contraction).
#pragma once

#include <cstdint>

namespace bp::train_kernels {

// out[i] = keep(seed, i) ? in[i] * scale : 0, where keep(seed, i) is a 32-bit hash of (seed, i) >= cut: each
// element kept with probability 1 - cut / 2^32, the same decision whatever the thread split. n < 2^32.
void dropout(const float* in, float* out, int64_t n, uint64_t seed, uint32_t cut, float scale);

struct AdamWScalars {
  float b1, c1, b2, c2, eps, neg_step, neg_decay;  // c = 1 - b; neg_step = -step size; neg_decay = -lr * wd
};
// m = m b1 + g c1; v = v b2 + c2 g g; p += neg_step m / (sqrt(v) + eps); then p += neg_decay p when it is
// non-zero (float arithmetic in libtorch's op order: mul_, add_, addcmul_, sqrt, add_, addcdiv_, add_).
void adamw(float* p, const float* g, float* m, float* v, int64_t n, const AdamWScalars& s);

}  // namespace bp::train_kernels
