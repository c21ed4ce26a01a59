// int8 on AVX2 + FMA, for CPUs without VNNI (compiled with -mavx2 -mfma): 4 x 16 vpmaddubsw + vpmaddwd.
#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__)
#define BP_KERNEL_NS avx2int8
#define BP_KERNEL_AVX512 0
#define BP_QUANT_KIND 2
#include "quant_impl.h"
namespace bp::fast {
const QuantKernels* quant_kernels_avx2() { return avx2int8::quant_table(); }
}  // namespace bp::fast
#else
#include "quant_kernels.h"
namespace bp::fast {
const QuantKernels* quant_kernels_avx2() { return nullptr; }
}  // namespace bp::fast
#endif
