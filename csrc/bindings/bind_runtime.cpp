// Process-wide settings: random generator, threads, kernel family.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "bindings/bindings.h"
#include "kernels/dispatch.h"
#include "runtime/random.h"
#include "runtime/thread_pool.h"

namespace py = pybind11;

namespace lincore::bindings {

void register_runtime(py::module_& m) {
  m.def("manual_seed", &manual_seed, py::arg("seed"));
  m.def("initial_seed", &initial_seed);
  m.def("_uniform_", &uniform_, py::arg("t"), py::arg("low"), py::arg("high"));
  m.def("_normal_", &normal_, py::arg("t"), py::arg("mean"), py::arg("std"));

  m.def("get_num_threads", &get_num_threads);
  m.def("set_num_threads", &set_num_threads, py::arg("n"));

  m.def("cpu_capability", &cpu_capability);
  m.def("supported_cpu_capabilities", &supported_capabilities);
  m.def("_set_cpu_capability", &set_cpu_capability, py::arg("isa"));
}

}  // namespace lincore::bindings
