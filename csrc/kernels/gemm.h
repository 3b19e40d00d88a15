// THE kernel contract of lincore. One operation, one operand order, stated once:
//
//   y[i, j] = act( b[j] + sum_{p<k} x[i, p] * w[j, p] )     for i < m, j < n
//
//   x: m x k, row-major, rows ldx apart (contiguous along k; any ldx, negative or 0 included:
//      x is only read)
//   w: n x k, row-major, row stride ldw >= k (nn.Linear's [out_features, in_features])
//   b: n values, or nullptr for no bias
//   y: m x n, row-major, row stride ldy >= n; write-only: never read before it is written, so it
//      may hold NaN or garbage on entry. y must not alias x, w or b.
//   m, n or k may be 0 (k == 0 gives act(b) exactly).
//
// Numerics: accumulators are of the element type (fp32 for float, fp64 for double) and start from
// the bias; each output is one fused-multiply-add chain over p = 0..k-1 in increasing order (a
// mul-then-add chain on ISAs without FMA). The chain for an output does not depend on m, on its
// row's position in the batch or on the thread count, so results are bitwise deterministic for
// a given ISA. They are not bitwise equal to numpy (different summation order, FMA rounding) nor
// across ISAs; tests compare against a float64 reference with the error bound in docs/testing.md.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

namespace lincore {

enum class Activation : std::uint8_t { none, relu, leaky_relu, sigmoid, tanh, gelu, gelu_tanh };
constexpr Activation kLastActivation = Activation::gelu_tanh;  // codes run 0..kLastActivation

struct Epilogue {
  Activation act = Activation::none;
  double negative_slope = 0.01;  // leaky_relu only; rounded to the element type when applied
};

const char* activation_name(Activation a);

// The permanent oracle: a triple loop accumulating in double, then rounded once. Slow, obviously
// right; tests and the C++ benchmark check every fast path against it.
template <class T>
void gemm_ref(std::int64_t m, std::int64_t n, std::int64_t k, const T* x, std::int64_t ldx,
              const T* w, std::int64_t ldw, const T* b, T* y, std::int64_t ldy, Epilogue ep);

// Applies one activation to one value; the scalar definition every kernel must agree with.
template <class T>
T activate(T v, Epilogue ep);

// Weights (and bias) rearranged once for the kernel family in use: K-slices of slice_len k steps
// (the last may be shorter), each holding ceil(n / NR) panels of NR columns, k-major (NR values
// per k step), zero-padded to NR columns; the bias padded to a multiple of NR. Built by
// gemm_pack, read-only afterwards (safe to share between threads).
template <class T>
struct PackedWeight {
  std::int64_t n = 0, k = 0;
  int nr = 1;               // the family's panel width NR
  int slice_len = 1;        // the K-slice length: the family's KC, balanced (at most KC)
  int family = -1;          // which kernel family packed it (an index into the dispatch table)
  std::shared_ptr<T> data;  // 64-byte aligned
  std::shared_ptr<T> bias;  // npad values, or null when there is no bias
  std::int64_t npad() const { return (n + nr - 1) / nr * nr; }
};

// Packs w (n x k: element [j][p] at w[j * ldw + p * ldw_col]) and b (n values or nullptr) for the
// kernel family in use. Any strides: a transposed view packs directly (the backward pass packs
// W^T and x^T this way). `recycled`, when given, is a previous pack that nobody else holds any
// more: its buffers are written again if they have the right size (a weight repacked after
// each optimizer step stays in the same, cache-warm memory, with no allocation).
//
// `write_rows`, when given, is called once for each strip of rows [j0, j1) of w (together they
// cover [0, n)) right before the strip is packed, on the thread that packs it: a writer of w
// (an optimizer step) then packs each strip while it is still in cache.
using RowWriter = std::function<void(std::int64_t j0, std::int64_t j1)>;
template <class T>
PackedWeight<T> gemm_pack(std::int64_t n, std::int64_t k, const T* w, std::int64_t ldw, const T* b,
                          std::int64_t ldw_col = 1, PackedWeight<T> recycled = {},
                          const RowWriter* write_rows = nullptr);

// y = act(x . w^T + b) with w given packed. Same contract as gemm_ref. Splits the work over the
// thread pool when it is large enough to gain; call from any thread.
template <class T>
void gemm_run(std::int64_t m, const T* x, std::int64_t ldx, const PackedWeight<T>& pw, T* y,
              std::int64_t ldy, Epilogue ep);

// The same, on the calling thread only (for callers that run their own parallel loop).
template <class T>
void gemm_run_serial(std::int64_t m, const T* x, std::int64_t ldx, const PackedWeight<T>& pw, T* y,
                     std::int64_t ldy, Epilogue ep);

// y = act(x . w^T + b) with both operands unpacked, given by element strides (row, column):
// x(i, p) = x[i * ldx_row + p * ldx_col], w(j, p) = w[j * ldw_row + p * ldw_col]; b has n values
// or is null; y as in gemm_ref. What the backward pass multiplies: dx = dy . W is x = dy,
// w = W^T (ldw_row 1); dW = dy^T . x is x = dy^T (ldx_row 1), w = x^T (ldw_row 1). A row- or
// column-major x is read in place (other layouts are copied); w is packed for the call, except
// for products of at most 3 rows with ldw_row == 1, which read it in place. Same numerics as
// gemm_run (bitwise the same result as packing w first).
template <class T>
void gemm_run_strided(std::int64_t m, std::int64_t n, std::int64_t k, const T* x,
                      std::int64_t ldx_row, std::int64_t ldx_col, const T* w, std::int64_t ldw_row,
                      std::int64_t ldw_col, const T* b, T* y, std::int64_t ldy, Epilogue ep);

}  // namespace lincore
