// DLPack in C: a lincore tensor to and from a "dltensor" capsule without a trip through Python
// (or numpy). The PyTorch drop-in hands every input and output across with these: torch's own
// C entry points (torch._C._to_dlpack / _from_dlpack) take a few hundred nanoseconds, where the
// Python-level __dlpack__ protocol costs microseconds, more than a small layer's whole call.
//
// The structures are the DLPack ABI (dmlc/dlpack, the unversioned DLManagedTensor that every
// framework still reads), written out here from the specification.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

#include "bindings/bindings.h"
#include "tensor/errors.h"
#include "tensor/tensor.h"

namespace py = pybind11;

namespace lincore::bindings {
namespace {

struct DLDevice {
  std::int32_t device_type;  // kDLCPU = 1
  std::int32_t device_id;
};
struct DLDataType {
  std::uint8_t code;  // kDLInt 0, kDLUInt 1, kDLFloat 2, kDLBool 6
  std::uint8_t bits;
  std::uint16_t lanes;
};
struct DLTensor {
  void* data;
  DLDevice device;
  std::int32_t ndim;
  DLDataType dtype;
  std::int64_t* shape;
  std::int64_t* strides;  // in elements; NULL: compact row-major
  std::uint64_t byte_offset;
};
struct DLManagedTensor {
  DLTensor dl_tensor;
  void* manager_ctx;
  void (*deleter)(DLManagedTensor* self);
};

constexpr std::int32_t kDLCPU = 1;
constexpr const char* kCapsuleName = "dltensor";
constexpr const char* kUsedCapsuleName = "used_dltensor";

DLDataType dl_dtype(DType d) {
  switch (d) {
    case DType::float32:
      return {2, 32, 1};
    case DType::float64:
      return {2, 64, 1};
    case DType::int64:
      return {0, 64, 1};
    case DType::bool_:
      return {6, 8, 1};
    case DType::bfloat16:
      return {4, 16, 1};  // kDLBfloat
  }
  throw std::logic_error("dl_dtype: unknown dtype");
}

DType lincore_dtype(DLDataType t) {
  if (t.lanes == 1) {
    if (t.code == 2 && t.bits == 32) return DType::float32;
    if (t.code == 2 && t.bits == 64) return DType::float64;
    if (t.code == 0 && t.bits == 64) return DType::int64;
    if (t.code == 6 && t.bits == 8) return DType::bool_;
    if (t.code == 4 && t.bits == 16) return DType::bfloat16;
  }
  throw type_error("from_dlpack: lincore has no dtype for DLPack type (code " +
                   std::to_string(t.code) + ", bits " + std::to_string(t.bits) + ", lanes " +
                   std::to_string(t.lanes) +
                   ") (supported: float32, float64, int64, bool and bfloat16)");
}

// An export: the managed tensor, and the storage and shape arrays it points into. Counted as a
// writable view handed out (Storage::add_export): the consumer may write through it.
struct Export {
  DLManagedTensor managed{};
  std::shared_ptr<Storage> storage;
  Shape shape, strides;
};

void delete_export(DLManagedTensor* self) {
  auto* e = static_cast<Export*>(self->manager_ctx);
  e->storage->remove_export();
  delete e;
}

// A capsule nobody consumed frees its tensor; a consumed one was renamed and is the consumer's.
void capsule_destructor(PyObject* capsule) {
  if (PyCapsule_IsValid(capsule, kCapsuleName)) {
    auto* m = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(capsule, kCapsuleName));
    if (m != nullptr && m->deleter != nullptr) m->deleter(m);
  }
}

}  // namespace

bool dlpack_holds(PyObject* capsule, DType dtype) {
  if (!PyCapsule_IsValid(capsule, kCapsuleName)) return false;
  auto* m = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(capsule, kCapsuleName));
  const DLDataType want = dl_dtype(dtype);
  const DLDataType got = m->dl_tensor.dtype;
  return m->dl_tensor.device.device_type == kDLCPU && got.code == want.code &&
         got.bits == want.bits && got.lanes == want.lanes;
}

py::object dlpack_of(const Tensor& t) {
  auto e = std::make_unique<Export>();
  e->storage = t.storage();
  e->shape = t.shape();
  e->strides = t.strides();
  DLTensor& dl = e->managed.dl_tensor;
  dl.data = t.raw_data();
  dl.device = {kDLCPU, 0};
  dl.ndim = static_cast<std::int32_t>(t.dim());
  dl.dtype = dl_dtype(t.dtype());
  dl.shape = e->shape.data();
  dl.strides = e->strides.data();
  dl.byte_offset = 0;
  e->managed.manager_ctx = e.get();
  e->managed.deleter = &delete_export;
  PyObject* capsule = PyCapsule_New(&e->managed, kCapsuleName, &capsule_destructor);
  if (capsule == nullptr) throw py::error_already_set();
  e->storage->add_export();
  e.release();  // the capsule (then its consumer) owns it now
  return py::reinterpret_steal<py::object>(capsule);
}

Tensor tensor_from_dlpack(PyObject* capsule) {
  if (!PyCapsule_IsValid(capsule, kCapsuleName)) {
    throw std::invalid_argument(
        "from_dlpack: expected an unconsumed DLPack capsule named 'dltensor' (a capsule can be "
        "consumed only once)");
  }
  auto* m = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(capsule, kCapsuleName));
  const DLTensor& dl = m->dl_tensor;
  if (dl.device.device_type != kDLCPU) {
    throw std::invalid_argument(
        "from_dlpack: lincore tensors live in host memory; got a tensor "
        "on DLPack device type " +
        std::to_string(dl.device.device_type));
  }
  const DType dtype = lincore_dtype(dl.dtype);
  const auto item = static_cast<std::int64_t>(itemsize(dtype));
  if (dl.ndim < 0 || (dl.ndim > 0 && dl.shape == nullptr)) {
    throw std::invalid_argument("from_dlpack: malformed DLPack tensor (ndim " +
                                std::to_string(dl.ndim) + ")");
  }
  Shape shape(dl.shape, dl.shape + dl.ndim), strides(static_cast<std::size_t>(dl.ndim));
  // The span of elements the view reaches, for the borrowed storage's size.
  std::int64_t lo = 0, hi = 0, numel = 1;
  for (std::int32_t d = dl.ndim - 1, compact = 1; d >= 0; --d) {
    if (shape[d] < 0) throw std::invalid_argument("from_dlpack: negative dimension");
    strides[d] = dl.strides != nullptr ? dl.strides[d] : compact;
    compact *= shape[d];
    numel *= shape[d];
    if (shape[d] > 1) (strides[d] < 0 ? lo : hi) += strides[d] * (shape[d] - 1);
  }
  char* base = static_cast<char*>(dl.data) + dl.byte_offset;
  if (numel > 0 && reinterpret_cast<std::uintptr_t>(base) % static_cast<std::uintptr_t>(item)) {
    throw std::invalid_argument("from_dlpack: the data is not aligned to its element size");
  }
  if (lo < 0) {
    throw std::invalid_argument("from_dlpack: negative strides are not supported");
  }
  const std::size_t nbytes = numel == 0 ? 0 : static_cast<std::size_t>((hi + 1) * item);
  // The managed tensor stays alive as long as any lincore view of it; its deleter runs when
  // the last goes (torch's deleter takes the GIL itself where it needs it).
  // Consumed from here on: the capsule's destructor leaves the tensor to us.
  if (PyCapsule_SetName(capsule, kUsedCapsuleName) != 0) throw py::error_already_set();
  std::shared_ptr<void> owner(m, [](void* p) {
    auto* mt = static_cast<DLManagedTensor*>(p);
    if (mt->deleter != nullptr) mt->deleter(mt);
  });
  auto storage = Storage::borrow(base, nbytes, std::move(owner), /*writable=*/true);
  return Tensor(std::move(storage), dtype, std::move(shape), std::move(strides), 0);
}

void register_dlpack(py::module_& m) {
  m.def("_to_dlpack", &dlpack_of, py::arg("tensor"),
        "_to_dlpack(tensor)\nA 'dltensor' capsule sharing the tensor's memory, for a consumer's "
        "from_dlpack (torch._C._from_dlpack).");
  m.def(
      "_from_dlpack", [](const py::capsule& c) { return tensor_from_dlpack(c.ptr()); },
      py::arg("capsule"),
      "_from_dlpack(capsule)\nA tensor sharing the memory of an unconsumed 'dltensor' capsule "
      "(torch._C._to_dlpack's), which it consumes.");
}

}  // namespace lincore::bindings
