// Grad mode: whether ops called from Python record their backward. Thread-local, as PyTorch's:
// a no_grad block in one thread leaves the others recording, and a new thread starts enabled.
// lincore/_grad_mode.py's context managers set it through _core._set_grad_enabled; the recorded
// forwards (linear_call.cpp, the Sequential plan) read it here.
#pragma once

#include <pybind11/pybind11.h>

namespace lincore::bindings {

inline thread_local bool grad_mode_enabled = true;

inline bool grad_enabled() { return grad_mode_enabled; }

}  // namespace lincore::bindings
