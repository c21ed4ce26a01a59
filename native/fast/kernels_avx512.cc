// The kernels for AVX-512 (F, compiled with -mavx512f -mfma): 8 x 48 micro-kernel.
#if defined(__x86_64__) && defined(__AVX512F__)
#define BP_KERNEL_NS avx512
#define BP_KERNEL_AVX512 1
#include "kernels_impl.h"
namespace bp::fast {
const KernelTable* kernels_avx512() { return avx512::table(); }
}  // namespace bp::fast
#else
#include "kernels.h"
namespace bp::fast {
const KernelTable* kernels_avx512() { return nullptr; }
}  // namespace bp::fast
#endif
