// Tensor: storage, shape, views and copies from C++; zero-copy exchange with the buffer protocol.
// Elementwise maths, printing and indexing sugar live in python/lincore/_tensor/.
#include <pybind11/numpy.h>
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
    case DType::bfloat16:  // no buffer format exists for it; getbuffer refuses these tensors
      break;
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
  if (t->dtype() == DType::bfloat16) {
    // The buffer protocol has no bfloat16 format, and exporting the bits as uint16 would let
    // numpy (np.asarray, memoryview) compute on bit patterns as if they were numbers. A
    // TypeError (numpy passes a BufferError on) sends numpy on to Tensor.__array__, which
    // hands out an ml_dtypes.bfloat16 array or says what to do (lincore/_bf16.py); lincore's
    // own code reads the bits through _bits().
    PyErr_SetString(PyExc_TypeError,
                    "a bfloat16 tensor has no buffer format: use t.float() for float32 values, "
                    "or t.numpy() (an ml_dtypes.bfloat16 array)");
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

// Zero-copy tensor over any buffer-protocol object (a numpy array): shares its memory. `code`,
// when not -1, is the dtype the memory holds, overriding its format when the item sizes agree:
// bfloat16 (4) from any 2-byte buffer (a uint16 view of an ml_dtypes.bfloat16 array).
Tensor from_buffer(const py::object& obj, int code) {
  auto hold = std::make_shared<BorrowedBuffer>();
  if (PyObject_GetBuffer(obj.ptr(), &hold->view, PyBUF_RECORDS_RO) != 0) {
    // Keep the caller's error (e.g. not a buffer).
    std::memset(&hold->view, 0, sizeof hold->view);
    throw py::error_already_set();
  }
  const Py_buffer& v = hold->view;
  DType dtype;
  if (code == static_cast<int>(DType::bfloat16) && v.itemsize == 2) {
    dtype = DType::bfloat16;
  } else if (code == -1) {
    dtype = dtype_from_format(v.format, v.itemsize);
  } else {
    throw std::invalid_argument("_from_buffer: the memory (item size " +
                                std::to_string(v.itemsize) + ") cannot hold dtype code " +
                                std::to_string(code));
  }
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

// The bits of a bfloat16 tensor as a numpy uint16 array over the same memory (its shape and
// strides), read-only when the tensor is or when `writable` is false (a reader: saving,
// printing). A writable one counts as an export of the storage, as a buffer view does: caches
// of the contents (a packed weight) stop trusting the version until the array is gone, and its
// release bumps the version.
py::array bf16_bits(const Tensor& t, bool writable) {
  if (t.dtype() != DType::bfloat16) {
    throw std::invalid_argument(std::string("_bits: expected a bfloat16 tensor, got ") +
                                dtype_name(t.dtype()));
  }
  struct Hold {
    std::shared_ptr<Storage> storage;
    bool counted;
  };
  writable = writable && t.writable();
  auto* hold = new Hold{t.storage(), writable};
  if (writable) hold->storage->add_export();
  py::capsule base(hold, [](void* p) {
    auto* h = static_cast<Hold*>(p);
    if (h->counted) h->storage->remove_export();
    delete h;
  });
  std::vector<py::ssize_t> shape, strides;
  for (std::int64_t d = 0; d < t.dim(); ++d) {
    shape.push_back(static_cast<py::ssize_t>(t.shape()[d]));
    strides.push_back(static_cast<py::ssize_t>(t.strides()[d]) * 2);
  }
  py::array out(py::dtype("uint16"), shape, strides, t.raw_data(), base);
  if (!writable) {
    py::detail::array_proxy(out.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
  }
  return out;
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
      .def("_bits", &bf16_bits, py::arg("writable") = true,
           "The bits of a bfloat16 tensor: a numpy uint16 array sharing its memory (read-only "
           "unless writable)")
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
  m.def("_from_buffer", &from_buffer, py::arg("obj"), py::arg("code") = -1,
        "A tensor sharing the memory of a buffer-protocol object (no copy); code: the dtype "
        "its items hold, when the format does not say (bfloat16 bits in a 2-byte buffer)");
}

}  // namespace lincore::bindings
