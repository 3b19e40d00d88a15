// The int8 kernel contract of lincore: dynamically quantized y = act(x . W^T + b).
//
//   W (n x k, fp32) is quantized once, per output channel (row j), symmetric:
//     sw[j] = max_p |W[j, p]| / 127 (fp32),   Wq[j, p] = rne(W[j, p] / sw[j]) in [-127, 127]
//   x (m x k, fp32) is quantized on every call, per row i, symmetric, by the same rule:
//     sx[i] = max_p |x[i, p]| / 127,          xq[i, p] = rne(x[i, p] / sx[i]) in [-127, 127]
//   (a row of zeros has scale 0 and codes 0; a row holding NaN or Inf has scale NaN, so its
//   outputs are NaN; each division and each scale is one IEEE fp32 operation, rounded to
//   nearest even, so numpy reproduces the codes exactly.)
//   acc[i, j] = sum_p xq[i, p] * Wq[j, p]     exact, in int32 (|acc| <= k * 127^2 < 2^31 for
//                                             k <= kQMaxK), in any order: no rounding at all
//   y[i, j]   = act( fma( float(acc[i, j]), sx[i] * sw[j], b[j] ) )   three fp32 roundings
//
// Every kernel level (AVX512-VNNI, AVX-VNNI, AVX2 without VNNI, portable) computes the same
// acc bitwise and then the same three fp32 operations, so y is bitwise the same on every level,
// for every m, thread count and tile (the activation is the scalar definition in gemm_ref.cpp
// or an exact max / multiply). Why per-row symmetric x: docs/quantization.md.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/gemm.h"

namespace lincore {

// Columns per packed panel and k steps per group (one VPDPBUSD lane sums 4 products).
constexpr int kQPanel = 16;
constexpr int kQGroup = 4;
// The deepest k whose int32 accumulation cannot overflow: 131072 * 127^2 < 2^31.
constexpr std::int64_t kQMaxK = 131072;

// W quantized and packed once, in one layout every int8 level reads (so switching the level
// never repacks): panels of kQPanel columns; in a panel, for each group g of 4 k steps, 64
// bytes with column c's 4 codes at [4c, 4c + 4). k is padded to kpad (a multiple of 4) and n to
// npad (a multiple of 16) with zero codes. Per column (npad values, zero past n): the scale,
// the bias (zeros when there is none) and the sum of the column's codes (what the VNNI levels,
// which multiply x + 128 as unsigned bytes, subtract 128 times).
struct QPackedWeight {
  std::int64_t n = 0, k = 0;
  bool has_bias = false;
  std::shared_ptr<void> block;  // one 64-byte aligned allocation holding all four arrays
  const std::int8_t* data = nullptr;
  const std::int32_t* colsum = nullptr;
  const float* scale = nullptr;
  const float* bias = nullptr;
  std::int64_t kpad() const { return (k + kQGroup - 1) / kQGroup * kQGroup; }
  std::int64_t npad() const { return (n + kQPanel - 1) / kQPanel * kQPanel; }
  std::int64_t bytes() const;  // what the pack holds
};

// The rule above on m rows of k values: codes q (row stride ldq >= k) and one scale per row.
// Throws std::invalid_argument when a value is not finite and `finite_only` (weights).
// `active_level`: by the quantizer of x that qgemm_run uses (the int8 level in use), else by the
// portable one; the codes are the same (the tests check it).
void quantize_rows(std::int64_t m, std::int64_t k, const float* x, std::int64_t ldx, std::int8_t* q,
                   std::int64_t ldq, float* scale, bool finite_only, bool active_level = false);

// Packs codes wq (n x k, row stride ldw), their scales (n) and the bias (n, or null).
// std::invalid_argument when k > kQMaxK.
QPackedWeight qgemm_pack(std::int64_t n, std::int64_t k, const std::int8_t* wq, std::int64_t ldw,
                         const float* scale, const float* bias);

// The codes back, row-major n x k (for saving).
void qgemm_unpack(const QPackedWeight& pw, std::int8_t* wq);

// y (m x n, row stride ldy) = the rule above for x (m x k, row stride ldx, contiguous rows).
// Same aliasing rules as gemm.h. `serial`: on the calling thread only.
void qgemm_run(std::int64_t m, const float* x, std::int64_t ldx, const QPackedWeight& pw, float* y,
               std::int64_t ldy, Epilogue ep, bool serial = false);

// The int8 level in use ("avx512_vnni", "avx_vnni", "avx2", "scalar"), those this CPU supports
// (best first), and forcing one (std::invalid_argument if unsupported; "" follows the fp32
// level again: the best int8 level whose instructions that level may use).
std::string int8_capability();
std::vector<std::string> supported_int8_capabilities();
void set_int8_capability(const std::string& isa);

}  // namespace lincore
