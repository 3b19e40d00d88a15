#include "tensor/dtype.h"

namespace lincore {

const char* dtype_name(DType d) {
  switch (d) {
    case DType::float32:
      return "float32";
    case DType::float64:
      return "float64";
    case DType::int64:
      return "int64";
    case DType::bool_:
      return "bool";
    case DType::bfloat16:
      return "bfloat16";
  }
  return "?";
}

const char* dtype_short_name(DType d) {
  switch (d) {
    case DType::float32:
      return "Float";
    case DType::float64:
      return "Double";
    case DType::int64:
      return "Long";
    case DType::bool_:
      return "Bool";
    case DType::bfloat16:
      return "BFloat16";
  }
  return "?";
}

}  // namespace lincore
