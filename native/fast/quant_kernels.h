// The kernel sets behind QuantLinear (quant.h): one translation unit per instruction set (quant_vnni.cc,
// quant_avx2.cc, quant_bf16.cc, each from the template quant_impl.h), picked at run time by quant.cc. Like
// kernels.h, everything here is single-threaded; quant.cc splits rows and tiles over fast_cpu.cc's pool.
//
// Layout shared by every set. Weights are packed once into panels of `nr` columns; a panel holds, for each
// group of `kgroup` consecutive k (4 int8 or 2 bf16: one 32-bit lane), the nr columns' lanes side by side, so
// one vector load gives W lanes and one 32-bit broadcast of the activations feeds them all (vpdpbusd,
// vpmaddubsw + vpmaddwd, vdpbf16ps all multiply-add within 32-bit lanes). Columns past n and k past the end
// are zero. Activations are prepared per call into rows of bytes: int8 xq (+ `offset`), or bf16 bits.
#pragma once

#include <cstdint>

#include "kernels.h"

namespace bp::fast {

struct QGemm {
  const uint8_t* a;       // prepared activations: m rows of lda bytes
  int64_t lda;
  const float* xscale;    // [m] per-row activation scales (int8), or null (bf16)
  int64_t m, groups, n;   // groups = ceil(k / kgroup)
  const uint8_t* packed;  // the weight panels, 64-byte aligned
  const int32_t* comp;    // [panels * nr] int8: -offset * sum_k q[n][k] (the u8 shift undone), or null (bf16)
  const float* wscale;    // [panels * nr] int8: per-column weight scales, or null (bf16)
  float* c;
  int64_t ldc;
  Epilogue epi;
};

struct QuantKernels {
  const char* name;
  int nr, mr;
  int kgroup;      // elements per 32-bit lane: 4 (int8), 2 (bf16)
  int elem_bytes;  // 1 (int8), 2 (bf16)
  int offset;      // added to xq in the activation rows: 128 where the product takes u8 activations (VNNI), else 0
  int64_t (*packed_bytes)(int64_t n, int64_t k);
  // w [n, k] row-major, elem_bytes per element, into the panels (packed_bytes(n, k) bytes).
  void (*pack)(const void* w, int64_t n, int64_t k, uint8_t* out);
  // Bytes of one prepared activation row (k rounded up to whole lanes and to 64 bytes).
  int64_t (*row_bytes)(int64_t k);
  // Rows [r0, r1) of x [*, k] into a (row stride lda) and, for int8, xscale: quant.h's per-row quantization
  // or bf16 rounding.
  void (*prepare)(const float* x, int64_t k, int64_t r0, int64_t r1, uint8_t* a, int64_t lda, float* xscale);
  int64_t (*tiles)(const QGemm& g);
  void (*run)(const QGemm& g, int64_t t0, int64_t t1);
};

const QuantKernels* quant_kernels_vnni();  // null when not compiled in
const QuantKernels* quant_kernels_avx2();
const QuantKernels* quant_kernels_bf16();

}  // namespace bp::fast
