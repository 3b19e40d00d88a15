// What lincore.optimize's runs (python/lincore/_dropin/run.py) check on every call, in C.
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>

#include "bindings/bindings.h"
#include "tensor/tensor.h"

namespace py = pybind11;

namespace lincore::bindings {
namespace {

// An int result of a foreign tensor's getter or method, as a 64-bit value.
long long int_of(PyObject* value) {
  if (value == nullptr) throw py::error_already_set();
  const long long v = PyLong_AsLongLong(value);
  Py_DECREF(value);
  if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
  return v;
}

PyObject* item(PyObject* list, Py_ssize_t i, const char* what) {
  if (!PyList_Check(list) || i >= PyList_GET_SIZE(list)) {
    throw std::invalid_argument(std::string("torch_params_current: bad ") + what);
  }
  return PyList_GET_ITEM(list, i);  // borrowed
}

// The per-call check of a run (python/lincore/_dropin/run.py), in C: a small model's whole call
// is a few microseconds, and this loop in Python was a fifth of it. state is the run's list
// [slots, versions, pointers, views, version getter, data_ptr method]: slots[i] is (the
// module's _parameters dict, the name, the torch parameter seen when the views were made),
// versions[i] and pointers[i] what its _version and data_ptr() were; the getter and method are
// torch's own descriptors (TensorBase._version, TensorBase.data_ptr), called directly rather
// than looked up on each parameter's class. A parameter written in place since (its version
// moved, its memory did not) gets its version recorded and its lincore view views[i] bumped, so
// that lincore repacks it, and only it. False when one was replaced or its memory moved: the
// views must be made again.
bool params_current(PyObject* state) {
  PyObject* slots = item(state, 0, "state");
  PyObject* versions = item(state, 1, "state");
  PyObject* pointers = item(state, 2, "state");
  PyObject* views = item(state, 3, "state");
  PyObject* version_getter = item(state, 4, "state");
  PyObject* data_ptr = item(state, 5, "state");
  descrgetfunc get = Py_TYPE(version_getter)->tp_descr_get;
  if (get == nullptr || !PyList_Check(slots)) {
    throw std::invalid_argument("torch_params_current: bad state");
  }
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(slots); ++i) {
    PyObject* slot = PyList_GET_ITEM(slots, i);
    if (!PyTuple_Check(slot) || PyTuple_GET_SIZE(slot) != 3 ||
        !PyDict_Check(PyTuple_GET_ITEM(slot, 0))) {
      throw std::invalid_argument("torch_params_current: a slot is not (dict, name, param)");
    }
    PyObject* now = PyDict_GetItemWithError(PyTuple_GET_ITEM(slot, 0), PyTuple_GET_ITEM(slot, 1));
    if (now == nullptr && PyErr_Occurred()) throw py::error_already_set();
    if (now != PyTuple_GET_ITEM(slot, 2)) return false;
    const long long pointer = int_of(PyObject_Vectorcall(data_ptr, &now, 1, nullptr));
    if (pointer != PyLong_AsLongLong(item(pointers, i, "pointers"))) return false;
    PyObject* version = get(version_getter, now, reinterpret_cast<PyObject*>(Py_TYPE(now)));
    if (version == nullptr) throw py::error_already_set();
    const int same = PyObject_RichCompareBool(version, item(versions, i, "versions"), Py_EQ);
    if (same < 0) {
      Py_DECREF(version);
      throw py::error_already_set();
    }
    if (same == 0) {
      PyList_SetItem(versions, i, version);  // steals the reference
      py::handle(item(views, i, "views")).cast<const Tensor&>().storage()->bump_version();
    } else {
      Py_DECREF(version);
    }
  }
  return true;
}

// Whether each dict in watch (a list of (dict, tuple) pairs) still holds exactly the values of
// its tuple, in order, by identity: a swapped container's children, checked on every call.
bool dicts_unchanged(PyObject* watch) {
  if (!PyList_Check(watch)) throw std::invalid_argument("dicts_unchanged: expected a list");
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(watch); ++i) {
    PyObject* pair = PyList_GET_ITEM(watch, i);
    if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2 ||
        !PyDict_Check(PyTuple_GET_ITEM(pair, 0)) || !PyTuple_Check(PyTuple_GET_ITEM(pair, 1))) {
      throw std::invalid_argument("dicts_unchanged: an entry is not (dict, tuple)");
    }
    PyObject* dict = PyTuple_GET_ITEM(pair, 0);
    PyObject* held = PyTuple_GET_ITEM(pair, 1);
    if (PyDict_GET_SIZE(dict) != PyTuple_GET_SIZE(held)) return false;
    Py_ssize_t pos = 0, j = 0;
    PyObject *key, *value;
    while (PyDict_Next(dict, &pos, &key, &value)) {
      if (value != PyTuple_GET_ITEM(held, j++)) return false;
    }
  }
  return true;
}

// Both as METH_O functions: pybind11's argument parsing would cost as much as the checks.
template <bool (*F)(PyObject*)>
PyObject* as_method_o(PyObject*, PyObject* arg) {
  try {
    return PyBool_FromLong(F(arg) ? 1 : 0);
  } catch (...) {
    py::detail::try_translate_exceptions();
    return nullptr;
  }
}

PyMethodDef methods[] = {
    {"_torch_params_current", &as_method_o<params_current>, METH_O,
     "_torch_params_current(state)\nThe per-call check of a lincore.optimize run "
     "(csrc/bindings/dropin.cpp): False when a torch parameter was replaced or moved; bumps "
     "the views of those written in place."},
    {"_dicts_unchanged", &as_method_o<dicts_unchanged>, METH_O,
     "_dicts_unchanged(watch)\nWhether each (dict, tuple) pair's dict still holds the tuple's "
     "values, in order, by identity."},
    {nullptr, nullptr, 0, nullptr}};

}  // namespace

void register_dropin(py::module_& m) {
  for (PyMethodDef* def = methods; def->ml_name != nullptr; ++def) {
    PyObject* f = PyCFunction_NewEx(def, nullptr, m.attr("__name__").ptr());
    if (f == nullptr) throw py::error_already_set();
    m.attr(def->ml_name) = py::reinterpret_steal<py::object>(f);
  }
}

}  // namespace lincore::bindings
