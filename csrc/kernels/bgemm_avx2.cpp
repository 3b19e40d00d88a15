// bf16 level avx2: as the avx512 level (W widened in registers, x once per call, FMA), on ymm:
// 8 columns per vector. Conversions with AVX2 integer arithmetic, the rule's bits.
#define LINCORE_ISA_NS isa_bavx2
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/bfamily.h"
#include "kernels/simd.h"
#include "tensor/bfloat16.h"

namespace lincore::detail::isa_bavx2 {

struct BIsa {
  using V = __m256;
  struct W {
    __m256 even, odd;  // k steps 2g and 2g + 1 of 8 columns
  };
  struct X {
    __m256 x0, x1;
  };
  static constexpr int kCols = 8;
  static LINCORE_INLINE V zero() { return _mm256_setzero_ps(); }
  static LINCORE_INLINE V splat(float s) { return _mm256_set1_ps(s); }
  static LINCORE_INLINE W loadw(const std::uint16_t* p) {
    const __m256i u = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    return {_mm256_castsi256_ps(_mm256_slli_epi32(u, 16)),
            _mm256_castsi256_ps(_mm256_and_si256(u, _mm256_set1_epi32(-65536)))};
  }
  static LINCORE_INLINE X bcast(const unsigned char* row, std::int64_t g) {
    const float* f = reinterpret_cast<const float*>(row) + 2 * g;
    return {_mm256_set1_ps(f[0]), _mm256_set1_ps(f[1])};
  }
  static LINCORE_INLINE V dot(V acc, X x, W w) {
    return _mm256_fmadd_ps(x.x1, w.odd, _mm256_fmadd_ps(x.x0, w.even, acc));
  }
  static LINCORE_INLINE V loadf(const float* p) { return _mm256_loadu_ps(p); }
  static LINCORE_INLINE void storef(float* p, V v, int valid) {
    if (valid >= 8) {
      _mm256_storeu_ps(p, v);
    } else {
      alignas(32) float t[8];
      _mm256_store_ps(t, v);
      std::memcpy(p, t, static_cast<std::size_t>(valid) * sizeof(float));
    }
  }
  static void store_bf16(std::uint16_t* p, V v, int valid);
  static void to_bf16(std::int64_t n, const float* s, std::uint16_t* d);
  static void to_float(std::int64_t n, const std::uint16_t* s, float* d);
};

// 8 fp32 bit patterns -> 8 bf16 (the rule of tensor/bfloat16.h; see bconvert_avx512.h), as
// int32 lanes holding the 16-bit results.
static LINCORE_INLINE __m256i bf16_of_bits_ymm(__m256i u) {
  // Both sides are non-negative as int32, so the signed compare is the unsigned one.
  const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)),
                                         _mm256_set1_epi32(0x7f800000));
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  const __m256i r = _mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff)));
  const __m256i q = _mm256_or_si256(u, _mm256_set1_epi32(0x00400000));
  return _mm256_srli_epi32(_mm256_blendv_epi8(r, q, nan), 16);
}

LINCORE_INLINE void BIsa::store_bf16(std::uint16_t* p, V v, int valid) {
  const __m256i r = bf16_of_bits_ymm(_mm256_castps_si256(v));
  // packus per 128-bit lane: r0-3 r0-3 | r4-7 r4-7; the permute puts r0-7 in the low half.
  const __m128i b =
      _mm256_castsi256_si128(_mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0xD8));
  if (valid >= 8) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), b);
  } else {
    alignas(16) std::uint16_t t[8];
    _mm_store_si128(reinterpret_cast<__m128i*>(t), b);
    std::memcpy(p, t, static_cast<std::size_t>(valid) * sizeof(std::uint16_t));
  }
}

void BIsa::to_bf16(std::int64_t n, const float* s, std::uint16_t* d) {
  std::int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256i a = bf16_of_bits_ymm(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i)));
    const __m256i b =
        bf16_of_bits_ymm(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i + 8)));
    // packus works per 128-bit lane (a0 b0 a1 b1); values are <= 0xffff, so nothing saturates.
    const __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(a, b), 0xD8);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + i), p);
  }
  for (; i < n; ++i) d[i] = float_to_bf16(s[i]);
}

void BIsa::to_float(std::int64_t n, const std::uint16_t* s, float* d) {
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + i),
                        _mm256_slli_epi32(_mm256_cvtepu16_epi32(b), 16));
  }
  for (; i < n; ++i) d[i] = bf16_to_float(s[i]);
}

}  // namespace lincore::detail::isa_bavx2

#include "kernels/bkernel.h"

namespace lincore::detail::isa_bavx2 {

namespace {
constexpr int MR = 5;  // 10 accumulators + 4 widened W + 2 x: the 16 ymm
int nv_of(int rows) { return rows <= 2 ? 4 : 2; }
}  // namespace

const BFamily& bfamily() {
  static const BFamily f{
      "avx2",         MR, 4, &brun<BIsa, MR, 4, &nv_of>, &prepare_fp32<BIsa>, &BIsa::to_bf16,
      &BIsa::to_float};
  return f;
}

}  // namespace lincore::detail::isa_bavx2
