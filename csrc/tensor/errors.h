// Exception types of the core. Each maps to one Python exception in the bindings:
// std::invalid_argument -> ValueError, std::out_of_range -> IndexError, std::bad_alloc ->
// MemoryError, std::runtime_error -> RuntimeError, type_error below -> TypeError and
// not_implemented_error -> NotImplementedError.
#pragma once

#include <stdexcept>
#include <string>

#include "tensor/dtype.h"

namespace lincore {

struct type_error : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// An operation with no kernel for a dtype (PyTorch raises NotImplementedError for those).
struct not_implemented_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// PyTorch's words for it: "\"op\" not implemented for 'BFloat16'".
inline not_implemented_error not_implemented(const std::string& op, DType d) {
  return not_implemented_error("\"" + op + "\" not implemented for '" + dtype_short_name(d) + "'");
}

// An allocation that failed, saying how much was asked for (pybind11 turns any std::bad_alloc
// into MemoryError with its what()).
class out_of_memory : public std::bad_alloc {
 public:
  explicit out_of_memory(std::size_t bytes)
      : message_("can't allocate memory: you tried to allocate " + std::to_string(bytes) +
                 " bytes") {}
  explicit out_of_memory(std::string message) : message_(std::move(message)) {}
  const char* what() const noexcept override { return message_.c_str(); }

 private:
  std::string message_;
};

}  // namespace lincore
