// int8 level avx2 (no VNNI): exact s8 x s8 products by the sign trick. VPMADDUBSW multiplies
// unsigned by signed bytes and adds pairs into int16 with saturation; with |x| as the unsigned
// operand and w carrying x's sign (VPSIGNB), each pair is x0 w0 + x1 w1 with |.| <= 2 * 127^2 =
// 32258 < 32767 (codes are in [-127, 127]), so it never saturates; VPMADDWD by ones then adds
// pairs into int32 exactly. x codes stay s8 (no offset, no column-sum correction).
#define LINCORE_ISA_NS isa_qavx2
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels/qfamily.h"
#include "kernels/qfinish_avx2.h"
#include "kernels/simd.h"

namespace lincore::detail::isa_qavx2 {

struct QIsa {
  using V = __m256i;
  static constexpr int kCols = 8;
  static constexpr bool kOffset = false;
  static LINCORE_INLINE V zero() { return _mm256_setzero_si256(); }
  static LINCORE_INLINE V load(const std::int8_t* p) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  }
  static LINCORE_INLINE V bcast(const std::uint8_t* p) {
    std::int32_t v;
    std::memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
  }
  static LINCORE_INLINE V dot(V acc, V b, V w) {
    const V pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(b, b), _mm256_sign_epi8(w, b));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
  }
  using Cols = ColsYmm;
  static Cols columns(const QArgs& a, std::int64_t col);
  static void finish(V acc, const QArgs& a, std::int64_t i, const Cols& c);
};

}  // namespace lincore::detail::isa_qavx2

#include "kernels/qcodes_avx2.h"
#include "kernels/qkernel.h"

namespace lincore::detail::isa_qavx2 {

LINCORE_INLINE QIsa::Cols QIsa::columns(const QArgs& a, std::int64_t col) {
  return columns_ymm<false>(a, col);
}
LINCORE_INLINE void QIsa::finish(V acc, const QArgs& a, std::int64_t i, const Cols& c) {
  finish_ymm<false>(acc, a, i, c);
}

namespace {
constexpr int MR = 3;  // 6 accumulators: the sign trick needs 4 more registers than VNNI
int nv_of(int) { return 2; }
}  // namespace

const QFamily& qfamily() {
  static const QFamily f{"avx2", MR, &qrun<QIsa, MR, 2, &nv_of>,
                         &quantize<8, false, CodesYmm<false>>, 0};
  return f;
}

}  // namespace lincore::detail::isa_qavx2
