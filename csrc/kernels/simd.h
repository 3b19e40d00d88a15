// The vector type the kernels are written over (Simd), the compile-time unrolling that keeps
// their tiles in registers (unroll), and the inlining macros both need.
//
// Per-ISA, like ukernel.h, pack.h and loop_nest.h: compiled once per instruction set, inside that
// set's namespace (LINCORE_ISA_NS, defined by the gemm_<isa>.cpp that includes these headers;
// see loop_nest.h for why), never from baseline code.
#pragma once

#ifndef LINCORE_ISA_NS
#error "a per-ISA kernel header: include it from a gemm_<isa>.cpp that defines LINCORE_ISA_NS"
#endif

#include <cstring>
#include <type_traits>
#include <utility>

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

}  // namespace lincore::detail::LINCORE_ISA_NS
