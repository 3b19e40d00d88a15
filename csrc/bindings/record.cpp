#include "bindings/record.h"

#include <structmember.h>

#include <cstddef>
#include <stdexcept>

namespace py = pybind11;

namespace lincore::bindings {
namespace {

PyTypeObject* tensor_type = nullptr;
Py_ssize_t fields_offset = 0;

AutogradFields* fields_at(PyObject* t) {
  return reinterpret_cast<AutogradFields*>(reinterpret_cast<char*>(t) + fields_offset);
}

void clear_fields(PyObject* self) {
  AutogradFields* f = fields_at(self);
  Py_CLEAR(f->grad_fn);
  Py_CLEAR(f->grad);
  Py_CLEAR(f->accumulate);
}

// pybind11's slots, with the fields' references added: a node saves tensors that may hold it
// (a cycle the collector must see), and a dead tensor drops its graph.
void tensor_dealloc(PyObject* self) {
  PyObject_GC_UnTrack(self);
  clear_fields(self);
  py::detail::pybind11_object_dealloc(self);
}

int tensor_traverse(PyObject* self, visitproc visit, void* arg) {
  AutogradFields* f = fields_at(self);
  Py_VISIT(f->grad_fn);
  Py_VISIT(f->grad);
  Py_VISIT(f->accumulate);
  return py::detail::pybind11_traverse(self, visit, arg);
}

int tensor_clear(PyObject* self) {
  clear_fields(self);
  return py::detail::pybind11_clear(self);
}

PyMemberDef members[6] = {};

}  // namespace

void add_autograd_fields(PyHeapTypeObject* heap_type) {
  PyTypeObject* type = &heap_type->ht_type;
  tensor_type = type;
  fields_offset = type->tp_basicsize;
  type->tp_basicsize += static_cast<Py_ssize_t>(sizeof(AutogradFields));
  type->tp_dealloc = tensor_dealloc;
  type->tp_traverse = tensor_traverse;
  type->tp_clear = tensor_clear;
  const auto at = [](std::size_t field) { return fields_offset + static_cast<Py_ssize_t>(field); };
  // grad_fn is read-only, as PyTorch's; the recording code writes _grad_fn.
  members[0] = {"grad_fn", T_OBJECT, at(offsetof(AutogradFields, grad_fn)), READONLY,
                "The node of the recorded op that made this tensor; None for a leaf."};
  members[1] = {"_grad_fn", T_OBJECT, at(offsetof(AutogradFields, grad_fn)), 0, nullptr};
  members[2] = {"_grad", T_OBJECT, at(offsetof(AutogradFields, grad)), 0, nullptr};
  members[3] = {"_accumulate", T_OBJECT, at(offsetof(AutogradFields, accumulate)), 0, nullptr};
  members[4] = {"_requires_grad", T_BOOL, at(offsetof(AutogradFields, requires_grad)), 0, nullptr};
  type->tp_members = members;
}

AutogradFields* autograd_fields(py::handle t) {
  PyObject* p = t.ptr();
  return PyObject_TypeCheck(p, tensor_type) ? fields_at(p) : nullptr;
}

void set_grad_fn(py::handle y, const py::object& node) {
  AutogradFields* f = autograd_fields(y);
  if (f == nullptr) throw std::logic_error("set_grad_fn: the output is not a lincore Tensor");
  PyObject* old = f->grad_fn;
  f->grad_fn = node.inc_ref().ptr();
  Py_XDECREF(old);
  f->requires_grad = 1;
}

}  // namespace lincore::bindings
