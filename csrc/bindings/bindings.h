// One registration function per binding file.
#pragma once

#include <pybind11/pybind11.h>

#include "runtime/interrupt.h"

namespace lincore::bindings {

void register_tensor(pybind11::module_& m);
void register_nn(pybind11::module_& m);
void register_runtime(pybind11::module_& m);

// Chains a SIGINT handler in front of the current one (Python's), so that Ctrl-C also asks a
// running computation to stop (runtime/interrupt.h). POSIX only; elsewhere a no-op.
void install_interrupt_handler();

// f() run with the GIL released, its result built in place: assigning into a default-constructed
// Tensor instead would allocate one more tensor per call.
template <class F>
auto without_gil(F&& f) -> decltype(f()) {
  pybind11::gil_scoped_release nogil;
  return f();
}

// Starts a computation called from Python: an interrupt requested before it began belongs to
// Python code that has already seen it.
inline void begin_computation() { clear_interrupt(); }

}  // namespace lincore::bindings
