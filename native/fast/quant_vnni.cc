// int8 on AVX-512 VNNI (compiled with -mavx512f -mavx512bw -mavx512vl -mavx512vnni -mfma): 8 x 48 vpdpbusd.
#if defined(__x86_64__) && defined(__AVX512VNNI__)
#define BP_KERNEL_NS avx512vnni
#define BP_KERNEL_AVX512 1
#define BP_QUANT_KIND 1
#include "quant_impl.h"
namespace bp::fast {
const QuantKernels* quant_kernels_vnni() { return avx512vnni::quant_table(); }
}  // namespace bp::fast
#else
#include "quant_kernels.h"
namespace bp::fast {
const QuantKernels* quant_kernels_vnni() { return nullptr; }
}  // namespace bp::fast
#endif
