// bf16 level avx512 (AVX-512 without AVX512_BF16): W widened to fp32 in registers (a bf16 is
// the top half of an fp32: a shift for the even k step, a mask for the odd one), x widened once
// per call, then FMA on zmm. The fallback for CPUs without VDPBF16PS.
#define LINCORE_ISA_NS isa_bavx512
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/bconvert_avx512.h"
#include "kernels/bfamily.h"
#include "kernels/simd.h"

namespace lincore::detail::isa_bavx512 {

struct BIsa {
  using V = __m512;
  struct W {
    __m512 even, odd;  // k steps 2g and 2g + 1 of 16 columns
  };
  struct X {
    __m512 x0, x1;
  };
  static constexpr int kCols = 16;
  static LINCORE_INLINE V zero() { return _mm512_setzero_ps(); }
  static LINCORE_INLINE V splat(float s) { return _mm512_set1_ps(s); }
  static LINCORE_INLINE W loadw(const std::uint16_t* p) {
    const __m512i u = _mm512_loadu_si512(p);
    return {_mm512_castsi512_ps(_mm512_slli_epi32(u, 16)),
            _mm512_castsi512_ps(_mm512_and_si512(u, _mm512_set1_epi32(-65536)))};
  }
  static LINCORE_INLINE X bcast(const unsigned char* row, std::int64_t g) {
    const float* f = reinterpret_cast<const float*>(row) + 2 * g;
    return {_mm512_set1_ps(f[0]), _mm512_set1_ps(f[1])};
  }
  static LINCORE_INLINE V dot(V acc, X x, W w) {
    return _mm512_fmadd_ps(x.x1, w.odd, _mm512_fmadd_ps(x.x0, w.even, acc));
  }
  static LINCORE_INLINE V loadf(const float* p) { return _mm512_loadu_ps(p); }
  static LINCORE_INLINE void storef(float* p, V v, int valid) {
    if (valid >= 16)
      _mm512_storeu_ps(p, v);
    else
      _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << valid) - 1), v);
  }
  static LINCORE_INLINE void store_bf16(std::uint16_t* p, V v, int valid) {
    const __m256i b = bf16_of_bits_zmm(_mm512_castps_si512(v));
    if (valid >= 16)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), b);
    else
      _mm256_mask_storeu_epi16(p, static_cast<__mmask16>((1u << valid) - 1), b);
  }
  static void to_bf16(std::int64_t n, const float* s, std::uint16_t* d) { to_bf16_zmm(n, s, d); }
  static void to_float(std::int64_t n, const std::uint16_t* s, float* d) { to_float_zmm(n, s, d); }
};

}  // namespace lincore::detail::isa_bavx512

#include "kernels/bkernel.h"

namespace lincore::detail::isa_bavx512 {

namespace {
constexpr int MR = 12;  // 24 accumulators + 4 widened W + 2 x: 30 of the 32 zmm
int nv_of(int rows) { return rows <= 4 ? 4 : rows <= 6 ? 3 : 2; }
}  // namespace

const BFamily& bfamily() {
  static const BFamily f{
      "avx512",       MR, 4, &brun<BIsa, MR, 4, &nv_of>, &prepare_fp32<BIsa>, &BIsa::to_bf16,
      &BIsa::to_float};
  return f;
}

}  // namespace lincore::detail::isa_bavx512
