#include "bindings/load_guard.h"

#include <memory>
#include <stdexcept>

#include "bindings/bindings.h"

namespace py = pybind11;

namespace lincore::bindings {

std::atomic<std::uint64_t> load_epoch{0};

namespace {

// Made at import and kept for the life of the process (never destroyed: a forward may still
// hold it while the interpreter shuts down).
PyObject* load_lock = nullptr;

// A load: the lock held and the epoch odd from __enter__ to __exit__.
struct ParameterLoad {
  std::unique_ptr<LoadLockHold> hold;
};

}  // namespace

LoadLockHold::LoadLockHold() { py::handle(load_lock).attr("acquire")(); }

LoadLockHold::~LoadLockHold() {
  // A destructor may not throw; releasing a lock this thread holds cannot fail.
  PyObject* r = PyObject_CallMethod(load_lock, "release", nullptr);
  if (r == nullptr) {
    PyErr_WriteUnraisable(load_lock);
  } else {
    Py_DECREF(r);
  }
}

void register_load_guard(py::module_& m) {
  load_lock = py::module_::import("threading").attr("RLock")().release().ptr();

  py::class_<ParameterLoad>(m, "ParameterLoad",
                            "What parameter_load() returns: a context manager around a load")
      .def("__enter__",
           [](ParameterLoad& self) {
             if (self.hold) throw std::logic_error("parameter_load() entered twice");
             self.hold = std::make_unique<LoadLockHold>();
             load_epoch.fetch_add(1, std::memory_order_acq_rel);
           })
      .def("__exit__", [](ParameterLoad& self, const py::args&) {
        if (!self.hold) return;
        load_epoch.fetch_add(1, std::memory_order_acq_rel);
        self.hold.reset();
      });
  m.def(
      "parameter_load", [] { return ParameterLoad{}; },
      "parameter_load()\nA context manager around writes to parameters (load_state_dict's): "
      "forwards that overlap it compute again from one set of weights.");
  m.def(
      "consistent",
      [](const py::function& compute) { return consistent([&] { return compute(); }); },
      py::arg("compute"),
      "consistent(compute)\ncompute() from one set of weights: run again, with loads held off, "
      "when a parameter_load() overlapped it.");
  m.def(
      "_load_epoch", [] { return load_epoch.load(std::memory_order_acquire); },
      "The load counter (odd while a load writes parameters); for tests.");
}

}  // namespace lincore::bindings
