// What lincore.optimize's runs (python/lincore/_dropin/run.py) check on every call, in C.
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>

#include "bindings/bindings.h"
#include "bindings/load_guard.h"
#include "runtime/thread_pool.h"
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
// [slots, versions, pointers, views, version getter, data_ptr method, rebuild on write]: slots[i]
// is (the module's _parameters dict, the name, the torch parameter seen when the views were made),
// versions[i] and pointers[i] what its _version and data_ptr() were; the getter and method are
// torch's own descriptors (TensorBase._version, TensorBase.data_ptr), called directly rather
// than looked up on each parameter's class. A parameter written in place since (its version
// moved, its memory did not) gets its version recorded and its lincore view views[i] bumped, so
// that lincore repacks it, and only it (unless "rebuild on write": a quantized run's int8 copies
// cannot follow a write, so it is made again). False when one was replaced or its memory moved:
// the views must be made again.
bool params_current(PyObject* state) {
  PyObject* slots = item(state, 0, "state");
  PyObject* versions = item(state, 1, "state");
  PyObject* pointers = item(state, 2, "state");
  PyObject* views = item(state, 3, "state");
  PyObject* version_getter = item(state, 4, "state");
  PyObject* data_ptr = item(state, 5, "state");
  const bool rebuild_on_write = PyObject_IsTrue(item(state, 6, "state")) == 1;
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
      if (rebuild_on_write) {
        Py_DECREF(version);
        return false;
      }
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

// The fields of a run's fast-call tuple (FusedRun.fast in python/lincore/_dropin/run.py).
enum Fast : Py_ssize_t {
  kPlan,          // the run's _core.SequentialPlan
  kState,         // params_current's state
  kHookDicts,     // the hook dicts (the fused modules' and torch's global ones): all empty
  kDType,         // the run's dtype code (csrc/tensor/dtype.h)
  kTensorType,    // torch.Tensor: the input's exact type
  kToDlpack,      // torch._C._to_dlpack
  kFromDlpack,    // torch._C._from_dlpack
  kGradEnabled,   // torch.is_grad_enabled
  kTorchThreads,  // torch.get_num_threads
  kFunctorch,     // torch._C._are_functorch_transforms_active
  kFastFields
};

// A run's whole call under torch.no_grad, in C: the checks of FusedRun.__call__, the input
// through DLPack, the plan's forward and the output back, with no Python frame and no lincore
// Tensor object in between. NotImplemented where the call needs more than that (torch's grad
// mode on, a functorch transform, a hook, another type, device or dtype, a parameter replaced or
// moved): the Python path then decides, as before.
PyObject* run_forward(PyObject* fast, PyObject* x) {
  if (!PyTuple_Check(fast) || PyTuple_GET_SIZE(fast) != kFastFields) {
    throw py::type_error("_dropin_forward(fast, x): fast is a run's tuple of its fields");
  }
  auto field = [fast](Fast i) { return PyTuple_GET_ITEM(fast, i); };  // borrowed
  if (reinterpret_cast<PyObject*>(Py_TYPE(x)) != field(kTensorType)) Py_RETURN_NOTIMPLEMENTED;
  PyObject* hooks = field(kHookDicts);
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(hooks); ++i) {
    if (PyDict_GET_SIZE(PyList_GET_ITEM(hooks, i)) != 0) Py_RETURN_NOTIMPLEMENTED;
  }
  PyObject* grad = PyObject_CallNoArgs(field(kGradEnabled));
  if (grad == nullptr) throw py::error_already_set();
  const bool off = grad == Py_False;
  Py_DECREF(grad);
  if (!off) Py_RETURN_NOTIMPLEMENTED;
  PyObject* transforms = PyObject_CallNoArgs(field(kFunctorch));  // vmap, grad, ...: torch's
  if (transforms == nullptr) throw py::error_already_set();
  const bool plain = transforms == Py_False;
  Py_DECREF(transforms);
  if (!plain) Py_RETURN_NOTIMPLEMENTED;
  if (!params_current(field(kState))) Py_RETURN_NOTIMPLEMENTED;
  const auto dtype = static_cast<DType>(PyLong_AsLong(field(kDType)));
  PyObject* capsule = PyObject_Vectorcall(field(kToDlpack), &x, 1, nullptr);
  if (capsule == nullptr) {
    // A tensor torch cannot export (sparse, ...): the Python path says what runs it.
    PyErr_Clear();
    Py_RETURN_NOTIMPLEMENTED;
  }
  py::object held = py::reinterpret_steal<py::object>(capsule);
  if (!dlpack_holds(capsule, dtype)) Py_RETURN_NOTIMPLEMENTED;
  follow_num_threads(static_cast<int>(int_of(PyObject_CallNoArgs(field(kTorchThreads)))));
  const Tensor input = tensor_from_dlpack(capsule);
  const Plan* plan = instance_of<Plan>(field(kPlan));
  if (plan == nullptr) throw std::invalid_argument("_dropin_forward: bad plan");
  py::object out = consistent([&] {
    begin_computation();
    return dlpack_of(without_gil([&] { return plan->stack.forward(input); }));
  });
  PyObject* arg = out.ptr();
  return PyObject_Vectorcall(field(kFromDlpack), &arg, 1, nullptr);
}

// A swapped torch.nn.Sequential's call when its one run is the whole container (swap.py's
// Sequential.__call__ hands it over once it has seen one positional input outside
// torch.compile): the container's own checks (no hooks on it, no compiled call, not being
// traced, its children as they were, no Dropout whose mode splits runs) and then run_forward.
// NotImplemented: the Python path decides.
PyObject* container_forward(PyObject* self, PyObject* x) {
  static PyObject* const names[] = {
      PyUnicode_InternFromString("_forward_hooks"),
      PyUnicode_InternFromString("_forward_pre_hooks"),
      PyUnicode_InternFromString("_backward_hooks"),
      PyUnicode_InternFromString("_backward_pre_hooks"),
  };
  static PyObject* const compiled = PyUnicode_InternFromString("_compiled_call_impl");
  static PyObject* const runner_name = PyUnicode_InternFromString("_lincore_runner");
  static PyObject* const fast_name = PyUnicode_InternFromString("fast");
  py::object held = py::reinterpret_steal<py::object>(PyObject_GenericGetDict(self, nullptr));
  if (!held) throw py::error_already_set();
  PyObject* dict = held.ptr();  // the items read from it are borrowed
  for (PyObject* name : names) {
    PyObject* hooks = PyDict_GetItemWithError(dict, name);
    if (hooks == nullptr || !PyDict_Check(hooks) || PyDict_GET_SIZE(hooks) != 0) {
      if (PyErr_Occurred()) throw py::error_already_set();
      Py_RETURN_NOTIMPLEMENTED;
    }
  }
  PyObject* impl = PyDict_GetItemWithError(dict, compiled);
  if (impl != nullptr && impl != Py_None) Py_RETURN_NOTIMPLEMENTED;
  PyObject* runner = PyDict_GetItemWithError(dict, runner_name);
  if (runner == nullptr) {
    if (PyErr_Occurred()) throw py::error_already_set();
    Py_RETURN_NOTIMPLEMENTED;
  }
  // The runner's (watch, its single run, torch._C._get_tracing_state), or None when the
  // container is not one run (swap.py's Runner.fast).
  py::object runner_fast = py::reinterpret_steal<py::object>(PyObject_GetAttr(runner, fast_name));
  if (!runner_fast) throw py::error_already_set();
  if (!PyTuple_Check(runner_fast.ptr()) || PyTuple_GET_SIZE(runner_fast.ptr()) != 3) {
    Py_RETURN_NOTIMPLEMENTED;
  }
  PyObject* tracing = PyObject_CallNoArgs(PyTuple_GET_ITEM(runner_fast.ptr(), 2));
  if (tracing == nullptr) throw py::error_already_set();
  const bool traced = tracing != Py_None;
  Py_DECREF(tracing);
  if (traced || !dicts_unchanged(PyTuple_GET_ITEM(runner_fast.ptr(), 0))) {
    Py_RETURN_NOTIMPLEMENTED;
  }
  py::object run_fast = py::reinterpret_steal<py::object>(
      PyObject_GetAttr(PyTuple_GET_ITEM(runner_fast.ptr(), 1), fast_name));
  if (!run_fast) throw py::error_already_set();
  if (run_fast.is_none()) Py_RETURN_NOTIMPLEMENTED;
  return run_forward(run_fast.ptr(), x);
}

template <PyObject* (*F)(PyObject*, PyObject*)>
PyObject* two_args(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 2) {
    PyErr_SetString(PyExc_TypeError, "expected 2 arguments");
    return nullptr;
  }
  try {
    return F(args[0], args[1]);
  } catch (...) {
    py::detail::try_translate_exceptions();
    return nullptr;
  }
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
    {"_dropin_forward",
     reinterpret_cast<PyCFunction>(reinterpret_cast<void*>(&two_args<run_forward>)), METH_FASTCALL,
     "_dropin_forward(fast, x)\nA lincore.optimize run's call under torch.no_grad, in C; "
     "NotImplemented where the Python path must decide."},
    {"_dropin_container_forward",
     reinterpret_cast<PyCFunction>(reinterpret_cast<void*>(&two_args<container_forward>)),
     METH_FASTCALL,
     "_dropin_container_forward(module, x)\nA swapped Sequential's call when it is one run, "
     "in C; NotImplemented where the Python path must decide."},
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
