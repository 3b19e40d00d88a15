// Scalar family: plain C++ (no vector types), the portable path on any CPU; 4x4 tiles.
#define LINCORE_ISA_NS isa_scalar
#include "kernels/loop_nest.h"

namespace lincore::detail::isa_scalar {

namespace {
constexpr int MR = 4, NV = 4, LANES32 = 1, LANES64 = 1, MC = 64, KC = 256;
}

const KernelFamily& family() {
  static const KernelFamily f{"scalar",
                              {MR, LANES32 * NV, MC, KC},
                              {MR, LANES64 * NV, MC, KC},
                              &run<float, LANES32, NV, MR>,
                              &run<double, LANES64, NV, MR>};
  return f;
}

}  // namespace lincore::detail::isa_scalar
