// int8 level avx_vnni: the VEX-encoded VPDPBUSD on ymm (8 columns x 4 k steps), x codes as
// s8 + 128 (u8), 128 x the column sums taken off in the epilogue. 6-row tiles of one panel (two
// ymm); up to 2 rows, two panels (12 accumulators at most: 16 ymm registers).
#define LINCORE_ISA_NS isa_qavxvnni
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels/qfamily.h"
#include "kernels/qfinish_avx2.h"
#include "kernels/simd.h"

namespace lincore::detail::isa_qavxvnni {

struct QIsa {
  using V = __m256i;
  static constexpr int kCols = 8;
  static constexpr bool kOffset = true;
  static LINCORE_INLINE V zero() { return _mm256_setzero_si256(); }
  static LINCORE_INLINE V load(const std::int8_t* p) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  }
  static LINCORE_INLINE V bcast(const std::uint8_t* p) {
    std::int32_t v;
    std::memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
  }
  // In asm, as in qgemm_avx512vnni.cpp ({vex}: the AVX-VNNI encoding, not AVX512-VNNI's).
  static LINCORE_INLINE V dot(V acc, V b, V w) {
    __asm__("%{vex%} vpdpbusd %2, %1, %0" : "+x"(acc) : "x"(b), "x"(w));
    return acc;
  }
  using Cols = ColsYmm;
  static Cols columns(const QArgs& a, std::int64_t col);
  static void finish(V acc, const QArgs& a, std::int64_t i, const Cols& c);
};

}  // namespace lincore::detail::isa_qavxvnni

#include "kernels/qcodes_avx2.h"
#include "kernels/qkernel.h"

namespace lincore::detail::isa_qavxvnni {

LINCORE_INLINE QIsa::Cols QIsa::columns(const QArgs& a, std::int64_t col) {
  return columns_ymm<true>(a, col);
}
LINCORE_INLINE void QIsa::finish(V acc, const QArgs& a, std::int64_t i, const Cols& c) {
  finish_ymm<true>(acc, a, i, c);
}

namespace {
constexpr int MR = 6;
int nv_of(int rows) { return rows <= 2 ? 4 : 2; }
}  // namespace

const QFamily& qfamily() {
  static const QFamily f{"avx_vnni", MR, &qrun<QIsa, MR, 4, &nv_of>,
                         &quantize<8, true, CodesYmm<true>>, 128};
  return f;
}

}  // namespace lincore::detail::isa_qavxvnni
