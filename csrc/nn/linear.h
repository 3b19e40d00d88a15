// The Linear layer's forward, y = act(x . W^T + b), over tensors: shape and dtype checks with
// PyTorch's messages, layout conversion at the boundary, and the cached packed weight.
#pragma once

#include <memory>
#include <mutex>
#include <optional>

#include "kernels/bgemm.h"
#include "kernels/gemm.h"
#include "tensor/tensor.h"

namespace lincore {

// The packed form of one (weight, bias) pair. It is rebuilt when the tensors are replaced, when
// their contents change (storage versions) or when the kernel family changes. Storage whose
// writes lincore cannot see (exported to numpy as a writable view right now, or writable memory
// borrowed from numpy) is never trusted: the weight is repacked on each call.
//
// A cache owned by a shared_ptr (a Linear's) registers itself with w's storage as its packer
// (Storage::set_packer), so that an optimizer step can rewrite w and its pack in one pass.
class PackCache : public std::enable_shared_from_this<PackCache> {
 public:
  // The packed form of w (and b).
  template <class T>
  std::shared_ptr<const PackedWeight<T>> get(const Tensor& w, const Tensor* b);
  // The packed form of a bfloat16 w (and b, bf16, held widened to fp32): kernels/bgemm.h's
  // BPackedWeight, one layout for every bf16 level (a change of level never repacks).
  std::shared_ptr<const BPackedWeight> get_bf16(const Tensor& w, const Tensor* b);
  std::size_t packed_bytes() const;
  // How many packs this cache has built (a repack after each change of the weights).
  std::uint64_t packs_built() const;

  // The data pointer of the bias the current pack was built with (null: no bias, or no pack).
  const void* bias_data() const;

  // Rewrites w through write_rows (gemm.h's RowWriter: each strip of rows once, from the
  // packing threads) and packs each strip right after it is written, then bumps w's version:
  // the pack stays current across an optimizer step instead of being rebuilt, from memory, by
  // the next forward. b, whose own update has already run, is packed as it is now. Does
  // nothing and returns false unless this cache's pack is the current one of this very w
  // (contiguous, unchanged since it was packed) with this b (the same tensor; b contiguous).
  template <class T>
  bool rewrite_and_pack(Tensor& w, const Tensor* b, const RowWriter& write_rows);

 private:
  // What the packed form was built from. Compared on every call without allocating: the
  // cache check is part of a small layer's per-call cost.
  struct Key {
    const void* w_data = nullptr;
    const void* b_data = nullptr;
    std::int64_t n = 0, k = 0, ldw = 0, w_inner = 0;
    std::uint64_t w_version = 0, b_version = 0;
    int family = -1;
    DType dtype = DType::float32;
    bool operator==(const Key& o) const;
  };
  static Key key_of(const Tensor& w, const Tensor* b, DType dtype, int family);
  template <class T>
  static Key key_of(const Tensor& w, const Tensor* b);
  // Makes `packed` (of `bytes` bytes), built from w (and b) as `key` describes them, the
  // current pack.
  void install(const Key& key, std::shared_ptr<const void> packed, std::size_t bytes,
               const Tensor& w);

  mutable std::mutex mutex_;
  Key key_;
  std::uint64_t packs_built_ = 0;
  std::shared_ptr<const void> packed_;
  std::size_t bytes_ = 0;
};

// (*, in_features) -> (*, out_features). x, w, b of one dtype (float32, float64, bfloat16 or
// int64); w of shape [out, in]; b of shape [out], or null for no bias. bfloat16 runs bgemm
// (kernels/bgemm.h): fp32 sums, ep applied in fp32, the output rounded once to bf16.
//
// bfloat16 layers are inference-only: the message of the error that says so wherever autograd
// would have to pass through one.
extern const char* const kBf16InferenceOnly;
Tensor linear(const Tensor& x, const Tensor& w, const Tensor* b, Epilogue ep = {},
              PackCache* cache = nullptr);

// The gradients of y = x . w^T + b given dy = dL/dy (of y's shape), on the same GEMM kernels
// with the operands given as strided views (gemm_run_strided):
//   dx = dy . w        (w^T as a strided view)
//   dw = dy^T . x      (dy^T and x^T as strided views)
//   db = sum of dy's rows (accumulated in double)
// Each is computed only when asked for; the others are left empty.
struct LinearGrads {
  std::optional<Tensor> dx, dw, db;
};
LinearGrads linear_backward(const Tensor& x, const Tensor& w, const Tensor& dy, bool need_dx,
                            bool need_dw, bool need_db);

}  // namespace lincore
