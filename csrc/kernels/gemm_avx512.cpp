// AVX-512 family: 12x32 fp32 / 12x16 fp64 tiles, 24 zmm accumulators.
#define LINCORE_ISA_NS isa_avx512
#include "kernels/gemm_impl.h"

namespace lincore::detail::isa_avx512 {

namespace {
constexpr int MR = 12, NV = 2, W32 = 16, W64 = 8, MC = 144, KC = 320;
}

const KernelFamily& family() {
  static const KernelFamily f{"avx512",
                              {MR, W32 * NV, MC, KC},
                              {MR, W64 * NV, MC, KC},
                              &run<float, W32, NV, MR, MC, KC>,
                              &run<double, W64, NV, MR, MC, KC>};
  return f;
}

}  // namespace lincore::detail::isa_avx512
