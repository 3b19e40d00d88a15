// One registration function per binding file.
#pragma once

#include <pybind11/pybind11.h>

#include "nn/sequential.h"
#include "runtime/interrupt.h"
#include "tensor/tensor.h"

namespace lincore::bindings {

void register_tensor(pybind11::module_& m);
void register_nn(pybind11::module_& m);
void register_runtime(pybind11::module_& m);
void register_linear_call(pybind11::module_& m);
void register_grad_mode(pybind11::module_& m);
void register_load_guard(pybind11::module_& m);
void register_layers(pybind11::module_& m);  // softmax, layer_norm, dropout (bind_layers.cpp)
void register_quant(pybind11::module_& m);   // int8 quantized Linear (bind_quant.cpp)
// The bf16 kernel levels and their test entries (bind_bf16.cpp).
void register_bf16_kernels(pybind11::module_& m);
void register_dlpack(pybind11::module_& m);
void register_dropin(pybind11::module_& m);
void register_classify(pybind11::module_& m);  // lincore.onnx's classifier run (classify.cpp)

// Chains a SIGINT handler in front of the current one (Python's), so that Ctrl-C also asks a
// running computation to stop (runtime/interrupt.h). POSIX only; elsewhere a no-op.
void install_interrupt_handler();

// f() run with the GIL released, its result built in place: assigning into a default-constructed
// Tensor instead would allocate one more tensor per call.
template <class F>
auto without_gil(F&& f) -> decltype(f()) {
  pybind11::gil_scoped_release nogil;
  return f();
}

// The T that h holds (h's type is T's bound class or a subclass of it), else nullptr: h.cast<T>()
// without its lookup of T's type record, which hashes T's C++ name on every call (a tenth of a
// small Linear's binding cost).
template <class T>
T* instance_of(pybind11::handle h) {
  static const pybind11::detail::type_info* const type =
      pybind11::detail::get_type_info(typeid(T), /*throw_if_missing=*/true);
  pybind11::detail::type_caster_generic caster(type);
  return caster.load(h, /*convert=*/false) ? static_cast<T*>(caster.value) : nullptr;
}

// The Tensor a binding took as a Python object (to record it in the graph); a TypeError naming
// `fn`'s argument `name` when h is not one.
const Tensor& tensor_arg(pybind11::handle h, const char* fn, const char* name);

// A compiled native run as Python holds it (_core.SequentialPlan): the C++ stack, the Linear
// parameters in step order ((weight, bias) per Linear, None for no bias) and the node classes of
// its output by dims 1, 2, 3+.
struct Plan {
  Sequential stack;
  pybind11::list params;
  pybind11::tuple nodes;
};

// DLPack in C (dlpack.cpp): a tensor sharing the memory of an unconsumed "dltensor" capsule,
// which it consumes; and a new capsule sharing a tensor's memory.
Tensor tensor_from_dlpack(PyObject* capsule);
pybind11::object dlpack_of(const Tensor& t);
// Whether an unconsumed capsule holds host memory of this dtype.
bool dlpack_holds(PyObject* capsule, DType dtype);

// A SequentialPlan's call (its __call__): plan's forward of the Tensor x, from one set of
// weights, recorded under grad mode (bind_nn.cpp).
pybind11::object plan_call(const pybind11::object& plan, pybind11::handle x);

// Starts a computation called from Python: an interrupt requested before it began belongs to
// Python code that has already seen it.
inline void begin_computation() { clear_interrupt(); }

}  // namespace lincore::bindings
