// The blocked GEMM loop nest and its micro-kernels, written once over a vector type and compiled
// once per instruction set. Each gemm_<isa>.cpp defines LINCORE_ISA_NS, the vector width W (in
// elements, per dtype) and the tile sizes, then includes this file inside its own namespace so
// that no inline function compiled with wide-vector flags can be merged into baseline code (ODR).
//
// Loops (Goto/BLIS names): pc over K by KC, ic over M by MC, jr over N panels of NR columns,
// ir over rows by MR. The packed W panel (KC x NR) stays in L1 while ir sweeps the MC rows of x,
// which stay in L2. x is not packed: rows are broadcast straight from row-major x.
//
// This header deliberately has no include guard: it is meant to be included once per ISA TU.

#include <array>
#include <cstring>
#include <utility>

#include "kernels/family.h"

#ifndef LINCORE_INLINE
#define LINCORE_INLINE inline __attribute__((always_inline))
#endif

namespace lincore::detail::LINCORE_ISA_NS {

// V: a vector of W lanes of T (GCC/Clang vector extension), or T itself for the scalar family.
template <class T, int W>
struct Simd {
  typedef T V __attribute__((vector_size(W * sizeof(T))));
  static V load(const T* p) {
    V v;
    std::memcpy(&v, p, sizeof v);
    return v;
  }
  static void store(T* p, V v) { std::memcpy(p, &v, sizeof v); }
  static V broadcast(T s) {
    V v;
    for (int l = 0; l < W; ++l) v[l] = s;
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

// ukernel: y[R x NR tile] = (first ? bias : y) + x[R x kc] . panel[kc x NR], activation on last.
// Contract: 1 <= R <= MR; panel is kc x NR k-major, zero-padded; only the first nvalid columns of
// y are read (when !first) or written; x rows are ldx apart; bias has NR values or is null.
// Every output is the same FMA chain over p whatever R and nvalid are (determinism).
template <class T, int W, int NV, int R>
void ukernel(std::int64_t kc, const T* x, std::int64_t ldx, const T* panel, T* y, std::int64_t ldy,
             const T* bias, bool first, bool last, int nvalid, Epilogue ep) {
  using S = Simd<T, W>;
  using V = typename S::V;
  constexpr int NR = W * NV;
  V acc[R][NV];
  if (first) {
    unroll<NV>([&](auto v) {
      const V b0 = bias ? S::load(bias + v * W) : S::broadcast(T(0));
      unroll<R>([&](auto r) { acc[r][v] = b0; });
    });
  } else if (nvalid == NR) {
    unroll<R>([&](auto r) { unroll<NV>([&](auto v) { acc[r][v] = S::load(y + r * ldy + v * W); }); });
  } else {
    alignas(64) T tmp[NR] = {};
    unroll<R>([&](auto r) {
      std::memcpy(tmp, y + r * ldy, sizeof(T) * nvalid);
      unroll<NV>([&](auto v) { acc[r][v] = S::load(tmp + v * W); });
    });
  }

  for (std::int64_t p = 0; p < kc; ++p) {
    V wv[NV];
    unroll<NV>([&](auto v) { wv[v] = S::load(panel + p * NR + v * W); });
    unroll<R>([&](auto r) {
      const T a = x[r * ldx + p];
      unroll<NV>([&](auto v) { acc[r][v] += a * wv[v]; });
    });
  }

  if (last && ep.act != Activation::none) {
    unroll<R>([&](auto r) {
      unroll<NV>([&](auto v) {
        for (int l = 0; l < W; ++l) S::lane(acc[r][v], l) = activate(S::lane(acc[r][v], l), ep);
      });
    });
  }
  if (nvalid == NR) {
    unroll<R>([&](auto r) { unroll<NV>([&](auto v) { S::store(y + r * ldy + v * W, acc[r][v]); }); });
  } else {
    alignas(64) T tmp[NR];
    unroll<R>([&](auto r) {
      unroll<NV>([&](auto v) { S::store(tmp + v * W, acc[r][v]); });
      std::memcpy(y + r * ldy, tmp, sizeof(T) * nvalid);
    });
  }
}

template <class T, int W, int NV, int MR>
using UkernelFn = void (*)(std::int64_t, const T*, std::int64_t, const T*, T*, std::int64_t,
                           const T*, bool, bool, int, Epilogue);

// The table of row-count instantiations 1..MR, so an edge tile of R rows runs ukernel<R>.
template <class T, int W, int NV, int MR, int... Rs>
constexpr auto make_ukernel_table(std::integer_sequence<int, Rs...>) {
  return std::array<UkernelFn<T, W, NV, MR>, MR>{&ukernel<T, W, NV, Rs + 1>...};
}

template <class T, int W, int NV, int MR, int MC, int KC>
void run(std::int64_t m, const T* x, std::int64_t ldx, const T* packed, const T* bias,
         std::int64_t n, std::int64_t k, T* y, std::int64_t ldy, Epilogue ep, std::int64_t jp0,
         std::int64_t jp1) {
  constexpr int NR = W * NV;
  static constexpr auto table = make_ukernel_table<T, W, NV, MR>(std::make_integer_sequence<int, MR>{});
  const std::int64_t npad = (n + NR - 1) / NR * NR;
  // K == 0 still runs one (empty) slice so that y = act(bias) is written.
  for (std::int64_t pc = 0; pc < k || (pc == 0 && k == 0); pc += KC) {
    const std::int64_t kc = k - pc < KC ? k - pc : KC;
    const bool first = pc == 0, last = pc + kc >= k;
    const T* slice = packed + pc * npad;
    for (std::int64_t ic = 0; ic < m; ic += MC) {
      const std::int64_t mc = m - ic < MC ? m - ic : MC;
      for (std::int64_t jr = jp0; jr < jp1; ++jr) {
        const T* panel = slice + jr * kc * NR;
        const int nvalid = static_cast<int>(n - jr * NR < NR ? n - jr * NR : NR);
        const T* b = bias ? bias + jr * NR : nullptr;
        for (std::int64_t ir = 0; ir < mc; ir += MR) {
          const int rows = static_cast<int>(mc - ir < MR ? mc - ir : MR);
          table[rows - 1](kc, x + (ic + ir) * ldx + pc, ldx, panel,
                          y + (ic + ir) * ldy + jr * NR, ldy, b, first, last, nvalid, ep);
        }
      }
    }
  }
}

}  // namespace lincore::detail::LINCORE_ISA_NS
