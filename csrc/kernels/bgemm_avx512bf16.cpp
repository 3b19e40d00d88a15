// bf16 level avx512_bf16: VDPBF16PS on zmm (16 columns x 2 k steps per instruction: each lane
// adds two exact products to its fp32 sum; subnormal inputs and results count as zero). x is
// read as bf16 pairs, in place when k is even. 12-row tiles of 2 panels; fewer rows, wider
// tiles (a batch of up to 8 rows is one row tile: W is read once per call).
#define LINCORE_ISA_NS isa_bavx512bf16
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/bconvert_avx512.h"
#include "kernels/bfamily.h"
#include "kernels/simd.h"

namespace lincore::detail::isa_bavx512bf16 {

struct BIsa {
  using V = __m512;
  using W = __m512i;
  using X = __m512i;
  static constexpr int kCols = 16;
  static LINCORE_INLINE V zero() { return _mm512_setzero_ps(); }
  static LINCORE_INLINE V splat(float s) { return _mm512_set1_ps(s); }
  static LINCORE_INLINE W loadw(const std::uint16_t* p) { return _mm512_loadu_si512(p); }
  static LINCORE_INLINE X bcast(const unsigned char* row, std::int64_t g) {
    std::int32_t v;
    std::memcpy(&v, row + g * 4, 4);
    return _mm512_set1_epi32(v);
  }
  // In asm, as the int8 level's VPDPBUSD (qgemm_avx512vnni.cpp): GCC 12 copies every
  // accumulator through the stack around the intrinsic's destructive three-operand form.
  static LINCORE_INLINE V dot(V acc, X x, W w) {
    __asm__("vdpbf16ps %2, %1, %0" : "+v"(acc) : "v"(x), "v"(w));
    return acc;
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

}  // namespace lincore::detail::isa_bavx512bf16

#include "kernels/bkernel.h"

namespace lincore::detail::isa_bavx512bf16 {

namespace {
constexpr int MR = 12;
int nv_of(int rows) { return rows <= 4 ? 4 : rows <= 8 ? 3 : 2; }
}  // namespace

const BFamily& bfamily() {
  static const BFamily f{
      "avx512_bf16",  MR, 2, &brun<BIsa, MR, 4, &nv_of>, &prepare_bf16, &BIsa::to_bf16,
      &BIsa::to_float};
  return f;
}

}  // namespace lincore::detail::isa_bavx512bf16
