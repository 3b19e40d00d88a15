// An int8 kernel level as the ISA-neutral code (qgemm_driver.cpp, dispatch.cpp) sees it: its row
// tile, its quantizer of x and its loop nest over the packed weight (qkernel.h). One per
// instruction set, each in its own translation unit and namespace, like the fp32 families.
#pragma once

#include <cstdint>

#include "kernels/qgemm.h"

namespace lincore::detail {

// One int8 product: x already quantized (xq: m rows of kpad codes, ldq apart; sx: m scales).
struct QArgs {
  std::int64_t m = 0, kgroups = 0;  // kgroups = kpad / 4
  const std::uint8_t* xq = nullptr;
  std::int64_t ldq = 0;
  const float* sx = nullptr;
  const QPackedWeight* pw = nullptr;
  float* y = nullptr;
  std::int64_t ldy = 0;
  Epilogue ep;
};

// Computes rows [i0, i1) of y for the columns of panels [jp0, jp1) (16 columns each).
using QRunFn = void (*)(const QArgs& a, std::int64_t i0, std::int64_t i1, std::int64_t jp0,
                        std::int64_t jp1);
// Quantizes m rows of x (qgemm.h's rule) into kpad codes per row: s8 codes, or s8 + 128 as u8
// for the levels that multiply unsigned by signed bytes (VPDPBUSD), padding included (the
// padding's weights are zero, so its value does not matter; it is the zero code).
using QQuantizeFn = void (*)(std::int64_t m, std::int64_t k, const float* x, std::int64_t ldx,
                             std::uint8_t* q, std::int64_t ldq, float* sx);

struct QFamily {
  const char* name;
  int mr;  // rows per tile: the row split over threads is in multiples of it
  QRunFn run;
  QQuantizeFn quantize;
  int code_offset;  // what quantize adds to each s8 code: 128 (u8 codes for VPDPBUSD) or 0
};

namespace isa_qscalar {
const QFamily& qfamily();
}
#if defined(__x86_64__) || defined(_M_X64)
namespace isa_qavx2 {
const QFamily& qfamily();
}
namespace isa_qavxvnni {
const QFamily& qfamily();
}
namespace isa_qavx512vnni {
const QFamily& qfamily();
}
#endif

const QFamily& active_qfamily();

}  // namespace lincore::detail
