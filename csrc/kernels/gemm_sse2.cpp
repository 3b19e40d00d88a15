// SSE2 family (the x86-64 baseline): 4x8 fp32 / 4x4 fp64 tiles of 128-bit vectors.
#define LINCORE_ISA_NS isa_sse2
#include "kernels/gemm_impl.h"

namespace lincore::detail::isa_sse2 {

namespace {
constexpr int MR = 4, NV = 2, W32 = 4, W64 = 2, MC = 96, KC = 256;
}

const KernelFamily& family() {
  static const KernelFamily f{"sse2",
                              {MR, W32 * NV, MC, KC},
                              {MR, W64 * NV, MC, KC},
                              &run<float, W32, NV, MR>,
                              &run<double, W64, NV, MR>};
  return f;
}

}  // namespace lincore::detail::isa_sse2
