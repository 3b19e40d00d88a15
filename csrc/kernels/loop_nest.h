// The blocked GEMM loop nest (run(), a family's RunFn) with its cache-block constants and
// per-thread scratch. Each gemm_<isa>.cpp includes it, and through it the other per-ISA headers
// (simd.h, ukernel.h, pack.h), after defining LINCORE_ISA_NS, the vector width LANES (in
// elements, per dtype) and the tile sizes: everything here is written once over a vector type
// and compiled once per instruction set, inside that set's own namespace, so that no inline
// function compiled with wide-vector flags can be merged into baseline code (ODR). These headers
// are meant for those translation units only, once each (#pragma once is per TU).
//
// Loops (Goto/BLIS names), outermost first, as run() below nests them: ic over M by MC, jc over
// blocks of N panels (all of them unless y is too big for L2), pc over K by K-slices (of
// slice_len, balanced, at most KC; the current one kcur long), jr over panels of NR columns, ir
// over rows by MR. The W panel (kcur x NR) stays in L1 while ir sweeps the MC rows of x, which
// stay in L2. x values are broadcast straight from x (row- or column-major), packed only when
// rows of a row-major x alias in L1. W is packed once per weight (gemm_pack) or, for the backward
// pass, read in place from a k-major view, a panel at a time. The split over threads is
// gemm_driver.cpp's. The design, with its sources: docs/kernels.md.
#pragma once

#ifndef LINCORE_ISA_NS
#error "a per-ISA kernel header: include it from a gemm_<isa>.cpp that defines LINCORE_ISA_NS"
#endif

#include <algorithm>
#include <cstdint>
#include <memory>
#include <new>

#include "kernels/family.h"
#include "kernels/pack.h"
#include "kernels/simd.h"
#include "kernels/ukernel.h"
#include "runtime/aligned_alloc.h"

namespace lincore::detail::LINCORE_ISA_NS {

// The W block kept in L2 per K-slice, and the most a thread's packed row block of x may take
// (see run()).
constexpr std::int64_t kL2BlockBytes = 640 << 10;
constexpr std::int64_t kPackedXBytes = 4 << 20;

// A thread's scratch buffer of at least `count` values, kept across calls.
template <class T, int Which>
T* scratch(std::int64_t count) {
  thread_local std::unique_ptr<void, AlignedFree> base;
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
  // A packed w' fixes the K-slices; otherwise they are the family's KC, balanced.
  const std::int64_t slice_len = !a.w_direct ? a.slice_len : balanced_slice_len(a.k, blk.kc);
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
  // reads (its MR rows at each k step, or, column-major, its kcur k steps) alias one L1 set and
  // keep evicting each other. Otherwise x is read in place (packing costs more than it saves,
  // measured with bench/): a column-major x's k steps hold MR adjacent values each.
  const bool pack_x =
      k > 0 && m > kWideRows && stride_aliases_in_l1(ldx, static_cast<std::int64_t>(sizeof(T)));
  const bool colx = a.x_colmajor || pack_x;
  // A packed row block holds all K-slices when that fits the budget, so that it is packed once
  // and reused by every column block; otherwise one slice, repacked per column block.
  const std::int64_t mc_pad = (std::min(m, MC) + MR - 1) / MR * MR;
  const bool whole_x = pack_x && mc_pad * k * elem <= kPackedXBytes;
  T* xbuf = pack_x ? scratch<T, 0>(mc_pad * (whole_x ? k : slice_len)) : nullptr;
  T* wbuf = packed_w ? nullptr : scratch<T, 1>(slice_len * NR);
  alignas(64) T edge_bias[NR];

  // When the rows of a row block span more y than fits beside W in L2, columns are taken in
  // blocks of ncp panels, whose K-slice of W (slice_len x ncp*NR) stays in L2 while the MC rows
  // sweep it, and the y block (MC x ncp*NR) stays in L2 across all K-slices: y then goes to
  // memory once, not once per slice. (Small row counts keep one block: W streams through once
  // anyway.)
  const std::int64_t panels = jp1 - jp0;
  const bool big_y = (m < MC ? m : MC) * panels * NR * elem > kL2BlockBytes;
  const std::int64_t ncp =
      !big_y ? panels : std::max<std::int64_t>(1, kL2BlockBytes / (slice_len * NR * elem));
  for (std::int64_t ic = 0; ic < m; ic += MC) {
    const std::int64_t mc = m - ic < MC ? m - ic : MC;
    if (whole_x) {
      for (std::int64_t pc = 0; pc < k; pc += slice_len) {
        const T* xs = a.x_colmajor ? a.x + ic + pc * ldx : a.x + ic * ldx + pc;
        pack_x_panels<T, MR>(mc, k - pc < slice_len ? k - pc : slice_len, xs, ldx, a.x_colmajor,
                             xbuf + pc * mc_pad);
      }
    }
    for (std::int64_t jc = jp0; jc < jp1; jc += ncp) {
      const std::int64_t jend = jc + ncp < jp1 ? jc + ncp : jp1;
      // K == 0 still runs one (empty) slice so that y = act(bias) is written.
      for (std::int64_t pc = 0; pc < k || (pc == 0 && k == 0); pc += slice_len) {
        const std::int64_t kcur = k - pc < slice_len ? k - pc : slice_len;
        const bool first = pc == 0, last = pc + kcur >= k;
        // Panel jr of this K-slice, and the distances between panels and between k steps.
        const T* slice = packed_w ? a.w + pc * npad : a.w + pc * ldw;
        const std::int64_t pstride = packed_w ? kcur * NR : NR, ldp = packed_w ? NR : ldw;
        const T* xblock = a.x_colmajor ? a.x + ic + pc * ldx : a.x + ic * ldx + pc;
        T* xpacked = whole_x ? xbuf + pc * mc_pad : xbuf;
        if (pack_x && !whole_x) pack_x_panels<T, MR>(mc, kcur, xblock, ldx, a.x_colmajor, xpacked);
        // Row tile ir of this block: where it starts, and its stride (rows or k steps).
        const std::int64_t xld = pack_x ? MR : ldx;
        auto xtile = [&](std::int64_t ir) {
          return pack_x ? xpacked + ir * kcur : a.x_colmajor ? xblock + ir : xblock + ir * ldx;
        };
        for (std::int64_t jr = jc; jr < jend;) {
          const T* panel = slice + jr * pstride;
          const T* b = a.bias ? a.bias + jr * NR : nullptr;
          T* yblock = a.y + ic * ldy + jr * NR;
          // Few rows of a row-major x and enough full panels left: one tile over several
          // panels (read in place: with so few rows each W value is used by this call only).
          if (NV == 2 && LANES > 1 && !colx && mc <= kWideRows && jr + kWidePanels <= jend &&
              (jr + kWidePanels) * NR <= n) {
            row_wide[mc - 1](kcur, xblock, ldx, panel, pstride, ldp, yblock, ldy, b, first, last,
                             NR, ep);
            jr += kWidePanels;
            continue;
          }
          const int nvalid = static_cast<int>(n - jr * NR < NR ? n - jr * NR : NR);
          std::int64_t tile_ldp = ldp;
          if (!packed_w && nvalid < NR) {
            copy_panel<T, NR>(kcur, panel, ldw, nvalid, wbuf);
            panel = wbuf;
            tile_ldp = NR;
            if (b && nvalid < NR) {
              for (int c = 0; c < NR; ++c) edge_bias[c] = c < nvalid ? b[c] : T(0);
              b = edge_bias;
            }
          }
          // A last panel at most one vector wide (a classifier's few outputs) runs the tiles of
          // one vector per row: they read the first vector of each k step of the same panel
          // (ldp apart) and compute each output by the same FMA chain (ukernel's contract), with
          // half the FMAs and loads on AVX-512 (N = 5 at 1024 rows: see docs/kernels.md).
          const bool narrow = NV > 1 && nvalid <= LANES;
          const auto& tiles = colx ? (narrow ? Tiles<T, LANES, 1, MR, 1, true>::table
                                             : Tiles<T, LANES, NV, MR, 1, true>::table)
                                   : (narrow ? Tiles<T, LANES, 1, MR, 1, false>::table
                                             : Tiles<T, LANES, NV, MR, 1, false>::table);
          for (std::int64_t ir = 0; ir < mc; ir += MR) {
            const int rows = static_cast<int>(mc - ir < MR ? mc - ir : MR);
            // The next panels are prefetched once, by the first row tile; the others find this
            // panel in L1.
            const int prefetch = stream && ir == 0;
            tiles[prefetch][rows - 1](kcur, xtile(ir), xld, panel, pstride, tile_ldp,
                                      yblock + ir * ldy, ldy, b, first, last, nvalid, ep);
          }
          ++jr;
        }
      }
    }
  }
}

}  // namespace lincore::detail::LINCORE_ISA_NS
