// The lincore._core extension module: one register_<thing> call per binding file.
#include <pybind11/pybind11.h>

#include "bindings/bindings.h"
#include "kernels/dispatch.h"
#include "runtime/interrupt.h"
#include "tensor/errors.h"

namespace py = pybind11;

PYBIND11_MODULE(_core, m) {
  m.doc() = "lincore's compiled core (private: import lincore instead)";
  m.attr("__version__") = LINCORE_VERSION;  // pyproject.toml's, through CMake
  // std::invalid_argument -> ValueError, out_of_range -> IndexError, bad_alloc -> MemoryError and
  // runtime_error -> RuntimeError come from pybind11; TypeError needs our own translator.
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const lincore::type_error& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    } catch (const lincore::not_implemented_error& e) {
      PyErr_SetString(PyExc_NotImplementedError, e.what());
    } catch (const lincore::interrupted&) {
      // Python's own SIGINT handler has run too (ours chains to it): this raises its
      // KeyboardInterrupt, or whatever the user's handler raises.
      lincore::clear_interrupt();
      if (PyErr_CheckSignals() == 0) PyErr_SetNone(PyExc_KeyboardInterrupt);
    }
  });
  lincore::bindings::install_interrupt_handler();
  // Resolve the kernel family now, so that a bad LINCORE_ISA fails the import with its message
  // rather than the first computation.
  lincore::cpu_capability();
  lincore::bindings::register_grad_mode(m);
  lincore::bindings::register_load_guard(m);
  lincore::bindings::register_tensor(m);
  lincore::bindings::register_nn(m);
  lincore::bindings::register_runtime(m);
  lincore::bindings::register_linear_call(m);
  lincore::bindings::register_dlpack(m);
  lincore::bindings::register_dropin(m);
  lincore::bindings::register_layers(m);
  lincore::bindings::register_quant(m);
  lincore::bindings::register_classify(m);
  lincore::bindings::register_bf16_kernels(m);
}
