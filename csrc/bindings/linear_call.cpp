// nn.Linear.__call__ as a C-level method: a 1x3->2 Linear costs about a microsecond, and the
// Python forward's frame, attribute reads and grad-mode test were a quarter of it, with
// pybind11's argument parsing another quarter.
//
// The method handles the common call, one lincore Tensor and no keywords, on a Linear whose
// weight, bias and pack cache sit in its instance dict. Every other call (a numpy array or list
// as input, keywords, a load_state_dict running in another thread) goes to Linear.forward, the
// Python method that handles everything; so the two can never disagree on what they accept.
#include "bindings/linear_call.h"

#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <utility>

#include "bindings/bindings.h"
#include "bindings/record.h"

namespace py = pybind11;

namespace lincore::bindings {

namespace {

// The forward both bindings run; *x_dims gets x's number of dimensions (a recorded call picks
// its node class by it), read from the Tensor cast here rather than by casting x again.
py::object run_linear(py::handle x_obj, py::handle w_obj, py::handle b_obj, PackCache* cache,
                      std::int64_t* x_dims) {
  const Tensor& x = tensor_arg(x_obj, "linear", "input");
  const Tensor& w = tensor_arg(w_obj, "linear", "weight");
  const Tensor* b = b_obj.is_none() ? nullptr : &tensor_arg(b_obj, "linear", "bias");
  *x_dims = x.dim();
  begin_computation();
  return py::cast(without_gil([&] { return linear(x, w, b, Epilogue{}, cache); }));
}

}  // namespace

py::object linear_forward(py::handle x_obj, py::handle w_obj, py::handle b_obj, PackCache* cache) {
  std::int64_t x_dims = 0;
  return run_linear(x_obj, w_obj, b_obj, cache, &x_dims);
}

py::object linear_forward_recorded(py::handle x_obj, py::handle w_obj, py::handle b_obj,
                                   PackCache* cache, const py::tuple& nodes) {
  if (nodes.size() != 2) {
    throw std::invalid_argument("linear_recorded: expected node classes [has bias][dims]");
  }
  std::int64_t x_dims = 0;
  py::object y = run_linear(x_obj, w_obj, b_obj, cache, &x_dims);
  if (requires_grad(w_obj) || requires_grad(x_obj) || requires_grad(b_obj)) {
    const py::tuple by_dims = nodes[b_obj.is_none() ? 0 : 1];
    const py::object node_class = by_dims[node_index_by_dims(x_dims)];
    set_grad_fn(y, node_class(x_obj, w_obj, b_obj));
  }
  return y;
}

namespace {

// What the method reads besides its arguments, handed over once by make_linear_call and kept
// for the life of the process (like the module's other statics).
struct CallContext {
  PyObject* grad_state;  // lincore._grad_mode._state, a threading.local
  PyObject* load_epoch;  // lincore.nn.module._load_epoch, a one-element list
  py::tuple nodes;       // LINEAR_NODES
  PyTypeObject* tensor_type;
  PyObject* forward_name;
  PyObject* dict_name;
  PyObject* enabled_name;
  PyObject* weight_name;
  PyObject* bias_name;
  PyObject* pack_name;
};
CallContext* context = nullptr;

PyObject* interned(const char* name) {
  PyObject* s = PyUnicode_InternFromString(name);
  if (s == nullptr) throw py::error_already_set();
  return s;
}

// Linear.forward(*args, **kwargs): the Python path.
PyObject* call_forward(PyObject* self, PyObject* const* args, std::size_t nargsf,
                       PyObject* kwnames) {
  PyObject* forward = PyObject_GetAttr(self, context->forward_name);
  if (forward == nullptr) return nullptr;
  PyObject* result = PyObject_Vectorcall(forward, args, nargsf, kwnames);
  Py_DECREF(forward);
  return result;
}

// _grad_state.__dict__.get("enabled", True), as the Python side reads it.
bool grad_enabled() {
  PyObject* dict = PyObject_GetAttr(context->grad_state, context->dict_name);
  if (dict == nullptr) throw py::error_already_set();
  PyObject* value = PyDict_GetItemWithError(dict, context->enabled_name);  // borrowed
  int truth = 1;
  if (value != nullptr) {
    truth = PyObject_IsTrue(value);
  } else if (PyErr_Occurred()) {
    truth = -1;
  }
  Py_DECREF(dict);
  if (truth < 0) throw py::error_already_set();
  return truth != 0;
}

// The load counter: odd while a load_state_dict is writing parameters (see nn/module.py).
long load_epoch() {
  if (!PyList_Check(context->load_epoch) || PyList_GET_SIZE(context->load_epoch) < 1) {
    throw std::logic_error("lincore: the load counter is not a one-element list");
  }
  const long epoch = PyLong_AsLong(PyList_GET_ITEM(context->load_epoch, 0));
  if (epoch == -1 && PyErr_Occurred()) throw py::error_already_set();
  return epoch;
}

PyObject* linear_call(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  if (nargs != 1 || kwnames != nullptr || !PyObject_TypeCheck(args[0], context->tensor_type)) {
    return call_forward(self, args, static_cast<std::size_t>(nargs), kwnames);
  }
  PyObject** dict = _PyObject_GetDictPtr(self);
  if (dict == nullptr || *dict == nullptr) return call_forward(self, args, 1, nullptr);
  // Owned references: another thread may replace self.weight while this one computes without
  // the GIL.
  py::object w, b, pack;
  for (auto [name, slot] : {std::pair{context->weight_name, &w},
                            {context->bias_name, &b},
                            {context->pack_name, &pack}}) {
    PyObject* value = PyDict_GetItemWithError(*dict, name);  // borrowed
    if (value == nullptr) {
      return PyErr_Occurred() ? nullptr : call_forward(self, args, 1, nullptr);
    }
    *slot = py::reinterpret_borrow<py::object>(value);
  }
  try {
    const py::handle x(args[0]);
    const long epoch = load_epoch();
    if (epoch & 1) return call_forward(self, args, 1, nullptr);
    PackCache* cache = instance_of<PackCache>(pack);
    if (cache == nullptr) return call_forward(self, args, 1, nullptr);
    py::object y = grad_enabled() ? linear_forward_recorded(x, w, b, cache, context->nodes)
                                  : linear_forward(x, w, b, cache);
    // A load_state_dict overlapped the computation: Linear.forward computes again.
    if (load_epoch() != epoch) return call_forward(self, args, 1, nullptr);
    return y.release().ptr();
  } catch (...) {
    py::detail::try_translate_exceptions();  // pybind11's translators, lincore's included
    return nullptr;
  }
}

PyMethodDef linear_call_def = {
    "__call__", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&linear_call)),
    METH_FASTCALL | METH_KEYWORDS, "Call self as a function: self.forward(input)."};

}  // namespace

void register_linear_call(py::module_& m) {
  m.def(
      "make_linear_call",
      [](py::object grad_state, py::object load_epoch, py::tuple nodes) {
        // A second call (a reload of lincore.nn.linear) replaces the context; the old one is
        // leaked, as a call running without the GIL may still read it.
        context =
            new CallContext{grad_state.release().ptr(),
                            load_epoch.release().ptr(),
                            std::move(nodes),
                            reinterpret_cast<PyTypeObject*>(py::type::of<Tensor>().release().ptr()),
                            interned("forward"),
                            interned("__dict__"),
                            interned("enabled"),
                            interned("weight"),
                            interned("bias"),
                            interned("_pack")};
        // A method descriptor: when a class holds it, calling an instance passes the
        // instance as self with no bound-method object made (CPython's method-descriptor
        // fast path). Its owner type is object, so any instance passes its type check.
        PyObject* descriptor = PyDescr_NewMethod(&PyBaseObject_Type, &linear_call_def);
        if (descriptor == nullptr) throw py::error_already_set();
        return py::reinterpret_steal<py::object>(descriptor);
      },
      py::arg("grad_state"), py::arg("load_epoch"), py::arg("nodes"),
      "make_linear_call(grad_state, load_epoch, nodes)\n"
      "nn.Linear's __call__: the forward for one Tensor input, reading "
      "the grad mode from grad_state and the load counter from load_epoch; every other call "
      "goes to self.forward.");
}

}  // namespace lincore::bindings
