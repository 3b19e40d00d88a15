// The blocked GEMM loop nest and its micro-kernels, written once over a vector type and compiled
// once per instruction set. Each gemm_<isa>.cpp defines LINCORE_ISA_NS, the vector width LANES (in
// elements, per dtype) and the tile sizes, then includes this file inside its own namespace so
// that no inline function compiled with wide-vector flags can be merged into baseline code (ODR).
//
// Loops (Goto/BLIS names), outermost first, as run() below nests them: ic over M by MC, jc over
// blocks of N panels (all of them unless y is too big for L2), pc over K by KC, jr over panels
// of NR columns, ir over rows by MR. The W panel (KC x NR) stays in L1 while ir sweeps the MC
// rows of x, which stay in L2. x values are broadcast straight from x (row- or column-major),
// packed only when rows of a row-major x alias in L1. W is packed once per weight (gemm_pack)
// or, for the backward pass, read in place from a k-major view, a panel at a time. The design,
// with its sources: docs/kernels.md.
//
// This header deliberately has no include guard: it is meant to be included once per ISA TU.

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <new>
#include <utility>

#include "kernels/family.h"
#include "runtime/aligned_alloc.h"

#ifndef LINCORE_INLINE
#define LINCORE_INLINE inline __attribute__((always_inline))
// The tile loops are lambdas passed to unroll<>; each must be inlined too, or the accumulators
// they touch live in memory instead of registers.
#define LINCORE_INLINE_LAMBDA __attribute__((always_inline))
#endif

namespace lincore::detail::LINCORE_ISA_NS {

// V: a vector of LANES lanes of T (GCC/Clang vector extension), or T itself for the scalar family.
template <class T, int LANES>
struct Simd {
  typedef T V __attribute__((vector_size(LANES * sizeof(T))));
  static V load(const T* p) {
    V v;
    std::memcpy(&v, p, sizeof v);
    return v;
  }
  static void store(T* p, V v) { std::memcpy(p, &v, sizeof v); }
  static V broadcast(T s) {
    V v;
    for (int l = 0; l < LANES; ++l) v[l] = s;
    return v;
  }
  static T& lane(V& v, int l) { return reinterpret_cast<T*>(&v)[l]; }
};

template <class T>
struct Simd<T, 1> {
  typedef T V;
  static V load(const T* p) { return *p; }
  static void store(T* p, V v) { *p = v; }
  static V broadcast(T s) { return s; }
  static T& lane(V& v, int) { return v; }
};

// unroll<N>(f) calls f(integral_constant<0>) ... f(integral_constant<N-1>) with no loop left, so
// that tile arrays indexed by those constants become registers (GCC does not reliably unroll
// nested loops on its own and would keep the accumulators on the stack).
template <class F, int... I>
LINCORE_INLINE void unroll_impl(F&& f, std::integer_sequence<int, I...>) {
  (f(std::integral_constant<int, I>{}), ...);
}
template <int N, class F>
LINCORE_INLINE void unroll(F&& f) {
  unroll_impl(f, std::make_integer_sequence<int, N>{});
}

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

// ukernel: y[R x (P*NR) tile] = (first ? bias : y) + x[R x kc] . panels[kc x P*NR], activation on
// the last K-slice. Contract: 1 <= R <= MR; P panels of kc x NR, k-major (step p of panel q at
// panel + q*pstride + p*ldp, NR contiguous values; zero-padded when packed), of which only the
// first nvalid columns of the LAST panel are read from y (when !first) or written (the others
// are full); bias has P*NR readable values or is null. x is row-major (COLX false: x(r, p) at
// x[r*ldx + p]) or column-major (COLX true: x(r, p) at x[p*ldx + r], as packed x and dy^T are).
// Every output is the same FMA chain over p, whatever R, P, nvalid and layouts are: results do
// not depend on which tile shape computed them (determinism across batches and threads).
template <class T, int LANES, int NV, int MR, int R, int P, bool COLX, bool PREFETCH>
void ukernel(std::int64_t kc, const T* x, std::int64_t ldx, const T* panel, std::int64_t pstride,
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
  for (std::int64_t p = 0; p < kc; ++p) {
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

template <class T>
using UkernelFn = void (*)(std::int64_t, const T*, std::int64_t, const T*, std::int64_t,
                           std::int64_t, T*, std::int64_t, const T*, bool, bool, int, Epilogue);

// Row-count instantiations 1..ROWS of one tile shape, so that an edge tile of R rows runs
// ukernel<R>.
template <class T, int LANES, int NV, int MR, int P, bool COLX, bool PREFETCH, int... Rs>
constexpr std::array<UkernelFn<T>, sizeof...(Rs)> ukernel_table(std::integer_sequence<int, Rs...>) {
  return {&ukernel<T, LANES, NV, MR, Rs + 1, P, COLX, PREFETCH>...};
}

// Tile tables for one kernel configuration: [prefetch][row count - 1], row counts 1..ROWS.
template <class T, int LANES, int NV, int MR, int P, bool COLX, int ROWS = MR>
struct Tiles {
  static constexpr auto seq = std::make_integer_sequence<int, ROWS>{};
  static constexpr std::array<std::array<UkernelFn<T>, ROWS>, 2> table{
      ukernel_table<T, LANES, NV, MR, P, COLX, false>(seq),
      ukernel_table<T, LANES, NV, MR, P, COLX, true>(seq)};
};

// Packs rows [0, mc) x columns [0, kc) of x into MR-row panels, k-major: panel i holds
// x(i*MR + r, p) at [p*MR + r]. x is row-major (x(i, p) at x[i*ldx + p]) or column-major
// (at x[p*ldx + i]: then each k step of a panel is one contiguous copy). Rows past mc in the last
// panel are left unset (never read).
template <class T, int MR>
void pack_x_panels(std::int64_t mc, std::int64_t kc, const T* x, std::int64_t ldx, bool colmajor,
                   T* dst) {
  for (std::int64_t i0 = 0; i0 < mc; i0 += MR) {
    const int rows = static_cast<int>(mc - i0 < MR ? mc - i0 : MR);
    T* panel = dst + i0 * kc;
    if (colmajor) {
      const T* src = x + i0;
      for (std::int64_t p = 0; p < kc; ++p)
        std::memcpy(panel + p * MR, src + p * ldx, sizeof(T) * static_cast<std::size_t>(rows));
      continue;
    }
    const T* src = x + i0 * ldx;
    if (rows == MR) {  // contiguous writes, MR read streams
      for (std::int64_t p = 0; p < kc; ++p)
        unroll<MR>([&](auto r) LINCORE_INLINE_LAMBDA { panel[p * MR + r] = src[r * ldx + p]; });
    } else {
      for (std::int64_t p = 0; p < kc; ++p)
        for (int r = 0; r < rows; ++r) panel[p * MR + r] = src[r * ldx + p];
    }
  }
}

// The multi-panel tile (kWidePanels panels, family.h) is used for row tiles of at most
// kWideRows rows: with few rows, each accumulator's FMA chain is latency-bound, so more columns
// are needed to fill the FMA units.

// Copies panel columns [0, cols) of a direct w' (step p at w + p*ldw) into a contiguous kc x NR
// panel, zero-padded past cols: the ragged last panel, which the kernels (reading whole
// vectors) cannot read in place.
template <class T, int NR>
void copy_panel(std::int64_t kc, const T* w, std::int64_t ldw, int cols, T* dst) {
  for (std::int64_t p = 0; p < kc; ++p) {
    std::memcpy(dst + p * NR, w + p * ldw, sizeof(T) * static_cast<std::size_t>(cols));
    for (int c = cols; c < NR; ++c) dst[p * NR + c] = T(0);
  }
}

// gemm_pack's layout for a row-major fp32 w (family.h's PackFn), for families with an in-register
// transpose: full NR-row strips go through B x B blocks of transpose(in, ld, out, ldo), which
// writes out[q * ldo + i] = in[i * ld + q] for i, q < B; ragged edges through plain loops. Same
// output as the portable packing loop, which writes each panel column with an NR-value stride.
template <int NR, int B, class Transpose>
void pack_f32_by_transposes(std::int64_t n, std::int64_t k, std::int64_t KC, const float* w,
                            std::int64_t ldw, float* dst, std::int64_t jr0, std::int64_t jr1,
                            Transpose transpose) {
  static_assert(NR % B == 0, "a panel is a whole number of transposed blocks wide");
  const std::int64_t npad = (n + NR - 1) / NR * NR;
  for (std::int64_t pc = 0; pc < k; pc += KC) {
    const std::int64_t kc = k - pc < KC ? k - pc : KC;
    for (std::int64_t jr = jr0; jr < jr1; ++jr) {
      float* panel = dst + pc * npad + jr * kc * NR;
      const std::int64_t j0 = jr * NR, cols = n - j0 < NR ? n - j0 : NR;
      const float* src = w + j0 * ldw + pc;
      std::int64_t p = 0;
      if (cols == NR) {
        for (; p + B <= kc; p += B)
          for (int c = 0; c < NR; c += B) transpose(src + c * ldw + p, ldw, panel + p * NR + c, NR);
      }
      for (std::int64_t c = 0; c < NR; ++c)
        for (std::int64_t q = p; q < kc; ++q)
          panel[q * NR + c] = c < cols ? src[c * ldw + q] : 0.0f;
    }
  }
}

// The W block kept in L2 per K-slice, and the most a thread's packed row block of x may take
// (see run()).
constexpr std::int64_t kL2BlockBytes = 640 << 10;
constexpr std::int64_t kPackedXBytes = 4 << 20;

// A thread's scratch buffer of at least `count` values, kept across calls.
template <class T, int Which>
T* scratch(std::int64_t count) {
  struct Free {
    void operator()(void* base) const { aligned_free(base); }
  };
  thread_local std::unique_ptr<void, Free> base;
  thread_local T* buf = nullptr;
  thread_local std::int64_t size = 0;
  if (size < count) {
    base.reset();  // the old buffer first: never two alive at once
    buf = nullptr;
    size = 0;
    const AlignedBlock block = aligned_allocate(static_cast<std::size_t>(count) * sizeof(T));
    if (block.data == nullptr) throw std::bad_alloc();
    base.reset(block.base);
    buf = static_cast<T*>(block.data);
    size = count;
  }
  return buf;
}

// The blocked loop nest for the gemm.h contract on the columns of panels [jp0, jp1) (family.h's
// RunFn).
template <class T, int LANES, int NV, int MR>
void run(const GemmArgs<T>& a, std::int64_t jp0, std::int64_t jp1) {
  constexpr int NR = LANES * NV;
  const Blocking<T>& blk = blocking_of<T>(family());
  const std::int64_t MC = blk.mc;
  // A packed w' fixes the K-slices; otherwise they are the family's, balanced.
  const std::int64_t KC = !a.w_direct ? a.kc : balanced_kc(a.k, blk.kc);
  const std::int64_t m = a.m, n = a.n, k = a.k, ldx = a.ldx, ldw = a.ldw, ldy = a.ldy;
  const Epilogue ep = a.ep;
  const bool packed_w = !a.w_direct;
  const std::int64_t npad = (n + NR - 1) / NR * NR;
  const std::int64_t elem = static_cast<std::int64_t>(sizeof(T));
  // This call's share of a packed W is streamed, not cache-resident, past about half an L2:
  // then the kernels prefetch the panels ahead.
  const int stream =
      packed_w && (jp1 - jp0) * NR * k * static_cast<std::int64_t>(sizeof(T)) > (1 << 20);
  const auto& row_wide = Tiles<T, LANES, NV, MR, kWidePanels, false, kWideRows>::table[stream];

  // x is packed only when its leading stride is a multiple of 4 KiB: then the lines a row tile
  // reads (its MR rows at each k step, or, column-major, its kc k steps) alias one L1 set and
  // keep evicting each other. Otherwise x is read in place (packing costs more than it saves,
  // measured with bench/): a column-major x's k steps hold MR adjacent values each.
  const bool pack_x =
      k > 0 && m > kWideRows && stride_aliases_in_l1(ldx, static_cast<std::int64_t>(sizeof(T)));
  const bool colx = a.x_colmajor || pack_x;
  // A packed row block holds all K-slices when that fits the budget, so that it is packed once
  // and reused by every column block; otherwise one slice, repacked per column block.
  const std::int64_t mc_pad = (std::min(m, MC) + MR - 1) / MR * MR;
  const bool whole_x = pack_x && mc_pad * k * elem <= kPackedXBytes;
  T* xbuf = pack_x ? scratch<T, 0>(mc_pad * (whole_x ? k : KC)) : nullptr;
  T* wbuf = packed_w ? nullptr : scratch<T, 1>(KC * NR);
  alignas(64) T edge_bias[NR];

  // When the rows of a row block span more y than fits beside W in L2, columns are taken in
  // blocks of ncp panels, whose K-slice of W (kc x ncp*NR) stays in L2 while the MC rows sweep
  // it, and the y block (MC x ncp*NR) stays in L2 across all K-slices: y then goes to memory
  // once, not once per slice. (Small row counts keep one block: W streams through once anyway.)
  const std::int64_t panels = jp1 - jp0;
  const bool big_y = (m < MC ? m : MC) * panels * NR * elem > kL2BlockBytes;
  const std::int64_t ncp =
      !big_y ? panels : std::max<std::int64_t>(1, kL2BlockBytes / (KC * NR * elem));
  for (std::int64_t ic = 0; ic < m; ic += MC) {
    const std::int64_t mc = m - ic < MC ? m - ic : MC;
    if (whole_x) {
      for (std::int64_t pc = 0; pc < k; pc += KC) {
        const T* xs = a.x_colmajor ? a.x + ic + pc * ldx : a.x + ic * ldx + pc;
        pack_x_panels<T, MR>(mc, k - pc < KC ? k - pc : KC, xs, ldx, a.x_colmajor,
                             xbuf + pc * mc_pad);
      }
    }
    for (std::int64_t jc = jp0; jc < jp1; jc += ncp) {
      const std::int64_t jend = jc + ncp < jp1 ? jc + ncp : jp1;
      // K == 0 still runs one (empty) slice so that y = act(bias) is written.
      for (std::int64_t pc = 0; pc < k || (pc == 0 && k == 0); pc += KC) {
        const std::int64_t kc = k - pc < KC ? k - pc : KC;
        const bool first = pc == 0, last = pc + kc >= k;
        // Panel jr of this K-slice, and the distances between panels and between k steps.
        const T* slice = packed_w ? a.w + pc * npad : a.w + pc * ldw;
        const std::int64_t pstride = packed_w ? kc * NR : NR, ldp = packed_w ? NR : ldw;
        const T* xblock = a.x_colmajor ? a.x + ic + pc * ldx : a.x + ic * ldx + pc;
        T* xpacked = whole_x ? xbuf + pc * mc_pad : xbuf;
        if (pack_x && !whole_x) pack_x_panels<T, MR>(mc, kc, xblock, ldx, a.x_colmajor, xpacked);
        // Row tile ir of this block: where it starts, and its stride (rows or k steps).
        const std::int64_t xld = pack_x ? MR : ldx;
        auto xtile = [&](std::int64_t ir) {
          return pack_x ? xpacked + ir * kc : a.x_colmajor ? xblock + ir : xblock + ir * ldx;
        };
        for (std::int64_t jr = jc; jr < jend;) {
          const T* panel = slice + jr * pstride;
          const T* b = a.bias ? a.bias + jr * NR : nullptr;
          T* yblock = a.y + ic * ldy + jr * NR;
          // Few rows of a row-major x and enough full panels left: one tile over several
          // panels (read in place: with so few rows each W value is used by this call only).
          if (NV == 2 && LANES > 1 && !colx && mc <= kWideRows && jr + kWidePanels <= jend &&
              (jr + kWidePanels) * NR <= n) {
            row_wide[mc - 1](kc, xblock, ldx, panel, pstride, ldp, yblock, ldy, b, first, last, NR,
                             ep);
            jr += kWidePanels;
            continue;
          }
          const int nvalid = static_cast<int>(n - jr * NR < NR ? n - jr * NR : NR);
          std::int64_t tile_ldp = ldp;
          if (!packed_w && nvalid < NR) {
            copy_panel<T, NR>(kc, panel, ldw, nvalid, wbuf);
            panel = wbuf;
            tile_ldp = NR;
            if (b && nvalid < NR) {
              for (int c = 0; c < NR; ++c) edge_bias[c] = c < nvalid ? b[c] : T(0);
              b = edge_bias;
            }
          }
          for (std::int64_t ir = 0; ir < mc; ir += MR) {
            const int rows = static_cast<int>(mc - ir < MR ? mc - ir : MR);
            // The next panels are prefetched once, by the first row tile; the others find this
            // panel in L1.
            const int prefetch = stream && ir == 0;
            if (colx) {
              Tiles<T, LANES, NV, MR, 1, true>::table[prefetch][rows - 1](
                  kc, xtile(ir), xld, panel, pstride, tile_ldp, yblock + ir * ldy, ldy, b, first,
                  last, nvalid, ep);
            } else {
              Tiles<T, LANES, NV, MR, 1, false>::table[prefetch][rows - 1](
                  kc, xtile(ir), xld, panel, pstride, tile_ldp, yblock + ir * ldy, ldy, b, first,
                  last, nvalid, ep);
            }
          }
          ++jr;
        }
      }
    }
  }
}

}  // namespace lincore::detail::LINCORE_ISA_NS
