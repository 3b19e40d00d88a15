// AVX-512 family: 12x32 fp32 / 12x16 fp64 tiles, 24 zmm accumulators; fp32 weight packing by
// 16x16 register transposes.
#define LINCORE_ISA_NS isa_avx512
#include <immintrin.h>

#include "kernels/loop_nest.h"
#include "kernels/pack.h"

namespace lincore::detail::isa_avx512 {

namespace {
constexpr int MR = 12, NV = 2, LANES32 = 16, LANES64 = 8, MC = 144, KC = 320;
}

// out[q * ldo + i] = in[i * ld + q] for i, q < 16: a 16x16 block transposed in registers
// (interleave 32-bit, then 64-bit elements, then 128-bit lanes twice).
inline void transpose16(const float* in, std::int64_t ld, float* out, std::int64_t ldo) {
  __m512 r[16], t[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(in + i * ld);
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    const __m512d a = _mm512_castps_pd(t[i]), b = _mm512_castps_pd(t[i + 2]);
    const __m512d c = _mm512_castps_pd(t[i + 1]), d = _mm512_castps_pd(t[i + 3]);
    r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
    r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
    r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(c, d));
    r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(c, d));
  }
  for (int i = 0; i < 4; ++i) {
    t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
    t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xdd);
    t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
    t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xdd);
  }
  for (int i = 0; i < 8; ++i) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
  }
  for (int i = 0; i < 16; ++i) _mm512_storeu_ps(out + i * ldo, r[i]);
}

// The PackedWeight layout (NR = 32) by 16x16 transposes.
void pack_f32(std::int64_t n, std::int64_t k, std::int64_t slice_len, const float* w,
              std::int64_t ldw, float* dst, std::int64_t jr0, std::int64_t jr1) {
  pack_f32_by_transposes<LANES32 * NV, 16>(n, k, slice_len, w, ldw, dst, jr0, jr1,
                                           [](const float* in, std::int64_t ld, float* out,
                                              std::int64_t ldo) { transpose16(in, ld, out, ldo); });
}

const KernelFamily& family() {
  static const KernelFamily f{"avx512",
                              {MR, LANES32 * NV, MC, KC},
                              {MR, LANES64 * NV, MC, KC},
                              &run<float, LANES32, NV, MR>,
                              &run<double, LANES64, NV, MR>,
                              &pack_f32};
  return f;
}

}  // namespace lincore::detail::isa_avx512
