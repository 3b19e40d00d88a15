// The bfloat16 kernel contract of lincore: y = act(x . W^T + b) with bf16 x and W.
//
//   x (m x k) and W (n x k) hold bf16 values (tensor/bfloat16.h); b (n values or none) is fp32
//   (a bf16 bias widens exactly). The product of two bf16 values is exact in fp32, so the only
//   roundings are the fp32 sums:
//     acc[i, j] = sum_p float(x[i, p]) * float(W[j, p])      fp32 sums, in a level's own order
//     y[i, j]   = act(acc[i, j] + b[j])                      in fp32
//   y is written as fp32, or rounded once to bf16 (tensor/bfloat16.h's rule) when `y_bf16`.
//   The levels: "avx512_bf16" (VDPBF16PS, which treats subnormal inputs and results as zero),
//   "avx512" and "avx2" (widen to fp32 and FMA) and "scalar". Results differ between levels
//   only by the order of the fp32 sums (and, on avx512_bf16, subnormals): the tests compare each
//   with a float64 reference under the rule in docs/testing.md, with k terms.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/gemm.h"

namespace lincore {

// Columns per packed panel and k steps per pair (one VDPBF16PS lane sums 2 products).
constexpr int kBPanel = 16;
constexpr int kBPair = 2;

// W packed once, in one layout every bf16 level reads (switching the level never repacks):
// panels of kBPanel columns; in a panel, for each pair of k steps, 64 bytes with column c's two
// values at [2c, 2c + 2). k is padded to kpad (even) and n to npad (a multiple of 16) with
// zeros. The bias: npad fp32 values (zeros when there is none, or past n).
struct BPackedWeight {
  std::int64_t n = 0, k = 0;
  bool has_bias = false;
  std::shared_ptr<void> block;  // one 64-byte aligned allocation holding both arrays
  const std::uint16_t* data = nullptr;
  const float* bias = nullptr;
  std::int64_t kpad() const { return (k + kBPair - 1) / kBPair * kBPair; }
  std::int64_t npad() const { return (n + kBPanel - 1) / kBPanel * kBPanel; }
  std::int64_t bytes() const;  // what the pack holds
};

// Vectorized conversions with tensor/bfloat16.h's bits, for n contiguous values.
void floats_to_bf16(std::int64_t n, const float* src, std::uint16_t* dst);
void bf16_to_floats(std::int64_t n, const std::uint16_t* src, float* dst);

// Packs w (n x k bf16, row stride ldw) and the bias (n fp32 values, or null).
BPackedWeight bgemm_pack(std::int64_t n, std::int64_t k, const std::uint16_t* w, std::int64_t ldw,
                         const float* bias);

// The weights back, row-major n x k (for saving and for .weight).
void bgemm_unpack(const BPackedWeight& pw, std::uint16_t* w);

// y (m x n, row stride ldy; float* or std::uint16_t* as `y_bf16` says) = the rule above for
// x (m x k bf16, row stride ldx, contiguous rows). Aliasing as in gemm.h; m, n, k may be 0.
// Splits the work over the thread pool when it gains; `serial`: on the calling thread only.
void bgemm_run(std::int64_t m, const std::uint16_t* x, std::int64_t ldx, const BPackedWeight& pw,
               void* y, std::int64_t ldy, bool y_bf16, Epilogue ep, bool serial = false);

// The bf16 level in use ("avx512_bf16", "avx512", "avx2", "scalar"), those this CPU supports
// (best first), and forcing one (std::invalid_argument if unsupported; "" follows the fp32
// level again: the best bf16 level whose instructions that level may use).
std::string bf16_capability();
std::vector<std::string> supported_bf16_capabilities();
void set_bf16_capability(const std::string& isa);

}  // namespace lincore
