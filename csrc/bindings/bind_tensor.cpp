// Tensor: storage, shape, views and copies from C++; zero-copy exchange with the buffer protocol.
// Elementwise maths, printing and indexing sugar live in python/lincore/_tensor/.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <string>
#include <vector>

#include "bindings/bindings.h"
#include "bindings/record.h"
#include "tensor/errors.h"
#include "tensor/tensor.h"

namespace py = pybind11;

namespace lincore::bindings {
namespace {

const char* buffer_format(DType d) {
  switch (d) {
    case DType::float32:
      return "f";
    case DType::float64:
      return "d";
    case DType::int64:
      return "q";
    case DType::bool_:
      return "?";
  }
  return "B";
}

// What a Py_buffer handed out by a tensor points into; freed by releasebuffer.
struct ExportedView {
  std::shared_ptr<Storage> storage;
  std::vector<Py_ssize_t> shape, strides;
  bool counted = false;
};

// Our own getbuffer (instead of pybind11's def_buffer) so that we learn when a writable view
// is released: foreign writes through it must invalidate caches such as packed weights.
int tensor_getbuffer(PyObject* obj, Py_buffer* view, int flags) {
  const Tensor* t = nullptr;
  try {
    t = &py::handle(obj).cast<const Tensor&>();
  } catch (...) {
    PyErr_SetString(PyExc_BufferError, "not a lincore tensor");
    return -1;
  }
  const bool writable = t->writable();
  if ((flags & PyBUF_WRITABLE) && !writable) {
    PyErr_SetString(PyExc_BufferError, "the tensor is read-only (it borrows a read-only buffer)");
    return -1;
  }
  const bool c_contig = t->is_contiguous();
  const bool want_strides = (flags & PyBUF_STRIDES) == PyBUF_STRIDES;
  if ((!want_strides || (flags & PyBUF_C_CONTIGUOUS) == PyBUF_C_CONTIGUOUS ||
       (flags & PyBUF_ANY_CONTIGUOUS) == PyBUF_ANY_CONTIGUOUS) &&
      !c_contig) {
    PyErr_SetString(PyExc_BufferError,
                    "the tensor is not contiguous; call .contiguous() before exporting it");
    return -1;
  }
  if ((flags & PyBUF_F_CONTIGUOUS) == PyBUF_F_CONTIGUOUS && t->dim() > 1 && t->numel() > 1) {
    PyErr_SetString(PyExc_BufferError, "the tensor is not Fortran-contiguous");
    return -1;
  }
  auto* hold = new ExportedView;
  hold->storage = t->storage();
  const Py_ssize_t item = static_cast<Py_ssize_t>(itemsize(t->dtype()));
  for (std::int64_t d = 0; d < t->dim(); ++d) {
    hold->shape.push_back(static_cast<Py_ssize_t>(t->shape()[d]));
    hold->strides.push_back(static_cast<Py_ssize_t>(t->strides()[d]) * item);
  }
  view->obj = obj;
  Py_INCREF(obj);
  view->buf = t->raw_data();
  view->len = static_cast<Py_ssize_t>(t->numel()) * item;
  view->readonly = writable ? 0 : 1;
  view->itemsize = item;
  view->format = (flags & PyBUF_FORMAT) ? const_cast<char*>(buffer_format(t->dtype())) : nullptr;
  // Without PyBUF_ND the consumer gets no shape: then the memory is one run of len bytes, which
  // the buffer protocol states as ndim 1 with shape NULL (as CPython's array.array does). A
  // shape-less view with ndim > 1 sends memoryview (t.__buffer__(0) on 3.12+) through NULL.
  const bool want_shape = (flags & PyBUF_ND) == PyBUF_ND;
  view->ndim = want_shape ? static_cast<int>(t->dim()) : 1;
  view->shape = want_shape ? hold->shape.data() : nullptr;
  view->strides = want_strides ? hold->strides.data() : nullptr;
  view->suboffsets = nullptr;
  view->internal = hold;
  if (writable) {
    hold->storage->add_export();
    hold->counted = true;
  }
  return 0;
}

void tensor_releasebuffer(PyObject*, Py_buffer* view) {
  auto* hold = static_cast<ExportedView*>(view->internal);
  if (hold->counted) hold->storage->remove_export();
  delete hold;
}

// A borrowed Python buffer; released with the GIL held, from whichever thread drops the storage.
struct BorrowedBuffer {
  Py_buffer view;
  ~BorrowedBuffer() {
    py::gil_scoped_acquire gil;
    PyBuffer_Release(&view);
  }
};

DType dtype_from_format(const char* format, Py_ssize_t item) {
  std::string f = format ? format : "B";
  if (!f.empty() && (f[0] == '@' || f[0] == '=' || f[0] == '<')) f.erase(0, 1);
  if (!f.empty() && (f[0] == '>' || f[0] == '!')) {
    throw std::invalid_argument(
        "given numpy array has byte order different from the native byte order. Conversion "
        "between byte orders is currently not supported.");
  }
  if (f == "f" && item == 4) return DType::float32;
  if (f == "d" && item == 8) return DType::float64;
  if ((f == "q" || f == "l") && item == 8) return DType::int64;
  if (f == "?" && item == 1) return DType::bool_;
  throw type_error("can't convert a buffer of format '" + std::string(format ? format : "B") +
                   "'. The only supported types are: float64, float32, int64, and bool.");
}

// Zero-copy tensor over any buffer-protocol object (a numpy array): shares its memory.
Tensor from_buffer(const py::object& obj) {
  auto hold = std::make_shared<BorrowedBuffer>();
  if (PyObject_GetBuffer(obj.ptr(), &hold->view, PyBUF_RECORDS_RO) != 0) {
    // Keep the caller's error (e.g. not a buffer).
    std::memset(&hold->view, 0, sizeof hold->view);
    throw py::error_already_set();
  }
  const Py_buffer& v = hold->view;
  const DType dtype = dtype_from_format(v.format, v.itemsize);
  Shape shape, strides;
  for (int d = 0; d < v.ndim; ++d) {
    if (v.strides[d] % v.itemsize != 0) {
      throw std::invalid_argument(
          "given numpy array strides not a multiple of the element byte size. Copy the numpy "
          "array to reallocate the memory.");
    }
    shape.push_back(v.shape[d]);
    strides.push_back(v.strides[d] / v.itemsize);
  }
  if (reinterpret_cast<std::uintptr_t>(v.buf) % static_cast<std::uintptr_t>(v.itemsize) != 0) {
    throw std::invalid_argument("given numpy array is not aligned to its element size (" +
                                std::to_string(v.itemsize) + " bytes); copy it first");
  }
  auto storage = Storage::borrow(v.buf, static_cast<std::size_t>(v.len),
                                 std::shared_ptr<void>(hold, hold.get()), !v.readonly);
  return Tensor(std::move(storage), dtype, shape, strides, 0);
}

py::tuple to_tuple(const Shape& s) {
  py::tuple t(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) t[i] = py::int_(s[i]);
  return t;
}

}  // namespace

void register_tensor(py::module_& m) {
  // The buffer slots are set before PyType_Ready (custom_type_setup runs just before it), not
  // patched in afterwards: PyType_Ready wraps whatever bf_getbuffer holds then into the type's
  // __buffer__ (Python 3.12+, PEP 688), and a Python subclass (Parameter, a user's own) takes its
  // buffer slot from that wrapper. Patched later, subclasses kept pybind11's getbuffer, which has
  // no def_buffer to call and fails with "pybind11_getbuffer(): Internal error".
  py::class_<Tensor> cls(m, "Tensor", py::dynamic_attr(),
                         py::custom_type_setup([](PyHeapTypeObject* heap_type) {
                           heap_type->as_buffer.bf_getbuffer = &tensor_getbuffer;
                           heap_type->as_buffer.bf_releasebuffer = &tensor_releasebuffer;
                           heap_type->ht_type.tp_as_buffer = &heap_type->as_buffer;
                           add_autograd_fields(heap_type);
                         }));

  cls.def(py::init<const Tensor&>(), py::arg("other"),
          "Tensor(other) -> a new Tensor object sharing other's storage, shape and dtype")
      .def_property_readonly("_dtype_code",
                             [](const Tensor& t) { return static_cast<int>(t.dtype()); })
      .def_property_readonly("_shape", [](const Tensor& t) { return to_tuple(t.shape()); })
      .def_property_readonly("_strides", [](const Tensor& t) { return to_tuple(t.strides()); })
      .def_property_readonly("_storage_offset", &Tensor::offset)
      .def_property_readonly("_version", [](const Tensor& t) { return t.storage()->version(); })
      .def_property_readonly("_writable", &Tensor::writable)
      .def("dim", &Tensor::dim, "Number of dimensions")
      .def("numel", &Tensor::numel, "Number of elements")
      .def("is_contiguous", &Tensor::is_contiguous)
      .def("data_ptr",
           [](const Tensor& t) { return reinterpret_cast<std::uintptr_t>(t.raw_data()); })
      .def("contiguous", &Tensor::contiguous)
      .def("clone", &Tensor::clone)
      .def("_to", [](const Tensor& t, int code) { return t.to(static_cast<DType>(code)); })
      .def("_view", &Tensor::view)
      .def("_reshape", &Tensor::reshape)
      .def("transpose", &Tensor::transpose, py::arg("dim0"), py::arg("dim1"))
      .def("_select", &Tensor::select)
      .def("_slice", &Tensor::slice)
      .def("flatten", &Tensor::flatten, py::arg("start_dim") = 0, py::arg("end_dim") = -1)
      .def("_copy_from", &Tensor::copy_from)
      .def(
          "_bump_version", [](const Tensor& t) { t.storage()->bump_version(); },
          "Tells caches (packed weights) that the memory changed: for foreign memory whose "
          "owner reports its writes (_owner_reports_writes)")
      .def(
          "_owner_reports_writes", [](const Tensor& t) { t.storage()->owner_reports_writes(); },
          "Promises that every write by the owner of this borrowed memory is followed by "
          "_bump_version(), so that caches may trust the version")
      .def("_fill", &Tensor::fill)
      .def("_shares_storage",
           [](const Tensor& a, const Tensor& b) { return a.storage() == b.storage(); });

  m.def("_empty", [](const Shape& shape, int code) {
    return Tensor::empty(shape, static_cast<DType>(code));
  });
  m.def("_zeros", [](const Shape& shape, int code) {
    return Tensor::zeros(shape, static_cast<DType>(code));
  });
  m.def("_full", [](const Shape& shape, double value, int code) {
    return Tensor::full(shape, value, static_cast<DType>(code));
  });
  m.def("_from_buffer", &from_buffer, py::arg("obj"),
        "A tensor sharing the memory of a buffer-protocol object (no copy)");
}

}  // namespace lincore::bindings
