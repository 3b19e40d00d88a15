// The bf16 loop nest, register tile, epilogue and x preparation, written once over an ISA's
// traits (the BIsa template parameter):
//
//   struct BIsa {
//     using V = ...;                 // kCols fp32 accumulators (a GCC vector type)
//     using W = ...;                 // kCols columns x one k pair of packed W, ready to multiply
//     using X = ...;                 // one row's k pair of x, in every lane
//     static constexpr int kCols;     // columns per vector (16 zmm, 8 ymm)
//     static V zero();
//     static V splat(float s);
//     static W loadw(const std::uint16_t* p);          // kCols columns x 2 k steps (64 / 32 B)
//     static X bcast(const unsigned char* row, std::int64_t g);  // pair g of a prepared row
//     static V dot(V acc, X x, W w);   // acc[c] += x0 w[2c] + x1 w[2c + 1], in fp32
//     static V loadf(const float* p);
//     static void storef(float* p, V v, int valid);     // the first `valid` lanes
//     static void store_bf16(std::uint16_t* p, V v, int valid);  // rounded by the rule
//     static void to_bf16(std::int64_t n, const float* s, std::uint16_t* d);  // the rule's bits
//     static void to_float(std::int64_t n, const std::uint16_t* s, float* d);
//   };
//
// Per-ISA like qkernel.h: included only by a bgemm_<isa>.cpp, inside its namespace
// (LINCORE_ISA_NS). The sums of one output run over k in increasing order in every tile shape,
// so the tile, the loop order and the thread split never change a result.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>

#include "kernels/bfamily.h"
#include "kernels/simd.h"

namespace lincore::detail::LINCORE_ISA_NS {

// W panels are walked in blocks of at most this many bytes, which stay in L2 while every row
// tile of the block's rows passes over them (half of a 1 MiB L2: x's rows share it).
constexpr std::int64_t kBBlockBytes = 512 * 1024;

// Whether the tile applies the activation itself (exact operations: a max, a multiply).
static inline bool b_in_register(Activation act) {
  return act == Activation::none || act == Activation::relu || act == Activation::leaky_relu;
}

// The rest of the epilogue for a tile stored (acc + b, fp32) in t, for the activations that are
// not exact in registers: activate() (the scalar definition) and the store, as fp32 or rounded
// once to bf16. Out of line: a call while the
// accumulators are live would make GCC keep them all in memory.
template <class BIsa>
__attribute__((noinline)) void bfinish_tile(const BArgs& a, std::int64_t i0, int rows,
                                            std::int64_t col, std::int64_t cols, float* t,
                                            std::int64_t ldt) {
  const std::int64_t valid = std::min(cols, a.pw->n - col);
  if (valid <= 0) return;
  for (int r = 0; r < rows; ++r) {
    float* tr = t + r * ldt;
    for (std::int64_t c = 0; c < valid; ++c) tr[c] = activate(tr[c], a.ep);
    if (a.y_bf16) {
      BIsa::to_bf16(valid, tr, static_cast<std::uint16_t*>(a.y) + (i0 + r) * a.ldy + col);
    } else {
      std::memcpy(static_cast<float*>(a.y) + (i0 + r) * a.ldy + col, tr,
                  static_cast<std::size_t>(valid) * sizeof(float));
    }
  }
}

// One R-row tile over NV vectors of columns (NV * kCols columns from panel jp's first column).
template <class BIsa, int R, int NV>
void btile(const BArgs& a, std::int64_t i0, std::int64_t jp) {
  using V = typename BIsa::V;
  using W = typename BIsa::W;
  using X = typename BIsa::X;
  constexpr int kC = BIsa::kCols;
  constexpr int kVecPerPanel = kBPanel / kC;
  constexpr std::int64_t kPairValues = kBPanel * kBPair;  // one k pair of a panel
  const std::int64_t pstride = a.kpairs * kPairValues;
  const std::uint16_t* w = a.pw->data + jp * pstride;
  const unsigned char* x = a.xp + i0 * a.ldxp;
  const std::int64_t ldxp = a.ldxp;
  V acc[R][NV];
  unroll<R>([&](auto r) LINCORE_INLINE_LAMBDA {
    unroll<NV>([&](auto v) LINCORE_INLINE_LAMBDA { acc[r][v] = BIsa::zero(); });
  });
  for (std::int64_t g = 0; g < a.kpairs; ++g) {
    W wv[NV];
    unroll<NV>([&](auto v) LINCORE_INLINE_LAMBDA {
      constexpr int panel = v / kVecPerPanel, sub = v % kVecPerPanel;
      wv[v] = BIsa::loadw(w + panel * pstride + g * kPairValues + sub * kC * kBPair);
    });
    unroll<R>([&](auto r) LINCORE_INLINE_LAMBDA {
      const X b = BIsa::bcast(x + r * ldxp, g);
      unroll<NV>([&](auto v) LINCORE_INLINE_LAMBDA { acc[r][v] = BIsa::dot(acc[r][v], b, wv[v]); });
    });
  }
  const std::int64_t col0 = jp * kBPanel;
  const float* bias = a.pw->bias + col0;  // npad values: every vector's lanes exist
  if (b_in_register(a.ep.act)) {
    const V zero = BIsa::zero();
    const V slope = BIsa::splat(static_cast<float>(a.ep.negative_slope));
    const Activation act = a.ep.act;
    const bool y_bf16 = a.y_bf16;
    unroll<R>([&](auto r) LINCORE_INLINE_LAMBDA {
      const std::int64_t row = (i0 + r) * a.ldy + col0;
      unroll<NV>([&](auto v) LINCORE_INLINE_LAMBDA {
        const std::int64_t valid = std::min<std::int64_t>(kC, a.pw->n - col0 - v * kC);
        V t = acc[r][v] + BIsa::loadf(bias + v * kC);
        if (act == Activation::relu) t = t < zero ? zero : t;
        if (act == Activation::leaky_relu) t = t < zero ? t * slope : t;
        if (valid <= 0) return;
        if (y_bf16)
          BIsa::store_bf16(static_cast<std::uint16_t*>(a.y) + row + v * kC, t,
                           static_cast<int>(valid));
        else
          BIsa::storef(static_cast<float*>(a.y) + row + v * kC, t, static_cast<int>(valid));
      });
    });
    return;
  }
  alignas(64) float t[R][NV * kC];
  unroll<R>([&](auto r) LINCORE_INLINE_LAMBDA {
    unroll<NV>([&](auto v) LINCORE_INLINE_LAMBDA {
      BIsa::storef(&t[r][v * kC], acc[r][v] + BIsa::loadf(bias + v * kC), kC);
    });
  });
  bfinish_tile<BIsa>(a, i0, R, col0, NV * kC, &t[0][0], NV * kC);
}

using BTileFn = void (*)(const BArgs&, std::int64_t, std::int64_t);

template <int MR, int NVMAX>
struct BTileTable {
  BTileFn f[MR][NVMAX];
};

template <class BIsa, int R, int... V>
constexpr void fill_btile_row(BTileFn* row, std::integer_sequence<int, V...>) {
  ((row[V] = &btile<BIsa, R + 1, V + 1>), ...);
}

template <class BIsa, int MR, int NVMAX, int... R>
constexpr BTileTable<MR, NVMAX> btile_table(std::integer_sequence<int, R...>) {
  BTileTable<MR, NVMAX> t{};
  (fill_btile_row<BIsa, R>(t.f[R], std::make_integer_sequence<int, NVMAX>{}), ...);
  return t;
}

// The loop nest: panel blocks that fit kBBlockBytes; in each, row tiles of MR rows; in each, the
// block's panels, NvOf(R) vectors at a time (wider tiles for fewer rows: a batch of a few rows
// is one row tile, which reads each weight once). NvOf returns a multiple of the vectors per
// panel.
template <class BIsa, int MR, int NVMAX, int (*NvOf)(int)>
void brun(const BArgs& a, std::int64_t i0, std::int64_t i1, std::int64_t jp0, std::int64_t jp1) {
  static constexpr auto table = btile_table<BIsa, MR, NVMAX>(std::make_integer_sequence<int, MR>{});
  constexpr int kVecPerPanel = kBPanel / BIsa::kCols;
  const std::int64_t panel_bytes = std::max<std::int64_t>(a.kpairs * kBPanel * kBPair * 2, 1);
  // One row tile reads each panel once whatever the order: no block (a block would cut the
  // wide few-row tiles short at its end). Else an even number of panels (the MR-row tile's).
  const std::int64_t block = i1 - i0 <= MR
                                 ? std::max<std::int64_t>(1, jp1 - jp0)
                                 : std::max<std::int64_t>(2, kBBlockBytes / panel_bytes / 2 * 2);
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

// x rows as bf16 pairs (the VDPBF16PS level): copied, an odd k padded with a zero.
inline void prepare_bf16(std::int64_t m, std::int64_t k, const std::uint16_t* x, std::int64_t ldx,
                         unsigned char* p, std::int64_t ldp) {
  const std::int64_t kpad = (k + kBPair - 1) / kBPair * kBPair;
  for (std::int64_t i = 0; i < m; ++i) {
    auto* row = reinterpret_cast<std::uint16_t*>(p + i * ldp);
    if (k > 0) std::memcpy(row, x + i * ldx, static_cast<std::size_t>(k) * 2);
    for (std::int64_t q = k; q < kpad; ++q) row[q] = 0;
  }
}

// x rows widened to fp32 (the levels that multiply in fp32), an odd k padded with a zero.
template <class BIsa>
void prepare_fp32(std::int64_t m, std::int64_t k, const std::uint16_t* x, std::int64_t ldx,
                  unsigned char* p, std::int64_t ldp) {
  const std::int64_t kpad = (k + kBPair - 1) / kBPair * kBPair;
  for (std::int64_t i = 0; i < m; ++i) {
    auto* row = reinterpret_cast<float*>(p + i * ldp);
    BIsa::to_float(k, x + i * ldx, row);
    for (std::int64_t q = k; q < kpad; ++q) row[q] = 0.0f;
  }
}

}  // namespace lincore::detail::LINCORE_ISA_NS
