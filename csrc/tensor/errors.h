// Exception types of the core. Each maps to one Python exception in the bindings:
// std::invalid_argument -> ValueError, std::out_of_range -> IndexError, std::bad_alloc ->
// MemoryError, std::runtime_error -> RuntimeError, and type_error below -> TypeError.
#pragma once

#include <stdexcept>
#include <string>

namespace lincore {

struct type_error : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

}  // namespace lincore
