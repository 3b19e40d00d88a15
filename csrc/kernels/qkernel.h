// The int8 loop nest, register tile and x quantizer, written once over an ISA's traits (the
// QIsa template parameter):
//
//   struct QIsa {
//     using V = ...;                     // a vector of kCols int32 accumulators
//     static constexpr int kCols;         // columns per vector (16 zmm, 8 ymm)
//     static constexpr bool kOffset;      // x codes stored as s8 + 128 (u8), for VPDPBUSD
//     static V zero();
//     static V load(const std::int8_t* p);     // kCols columns x 4 k steps of packed W
//     static V bcast(const std::uint8_t* p);   // 4 codes of one row of x, in every lane
//     static V dot(V acc, V b, V w);           // acc[c] += sum_q b[q] * w[4c + q], exactly
//     struct Cols;                              // the epilogue's per-column values ...
//     static Cols columns(const QArgs& a, std::int64_t col);  // ... for kCols columns from col
//     static void finish(V acc, const QArgs& a, std::int64_t i, const Cols& c);  // epilogue
//   };
//
// Per-ISA like loop_nest.h: included only by a qgemm_<isa>.cpp, inside its namespace
// (LINCORE_ISA_NS). The accumulation is exact integer arithmetic, so the
// tile shapes, the loop order and the thread split never change a result.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "kernels/qfamily.h"
#include "kernels/simd.h"

namespace lincore::detail::LINCORE_ISA_NS {

// W panels are walked in blocks of at most this many bytes, which stay in L2 while every row
// tile of the block's rows passes over them (half of a 1 MiB L2: x's rows share it).
constexpr std::int64_t kQBlockBytes = 512 * 1024;

// Whether finish() applies the activation itself (exact operations: a max, a multiply).
static inline bool in_register(Activation act) {
  return act == Activation::none || act == Activation::relu || act == Activation::leaky_relu;
}

// activate() (the scalar definition) over rows [i0, i0 + rows) and columns [col, col + cols)
// of y, clipped to n.
__attribute__((noinline)) static void qactivate_tile(const QArgs& a, std::int64_t i0, int rows,
                                                     std::int64_t col, std::int64_t cols) {
  const std::int64_t end = std::min(col + cols, a.pw->n);
  for (int r = 0; r < rows; ++r) {
    float* y = a.y + (i0 + r) * a.ldy;
    for (std::int64_t c = col; c < end; ++c) y[c] = activate(y[c], a.ep);
  }
}

// One R-row tile over NV vectors of columns (NV * kCols columns from panel jp's first column).
template <class QIsa, int R, int NV>
void qtile(const QArgs& a, std::int64_t i0, std::int64_t jp) {
  using V = typename QIsa::V;
  constexpr int kVecPerPanel = kQPanel / QIsa::kCols;
  const std::int64_t pstride = a.kgroups * (kQPanel * kQGroup);
  const std::int8_t* w = a.pw->data + jp * pstride;
  const std::uint8_t* x = a.xq + i0 * a.ldq;
  const std::int64_t ldq = a.ldq;
  V acc[R][NV];
  unroll<R>([&](auto r) LINCORE_INLINE_LAMBDA {
    unroll<NV>([&](auto v) LINCORE_INLINE_LAMBDA { acc[r][v] = QIsa::zero(); });
  });
  for (std::int64_t g = 0; g < a.kgroups; ++g) {
    V wv[NV];
    unroll<NV>([&](auto v) LINCORE_INLINE_LAMBDA {
      constexpr int panel = v / kVecPerPanel, sub = v % kVecPerPanel;
      wv[v] = QIsa::load(w + panel * pstride + g * (kQPanel * kQGroup) + sub * QIsa::kCols * 4);
    });
    unroll<R>([&](auto r) LINCORE_INLINE_LAMBDA {
      const V b = QIsa::bcast(x + r * ldq + g * kQGroup);
      unroll<NV>([&](auto v) LINCORE_INLINE_LAMBDA { acc[r][v] = QIsa::dot(acc[r][v], b, wv[v]); });
    });
  }
  // Column by column: each vector of columns loads its column sums, scales and bias once for
  // the R rows (a store to y may alias them as far as the compiler knows, so per row it would
  // load them again).
  unroll<NV>([&](auto v) LINCORE_INLINE_LAMBDA {
    const typename QIsa::Cols cols = QIsa::columns(a, jp * kQPanel + v * QIsa::kCols);
    unroll<R>([&](auto r) LINCORE_INLINE_LAMBDA { QIsa::finish(acc[r][v], a, i0 + r, cols); });
  });
  // Activations other than the exact ones done in registers: a separate pass over the stored
  // tile (a call while accumulators are live would make GCC keep them all in memory).
  if (!in_register(a.ep.act)) qactivate_tile(a, i0, R, jp * kQPanel, NV * QIsa::kCols);
}

using QTileFn = void (*)(const QArgs&, std::int64_t, std::int64_t);

template <int MR, int NVMAX>
struct QTileTable {
  QTileFn f[MR][NVMAX];
};

template <class QIsa, int R, int... V>
constexpr void fill_tile_row(QTileFn* row, std::integer_sequence<int, V...>) {
  ((row[V] = &qtile<QIsa, R + 1, V + 1>), ...);
}

template <class QIsa, int MR, int NVMAX, int... R>
constexpr QTileTable<MR, NVMAX> qtile_table(std::integer_sequence<int, R...>) {
  QTileTable<MR, NVMAX> t{};
  (fill_tile_row<QIsa, R>(t.f[R], std::make_integer_sequence<int, NVMAX>{}), ...);
  return t;
}

// The loop nest: panel blocks that fit kQBlockBytes; in each, row tiles of MR rows; in each, the
// block's panels, NvOf(R) vectors at a time (wider tiles for fewer rows: a batch of a few rows
// is one row tile, which reads each weight once).
template <class QIsa, int MR, int NVMAX, int (*NvOf)(int)>
void qrun(const QArgs& a, std::int64_t i0, std::int64_t i1, std::int64_t jp0, std::int64_t jp1) {
  static constexpr auto table = qtile_table<QIsa, MR, NVMAX>(std::make_integer_sequence<int, MR>{});
  constexpr int kVecPerPanel = kQPanel / QIsa::kCols;
  const std::int64_t panel_bytes = std::max<std::int64_t>(a.kgroups * kQPanel * kQGroup, 1);
  const std::int64_t block = std::max<std::int64_t>(1, kQBlockBytes / panel_bytes);
  for (std::int64_t jb = jp0; jb < jp1; jb += block) {
    const std::int64_t je = std::min(jp1, jb + block);
    for (std::int64_t i = i0; i < i1; i += MR) {
      const int rows = static_cast<int>(std::min<std::int64_t>(MR, i1 - i));
      const int nv = NvOf(rows);
      for (std::int64_t jp = jb; jp < je; jp += nv / kVecPerPanel) {
        const int cur = static_cast<int>(std::min<std::int64_t>(nv, (je - jp) * kVecPerPanel));
        table.f[rows - 1][cur - 1](a, i, jp);
      }
    }
  }
}

// rne(v) = (v + kQRound) - kQRound for |v| <= 127 (1.5 * 2^23: the sum's unit in the last place
// is 1), in the default rounding mode.
constexpr float kQRound = 12582912.0f;

// The codes step of a level without vector code (the portable one): none, every code is made
// one by one by quantize(). A vector level's Codes (qgemm_<isa>.cpp, qcodes_avx2.h) has the same
// signature: it writes the codes of x[0, p) for some p <= k by the rule, rne(clamp(x / s, -127,
// 127)) + off with the same IEEE operations, folds the sign-cleared bits of next[0, p) (the next
// row, same length) into next_bits by an unsigned max, and returns p. The two in one loop: the
// next row's loads (from L2 or L3 for a large x) overlap this row's division-bound arithmetic,
// and x is read once from beyond L1 (measured 1.3-1.5x faster than two passes per row).
struct ScalarCodes {
  static std::int64_t run(const float*, std::int64_t, float, std::uint8_t*, const float*,
                          std::uint32_t&) {
    return 0;
  }
};

// The bit pattern of max_p |x[p]| over k values. A non-negative IEEE float orders like its bit
// pattern read as an unsigned integer, so the largest magnitude is an integer max of the bits
// with the sign cleared: exact and order-free, so four independent chains (not one chain of
// dependent float compares: the latency bound of the first pass), and a result >= 0x7f800000
// says the row holds an Inf or a NaN, with no second sum to find it.
template <int LANES>
LINCORE_INLINE std::uint32_t absmax_bits(const float* x, std::int64_t k) {
  using U = Simd<std::uint32_t, LANES>;
  using VU = typename U::V;
  constexpr std::uint32_t kMag = 0x7fffffffu;
  const auto bits = [&](std::int64_t p) LINCORE_INLINE_LAMBDA {
    VU v;
    std::memcpy(&v, x + p, sizeof v);
    return v & kMag;
  };
  const auto vmax = [](VU a, VU b) LINCORE_INLINE_LAMBDA { return a > b ? a : b; };
  VU m0 = U::broadcast(0), m1 = m0, m2 = m0, m3 = m0;
  std::int64_t p = 0;
  for (; p + 4 * LANES <= k; p += 4 * LANES) {
    m0 = vmax(m0, bits(p));
    m1 = vmax(m1, bits(p + LANES));
    m2 = vmax(m2, bits(p + 2 * LANES));
    m3 = vmax(m3, bits(p + 3 * LANES));
  }
  for (; p + LANES <= k; p += LANES) m0 = vmax(m0, bits(p));
  m0 = vmax(vmax(m0, m1), vmax(m2, m3));
  std::uint32_t r = 0;
  for (int l = 0; l < LANES; ++l) r = U::lane(m0, l) > r ? U::lane(m0, l) : r;
  for (; p < k; ++p) {
    std::uint32_t b;
    std::memcpy(&b, x + p, 4);
    b &= kMag;
    r = b > r ? b : r;
  }
  return r;
}

// qgemm.h's quantization rule on m rows: the largest magnitude (absmax_bits, LANES wide), the
// scale, then the codes (Codes::run, then one by one), the same IEEE operations in every lane
// and in the tail, so the codes do not depend on the vector width or the level. Each row's
// largest magnitude is found while the previous row's codes are made (see ScalarCodes).
template <int LANES, bool kOffset, class Codes>
void quantize(std::int64_t m, std::int64_t k, const float* x, std::int64_t ldx, std::uint8_t* q,
              std::int64_t ldq, float* sx) {
  const std::int64_t kpad = (k + kQGroup - 1) / kQGroup * kQGroup;
  const std::uint8_t zero_code = kOffset ? 128 : 0;
  const int off = kOffset ? 128 : 0;
  constexpr std::uint32_t kInfBits = 0x7f800000u;
  std::uint32_t bits = m > 0 ? absmax_bits<LANES>(x, k) : 0;
  for (std::int64_t i = 0; i < m; ++i) {
    const float* xr = x + i * ldx;
    const float* next = i + 1 < m ? xr + ldx : xr;  // the last row folds itself (discarded)
    std::uint8_t* qr = q + i * ldq;
    float amax;
    std::memcpy(&amax, &bits, 4);
    const float s = amax / 127.0f;
    std::uint32_t next_bits = 0;
    std::int64_t p = 0;
    if (bits >= kInfBits || s == 0.0f) {
      sx[i] = bits < kInfBits ? 0.0f : std::numeric_limits<float>::quiet_NaN();
      std::memset(qr, zero_code, static_cast<std::size_t>(kpad));
    } else {
      sx[i] = s;
      p = Codes::run(xr, k, s, qr, next, next_bits);
      for (std::int64_t c = p; c < k; ++c) {
        float v = xr[c] / s;
        v = v < -127.0f ? -127.0f : v;
        v = v > 127.0f ? 127.0f : v;
        v = (v + kQRound) - kQRound;
        qr[c] = static_cast<std::uint8_t>(static_cast<int>(v) + off);
      }
      for (std::int64_t c = k; c < kpad; ++c) qr[c] = zero_code;
    }
    const std::uint32_t rest = absmax_bits<LANES>(next + p, k - p);
    bits = rest > next_bits ? rest : next_bits;
  }
}

}  // namespace lincore::detail::LINCORE_ISA_NS
