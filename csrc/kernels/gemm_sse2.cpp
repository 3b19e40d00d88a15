// SSE2 family (the x86-64 baseline): 4x8 fp32 / 4x4 fp64 tiles of 128-bit vectors.
#define LINCORE_ISA_NS isa_sse2
#include "kernels/loop_nest.h"

namespace lincore::detail::isa_sse2 {

namespace {
constexpr int MR = 4, NV = 2, LANES32 = 4, LANES64 = 2, MC = 96, KC = 256;
}

const KernelFamily& family() {
  static const KernelFamily f{"sse2",
                              {MR, LANES32 * NV, MC, KC},
                              {MR, LANES64 * NV, MC, KC},
                              &run<float, LANES32, NV, MR>,
                              &run<double, LANES64, NV, MR>};
  return f;
}

}  // namespace lincore::detail::isa_sse2
