// One registration function per binding file.
#pragma once

#include <pybind11/pybind11.h>

namespace lincore::bindings {

void register_tensor(pybind11::module_& m);
void register_nn(pybind11::module_& m);
void register_runtime(pybind11::module_& m);

}  // namespace lincore::bindings
