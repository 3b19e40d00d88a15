// Packing: every copy of an operand into the layout the micro-kernel reads is in this file and
// pack.cpp.
//   here (per-ISA, see simd.h): pack_x_panels (rows of x into MR-row panels, when its rows alias
//     in L1), copy_panel (the ragged last panel of a w' read in place) and pack_f32_by_transposes
//     (gemm_pack's layout for a row-major fp32 w, by the in-register transposes that
//     gemm_avx2.cpp and gemm_avx512.cpp define and pass to it as their family's PackFn);
//   pack.cpp (ISA-neutral): gemm_pack, which packs a weight (w and its bias) once, with the
//     family's PackFn or the portable packing loop, over the thread pool.
#pragma once

#ifndef LINCORE_ISA_NS
#error "a per-ISA kernel header: include it from a gemm_<isa>.cpp that defines LINCORE_ISA_NS"
#endif

#include <cstdint>
#include <cstring>

#include "kernels/simd.h"

namespace lincore::detail::LINCORE_ISA_NS {

// Packs rows [0, mc) x columns [0, kcur) of x into MR-row panels, k-major: panel i holds
// x(i*MR + r, p) at [p*MR + r]. x is row-major (x(i, p) at x[i*ldx + p]) or column-major
// (at x[p*ldx + i]: then each k step of a panel is one contiguous copy). Rows past mc in the last
// panel are left unset (never read).
template <class T, int MR>
void pack_x_panels(std::int64_t mc, std::int64_t kcur, const T* x, std::int64_t ldx, bool colmajor,
                   T* dst) {
  for (std::int64_t i0 = 0; i0 < mc; i0 += MR) {
    const int rows = static_cast<int>(mc - i0 < MR ? mc - i0 : MR);
    T* panel = dst + i0 * kcur;
    if (colmajor) {
      const T* src = x + i0;
      for (std::int64_t p = 0; p < kcur; ++p)
        std::memcpy(panel + p * MR, src + p * ldx, sizeof(T) * static_cast<std::size_t>(rows));
      continue;
    }
    const T* src = x + i0 * ldx;
    if (rows == MR) {  // contiguous writes, MR read streams
      for (std::int64_t p = 0; p < kcur; ++p)
        unroll<MR>([&](auto r) LINCORE_INLINE_LAMBDA { panel[p * MR + r] = src[r * ldx + p]; });
    } else {
      for (std::int64_t p = 0; p < kcur; ++p)
        for (int r = 0; r < rows; ++r) panel[p * MR + r] = src[r * ldx + p];
    }
  }
}

// Copies panel columns [0, cols) of a direct w' (step p at w + p*ldw) into a contiguous kcur x NR
// panel, zero-padded past cols: the ragged last panel, which the kernels (reading whole
// vectors) cannot read in place.
template <class T, int NR>
void copy_panel(std::int64_t kcur, const T* w, std::int64_t ldw, int cols, T* dst) {
  for (std::int64_t p = 0; p < kcur; ++p) {
    std::memcpy(dst + p * NR, w + p * ldw, sizeof(T) * static_cast<std::size_t>(cols));
    for (int c = cols; c < NR; ++c) dst[p * NR + c] = T(0);
  }
}

// gemm_pack's layout for a row-major fp32 w (family.h's PackFn), for families with an in-register
// transpose: full NR-row strips go through B x B blocks of transpose(in, ld, out, ldo), which
// writes out[q * ldo + i] = in[i * ld + q] for i, q < B; ragged edges through plain loops. Same
// output as the portable packing loop (pack.cpp), which writes each panel column with an
// NR-value stride.
template <int NR, int B, class Transpose>
void pack_f32_by_transposes(std::int64_t n, std::int64_t k, std::int64_t slice_len, const float* w,
                            std::int64_t ldw, float* dst, std::int64_t jr0, std::int64_t jr1,
                            Transpose transpose) {
  static_assert(NR % B == 0, "a panel is a whole number of transposed blocks wide");
  const std::int64_t npad = (n + NR - 1) / NR * NR;
  for (std::int64_t pc = 0; pc < k; pc += slice_len) {
    const std::int64_t kcur = k - pc < slice_len ? k - pc : slice_len;
    for (std::int64_t jr = jr0; jr < jr1; ++jr) {
      float* panel = dst + pc * npad + jr * kcur * NR;
      const std::int64_t j0 = jr * NR, cols = n - j0 < NR ? n - j0 : NR;
      const float* src = w + j0 * ldw + pc;
      std::int64_t p = 0;
      if (cols == NR) {
        for (; p + B <= kcur; p += B)
          for (int c = 0; c < NR; c += B) transpose(src + c * ldw + p, ldw, panel + p * NR + c, NR);
      }
      for (std::int64_t c = 0; c < NR; ++c)
        for (std::int64_t q = p; q < kcur; ++q)
          panel[q * NR + c] = c < cols ? src[c * ldw + q] : 0.0f;
    }
  }
}

}  // namespace lincore::detail::LINCORE_ISA_NS
