// A kernel family: the blocked loop nest and register-tile micro-kernels compiled for one
// instruction set (see gemm_impl.h). The dispatcher (dispatch.cpp) picks one at start-up.
#pragma once

#include <cstdint>

#include "kernels/gemm.h"

namespace lincore::detail {

template <class T>
struct Blocking {
  int mr, nr, mc, kc;  // register tile MR x NR; cache blocks MC (rows of x), KC (depth)
};

// Computes the y columns of packed panels [jp0, jp1) for all m rows (the gemm.h contract, on a
// column range). `packed` is laid out by gemm_pack for this family's NR and KC.
template <class T>
using RunFn = void (*)(std::int64_t m, const T* x, std::int64_t ldx, const T* packed,
                       const T* bias, std::int64_t n, std::int64_t k, T* y, std::int64_t ldy,
                       Epilogue ep, std::int64_t jp0, std::int64_t jp1);

// Packs a row-major w (n x k, row stride ldw, unit column stride) into panels (gemm.h's
// PackedWeight layout for nr, kc); npad = n rounded up to nr. Optional per family: null means
// the portable packing loop in gemm_driver.cpp.
template <class T>
using PackFn = void (*)(std::int64_t n, std::int64_t k, const T* w, std::int64_t ldw, T* dst);

struct KernelFamily {
  const char* name;
  Blocking<float> f32;
  Blocking<double> f64;
  RunFn<float> run_f32;
  RunFn<double> run_f64;
  PackFn<float> pack_f32 = nullptr;
};

// One per instruction set; each lives in its own translation unit and namespace.
namespace isa_scalar { const KernelFamily& family(); }
#if defined(__x86_64__) || defined(_M_X64)
namespace isa_sse2 { const KernelFamily& family(); }
namespace isa_avx2 { const KernelFamily& family(); }
namespace isa_avx512 { const KernelFamily& family(); }
#endif

}  // namespace lincore::detail
