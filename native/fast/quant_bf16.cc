// bf16 on AVX-512 BF16 (compiled with -mavx512f -mavx512bw -mavx512vl -mavx512bf16 -mfma): 8 x 48 vdpbf16ps.
#if defined(__x86_64__) && defined(__AVX512BF16__)
#define BP_KERNEL_NS avx512bf16
#define BP_KERNEL_AVX512 1
#define BP_QUANT_KIND 3
#include "quant_impl.h"
namespace bp::fast {
const QuantKernels* quant_kernels_bf16() { return avx512bf16::quant_table(); }
}  // namespace bp::fast
#else
#include "quant_kernels.h"
namespace bp::fast {
const QuantKernels* quant_kernels_bf16() { return nullptr; }
}  // namespace bp::fast
#endif
