// nn.Linear's state and forward in C. Its Python class (lincore/nn/linear.py) derives from
// LinearBase, which holds the weight and bias Parameters and the pack cache as typed fields
// (Module.__setattr__ stores weight and bias into them through their member descriptors, which
// are also how Python reads them), and provides:
// - __call__, a C-level method: a 1x3->2 Linear costs about a microsecond, and a Python frame,
//   attribute reads and pybind11's argument parsing were half of it. It takes the common call,
//   one lincore Tensor and no keywords; every other call (a numpy array or list, keywords) goes
//   to self.forward, which converts the input and comes back here through _forward.
// - _forward(x): the layer's forward, linear_apply under the load rule (load_guard.h).
#include "bindings/linear_call.h"

#include <pybind11/pybind11.h>
#include <structmember.h>

#include <memory>
#include <new>
#include <stdexcept>
#include <string>

#include "bindings/bindings.h"
#include "bindings/grad_mode.h"
#include "bindings/load_guard.h"
#include "bindings/record.h"

namespace py = pybind11;

namespace lincore::bindings {
namespace {

// The node classes of F.linear's output, [has bias][dims], registered once by
// lincore/nn/functional.py; kept for the life of the process.
PyObject* linear_nodes = nullptr;

}  // namespace

py::object linear_apply(py::handle x_obj, py::handle w_obj, py::handle b_obj, PackCache* cache) {
  const Tensor& x = tensor_arg(x_obj, "linear", "input");
  const Tensor& w = tensor_arg(w_obj, "linear", "weight");
  const Tensor* b = b_obj.is_none() ? nullptr : &tensor_arg(b_obj, "linear", "bias");
  begin_computation();
  const bool record =
      grad_enabled() && (requires_grad(w_obj) || requires_grad(x_obj) || requires_grad(b_obj));
  // Refused before any work; a mix of dtypes gets linear()'s mismatch error instead.
  if (record && x.dtype() == DType::bfloat16 && w.dtype() == DType::bfloat16) {
    throw std::runtime_error(kBf16InferenceOnly);
  }
  py::object y = py::cast(without_gil([&] { return linear(x, w, b, Epilogue{}, cache); }));
  if (record) {
    if (linear_nodes == nullptr) throw std::logic_error("lincore: linear nodes not registered");
    const py::tuple by_dims = py::handle(linear_nodes)[py::int_(b == nullptr ? 0 : 1)];
    const py::handle node_class = by_dims[node_index_by_dims(x.dim())];
    set_grad_fn(y, node_class(x_obj, w_obj, b_obj));
  }
  return y;
}

namespace {

struct LinearObject {
  PyObject ob_base;                 // PyObject_HEAD, spelled out
  PyObject* weight;                 // NULL until set (and after del), then a Parameter
  PyObject* bias;                   // a Parameter or None
  std::shared_ptr<PackCache> pack;  // the packed weight, rebuilt whenever weight or bias change
};

PyTypeObject linear_base_type = {PyVarObject_HEAD_INIT(nullptr, 0)};
PyTypeObject* tensor_type = nullptr;
PyObject* forward_name = nullptr;

PyObject* linear_new(PyTypeObject* type, PyObject*, PyObject*) {
  PyObject* self = type->tp_alloc(type, 0);
  if (self == nullptr) return nullptr;
  auto* l = reinterpret_cast<LinearObject*>(self);
  new (&l->pack) std::shared_ptr<PackCache>();
  try {
    l->pack = std::make_shared<PackCache>();
  } catch (const std::bad_alloc&) {
    Py_DECREF(self);
    return PyErr_NoMemory();
  }
  return self;
}

int linear_clear(PyObject* self) {
  auto* l = reinterpret_cast<LinearObject*>(self);
  Py_CLEAR(l->weight);
  Py_CLEAR(l->bias);
  return 0;
}

void linear_dealloc(PyObject* self) {
  PyObject_GC_UnTrack(self);
  linear_clear(self);
  reinterpret_cast<LinearObject*>(self)->pack.~shared_ptr();
  Py_TYPE(self)->tp_free(self);
}

int linear_traverse(PyObject* self, visitproc visit, void* arg) {
  auto* l = reinterpret_cast<LinearObject*>(self);
  Py_VISIT(l->weight);
  Py_VISIT(l->bias);
  return 0;
}

// The layer's forward: linear_apply on the current fields (owned references: another thread
// may replace self.weight while this one computes without the GIL), from one set of weights.
py::object layer_forward(PyObject* self, py::handle x) {
  auto* l = reinterpret_cast<LinearObject*>(self);
  return consistent([&] {
    for (auto [field, name] : {std::pair{l->weight, "weight"}, {l->bias, "bias"}}) {
      if (field == nullptr) {
        throw py::attribute_error("'" + std::string(Py_TYPE(self)->tp_name) +
                                  "' object has no attribute '" + name + "'");
      }
    }
    const py::object w = py::reinterpret_borrow<py::object>(l->weight);
    const py::object b = py::reinterpret_borrow<py::object>(l->bias);
    return linear_apply(x, w, b, l->pack.get());
  });
}

PyObject* linear_forward_method(PyObject* self, PyObject* x) {
  try {
    return layer_forward(self, x).release().ptr();
  } catch (...) {
    py::detail::try_translate_exceptions();  // pybind11's translators, lincore's included
    return nullptr;
  }
}

PyObject* linear_call(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  if (nargs == 1 && kwnames == nullptr && PyObject_TypeCheck(args[0], tensor_type)) {
    return linear_forward_method(self, args[0]);
  }
  // self.forward(*args, **kwargs): the Python path.
  PyObject* forward = PyObject_GetAttr(self, forward_name);
  if (forward == nullptr) return nullptr;
  PyObject* result = PyObject_Vectorcall(forward, args, static_cast<std::size_t>(nargs), kwnames);
  Py_DECREF(forward);
  return result;
}

PyObject* get_pack(PyObject* self, void*) {
  try {
    return py::cast(reinterpret_cast<LinearObject*>(self)->pack).release().ptr();
  } catch (...) {
    py::detail::try_translate_exceptions();
    return nullptr;
  }
}

PyMemberDef linear_members[] = {
    {"weight", T_OBJECT_EX, offsetof(LinearObject, weight), 0, "The weight Parameter."},
    {"bias", T_OBJECT_EX, offsetof(LinearObject, bias), 0, "The bias Parameter, or None."},
    {nullptr, 0, 0, 0, nullptr}};

PyGetSetDef linear_getset[] = {
    {"_pack", get_pack, nullptr, "The pack cache (a PackCache) of this layer's weight.", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr}};

PyMethodDef linear_methods[] = {
    {"__call__", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&linear_call)),
     METH_FASTCALL | METH_KEYWORDS, "Call self as a function: self.forward(input)."},
    {"_forward", &linear_forward_method, METH_O,
     "_forward(input)\nThe forward on a lincore Tensor input."},
    {nullptr, nullptr, 0, nullptr}};

}  // namespace

void register_linear_call(py::module_& m) {
  tensor_type = reinterpret_cast<PyTypeObject*>(py::type::of<Tensor>().ptr());
  forward_name = PyUnicode_InternFromString("forward");
  if (forward_name == nullptr) throw py::error_already_set();

  PyTypeObject& t = linear_base_type;
  t.tp_name = "lincore._core.LinearBase";
  t.tp_doc =
      "The C part of lincore.nn.Linear: its weight, bias and pack cache, its __call__ and "
      "_forward.";
  t.tp_basicsize = sizeof(LinearObject);
  t.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC;
  t.tp_new = linear_new;
  t.tp_dealloc = linear_dealloc;
  t.tp_traverse = linear_traverse;
  t.tp_clear = linear_clear;
  t.tp_members = linear_members;
  t.tp_getset = linear_getset;
  t.tp_methods = linear_methods;
  if (PyType_Ready(&t) < 0) throw py::error_already_set();
  m.attr("LinearBase") = py::handle(reinterpret_cast<PyObject*>(&t));

  m.def(
      "linear_forward",
      [](py::handle x, py::handle weight, py::handle bias) {
        return linear_apply(x, weight, bias, nullptr);
      },
      py::arg("x"), py::arg("weight"), py::arg("bias"),
      "linear_forward(x, weight, bias)\nF.linear: x @ weight.T + bias (bias may be None), "
      "recorded in the graph under grad mode when an input requires grad; a TypeError names "
      "the argument that is not a Tensor");
  m.def(
      "set_linear_nodes",
      [](const py::tuple& nodes) {
        if (nodes.size() != 2 || py::len(nodes[0]) != 3 || py::len(nodes[1]) != 3) {
          throw std::invalid_argument(
              "set_linear_nodes: expected node classes [has bias][dims 1, 2, 3+]");
        }
        // A second call (a reload of lincore.nn.functional) replaces the classes; the old ones
        // are leaked, as a call running without the GIL may still hold them.
        linear_nodes = nodes.inc_ref().ptr();
      },
      py::arg("nodes"),
      "set_linear_nodes(nodes)\nRegisters the node classes of F.linear's output, nested as "
      "LINEAR_NODE_NAMES.");
}

}  // namespace lincore::bindings
