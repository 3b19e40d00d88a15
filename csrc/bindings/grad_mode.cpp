#include "bindings/grad_mode.h"

#include "bindings/bindings.h"

namespace py = pybind11;

namespace lincore::bindings {

void register_grad_mode(py::module_& m) {
  m.def(
      "is_grad_enabled", [] { return grad_mode_enabled; },
      "is_grad_enabled() -> bool\nWhether ops record their backward in this thread.");
  m.def(
      "_set_grad_enabled", [](bool mode) { grad_mode_enabled = mode; }, py::arg("mode"),
      "_set_grad_enabled(mode)\nSets this thread's grad mode (lincore.no_grad and friends do).");
}

}  // namespace lincore::bindings
