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
//     static void finish(V acc, const QArgs& a, std::int64_t i, std::int64_t col);  // epilogue
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
  unroll<R>([&](auto r) LINCORE_INLINE_LAMBDA {
    unroll<NV>([&](auto v) LINCORE_INLINE_LAMBDA {
      QIsa::finish(acc[r][v], a, i0 + r, jp * kQPanel + v * QIsa::kCols);
    });
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

// Rounded codes (integral floats in [-127, 127]) plus off, narrowed to bytes in registers and
// stored at once; one overload per vector width (GCC 12 rejects __builtin_convertvector on a
// vector type whose size depends on a template parameter).
LINCORE_INLINE void store_codes(std::uint8_t* q, Simd<float, 16>::V v, int off) {
  typedef std::int32_t VI __attribute__((vector_size(64)));
  typedef std::uint8_t VB __attribute__((vector_size(16)));
  const VB c = __builtin_convertvector(__builtin_convertvector(v, VI) + off, VB);
  std::memcpy(q, &c, sizeof c);
}
LINCORE_INLINE void store_codes(std::uint8_t* q, Simd<float, 8>::V v, int off) {
  typedef std::int32_t VI __attribute__((vector_size(32)));
  typedef std::uint8_t VB __attribute__((vector_size(8)));
  const VB c = __builtin_convertvector(__builtin_convertvector(v, VI) + off, VB);
  std::memcpy(q, &c, sizeof c);
}

// qgemm.h's quantization rule on m rows, LANES values at a time (the same IEEE operations in
// every lane and in the scalar tail, so the codes do not depend on the vector width):
// rne(v) = (v + 1.5 * 2^23) - 1.5 * 2^23 for |v| <= 127, in the default rounding mode.
template <int LANES, bool kOffset>
void quantize(std::int64_t m, std::int64_t k, const float* x, std::int64_t ldx, std::uint8_t* q,
              std::int64_t ldq, float* sx) {
  using S = Simd<float, LANES>;
  using V = typename S::V;
  const std::int64_t kpad = (k + kQGroup - 1) / kQGroup * kQGroup;
  const std::uint8_t zero_code = kOffset ? 128 : 0;
  const int off = kOffset ? 128 : 0;
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23
  for (std::int64_t i = 0; i < m; ++i) {
    const float* xr = x + i * ldx;
    std::uint8_t* qr = q + i * ldq;
    // The largest magnitude, and a sum of (v - v): 0 when every value is finite, else NaN.
    V vmax = S::broadcast(0.0f), vbad = S::broadcast(0.0f);
    std::int64_t p = 0;
    if constexpr (LANES > 1) {
      for (; p + LANES <= k; p += LANES) {
        const V v = S::load(xr + p);
        const V mag = v < S::broadcast(0.0f) ? -v : v;
        vmax = mag > vmax ? mag : vmax;
        vbad += v - v;
      }
    }
    float amax = 0.0f, bad = 0.0f;
    for (int l = 0; l < LANES; ++l) {
      amax = S::lane(vmax, l) > amax ? S::lane(vmax, l) : amax;
      bad += S::lane(vbad, l);
    }
    for (; p < k; ++p) {
      const float v = xr[p], mag = v < 0.0f ? -v : v;
      amax = mag > amax ? mag : amax;
      bad += v - v;
    }
    const float s = amax / 127.0f;
    if (!(bad == 0.0f) || s == 0.0f) {
      sx[i] = bad == 0.0f ? 0.0f : std::numeric_limits<float>::quiet_NaN();
      std::memset(qr, zero_code, static_cast<std::size_t>(kpad));
      continue;
    }
    sx[i] = s;
    p = 0;
    if constexpr (LANES > 1) {
      const V vs = S::broadcast(s), lo = S::broadcast(-127.0f), hi = S::broadcast(127.0f);
      const V rnd = S::broadcast(kRound);
      for (; p + LANES <= k; p += LANES) {
        V v = S::load(xr + p) / vs;
        v = v < lo ? lo : v;
        v = v > hi ? hi : v;
        v = (v + rnd) - rnd;
        store_codes(qr + p, v, off);
      }
    }
    for (; p < k; ++p) {
      float v = xr[p] / s;
      v = v < -127.0f ? -127.0f : v;
      v = v > 127.0f ? 127.0f : v;
      v = (v + kRound) - kRound;
      qr[p] = static_cast<std::uint8_t>(static_cast<int>(v) + off);
    }
    for (; p < kpad; ++p) qr[p] = zero_code;
  }
}

}  // namespace lincore::detail::LINCORE_ISA_NS
