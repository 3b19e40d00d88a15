// The int8 epilogue on ymm (8 columns), for the avx_vnni and avx2 levels: per-ISA, included by
// their qgemm_<isa>.cpp (LINCORE_ISA_NS) before their QIsa, which uses ColsYmm.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels/qfamily.h"
#include "kernels/simd.h"

namespace lincore::detail::LINCORE_ISA_NS {

// The per-column values of 8 columns from col, loaded once per row tile.
struct ColsYmm {
  std::int64_t col, valid;  // valid: how many of the 8 are below n (may be <= 0)
  __m256i comp;             // 128 colsum (levels with offset codes)
  __m256 scale, bias;
};

template <bool kOffset>
LINCORE_INLINE ColsYmm columns_ymm(const QArgs& a, std::int64_t col) {
  const QPackedWeight& pw = *a.pw;
  ColsYmm c;
  c.col = col;
  c.valid = std::min<std::int64_t>(8, pw.n - col);
  c.comp = kOffset ? _mm256_slli_epi32(
                         _mm256_loadu_si256(reinterpret_cast<const __m256i*>(pw.colsum + col)), 7)
                   : _mm256_setzero_si256();
  c.scale = _mm256_loadu_ps(pw.scale + col);
  c.bias = _mm256_loadu_ps(pw.bias + col);
  return c;
}

// y = act(fma(float(acc - (kOffset ? 128 colsum : 0)), sx * sw, b)) for the 8 columns of c.
template <bool kOffset>
LINCORE_INLINE void finish_ymm(__m256i acc, const QArgs& a, std::int64_t i, const ColsYmm& c) {
  if constexpr (kOffset) acc = _mm256_sub_epi32(acc, c.comp);
  const __m256 s = _mm256_mul_ps(_mm256_set1_ps(a.sx[i]), c.scale);
  __m256 v = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc), s, c.bias);
  const __m256 neg = _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_LT_OQ);
  if (a.ep.act == Activation::relu) {
    v = _mm256_blendv_ps(v, _mm256_setzero_ps(), neg);
  } else if (a.ep.act == Activation::leaky_relu) {
    const __m256 scaled = _mm256_mul_ps(v, _mm256_set1_ps(static_cast<float>(a.ep.negative_slope)));
    v = _mm256_blendv_ps(v, scaled, neg);
  }
  if (c.valid <= 0) return;
  float* y = a.y + i * a.ldy + c.col;
  if (c.valid == 8) {
    _mm256_storeu_ps(y, v);
  } else {
    alignas(32) float tmp[8];
    _mm256_store_ps(tmp, v);
    std::memcpy(y, tmp, static_cast<std::size_t>(c.valid) * sizeof(float));
  }
}

}  // namespace lincore::detail::LINCORE_ISA_NS
