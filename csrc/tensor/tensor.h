// Tensor: a dtype, a shape, element strides and an offset into a shared Storage. Views (reshape,
// transpose, select, slice) share the storage; contiguous(), clone() and to() copy.
// All sizes and strides count elements, never bytes.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tensor/dtype.h"
#include "tensor/storage.h"

namespace lincore {

using Shape = std::vector<std::int64_t>;

// Product of the sizes; throws std::invalid_argument for a negative size or a product that
// overflows int64 (checked before any allocation is attempted).
std::int64_t checked_numel(const Shape& shape);
std::string shape_str(const Shape& shape);  // "[2, 3]"
Shape contiguous_strides(const Shape& shape);

class Tensor {
 public:
  Tensor();  // an empty float32 tensor of shape [0]
  Tensor(std::shared_ptr<Storage> storage, DType dtype, Shape shape, Shape strides,
         std::int64_t offset);

  static Tensor empty(const Shape& shape, DType dtype);
  static Tensor zeros(const Shape& shape, DType dtype);
  static Tensor full(const Shape& shape, double value, DType dtype);

  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }
  std::int64_t offset() const { return offset_; }
  std::int64_t dim() const { return static_cast<std::int64_t>(shape_.size()); }
  std::int64_t numel() const { return numel_; }
  std::int64_t size(std::int64_t d) const;
  const std::shared_ptr<Storage>& storage() const { return storage_; }
  bool is_contiguous() const;
  bool writable() const { return storage_->writable(); }

  void* raw_data() const;
  template <class T>
  T* data() const {
    return static_cast<T*>(raw_data());
  }

  // Views.
  Tensor view(const Shape& shape) const;     // throws std::runtime_error when strides forbid it
  Tensor reshape(const Shape& shape) const;  // a view when possible, else a contiguous copy
  Tensor transpose(std::int64_t d0, std::int64_t d1) const;
  Tensor select(std::int64_t d, std::int64_t index) const;
  Tensor slice(std::int64_t d, std::int64_t start, std::int64_t stop, std::int64_t step) const;
  Tensor flatten(std::int64_t start_dim, std::int64_t end_dim) const;

  // Copies.
  Tensor contiguous() const;
  Tensor clone() const;
  Tensor to(DType dtype) const;  // returns *this when the dtype already matches
  // Writes src (same shape, any dtype) into this tensor's elements; bumps the storage version.
  void copy_from(const Tensor& src);
  void fill(double value);

  // Resolves a possibly negative dimension index; throws std::out_of_range like PyTorch.
  std::int64_t wrap_dim(std::int64_t d) const;
  void check_writable(const char* what) const;

 private:
  std::shared_ptr<Storage> storage_;
  DType dtype_ = DType::float32;
  Shape shape_;
  Shape strides_;
  std::int64_t offset_ = 0;
  std::int64_t numel_ = 0;
};

// Resolves one -1 in a requested shape against numel; throws like PyTorch when it cannot.
Shape infer_shape(const Shape& requested, std::int64_t numel);

}  // namespace lincore
