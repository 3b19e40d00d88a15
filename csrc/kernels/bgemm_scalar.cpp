// bf16 level scalar: the portable path (any CPU, any architecture). The same packed layout and
// the same rule: x widened to fp32, fp32 sums over k in increasing order, then act(acc + b)
// and the store (fp32, or tensor/bfloat16.h's rounding).
#define LINCORE_ISA_NS isa_bscalar
#include <cstdint>
#include <cstring>

#include "kernels/bfamily.h"
#include "kernels/simd.h"
#include "tensor/bfloat16.h"

namespace lincore::detail::isa_bscalar {

namespace {

void to_bf16(std::int64_t n, const float* s, std::uint16_t* d) {
  for (std::int64_t i = 0; i < n; ++i) d[i] = float_to_bf16(s[i]);
}

void to_float(std::int64_t n, const std::uint16_t* s, float* d) {
  for (std::int64_t i = 0; i < n; ++i) d[i] = bf16_to_float(s[i]);
}

void prepare(std::int64_t m, std::int64_t k, const std::uint16_t* x, std::int64_t ldx,
             unsigned char* p, std::int64_t ldp) {
  const std::int64_t kpad = (k + kBPair - 1) / kBPair * kBPair;
  for (std::int64_t i = 0; i < m; ++i) {
    auto* row = reinterpret_cast<float*>(p + i * ldp);
    to_float(k, x + i * ldx, row);
    for (std::int64_t q = k; q < kpad; ++q) row[q] = 0.0f;
  }
}

void run(const BArgs& a, std::int64_t i0, std::int64_t i1, std::int64_t jp0, std::int64_t jp1) {
  const BPackedWeight& pw = *a.pw;
  const std::int64_t pstride = a.kpairs * kBPanel * kBPair;
  for (std::int64_t i = i0; i < i1; ++i) {
    const float* x = reinterpret_cast<const float*>(a.xp + i * a.ldxp);
    for (std::int64_t jp = jp0; jp < jp1; ++jp) {
      float acc[kBPanel] = {};
      const std::uint16_t* w = pw.data + jp * pstride;
      for (std::int64_t g = 0; g < a.kpairs; ++g, w += kBPanel * kBPair)
        for (int c = 0; c < kBPanel; ++c)
          for (int q = 0; q < kBPair; ++q)
            acc[c] += x[g * kBPair + q] * bf16_to_float(w[c * kBPair + q]);
      for (int c = 0; c < kBPanel; ++c) {
        const std::int64_t j = jp * kBPanel + c;
        if (j >= pw.n) break;
        const float v = activate(acc[c] + pw.bias[j], a.ep);
        if (a.y_bf16)
          static_cast<std::uint16_t*>(a.y)[i * a.ldy + j] = float_to_bf16(v);
        else
          static_cast<float*>(a.y)[i * a.ldy + j] = v;
      }
    }
  }
}

}  // namespace

const BFamily& bfamily() {
  static const BFamily f{"scalar", 1, 4, &run, &prepare, &to_bf16, &to_float};
  return f;
}

}  // namespace lincore::detail::isa_bscalar
