// int8 level scalar: the portable path (any CPU, any architecture). The same packed layout and
// the same exact int32 sums as the vector levels, then the same fp32 epilogue (std::fma: one
// rounding, as the vector FMA), so its results are bitwise those of every other level.
#define LINCORE_ISA_NS isa_qscalar
#include <cmath>

#include "kernels/qkernel.h"
#include "kernels/simd.h"

namespace lincore::detail::isa_qscalar {

namespace {

void run(const QArgs& a, std::int64_t i0, std::int64_t i1, std::int64_t jp0, std::int64_t jp1) {
  const QPackedWeight& pw = *a.pw;
  const std::int64_t pstride = a.kgroups * kQPanel * kQGroup;
  for (std::int64_t i = i0; i < i1; ++i) {
    const std::int8_t* x = reinterpret_cast<const std::int8_t*>(a.xq + i * a.ldq);
    for (std::int64_t jp = jp0; jp < jp1; ++jp) {
      std::int32_t acc[kQPanel] = {};
      const std::int8_t* w = pw.data + jp * pstride;
      for (std::int64_t g = 0; g < a.kgroups; ++g, w += kQPanel * kQGroup)
        for (int c = 0; c < kQPanel; ++c)
          for (int q = 0; q < kQGroup; ++q) acc[c] += x[g * kQGroup + q] * w[c * kQGroup + q];
      for (int c = 0; c < kQPanel; ++c) {
        const std::int64_t j = jp * kQPanel + c;
        if (j >= pw.n) break;
        const float v = std::fma(static_cast<float>(acc[c]), a.sx[i] * pw.scale[j], pw.bias[j]);
        a.y[i * a.ldy + j] = activate(v, a.ep);
      }
    }
  }
}

}  // namespace

const QFamily& qfamily() {
  static const QFamily f{"scalar", 1, &run, &quantize<1, false, ScalarCodes>, 0};
  return f;
}

}  // namespace lincore::detail::isa_qscalar
