// bf16 mixed-precision training (issue 16): within a Bf16Training scope, the linear layers' products run on the
// bf16 kernels (fast/quant.h: operands rounded to bf16, sums in fp32) forward and backward, while the weights,
// their gradients, the optimizer state and everything else stay fp32 (the master weights). Why: the products
// are about 70% of a training step, and on a CPU with AVX-512 BF16 the bf16 kernels run them 2-3x faster than
// fp32 GEMMs (README, Performance).
#pragma once

#include <ATen/ATen.h>

namespace bp {

// Whether this thread's linears train in bf16 now; a scope turns it on for the forward of one train step (the
// backward follows the graph the forward built, whatever the scope is then).
bool bf16_training();
class Bf16Training {
 public:
  explicit Bf16Training(bool on);
  ~Bf16Training();
  Bf16Training(const Bf16Training&) = delete;
  Bf16Training& operator=(const Bf16Training&) = delete;

 private:
  bool previous_;
};

// Whether the bf16 kernels exist on this CPU (fast::quant_supported(kBf16)).
bool bf16_training_supported();

// y = x w^T + b as at::linear, on the bf16 kernels when bf16_training() and the tensors allow it (fp32 on the
// CPU, a weight that is a 2-d matrix), else at::linear itself. Gradients for x, w and b: grad_x = g w and
// grad_w = g^T x also on the bf16 kernels, grad_b = the sum of g over rows in fp32.
at::Tensor train_linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b);

// y = x w^T + b (b may be undefined) as at::linear, except for one fp32 row without autograd (a batch-1 decoding
// step): a matrix-vector product (matvec), which streams w once. libtorch sends a single row through GEMM, whose packing
// of w costs 2-10x with OpenBLAS (one thread: 2048x512 1.8 ms vs 0.35 ms, 512x2048 2.7 vs 0.13 ms, the 32128x512
// LM head 31 vs 14 ms). The sums come in another order than GEMM's: float rounding, not another result.
at::Tensor rows_linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b);

// W [N, K] x [K] (+ b [N]), fp32: the product rows_linear uses, on SIMD kernels when the fast kernels are on
// (matvec.cc), else at::addmv / at::mv.
at::Tensor matvec(const at::Tensor& w, const at::Tensor& x, const at::Tensor& b);

// X [M, K] W^T (+ b) for 1 <= M <= kMatvecRows rows (beams, a small batch of decoding rows): every weight row is
// read once for all M rows (GEMM would pack all of W per call); else at::linear.
constexpr int kMatvecRows = 8;
at::Tensor matvec_rows(const at::Tensor& w, const at::Tensor& x, const at::Tensor& b);

}  // namespace bp
