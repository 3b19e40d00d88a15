// The micro-kernel: one register tile of y over one K-slice (ukernel), the activation applied at
// its final store (epilogue, activate_tile), and the tables of its instantiations that the loop
// nest picks a tile from (Tiles). Per-ISA (see simd.h).
#pragma once

#ifndef LINCORE_ISA_NS
#error "a per-ISA kernel header: include it from a gemm_<isa>.cpp that defines LINCORE_ISA_NS"
#endif

#include <array>
#include <cstdint>
#include <cstring>
#include <utility>

#include "kernels/family.h"
#include "kernels/simd.h"

namespace lincore::detail::LINCORE_ISA_NS {

// Activations at the final store. ReLU and LeakyReLU are applied to the registers before the
// store: inline per-lane selects that the compiler turns into vector compare/blend (NaN stays
// NaN: it does not compare below 0). Sigmoid, tanh and GELU call the scalar definition, so they
// run on the tile just stored (still in L1) by a separate, non-inlined function: a call inside
// the micro-kernel would make GCC keep the accumulators in memory for the whole k loop.
LINCORE_INLINE bool in_register(Activation a) {
  return a == Activation::relu || a == Activation::leaky_relu;
}

constexpr int kPrefetchPanels = 2;

template <class T, int LANES>
LINCORE_INLINE typename Simd<T, LANES>::V epilogue(typename Simd<T, LANES>::V v,
                                                   const Epilogue& ep) {
  using S = Simd<T, LANES>;
  if (ep.act == Activation::relu) {
    for (int l = 0; l < LANES; ++l) S::lane(v, l) = S::lane(v, l) < T(0) ? T(0) : S::lane(v, l);
  } else if (ep.act == Activation::leaky_relu) {
    const T slope = static_cast<T>(ep.negative_slope);
    for (int l = 0; l < LANES; ++l) {
      S::lane(v, l) = S::lane(v, l) < T(0) ? S::lane(v, l) * slope : S::lane(v, l);
    }
  }
  return v;
}

template <class T>
__attribute__((noinline)) void activate_tile(T* y, std::int64_t ldy, int rows, int cols,
                                             Epilogue ep) {
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) y[r * ldy + c] = activate(y[r * ldy + c], ep);
}

// ukernel: y[R x (P*NR) tile] = (first ? bias : y) + x[R x kcur] . panels[kcur x P*NR],
// activation on the last K-slice; kcur is the length of the K-slice in hand. Contract:
// 1 <= R <= MR; P panels of kcur x NR, k-major (step p of panel q at panel + q*pstride + p*ldp,
// NR contiguous values; zero-padded when packed), of which only the first nvalid columns of the
// LAST panel are read from y (when !first) or written (the others are full); bias has P*NR
// readable values or is null. x is row-major (COLX false: x(r, p) at x[r*ldx + p]) or
// column-major (COLX true: x(r, p) at x[p*ldx + r], as packed x and dy^T are).
// Every output is the same FMA chain over p, whatever R, P, nvalid and layouts are: results do
// not depend on which tile shape computed them (determinism across batches and threads).
template <class T, int LANES, int NV, int MR, int R, int P, bool COLX, bool PREFETCH>
void ukernel(std::int64_t kcur, const T* x, std::int64_t ldx, const T* panel, std::int64_t pstride,
             std::int64_t ldp, T* y, std::int64_t ldy, const T* bias, bool first, bool last,
             int nvalid, Epilogue ep) {
  using S = Simd<T, LANES>;
  using V = typename S::V;
  constexpr int NR = LANES * NV;
  constexpr int C = P * NV;                 // vectors per row of the tile
  const bool full = P > 1 || nvalid == NR;  // multi-panel tiles only ever cover full panels
  V acc[R * C];  // flat: GCC keeps it in registers more reliably than V[R][C]
  if (first) {
    unroll<C>([&](auto c) LINCORE_INLINE_LAMBDA {
      const V b0 = bias ? S::load(bias + c * LANES) : S::broadcast(T(0));
      unroll<R>([&](auto r) LINCORE_INLINE_LAMBDA { acc[r * C + c] = b0; });
    });
  } else if (full) {
    unroll<R>([&](auto r) LINCORE_INLINE_LAMBDA {
      unroll<C>([&](auto c)
                    LINCORE_INLINE_LAMBDA { acc[r * C + c] = S::load(y + r * ldy + c * LANES); });
    });
  } else {
    alignas(64) T tmp[P * NR] = {};
    unroll<R>([&](auto r) LINCORE_INLINE_LAMBDA {
      std::memcpy(tmp, y + r * ldy, sizeof(T) * ((P - 1) * NR + nvalid));
      unroll<C>([&](auto c) LINCORE_INLINE_LAMBDA { acc[r * C + c] = S::load(tmp + c * LANES); });
    });
  }

  // When W streams from L3 or memory (it does not fit in L2), one sequential stream gets a
  // fraction of the bandwidth, so each k step also prefetches the matching lines of the panels
  // kPrefetchPanels tiles ahead (W's panels and slices are contiguous, in the order consumed).
  // When W is cache-resident the prefetches would only take load slots: PREFETCH is false.
  const T* ahead = panel + static_cast<std::int64_t>(P) * kPrefetchPanels * pstride;
  static_assert(R <= MR, "a tile has at most MR rows");
  for (std::int64_t p = 0; p < kcur; ++p) {
    if constexpr (PREFETCH) {
      unroll<P>([&](auto q) LINCORE_INLINE_LAMBDA {
        unroll<(NR * sizeof(T) + 63) / 64>([&](auto line) LINCORE_INLINE_LAMBDA {
          __builtin_prefetch(ahead + q * pstride + p * ldp + line * (64 / sizeof(T)), 0, 2);
        });
      });
    }
    V wv[C];
    unroll<P>([&](auto q) LINCORE_INLINE_LAMBDA {
      unroll<NV>([&](auto v) LINCORE_INLINE_LAMBDA {
        wv[q * NV + v] = S::load(panel + q * pstride + p * ldp + v * LANES);
      });
    });
    unroll<R>([&](auto r) LINCORE_INLINE_LAMBDA {
      const T a = COLX ? x[p * ldx + r] : x[r * ldx + p];
      unroll<C>([&](auto c) LINCORE_INLINE_LAMBDA { acc[r * C + c] += a * wv[c]; });
    });
  }

  if (last && in_register(ep.act)) {
    unroll<R>([&](auto r) LINCORE_INLINE_LAMBDA {
      unroll<C>([&](auto c) LINCORE_INLINE_LAMBDA {
        acc[r * C + c] = epilogue<T, LANES>(acc[r * C + c], ep);
      });
    });
  }
  if (full) {
    unroll<R>([&](auto r) LINCORE_INLINE_LAMBDA {
      unroll<C>([&](auto c)
                    LINCORE_INLINE_LAMBDA { S::store(y + r * ldy + c * LANES, acc[r * C + c]); });
    });
  } else {
    alignas(64) T tmp[P * NR];
    unroll<R>([&](auto r) LINCORE_INLINE_LAMBDA {
      unroll<C>([&](auto c) LINCORE_INLINE_LAMBDA { S::store(tmp + c * LANES, acc[r * C + c]); });
      std::memcpy(y + r * ldy, tmp, sizeof(T) * ((P - 1) * NR + nvalid));
    });
  }
  if (last && ep.act != Activation::none && !in_register(ep.act)) {
    activate_tile(y, ldy, R, (P - 1) * NR + nvalid, ep);
  }
}

// One instantiation of ukernel (its parameters, as documented there).
template <class T>
using UkernelFn = void (*)(std::int64_t kcur, const T* x, std::int64_t ldx, const T* panel,
                           std::int64_t pstride, std::int64_t ldp, T* y, std::int64_t ldy,
                           const T* bias, bool first, bool last, int nvalid, Epilogue ep);

// Row-count instantiations 1..ROWS of one tile shape, so that an edge tile of R rows runs
// ukernel<R>.
template <class T, int LANES, int NV, int MR, int P, bool COLX, bool PREFETCH, int... Rs>
constexpr std::array<UkernelFn<T>, sizeof...(Rs)> ukernel_table(std::integer_sequence<int, Rs...>) {
  return {&ukernel<T, LANES, NV, MR, Rs + 1, P, COLX, PREFETCH>...};
}

// Tile tables for one kernel configuration: [prefetch][row count - 1], row counts 1..ROWS.
// The loop nest uses P = 1 (one panel) with ROWS = MR, and the multi-panel tile (P = kWidePanels,
// family.h) for row tiles of at most kWideRows rows: with few rows, each accumulator's FMA chain
// is latency-bound, so more columns are needed to fill the FMA units.
template <class T, int LANES, int NV, int MR, int P, bool COLX, int ROWS = MR>
struct Tiles {
  static constexpr auto seq = std::make_integer_sequence<int, ROWS>{};
  static constexpr std::array<std::array<UkernelFn<T>, ROWS>, 2> table{
      ukernel_table<T, LANES, NV, MR, P, COLX, false>(seq),
      ukernel_table<T, LANES, NV, MR, P, COLX, true>(seq)};
};

}  // namespace lincore::detail::LINCORE_ISA_NS
