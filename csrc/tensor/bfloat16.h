// bfloat16 as lincore stores it: the top 16 bits of an IEEE fp32 (sign, 8 exponent bits, 7
// mantissa bits), held in a std::uint16_t. The two scalar conversions here are THE definition;
// every vectorized conversion (kernels, Tensor.to) must give the same bits.
//
//   widening (bf16 -> fp32) is exact: the bits shifted up 16.
//   narrowing (fp32 -> bf16) rounds to nearest, ties to even, as PyTorch's c10::BFloat16 does:
//   no flush of subnormals, +-Inf stays Inf, a value above the largest bf16 rounds to Inf, and a
//   NaN stays a (quiet) NaN of the same sign.
#pragma once

#include <cstdint>
#include <cstring>

namespace lincore {

inline float bf16_to_float(std::uint16_t b) {
  std::uint32_t u = static_cast<std::uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

inline std::uint16_t float_to_bf16(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) {  // NaN: keep the sign, set the quiet bit
    return static_cast<std::uint16_t>((u >> 16) | 0x0040u);
  }
  // Adding 0x7fff plus the lowest kept bit rounds to nearest with ties to even; a carry out of
  // the mantissa bumps the exponent, which is the right result (up to Inf).
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<std::uint16_t>(u >> 16);
}

}  // namespace lincore
