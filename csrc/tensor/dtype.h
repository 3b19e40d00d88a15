// Element types a lincore Tensor can hold, and their sizes and names.
#pragma once

#include <cstddef>
#include <cstdint>

namespace lincore {

// The values are the codes Python sees (_dtype_code; lincore/_dtype.py's BY_CODE order).
// bfloat16 elements are std::uint16_t bit patterns (tensor/bfloat16.h).
enum class DType : std::uint8_t { float32, float64, int64, bool_, bfloat16 };

constexpr std::size_t itemsize(DType d) {
  switch (d) {
    case DType::float32:
      return 4;
    case DType::float64:
      return 8;
    case DType::int64:
      return 8;
    case DType::bool_:
      return 1;
    case DType::bfloat16:
      return 2;
  }
  return 0;
}

constexpr bool is_floating_point(DType d) {
  return d == DType::float32 || d == DType::float64 || d == DType::bfloat16;
}

// The dtypes with float/double kernels (T = float or double). A bfloat16 operand of a kernel
// that has none is widened to float32 and the result rounded back (PyTorch computes bf16 ops in
// fp32 and rounds once), or refused with not_implemented() (tensor/errors.h).
constexpr bool has_float_kernel(DType d) { return d == DType::float32 || d == DType::float64; }

// PyTorch's names: "float32"; the short names appear in its error messages ("Float", "Long").
const char* dtype_name(DType d);
const char* dtype_short_name(DType d);

template <class T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() {
  return DType::float32;
}
template <>
constexpr DType dtype_of<double>() {
  return DType::float64;
}
template <>
constexpr DType dtype_of<std::int64_t>() {
  return DType::int64;
}
template <>
constexpr DType dtype_of<bool>() {
  return DType::bool_;
}

}  // namespace lincore
