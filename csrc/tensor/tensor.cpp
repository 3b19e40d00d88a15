#include "tensor/tensor.h"

#include <cstring>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <type_traits>

#include "kernels/bgemm.h"
#include "tensor/bfloat16.h"
#include "tensor/errors.h"

namespace lincore {

std::int64_t checked_numel(const Shape& shape) {
  std::int64_t n = 1;
  bool has_zero = false;
  for (std::int64_t s : shape) {
    if (s < 0) {
      throw std::invalid_argument("Trying to create tensor with negative dimension " +
                                  std::to_string(s) + ": " + shape_str(shape));
    }
    if (s == 0) has_zero = true;
  }
  if (has_zero) return 0;
  for (std::int64_t s : shape) {
    if (n > std::numeric_limits<std::int64_t>::max() / s) {
      throw std::invalid_argument("shape " + shape_str(shape) +
                                  " has more elements than fit in int64");
    }
    n *= s;
  }
  return n;
}

std::string shape_str(const Shape& shape) {
  std::ostringstream out;
  out << '[';
  for (std::size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << ']';
  return out.str();
}

Shape contiguous_strides(const Shape& shape) {
  Shape strides(shape.size());
  std::int64_t s = 1;
  for (std::size_t i = shape.size(); i-- > 0;) {
    strides[i] = s;
    s *= shape[i] > 1 ? shape[i] : 1;
  }
  return strides;
}

Shape infer_shape(const Shape& requested, std::int64_t numel) {
  Shape shape = requested;
  std::int64_t known = 1;
  int infer_at = -1;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      if (infer_at >= 0) throw std::runtime_error("only one dimension can be inferred");
      infer_at = static_cast<int>(i);
    } else if (shape[i] < 0) {
      throw std::runtime_error("invalid shape dimension " + std::to_string(shape[i]));
    } else {
      known = shape[i] == 0 || known == 0 ? 0 : known * shape[i];
    }
  }
  if (infer_at >= 0) {
    if (known == 0) {
      throw std::runtime_error(
          "cannot reshape tensor of " + std::to_string(numel) + " elements into shape " +
          shape_str(requested) +
          " because the unspecified dimension size -1 can be any value and is ambiguous");
    }
    if (numel % known == 0) {
      shape[infer_at] = numel / known;
      return shape;
    }
  } else if (checked_numel(shape) == numel) {
    return shape;
  }
  throw std::runtime_error("shape '" + shape_str(requested) + "' is invalid for input of size " +
                           std::to_string(numel));
}

Tensor::Tensor() : Tensor(empty({0}, DType::float32)) {}

Tensor::Tensor(std::shared_ptr<Storage> storage, DType dtype, Shape shape, Shape strides,
               std::int64_t offset)
    : storage_(std::move(storage)),
      dtype_(dtype),
      shape_(std::move(shape)),
      strides_(std::move(strides)),
      offset_(offset),
      numel_(checked_numel(shape_)) {}

Tensor Tensor::empty(const Shape& shape, DType dtype) {
  const std::int64_t n = checked_numel(shape);
  const std::size_t item = itemsize(dtype);
  // The byte count can exceed 64 bits even when the element count does not.
  const unsigned __int128 bytes = static_cast<unsigned __int128>(n) * item;
  std::shared_ptr<Storage> storage;
  try {
    if (bytes > std::numeric_limits<std::size_t>::max()) throw std::bad_alloc();
    storage = Storage::allocate(static_cast<std::size_t>(bytes));
  } catch (const std::bad_alloc&) {
    std::string digits;
    for (unsigned __int128 v = bytes; v > 0 || digits.empty(); v /= 10) {
      digits.insert(digits.begin(), static_cast<char>('0' + static_cast<int>(v % 10)));
    }
    throw out_of_memory("can't allocate memory: you tried to allocate " + digits +
                        " bytes for a tensor of shape " + shape_str(shape) + " and dtype " +
                        dtype_name(dtype));
  }
  return Tensor(std::move(storage), dtype, shape, contiguous_strides(shape), 0);
}

Tensor Tensor::zeros(const Shape& shape, DType dtype) {
  Tensor t = empty(shape, dtype);
  std::memset(t.raw_data(), 0, static_cast<std::size_t>(t.numel()) * itemsize(dtype));
  return t;
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype) {
  Tensor t = empty(shape, dtype);
  t.fill(value);
  return t;
}

std::int64_t Tensor::wrap_dim(std::int64_t d) const {
  std::int64_t n = dim();
  std::int64_t lo = n == 0 ? -1 : -n;
  std::int64_t hi = n == 0 ? 0 : n - 1;
  if (d < lo || d > hi) {
    throw std::out_of_range("Dimension out of range (expected to be in range of [" +
                            std::to_string(lo) + ", " + std::to_string(hi) + "], but got " +
                            std::to_string(d) + ")");
  }
  return d < 0 ? d + (n == 0 ? 1 : n) : d;
}

std::int64_t Tensor::size(std::int64_t d) const { return shape_[wrap_dim(d)]; }

void Tensor::check_writable(const char* what) const {
  if (!writable()) {
    throw std::invalid_argument(std::string(what) +
                                ": the tensor shares memory with a read-only buffer");
  }
}

bool Tensor::is_contiguous() const {
  std::int64_t expected = 1;
  for (std::size_t i = shape_.size(); i-- > 0;) {
    if (shape_[i] == 1) continue;
    if (strides_[i] != expected) return numel_ == 0;
    expected *= shape_[i];
  }
  return true;
}

void* Tensor::raw_data() const {
  return static_cast<char*>(storage_->data()) +
         offset_ * static_cast<std::int64_t>(itemsize(dtype_));
}

Tensor Tensor::view(const Shape& requested) const {
  Shape shape = infer_shape(requested, numel_);
  if (is_contiguous()) return Tensor(storage_, dtype_, shape, contiguous_strides(shape), offset_);
  // Non-contiguous input: a view exists when each run of merged/split dims is itself contiguous.
  // Walk old dims from the back, grouping them into chunks that map onto runs of new dims.
  Shape new_strides(shape.size());
  std::int64_t view_d = static_cast<std::int64_t>(shape.size()) - 1;
  std::int64_t chunk_base_stride = strides_.empty() ? 1 : strides_.back();
  std::int64_t tensor_numel = 1, view_numel = 1;
  for (std::int64_t d = dim() - 1; d >= 0; --d) {
    tensor_numel *= shape_[d];
    if (d == 0 || (shape_[d - 1] != 1 && strides_[d - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || shape[view_d] == 1)) {
        new_strides[view_d] = view_numel * chunk_base_stride;
        view_numel *= shape[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) {
        throw std::runtime_error(
            "view size is not compatible with input tensor's size and stride (at least one "
            "dimension spans across two contiguous subspaces). Use .reshape(...) instead.");
      }
      if (d > 0) {
        chunk_base_stride = strides_[d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  while (view_d >= 0) new_strides[view_d--] = 1;
  return Tensor(storage_, dtype_, shape, new_strides, offset_);
}

Tensor Tensor::reshape(const Shape& requested) const {
  Shape shape = infer_shape(requested, numel_);
  try {
    return view(shape);
  } catch (const std::runtime_error&) {
    return contiguous().view(shape);
  }
}

Tensor Tensor::transpose(std::int64_t d0, std::int64_t d1) const {
  if (dim() == 0) {
    wrap_dim(d0);
    wrap_dim(d1);
    return *this;
  }
  d0 = wrap_dim(d0);
  d1 = wrap_dim(d1);
  Shape shape = shape_, strides = strides_;
  std::swap(shape[d0], shape[d1]);
  std::swap(strides[d0], strides[d1]);
  return Tensor(storage_, dtype_, shape, strides, offset_);
}

Tensor Tensor::select(std::int64_t d, std::int64_t index) const {
  if (dim() == 0) throw std::out_of_range("invalid index of a 0-dim tensor. Use `tensor.item()`");
  d = wrap_dim(d);
  std::int64_t n = shape_[d];
  if (index < -n || index >= n) {
    throw std::out_of_range("index " + std::to_string(index) + " is out of bounds for dimension " +
                            std::to_string(d) + " with size " + std::to_string(n));
  }
  if (index < 0) index += n;
  Shape shape = shape_, strides = strides_;
  shape.erase(shape.begin() + d);
  strides.erase(strides.begin() + d);
  return Tensor(storage_, dtype_, shape, strides, offset_ + index * strides_[d]);
}

Tensor Tensor::slice(std::int64_t d, std::int64_t start, std::int64_t stop,
                     std::int64_t step) const {
  if (dim() == 0) throw std::out_of_range("slice() cannot be applied to a 0-dim tensor.");
  if (step <= 0) throw std::invalid_argument("step must be greater than zero");
  d = wrap_dim(d);
  std::int64_t n = shape_[d];
  auto clamp = [n](std::int64_t i) {
    if (i < 0) i += n;
    return i < 0 ? 0 : (i > n ? n : i);
  };
  start = clamp(start);
  stop = clamp(stop);
  std::int64_t len = stop > start ? (stop - start + step - 1) / step : 0;
  Shape shape = shape_, strides = strides_;
  shape[d] = len;
  strides[d] = strides_[d] * step;
  return Tensor(storage_, dtype_, shape, strides, offset_ + (len > 0 ? start * strides_[d] : 0));
}

Tensor Tensor::flatten(std::int64_t start_dim, std::int64_t end_dim) const {
  if (dim() == 0) return reshape({1});
  start_dim = wrap_dim(start_dim);
  end_dim = wrap_dim(end_dim);
  if (start_dim > end_dim) {
    throw std::runtime_error("flatten() has invalid args: start_dim cannot come after end_dim");
  }
  Shape shape(shape_.begin(), shape_.begin() + start_dim);
  std::int64_t merged = 1;
  for (std::int64_t i = start_dim; i <= end_dim; ++i) merged *= shape_[i];
  shape.push_back(merged);
  shape.insert(shape.end(), shape_.begin() + end_dim + 1, shape_.end());
  return reshape(shape);
}

namespace {

// Visits every element of `shape` in row-major order, passing the element offsets in two
// strided layouts. Used by the generic copy; the hot paths never go through it.
template <class F>
void for_each_pair(const Shape& shape, const Shape& sa, const Shape& sb, F&& f) {
  std::int64_t n = checked_numel(shape);
  if (n == 0) return;
  std::size_t nd = shape.size();
  if (nd == 0) {  // a 0-d tensor: one element, no index to walk
    f(0, 0);
    return;
  }
  std::vector<std::int64_t> idx(nd, 0);
  std::int64_t oa = 0, ob = 0;
  std::int64_t inner = nd ? shape[nd - 1] : 1;
  std::int64_t ia = nd ? sa[nd - 1] : 0, ib = nd ? sb[nd - 1] : 0;
  for (std::int64_t done = 0; done < n; done += inner) {
    for (std::int64_t j = 0; j < inner; ++j) f(oa + j * ia, ob + j * ib);
    for (std::size_t d = nd - 1; d-- > 0;) {
      if (++idx[d] < shape[d]) {
        oa += sa[d];
        ob += sb[d];
        break;
      }
      oa -= (shape[d] - 1) * sa[d];
      ob -= (shape[d] - 1) * sb[d];
      idx[d] = 0;
    }
  }
}

// A bfloat16 element as the copy loops see it: its bits, converted by tensor/bfloat16.h's rule.
// A narrowing goes through float first, as PyTorch's does (a double or an int64 is rounded to
// float, then to bf16).
struct BF16 {
  std::uint16_t bits;
};

template <class D, class S>
D convert(S s) {
  if constexpr (std::is_same_v<D, BF16> && std::is_same_v<S, BF16>) {
    return s;
  } else if constexpr (std::is_same_v<D, BF16>) {
    return BF16{float_to_bf16(static_cast<float>(s))};
  } else if constexpr (std::is_same_v<S, BF16>) {
    return static_cast<D>(bf16_to_float(s.bits));
  } else {
    return static_cast<D>(s);
  }
}

template <class D, class S>
void copy_typed(const Tensor& dst, const Tensor& src) {
  D* d = dst.data<D>();
  const S* s = src.data<S>();
  for_each_pair(dst.shape(), dst.strides(), src.strides(),
                [&](std::int64_t od, std::int64_t os) { d[od] = convert<D, S>(s[os]); });
}

template <class D>
void copy_to(const Tensor& dst, const Tensor& src) {
  switch (src.dtype()) {
    case DType::float32:
      return copy_typed<D, float>(dst, src);
    case DType::float64:
      return copy_typed<D, double>(dst, src);
    case DType::int64:
      return copy_typed<D, std::int64_t>(dst, src);
    case DType::bool_:
      return copy_typed<D, bool>(dst, src);
    case DType::bfloat16:
      return copy_typed<D, BF16>(dst, src);
  }
}

// Whether two contiguous tensors' bytes overlap (the vectorized conversions need them apart).
bool overlap(const Tensor& a, const Tensor& b) {
  const auto* a0 = static_cast<const char*>(a.raw_data());
  const auto* b0 = static_cast<const char*>(b.raw_data());
  const auto* a1 = a0 + a.numel() * static_cast<std::int64_t>(itemsize(a.dtype()));
  const auto* b1 = b0 + b.numel() * static_cast<std::int64_t>(itemsize(b.dtype()));
  return a0 < b1 && b0 < a1;
}

}  // namespace

void Tensor::copy_from(const Tensor& src) {
  if (src.shape() != shape_) {
    throw std::invalid_argument("copy_from: expected a source of shape " + shape_str(shape_) +
                                ", got " + shape_str(src.shape()));
  }
  check_writable("copy_from");
  const bool contiguous = is_contiguous() && src.is_contiguous();
  if (dtype_ == src.dtype_ && contiguous) {
    std::memmove(raw_data(), src.raw_data(), static_cast<std::size_t>(numel_) * itemsize(dtype_));
  } else if (contiguous && dtype_ == DType::bfloat16 && src.dtype_ == DType::float32 &&
             !overlap(*this, src)) {
    // The vectorized conversions (kernels/bgemm.h), the same bits as the loop below: t.bfloat16()
    // and t.float() of a model's weights, a bf16 Linear's input.
    floats_to_bf16(numel_, src.data<float>(), data<std::uint16_t>());
  } else if (contiguous && dtype_ == DType::float32 && src.dtype_ == DType::bfloat16 &&
             !overlap(*this, src)) {
    bf16_to_floats(numel_, src.data<std::uint16_t>(), data<float>());
  } else {
    switch (dtype_) {
      case DType::float32:
        copy_to<float>(*this, src);
        break;
      case DType::float64:
        copy_to<double>(*this, src);
        break;
      case DType::int64:
        copy_to<std::int64_t>(*this, src);
        break;
      case DType::bool_:
        copy_to<bool>(*this, src);
        break;
      case DType::bfloat16:
        copy_to<BF16>(*this, src);
        break;
    }
  }
  storage_->bump_version();
}

void Tensor::fill(double value) {
  check_writable("fill_");
  Tensor scalar = empty({}, DType::float64);
  *scalar.data<double>() = value;
  Tensor broadcast(scalar.storage_, DType::float64, shape_, Shape(shape_.size(), 0), 0);
  copy_from(broadcast);
}

Tensor Tensor::contiguous() const { return is_contiguous() ? *this : clone(); }

Tensor Tensor::clone() const {
  Tensor out = empty(shape_, dtype_);
  out.copy_from(*this);
  return out;
}

Tensor Tensor::to(DType dtype) const {
  if (dtype == dtype_) return *this;
  Tensor out = empty(shape_, dtype);
  out.copy_from(*this);
  return out;
}

}  // namespace lincore
