// The kernels for AVX2 + FMA (compiled with -mavx2 -mfma): 4 x 24 micro-kernel.
#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__)
#define BP_KERNEL_NS avx2
#define BP_KERNEL_AVX512 0
#include "kernels_impl.h"
namespace bp::fast {
const KernelTable* kernels_avx2() { return avx2::table(); }
}  // namespace bp::fast
#else
#include "kernels.h"
namespace bp::fast {
const KernelTable* kernels_avx2() { return nullptr; }
}  // namespace bp::fast
#endif
