// fp32 <-> bf16 on zmm with tensor/bfloat16.h's bits, for the avx512 and avx512_bf16 levels:
// per-ISA, included inside the level's namespace. Integer arithmetic, not VCVTNEPS2BF16 (which
// flushes subnormals to zero and so does not give the rule's bits).
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "kernels/simd.h"
#include "tensor/bfloat16.h"

namespace lincore::detail::LINCORE_ISA_NS {

// 16 fp32 bit patterns -> 16 bf16: NaN keeps its sign and gets the quiet bit; the rest round to
// nearest even by adding 0x7fff + the lowest kept bit (a carry into the exponent is right).
LINCORE_INLINE __m256i bf16_of_bits_zmm(__m512i u) {
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                                _mm512_set1_epi32(0x7f800000));
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff)));
  r = _mm512_mask_or_epi32(r, nan, u, _mm512_set1_epi32(0x00400000));
  return _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16));
}

inline void to_bf16_zmm(std::int64_t n, const float* src, std::uint16_t* dst) {
  std::int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512i u = _mm512_loadu_si512(src + i);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), bf16_of_bits_zmm(u));
  }
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m512i u = _mm512_maskz_loadu_epi32(m, src + i);
    _mm256_mask_storeu_epi16(dst + i, m, bf16_of_bits_zmm(u));
  }
}

inline void to_float_zmm(std::int64_t n, const std::uint16_t* src, float* dst) {
  std::int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i));
    _mm512_storeu_si512(dst + i, _mm512_slli_epi32(_mm512_cvtepu16_epi32(b), 16));
  }
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m256i b = _mm256_maskz_loadu_epi16(m, src + i);
    _mm512_mask_storeu_epi32(dst + i, m, _mm512_slli_epi32(_mm512_cvtepu16_epi32(b), 16));
  }
}

}  // namespace lincore::detail::LINCORE_ISA_NS
