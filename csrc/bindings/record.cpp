#include "bindings/record.h"

namespace py = pybind11;

namespace lincore::bindings {
namespace {

// Interned once: a dict lookup by an interned key is a pointer compare.
PyObject* key(const char* name) {
  PyObject* s = PyUnicode_InternFromString(name);
  if (s == nullptr) throw py::error_already_set();
  return s;  // kept for the life of the process, like a static string
}

PyObject* requires_grad_key() {
  static PyObject* const k = key("_requires_grad");
  return k;
}

PyObject* grad_fn_key() {
  static PyObject* const k = key("grad_fn");
  return k;
}

}  // namespace

bool requires_grad(py::handle t) {
  if (t.is_none()) return false;
  // The dict pointer, not t.__dict__: that would create a dict for every tensor it reads.
  PyObject** dict = _PyObject_GetDictPtr(t.ptr());
  if (dict == nullptr || *dict == nullptr) return false;
  PyObject* value = PyDict_GetItemWithError(*dict, requires_grad_key());  // borrowed
  if (value == nullptr) {
    if (PyErr_Occurred()) throw py::error_already_set();
    return false;
  }
  const int truth = PyObject_IsTrue(value);
  if (truth < 0) throw py::error_already_set();
  return truth != 0;
}

void set_grad_fn(py::handle y, const py::object& node) {
  PyObject* dict = PyObject_GenericGetDict(y.ptr(), nullptr);  // new reference
  if (dict == nullptr) throw py::error_already_set();
  const int failed = PyDict_SetItem(dict, grad_fn_key(), node.ptr()) < 0 ||
                     PyDict_SetItem(dict, requires_grad_key(), Py_True) < 0;
  Py_DECREF(dict);
  if (failed) throw py::error_already_set();
}

}  // namespace lincore::bindings
