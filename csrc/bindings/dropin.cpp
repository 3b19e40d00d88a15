// What lincore.optimize's runs (python/lincore/_dropin/run.py) check on every call, in C.
#include <pybind11/pybind11.h>

#include <stdexcept>

#include "bindings/bindings.h"
#include "tensor/tensor.h"

namespace py = pybind11;

namespace lincore::bindings {
namespace {

PyObject* interned(const char* name) {
  PyObject* s = PyUnicode_InternFromString(name);
  if (s == nullptr) throw py::error_already_set();
  return s;  // kept for the life of the process
}

// An int attribute or method result of a foreign tensor, as a 64-bit value.
long long int_of(PyObject* value) {
  if (value == nullptr) throw py::error_already_set();
  const long long v = PyLong_AsLongLong(value);
  Py_DECREF(value);
  if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
  return v;
}

// The per-call check of a run, in C: a small model's whole call is a few
// microseconds, and this loop in Python was a fifth of it. slots[i] is (the module's
// _parameters dict, the name, the torch parameter seen when the views were made);
// versions[i] and pointers[i] what its _version and data_ptr() were. A parameter written in place
// since (its version moved, its memory did not) gets its version recorded and its lincore view
// views[i] bumped, so that lincore repacks it, and only it. False when one was replaced or its
// memory moved: the views must be made again.
bool torch_params_current(const py::list& slots, const py::list& versions, const py::list& pointers,
                          const py::list& views) {
  static PyObject* const version_name = interned("_version");
  static PyObject* const data_ptr_name = interned("data_ptr");
  const Py_ssize_t n = PyList_GET_SIZE(slots.ptr());
  if (PyList_GET_SIZE(versions.ptr()) != n || PyList_GET_SIZE(pointers.ptr()) != n ||
      PyList_GET_SIZE(views.ptr()) != n) {
    throw std::invalid_argument("torch_params_current: lists of different lengths");
  }
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* slot = PyList_GET_ITEM(slots.ptr(), i);
    if (!PyTuple_Check(slot) || PyTuple_GET_SIZE(slot) != 3) {
      throw std::invalid_argument("torch_params_current: a slot is not (dict, name, param)");
    }
    PyObject* dict = PyTuple_GET_ITEM(slot, 0);
    if (!PyDict_Check(dict)) throw std::invalid_argument("torch_params_current: not a dict");
    PyObject* now = PyDict_GetItemWithError(dict, PyTuple_GET_ITEM(slot, 1));  // borrowed
    if (now == nullptr && PyErr_Occurred()) throw py::error_already_set();
    if (now != PyTuple_GET_ITEM(slot, 2)) return false;
    const long long pointer = int_of(PyObject_CallMethodNoArgs(now, data_ptr_name));
    if (pointer != PyLong_AsLongLong(PyList_GET_ITEM(pointers.ptr(), i))) return false;
    PyObject* version = PyObject_GetAttr(now, version_name);
    if (version == nullptr) throw py::error_already_set();
    const int same = PyObject_RichCompareBool(version, PyList_GET_ITEM(versions.ptr(), i), Py_EQ);
    if (same < 0) {
      Py_DECREF(version);
      throw py::error_already_set();
    }
    if (same == 0) {
      PyList_SetItem(versions.ptr(), i, version);  // steals the reference
      py::handle(PyList_GET_ITEM(views.ptr(), i)).cast<const Tensor&>().storage()->bump_version();
    } else {
      Py_DECREF(version);
    }
  }
  return true;
}

}  // namespace

void register_dropin(py::module_& m) {
  m.def("_torch_params_current", &torch_params_current, py::arg("slots"), py::arg("versions"),
        py::arg("pointers"), py::arg("views"),
        "The per-call check of a lincore.optimize run (see dlpack.cpp): False when a torch "
        "parameter was replaced or moved; bumps the views of those written in place.");
}

}  // namespace lincore::bindings
