// x's int8 codes on ymm, for the avx_vnni and avx2 levels (qkernel.h's Codes step): per-ISA,
// included by their qgemm_<isa>.cpp (LINCORE_ISA_NS). AVX2 has no dword-to-byte narrowing
// instruction (GCC turns __builtin_convertvector into a scalar byte loop: 4x slower), so four
// vectors of dwords are narrowed at once by the saturating packs, exact for codes in
// [-127, 127], and put back in order by one permute.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "kernels/simd.h"

namespace lincore::detail::LINCORE_ISA_NS {

template <bool kOffset>
struct CodesYmm {
  static std::int64_t run(const float* x, std::int64_t k, float s, std::uint8_t* q,
                          const float* next, std::uint32_t& next_bits) {
    const __m256i mag = _mm256_set1_epi32(0x7fffffff);
    __m256i nmax = _mm256_setzero_si256();
    const auto fold = [&](const float* p) LINCORE_INLINE_LAMBDA {
      nmax = _mm256_max_epu32(
          nmax, _mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)), mag));
    };
    const __m256 vs = _mm256_set1_ps(s), lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
    // cvtps2dq rounds by MXCSR: to nearest even in the default mode, as kQRound does.
    const auto codes = [&](const float* p) LINCORE_INLINE_LAMBDA {
      const __m256 v = _mm256_div_ps(_mm256_loadu_ps(p), vs);
      return _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(v, lo), hi));
    };
    // s8 codes + 128 as u8: the sign bit flipped.
    const __m256i flip = _mm256_set1_epi8(kOffset ? static_cast<char>(0x80) : 0);
    // packs leave dwords (as groups of 4 bytes) in the order a0 b0 c0 d0 a1 b1 c1 d1.
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    std::int64_t p = 0;
    for (; p + 32 <= k; p += 32) {
      fold(next + p);
      fold(next + p + 8);
      fold(next + p + 16);
      fold(next + p + 24);
      const __m256i ab = _mm256_packs_epi32(codes(x + p), codes(x + p + 8));
      const __m256i cd = _mm256_packs_epi32(codes(x + p + 16), codes(x + p + 24));
      const __m256i b = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(ab, cd), order);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + p), _mm256_xor_si256(b, flip));
    }
    for (; p + 8 <= k; p += 8) {
      fold(next + p);
      const __m256i c = codes(x + p);
      const __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(c), _mm256_extracti128_si256(c, 1));
      const __m128i b = _mm_xor_si128(_mm_packs_epi16(w, w), _mm256_castsi256_si128(flip));
      _mm_storel_epi64(reinterpret_cast<__m128i*>(q + p), b);
    }
    alignas(32) std::uint32_t lanes[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), nmax);
    next_bits = *std::max_element(lanes, lanes + 8);
    return p;
  }
};

}  // namespace lincore::detail::LINCORE_ISA_NS
