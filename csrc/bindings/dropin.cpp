// What lincore.optimize's runs (python/lincore/_dropin/run.py) check on every call, in C.
#include <pybind11/pybind11.h>

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

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
  kDType,         // the run's dtype code (csrc/tensor/dtype.h); None: no parameters, either float
  kTensorType,    // torch.Tensor: the input's exact type
  kToDlpack,      // torch._C._to_dlpack
  kFromDlpack,    // torch._C._from_dlpack
  kGradEnabled,   // torch.is_grad_enabled
  kTorchThreads,  // torch.get_num_threads
  kFunctorch,     // torch._C._are_functorch_transforms_active
  kParams,        // the run's torch parameters, in the plan's order (those present)
  kApply,         // torch's C Function.apply bound to _RunFunction; None: inference only (int8)
  kModules,       // the run's torch modules (what a differentiable backward recomputes)
  kFastFields
};

PyObject* field_of(PyObject* fast, Fast i) { return PyTuple_GET_ITEM(fast, i); }  // borrowed

void check_fast(PyObject* fast, const char* fn) {
  if (!PyTuple_Check(fast) || PyTuple_GET_SIZE(fast) != kFastFields) {
    throw py::type_error(std::string(fn) + ": fast is a run's tuple of its fields");
  }
}

// Whether a torch tensor requires grad (its requires_grad getter).
bool torch_requires_grad(PyObject* t) {
  static PyObject* const name = PyUnicode_InternFromString("requires_grad");
  PyObject* flag = PyObject_GetAttr(t, name);
  if (flag == nullptr) throw py::error_already_set();
  const bool on = flag == Py_True;
  Py_DECREF(flag);
  return on;
}

// torch tensor x's DLPack capsule, or nothing when it is not host memory of the run's dtype
// (either float dtype for a run without parameters) or torch cannot export it (sparse, ...): the
// Python path then says what runs it.
py::object capsule_of(PyObject* fast, PyObject* x) {
  PyObject* capsule = PyObject_Vectorcall(field_of(fast, kToDlpack), &x, 1, nullptr);
  if (capsule == nullptr) {
    PyErr_Clear();
    return py::object();
  }
  py::object held = py::reinterpret_steal<py::object>(capsule);
  PyObject* code = field_of(fast, kDType);
  const bool fits =
      code == Py_None
          ? dlpack_holds(capsule, DType::float32) || dlpack_holds(capsule, DType::float64)
          : dlpack_holds(capsule, static_cast<DType>(PyLong_AsLong(code)));
  return fits ? held : py::object();
}

// A lincore result as a torch tensor (no copy).
PyObject* torch_of(PyObject* fast, const py::object& capsule) {
  PyObject* arg = capsule.ptr();
  return PyObject_Vectorcall(field_of(fast, kFromDlpack), &arg, 1, nullptr);
}

// lincore's pool follows torch's intra-op thread count (unless set explicitly).
void follow_torch_threads(PyObject* fast) {
  follow_num_threads(static_cast<int>(int_of(PyObject_CallNoArgs(field_of(fast, kTorchThreads)))));
}

const Plan& plan_of(PyObject* fast) {
  const Plan* plan = instance_of<Plan>(field_of(fast, kPlan));
  if (plan == nullptr) throw std::invalid_argument("_dropin_forward: bad plan");
  return *plan;
}

// A run's whole call, in C: the checks of FusedRun.__call__, then under torch.no_grad (or when
// nothing requires grad) the input through DLPack, the plan's forward and the output back, with
// no Python frame and no lincore Tensor object in between; when autograd must record it, torch's
// C Function.apply of _RunFunction, whose forward is record_forward below. NotImplemented where
// the call needs more than that (a functorch transform, a hook, another type, device or dtype, a
// parameter replaced or moved): the Python path then decides.
PyObject* run_forward(PyObject* fast, PyObject* x) {
  check_fast(fast, "_dropin_forward(fast, x)");
  if (reinterpret_cast<PyObject*>(Py_TYPE(x)) != field_of(fast, kTensorType)) {
    Py_RETURN_NOTIMPLEMENTED;
  }
  PyObject* hooks = field_of(fast, kHookDicts);
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(hooks); ++i) {
    if (PyDict_GET_SIZE(PyList_GET_ITEM(hooks, i)) != 0) Py_RETURN_NOTIMPLEMENTED;
  }
  PyObject* transforms = PyObject_CallNoArgs(field_of(fast, kFunctorch));  // vmap, grad: torch's
  if (transforms == nullptr) throw py::error_already_set();
  const bool plain = transforms == Py_False;
  Py_DECREF(transforms);
  if (!plain) Py_RETURN_NOTIMPLEMENTED;
  if (!params_current(field_of(fast, kState))) Py_RETURN_NOTIMPLEMENTED;
  PyObject* grad = PyObject_CallNoArgs(field_of(fast, kGradEnabled));
  if (grad == nullptr) throw py::error_already_set();
  const bool grad_on = grad == Py_True;
  Py_DECREF(grad);
  // Under grad mode, when x or a parameter requires grad, the call is recorded: apply(fast,
  // capsule, x, *params), torch's C Function.apply of _RunFunction. (Its Python wrapper would
  // also unwrap a dead functorch wrapper; such an x has no storage to export, so capsule_of
  // refuses it and torch's modules run it.)
  PyObject* params = field_of(fast, kParams);
  PyObject* apply = field_of(fast, kApply);
  bool record = false, x_grad = false;
  if (grad_on) {
    x_grad = torch_requires_grad(x);
    record = x_grad;
    for (Py_ssize_t i = 0; !record && i < PyList_GET_SIZE(params); ++i) {
      record = torch_requires_grad(PyList_GET_ITEM(params, i));
    }
    record = record && apply != Py_None;
  }
  const py::object capsule = capsule_of(fast, x);
  if (!capsule) Py_RETURN_NOTIMPLEMENTED;
  if (x_grad && apply == Py_None) {  // a quantized run: its int8 copies are not the parameters
    throw std::runtime_error(
        "lincore.optimize(quantize='int8'): a quantized run is inference-only and its input "
        "requires grad; call it under torch.no_grad() or on an input that does not require "
        "grad");
  }
  follow_torch_threads(fast);
  if (record) {
    const std::size_t n = static_cast<std::size_t>(PyList_GET_SIZE(params)) + 3;
    PyObject* small[16];  // no heap allocation for runs of up to 13 parameters
    std::vector<PyObject*> large(n > 16 ? n : 0);
    PyObject** args = n > 16 ? large.data() : small;
    args[0] = fast;
    args[1] = capsule.ptr();
    args[2] = x;
    for (std::size_t i = 3; i < n; ++i) {
      args[i] = PyList_GET_ITEM(params, static_cast<Py_ssize_t>(i - 3));
    }
    return PyObject_Vectorcall(apply, args, n, nullptr);
  }
  // Nothing to record (a quantized run's output records no gradient either).
  const Tensor input = tensor_from_dlpack(capsule.ptr());
  const Plan& plan = plan_of(fast);
  py::object out = consistent([&] {
    begin_computation();
    return dlpack_of(without_gil([&] { return plan.stack.forward(input); }));
  });
  return torch_of(fast, out);
}

// What a recorded call keeps for its backward (in a capsule on ctx.lincore): the run's fast
// tuple (its plan, torch's DLPack entry points), the tape, whether each of the plan's parameters
// (None where a Linear has no bias) requires grad, and the torch tensors the tape reads (x, then
// the parameters) with their version counters then (the parameters' as the call's check just
// read them): one written in place before backward is
// torch's error, as for torch's own Linear, which saves its input and weight, not a wrong
// gradient. (torch's ctx.save_for_backward would check the same for half a microsecond more.)
struct Recorded {
  py::object fast;
  Tape tape;
  std::vector<bool> need;
  std::vector<py::object> read;
  long long x_version = 0;
  py::object param_versions;  // a copy of the run's state list of them (params_current's)
};
constexpr const char* kRecordedName = "lincore.dropin.Recorded";

void free_recorded(PyObject* capsule) {
  delete static_cast<Recorded*>(PyCapsule_GetPointer(capsule, kRecordedName));
}

// A torch tensor's version counter (torch's own _version getter, from the run's state).
long long version_of(PyObject* fast, PyObject* t) {
  PyObject* getter = item(field_of(fast, kState), 4, "state");
  descrgetfunc get = Py_TYPE(getter)->tp_descr_get;
  if (get == nullptr) throw std::invalid_argument("_dropin_record: bad version getter");
  return int_of(get(getter, t, reinterpret_cast<PyObject*>(Py_TYPE(t))));
}

// _RunFunction.forward(ctx, fast, capsule, x, *params), called by torch's Function.apply with
// torch's grad mode off: the plan's recorded forward (its tape) of x, through capsule (x's DLPack
// capsule, checked by the caller), the output back; ctx.lincore keeps the Recorded.
PyObject* record_forward(PyObject* const* args, Py_ssize_t nargs) {
  static PyObject* const lincore_name = PyUnicode_InternFromString("lincore");
  static PyObject* const needs_input_grad_name = PyUnicode_InternFromString("needs_input_grad");
  if (nargs < 4) throw py::type_error("_dropin_record(ctx, fast, capsule, x, *params)");
  PyObject* ctx = args[0];
  PyObject* fast = args[1];
  check_fast(fast, "_dropin_record(ctx, fast, capsule, x, *params)");
  const Plan& plan = plan_of(fast);
  const Tensor input = tensor_from_dlpack(args[2]);
  auto recorded = std::make_unique<Recorded>();
  recorded->fast = py::reinterpret_borrow<py::object>(fast);
  // Which inputs require grad, as torch's apply found them (one flag per argument after ctx).
  const py::object needs =
      py::reinterpret_steal<py::object>(PyObject_GetAttr(ctx, needs_input_grad_name));
  if (!needs) throw py::error_already_set();
  if (!PyTuple_Check(needs.ptr()) || PyTuple_GET_SIZE(needs.ptr()) != nargs - 1) {
    throw py::type_error("_dropin_record: ctx.needs_input_grad does not match the arguments");
  }
  recorded->need.reserve(plan.params.size());
  Py_ssize_t next = 4;
  for (const py::handle p : plan.params) {
    bool on = false;
    if (!p.is_none()) {
      if (next >= nargs) throw py::type_error("_dropin_record: too few parameters");
      on = PyTuple_GET_ITEM(needs.ptr(), next++ - 1) == Py_True;
    }
    recorded->need.push_back(on);
  }
  if (next != nargs) throw py::type_error("_dropin_record: too many parameters");
  recorded->read.reserve(static_cast<std::size_t>(nargs - 3));
  for (Py_ssize_t i = 3; i < nargs; ++i) {
    recorded->read.push_back(py::reinterpret_borrow<py::object>(args[i]));
  }
  recorded->x_version = version_of(fast, args[3]);
  PyObject* versions = item(field_of(fast, kState), 1, "state");
  recorded->param_versions =
      py::reinterpret_steal<py::object>(PyList_GetSlice(versions, 0, PY_SSIZE_T_MAX));
  if (!recorded->param_versions) throw py::error_already_set();
  if (PyList_GET_SIZE(versions) != nargs - 4) {
    throw py::type_error("_dropin_record: the parameters are not the run's");
  }
  Tape& tape = recorded->tape;
  py::object out = consistent([&] {
    begin_computation();
    tape.entries.clear();  // a rerun (a load overlapped) records afresh
    return dlpack_of(without_gil([&] { return plan.stack.forward_train(input, tape); }));
  });
  PyObject* capsule = PyCapsule_New(recorded.get(), kRecordedName, &free_recorded);
  if (capsule == nullptr) throw py::error_already_set();
  recorded.release();
  const py::object held = py::reinterpret_steal<py::object>(capsule);
  if (PyObject_SetAttr(ctx, lincore_name, capsule) != 0) throw py::error_already_set();
  return torch_of(fast, out);
}

Recorded& recorded_of(PyObject* capsule) {
  auto* rec = static_cast<Recorded*>(PyCapsule_GetPointer(capsule, kRecordedName));
  if (rec == nullptr) throw py::error_already_set();
  return *rec;
}

// torch's error when a tensor the tape read was written in place since the recorded forward.
void check_versions(const Recorded& rec) {
  PyObject* fast = rec.fast.ptr();
  for (std::size_t i = 0; i < rec.read.size(); ++i) {
    const long long now = version_of(fast, rec.read[i].ptr());
    const long long then =
        i == 0 ? rec.x_version
               : PyLong_AsLongLong(PyList_GET_ITEM(rec.param_versions.ptr(), i - 1));
    if (now != then) {
      throw std::runtime_error(
          "one of the variables needed for gradient computation has been modified by an "
          "inplace operation: " +
          (i == 0 ? std::string("the input") : "parameter " + std::to_string(i - 1)) +
          " of a lincore.optimize run is at version " + std::to_string(now) +
          "; expected version " + std::to_string(then) + " instead");
    }
  }
}

// _RunFunction.backward's work: the whole run's backward in one call, from ctx.lincore (the
// Recorded) and dy (a contiguous torch tensor): (None, None, dx, *one gradient per torch
// parameter), None where not needed, as Function.backward returns them.
PyObject* record_backward(PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 3) throw py::type_error("_dropin_record_backward(recorded, dy, need_dx)");
  const Recorded& rec = recorded_of(args[0]);
  PyObject* fast = rec.fast.ptr();
  const Plan& plan = plan_of(fast);
  check_versions(rec);
  const py::object dy_capsule = capsule_of(fast, args[1]);
  if (!dy_capsule) {
    throw py::type_error("_dropin_record_backward: dy is not a CPU tensor of the run's dtype");
  }
  const Tensor dy = tensor_from_dlpack(dy_capsule.ptr());
  const int need_dx = PyObject_IsTrue(args[2]);
  if (need_dx < 0) throw py::error_already_set();
  StackGrads g;
  begin_computation();
  {
    py::gil_scoped_release nogil;
    g = plan.stack.backward(rec.tape, dy, need_dx == 1, rec.need);
  }
  auto torch_or_none = [fast](const std::optional<Tensor>& t) -> py::object {
    if (!t) return py::none();
    return py::reinterpret_steal<py::object>(torch_of(fast, dlpack_of(*t)));
  };
  py::list out;
  out.append(py::none());  // for the run's fast tuple
  out.append(py::none());  // for x's capsule
  out.append(torch_or_none(g.dx));
  std::size_t slot = 0;
  for (std::size_t i = 0; i < g.dw.size(); ++i) {
    for (const std::optional<Tensor>* grad : {&g.dw[i], &g.db[i]}) {
      if (!plan.params[slot++].is_none()) out.append(torch_or_none(*grad));
    }
  }
  return py::tuple(out).release().ptr();
}

// What a differentiable backward (create_graph=True) recomputes, from ctx.lincore: (the run's
// torch modules, x, (the parameters)), after the same version check as record_backward.
PyObject* recorded_inputs(PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 1) throw py::type_error("_dropin_recorded_inputs(recorded)");
  const Recorded& rec = recorded_of(args[0]);
  check_versions(rec);
  py::tuple params(rec.read.size() - 1);
  for (std::size_t i = 1; i < rec.read.size(); ++i) params[i - 1] = rec.read[i];
  return py::make_tuple(py::handle(field_of(rec.fast.ptr(), kModules)), rec.read[0], params)
      .release()
      .ptr();
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

// A chain of a torch.compile'd graph run by the "lincore" backend (python/lincore/_dropin/
// dynamo.py, LincoreChain), called by the graph's code as chain_forward(chain, *inputs): the
// graph's parameter inputs put in the chain's layer shells, then run_forward of its run. The
// chain's own __call__ (the Python path) where that does not take the call.
PyObject* chain_forward(PyObject* const* args, Py_ssize_t nargs) {
  static PyObject* const fast_name = PyUnicode_InternFromString("fast");
  if (nargs < 1) throw py::type_error("_dropin_chain_forward(chain, *inputs)");
  PyObject* const* inputs = args + 1;
  const Py_ssize_t n = nargs - 1;
  // The chain's (slots, data input index, run), or None before its run is made: slots holds
  // (a shell's _parameters dict, the parameter's name, its input index) per parameter.
  const py::object chain_fast =
      py::reinterpret_steal<py::object>(PyObject_GetAttr(args[0], fast_name));
  if (!chain_fast) throw py::error_already_set();
  PyObject* state = chain_fast.ptr();
  if (PyTuple_Check(state) && PyTuple_GET_SIZE(state) == 3) {
    PyObject* slots = PyTuple_GET_ITEM(state, 0);
    const Py_ssize_t data = PyLong_AsSsize_t(PyTuple_GET_ITEM(state, 1));
    if (!PyList_Check(slots) || data < 0 || data >= n) {
      throw std::invalid_argument("_dropin_chain_forward: bad chain state");
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(slots); ++i) {
      PyObject* slot = PyList_GET_ITEM(slots, i);
      if (!PyTuple_Check(slot) || PyTuple_GET_SIZE(slot) != 3) {
        throw std::invalid_argument("_dropin_chain_forward: a slot is not (dict, name, index)");
      }
      const Py_ssize_t j = PyLong_AsSsize_t(PyTuple_GET_ITEM(slot, 2));
      if (j < 0 || j >= n) throw std::invalid_argument("_dropin_chain_forward: bad index");
      PyObject* dict = PyTuple_GET_ITEM(slot, 0);
      PyObject* name = PyTuple_GET_ITEM(slot, 1);
      PyObject* now = PyDict_GetItemWithError(dict, name);
      if (now == nullptr && PyErr_Occurred()) throw py::error_already_set();
      if (now != inputs[j] && PyDict_SetItem(dict, name, inputs[j]) != 0) {
        throw py::error_already_set();
      }
    }
    const py::object run_fast =
        py::reinterpret_steal<py::object>(PyObject_GetAttr(PyTuple_GET_ITEM(state, 2), fast_name));
    if (!run_fast) throw py::error_already_set();
    if (!run_fast.is_none()) {
      PyObject* y = run_forward(run_fast.ptr(), inputs[data]);
      if (y != Py_NotImplemented) return y;
      Py_DECREF(y);
    }
  }
  return PyObject_Vectorcall(args[0], inputs, static_cast<std::size_t>(n), nullptr);
}

template <PyObject* (*F)(PyObject* const*, Py_ssize_t)>
PyObject* fastcall(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  try {
    return F(args, nargs);
  } catch (...) {
    py::detail::try_translate_exceptions();
    return nullptr;
  }
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
    {"_dropin_record",
     reinterpret_cast<PyCFunction>(reinterpret_cast<void*>(&fastcall<record_forward>)),
     METH_FASTCALL,
     "_dropin_record(ctx, fast, capsule, x, *params)\nA lincore.optimize run's recorded forward "
     "(_RunFunction.forward); ctx.lincore keeps what its backward needs."},
    {"_dropin_chain_forward",
     reinterpret_cast<PyCFunction>(reinterpret_cast<void*>(&fastcall<chain_forward>)),
     METH_FASTCALL,
     "_dropin_chain_forward(chain, *inputs)\nA torch.compile chain's call (dynamo.py's "
     "LincoreChain) in C; the chain's own call where the C path does not take it."},
    {"_dropin_recorded_inputs",
     reinterpret_cast<PyCFunction>(reinterpret_cast<void*>(&fastcall<recorded_inputs>)),
     METH_FASTCALL,
     "_dropin_recorded_inputs(recorded)\n(modules, x, params) of a recorded run, for a "
     "differentiable backward."},
    {"_dropin_record_backward",
     reinterpret_cast<PyCFunction>(reinterpret_cast<void*>(&fastcall<record_backward>)),
     METH_FASTCALL,
     "_dropin_record_backward(recorded, dy, need_dx)\nThe backward of a recorded run "
     "(_RunFunction.backward): (None, None, dx, *one gradient per torch parameter)."},
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
