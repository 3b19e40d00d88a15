// A bf16 kernel level as the ISA-neutral code (bgemm_driver.cpp, dispatch.cpp) sees it: its row
// tile, how it prepares x, its loop nest over the packed weight (bkernel.h) and its
// conversions. One per instruction set, each in its own translation unit and namespace, like
// the int8 levels (qfamily.h).
#pragma once

#include <cstdint>

#include "kernels/bgemm.h"

namespace lincore::detail {

// One bf16 product: x already prepared (xp: m rows of kpad values, ldxp bytes apart, in the
// level's own form: bf16 pairs for VDPBF16PS, fp32 for the levels that widen).
struct BArgs {
  std::int64_t m = 0, kpairs = 0;  // kpairs = kpad / 2
  const unsigned char* xp = nullptr;
  std::int64_t ldxp = 0;  // bytes
  const BPackedWeight* pw = nullptr;
  void* y = nullptr;  // float* or std::uint16_t*, as y_bf16 says
  std::int64_t ldy = 0;
  bool y_bf16 = false;
  Epilogue ep;
};

// Computes rows [i0, i1) of y for the columns of panels [jp0, jp1) (16 columns each).
using BRunFn = void (*)(const BArgs& a, std::int64_t i0, std::int64_t i1, std::int64_t jp0,
                        std::int64_t jp1);
// Prepares m rows of x (k bf16 values each, ldx apart) into kpad values per row, ldp bytes
// apart, the padding zero (its weights are zero, but 0 * garbage could be NaN).
using BPrepareFn = void (*)(std::int64_t m, std::int64_t k, const std::uint16_t* x,
                            std::int64_t ldx, unsigned char* p, std::int64_t ldp);
using BToBf16Fn = void (*)(std::int64_t n, const float* src, std::uint16_t* dst);
using BToFloatFn = void (*)(std::int64_t n, const std::uint16_t* src, float* dst);

struct BFamily {
  const char* name;
  int mr;      // rows per tile: the row split over threads is in multiples of it
  int xbytes;  // bytes per prepared x value: 2 (bf16 pairs, read in place when k is even), 4
  BRunFn run;
  BPrepareFn prepare;
  BToBf16Fn to_bf16;    // floats_to_bf16 with this level's instructions (the same bits)
  BToFloatFn to_float;  // bf16_to_floats likewise
};

namespace isa_bscalar {
const BFamily& bfamily();
}
#if defined(__x86_64__) || defined(_M_X64)
namespace isa_bavx2 {
const BFamily& bfamily();
}
namespace isa_bavx512 {
const BFamily& bfamily();
}
namespace isa_bavx512bf16 {
const BFamily& bfamily();
}
#endif

const BFamily& active_bfamily();

}  // namespace lincore::detail

namespace lincore::detail {
int bfamily_count();  // every bf16 level compiled in, supported by this CPU or not
const BFamily& bfamily_at(int index);
}  // namespace lincore::detail
