// int8 level avx512_vnni: VPDPBUSD on zmm (16 columns x 4 k steps per instruction), x codes as
// s8 + 128 (u8) with 128 x the column sums taken off in the epilogue. 12-row tiles of 2 panels;
// fewer rows, wider tiles (a batch of up to 8 rows is one row tile: W is read once per call).
#define LINCORE_ISA_NS isa_qavx512vnni
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels/qfamily.h"
#include "kernels/simd.h"

namespace lincore::detail::isa_qavx512vnni {

struct QIsa {
  using V = __m512i;
  static constexpr int kCols = 16;
  static constexpr bool kOffset = true;
  static LINCORE_INLINE V zero() { return _mm512_setzero_si512(); }
  static LINCORE_INLINE V load(const std::int8_t* p) { return _mm512_loadu_si512(p); }
  static LINCORE_INLINE V bcast(const std::uint8_t* p) {
    std::int32_t v;
    std::memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
  }
  // In asm: with the intrinsic GCC 12 copies every accumulator through the stack on each k
  // step (it does not keep the destructive three-operand form in place); measured 2.5x slower.
  static LINCORE_INLINE V dot(V acc, V b, V w) {
    __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(b), "v"(w));
    return acc;
  }
  struct Cols {
    std::int64_t col;
    __m512i comp;  // 128 colsum
    __m512 scale, bias;
    __mmask16 mask;  // the columns below n
  };
  static Cols columns(const QArgs& a, std::int64_t col);
  static void finish(V acc, const QArgs& a, std::int64_t i, const Cols& c);
};

}  // namespace lincore::detail::isa_qavx512vnni

#include "kernels/qkernel.h"

namespace lincore::detail::isa_qavx512vnni {

LINCORE_INLINE QIsa::Cols QIsa::columns(const QArgs& a, std::int64_t col) {
  const QPackedWeight& pw = *a.pw;
  const std::int64_t valid = std::min<std::int64_t>(kCols, pw.n - col);
  const __mmask16 mask = static_cast<__mmask16>(valid <= 0    ? 0
                                                : valid >= 16 ? 0xFFFF
                                                              : (1u << valid) - 1);
  return {col, _mm512_slli_epi32(_mm512_loadu_si512(pw.colsum + col), 7),
          _mm512_loadu_ps(pw.scale + col), _mm512_loadu_ps(pw.bias + col), mask};
}

// y = act(fma(float(acc - 128 colsum), sx * sw, b)) for the 16 columns of c.
LINCORE_INLINE void QIsa::finish(V acc, const QArgs& a, std::int64_t i, const Cols& c) {
  const __m512 s = _mm512_mul_ps(_mm512_set1_ps(a.sx[i]), c.scale);
  __m512 v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc, c.comp)), s, c.bias);
  const __mmask16 neg = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ);
  if (a.ep.act == Activation::relu) {
    v = _mm512_mask_mov_ps(v, neg, _mm512_setzero_ps());
  } else if (a.ep.act == Activation::leaky_relu) {
    v = _mm512_mask_mul_ps(v, neg, v, _mm512_set1_ps(static_cast<float>(a.ep.negative_slope)));
  }
  if (c.mask == 0) return;
  _mm512_mask_storeu_ps(a.y + i * a.ldy + c.col, c.mask, v);
}

// x's codes on zmm (qkernel.h's Codes step), the tail under a mask: all k values. In intrinsics
// because GCC keeps the portable clamp's NaN semantics (a compare and a blend each, not one
// min / max) and its two-step rounding; rne here is the conversion's own (embedded, so MXCSR
// plays no part), the same as kQRound's in the default mode. The division is the step's limit
// in L1; a reciprocal product with an exact fallback near half-integers measured slower.
struct Codes {
  static std::int64_t run(const float* x, std::int64_t k, float s, std::uint8_t* q,
                          const float* next, std::uint32_t& next_bits) {
    const __m512 vs = _mm512_set1_ps(s), lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
    const __m512i off = _mm512_set1_epi32(128), mag = _mm512_set1_epi32(0x7fffffff);
    const auto codes = [&](__m512 v) LINCORE_INLINE_LAMBDA {
      v = _mm512_min_ps(_mm512_max_ps(_mm512_div_ps(v, vs), lo), hi);
      const __m512i c = _mm512_cvt_roundps_epi32(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      return _mm512_cvtepi32_epi8(_mm512_add_epi32(c, off));
    };
    __m512i nmax = _mm512_setzero_si512();
    std::int64_t p = 0;
    for (; p + 16 <= k; p += 16) {
      nmax = _mm512_max_epu32(nmax, _mm512_and_si512(_mm512_loadu_si512(next + p), mag));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(q + p), codes(_mm512_loadu_ps(x + p)));
    }
    if (p < k) {
      const __mmask16 mask = static_cast<__mmask16>((1u << (k - p)) - 1);
      nmax =
          _mm512_max_epu32(nmax, _mm512_and_si512(_mm512_maskz_loadu_epi32(mask, next + p), mag));
      _mm_mask_storeu_epi8(q + p, mask, codes(_mm512_maskz_loadu_ps(mask, x + p)));
    }
    next_bits = _mm512_reduce_max_epu32(nmax);
    return k;
  }
};

namespace {
constexpr int MR = 12;
int nv_of(int rows) { return rows <= 4 ? 4 : rows <= 8 ? 3 : 2; }
}  // namespace

const QFamily& qfamily() {
  static const QFamily f{"avx512_vnni", MR, &qrun<QIsa, MR, 4, &nv_of>, &quantize<16, true, Codes>,
                         128};
  return f;
}

}  // namespace lincore::detail::isa_qavx512vnni
