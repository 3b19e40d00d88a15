// The int8 epilogue on ymm (8 columns), for the avx_vnni and avx2 levels: per-ISA, included
// after qkernel.h inside the level's namespace.
#pragma once

#include <immintrin.h>

namespace lincore::detail::LINCORE_ISA_NS {

// y = act(fma(float(acc - (kOffset ? 128 colsum : 0)), sx * sw, b)) for 8 columns from col.
template <bool kOffset>
LINCORE_INLINE void finish_ymm(__m256i acc, const QArgs& a, std::int64_t i, std::int64_t col) {
  const QPackedWeight& pw = *a.pw;
  if constexpr (kOffset) {
    const __m256i cs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(pw.colsum + col));
    acc = _mm256_sub_epi32(acc, _mm256_slli_epi32(cs, 7));
  }
  const __m256 s = _mm256_mul_ps(_mm256_set1_ps(a.sx[i]), _mm256_loadu_ps(pw.scale + col));
  __m256 v = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc), s, _mm256_loadu_ps(pw.bias + col));
  const __m256 neg = _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_LT_OQ);
  if (a.ep.act == Activation::relu) {
    v = _mm256_blendv_ps(v, _mm256_setzero_ps(), neg);
  } else if (a.ep.act == Activation::leaky_relu) {
    const __m256 scaled = _mm256_mul_ps(v, _mm256_set1_ps(static_cast<float>(a.ep.negative_slope)));
    v = _mm256_blendv_ps(v, scaled, neg);
  }
  const std::int64_t valid = std::min<std::int64_t>(8, pw.n - col);
  if (valid <= 0) return;
  float* y = a.y + i * a.ldy + col;
  if (valid == 8) {
    _mm256_storeu_ps(y, v);
  } else {
    alignas(32) float tmp[8];
    _mm256_store_ps(tmp, v);
    std::memcpy(y, tmp, static_cast<std::size_t>(valid) * sizeof(float));
  }
}

}  // namespace lincore::detail::LINCORE_ISA_NS
