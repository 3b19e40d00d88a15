// A kernel family: the blocked loop nest and register-tile micro-kernels compiled for one
// instruction set (see loop_nest.h), as the ISA-neutral code (pack.cpp, gemm_driver.cpp) sees it:
// its block sizes, its entry points (function types below) and what both sides share. The
// dispatcher (dispatch.cpp) picks one at start-up.
#pragma once

#include <cstdint>
#include <type_traits>

#include "kernels/gemm.h"

namespace lincore::detail {

template <class T>
struct Blocking {
  // Register tile MR x NR; cache blocks MC (rows of x) and KC (depth: the most k steps in one
  // K-slice; a product's slices are balanced_slice_len(k, KC) long).
  int mr, nr, mc, kc;
};

// One product for a family's run(): the gemm.h contract, y = act(x . w'^T + b), with
//   x(i, p) at x[i * ldx + p] (row-major), or at x[p * ldx + i] when x_colmajor (as dy^T is);
//   w' either packed (gemm_pack's layout for the family's NR, in K-slices of slice_len; bias
//   padded to npad) or, when w_direct, w'(j, p) at w[p * ldw + j]: a k-major view such as W^T
//   or x^T of a row-major matrix (bias of n values).
template <class T>
struct GemmArgs {
  std::int64_t m = 0, n = 0, k = 0;
  const T* x = nullptr;
  std::int64_t ldx = 0;
  bool x_colmajor = false;
  const T* w = nullptr;
  std::int64_t ldw = 0;
  bool w_direct = false;
  const T* bias = nullptr;
  T* y = nullptr;
  std::int64_t ldy = 0;
  Epilogue ep;
  std::int64_t slice_len = 0;  // the K-slice length of a packed w' (PackedWeight::slice_len)
};

// Computes the y columns of panels [jp0, jp1) (NR columns each) for all m rows.
template <class T>
using RunFn = void (*)(const GemmArgs<T>& args, std::int64_t jp0, std::int64_t jp1);

// Packs panels [jr0, jr1) of a row-major w (n x k, row stride ldw, unit column stride) into
// dst, laid out as gemm.h's PackedWeight for the family's nr and K-slices of slice_len (npad = n
// rounded up to nr). Optional per family: null means the portable packing loop in pack.cpp.
template <class T>
using PackFn = void (*)(std::int64_t n, std::int64_t k, std::int64_t slice_len, const T* w,
                        std::int64_t ldw, T* dst, std::int64_t jr0, std::int64_t jr1);

struct KernelFamily {
  const char* name;
  Blocking<float> f32;
  Blocking<double> f64;
  RunFn<float> run_f32;
  RunFn<double> run_f64;
  PackFn<float> pack_f32 = nullptr;
};

// The K-slice length (slice_len) for a depth of k with slices of at most KC: equal slices, so
// that no short last slice pays a y load and store for little work (1024 = 4 x 256, not
// 3 x 320 + 64); only the last slice may be shorter.
static inline std::int64_t balanced_slice_len(std::int64_t k, std::int64_t KC) {
  if (k <= KC) return k > 0 ? k : 1;
  const std::int64_t slices = (k + KC - 1) / KC;
  return (k + slices - 1) / slices;
}

// Whether x's leading stride (ldx elements of `size` bytes: between rows of a row-major x, k
// steps of a column-major one) is a multiple of 4 KiB: then the lines a row tile reads alias one
// L1 set, and run() packs x.
static inline bool stride_aliases_in_l1(std::int64_t ldx, std::int64_t size) {
  return (ldx * size) % 4096 == 0;
}

// Row tiles of at most this many rows use the multi-panel tile (ukernel.h); products with so
// few rows use each W value once, so a direct w' is read in place rather than packed.
constexpr int kWideRows = 3;
// How many NR-column panels that multi-panel tile spans.
constexpr int kWidePanels = 4;

// The family's blocking and run() for one element type.
//
// The helpers in this header are static (internal linkage): the per-ISA files include it too,
// and a shared inline copy compiled with their -m flags could otherwise be the one the linker
// keeps for baseline code (ODR; see loop_nest.h).
template <class T>
static const Blocking<T>& blocking_of(const KernelFamily& f) {
  if constexpr (std::is_same_v<T, float>)
    return f.f32;
  else
    return f.f64;
}
template <class T>
static RunFn<T> run_of(const KernelFamily& f) {
  if constexpr (std::is_same_v<T, float>)
    return f.run_f32;
  else
    return f.run_f64;
}

// One per instruction set; each lives in its own translation unit and namespace.
namespace isa_scalar {
const KernelFamily& family();
}
#if defined(__x86_64__) || defined(_M_X64)
namespace isa_sse2 {
const KernelFamily& family();
}
namespace isa_avx2 {
const KernelFamily& family();
}
namespace isa_avx512 {
const KernelFamily& family();
}
#endif

}  // namespace lincore::detail
