// AVX2+FMA family: 6x16 fp32 / 6x8 fp64 tiles, 12 ymm accumulators.
#define LINCORE_ISA_NS isa_avx2
#include "kernels/gemm_impl.h"

namespace lincore::detail::isa_avx2 {

namespace {
constexpr int MR = 6, NV = 2, W32 = 8, W64 = 4, MC = 96, KC = 256;
}

const KernelFamily& family() {
  static const KernelFamily f{"avx2",
                              {MR, W32 * NV, MC, KC},
                              {MR, W64 * NV, MC, KC},
                              &run<float, W32, NV, MR>,
                              &run<double, W64, NV, MR>};
  return f;
}

}  // namespace lincore::detail::isa_avx2
