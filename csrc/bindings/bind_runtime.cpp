// Process-wide settings: random generator, threads, kernel family.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <csignal>

#include "bindings/bindings.h"
#include "kernels/bgemm.h"
#include "kernels/dispatch.h"
#include "kernels/qgemm.h"
#include "runtime/random.h"
#include "runtime/thread_pool.h"
#if defined(__unix__) || defined(__APPLE__)
#include <signal.h>
#endif

namespace py = pybind11;

namespace lincore::bindings {

#if defined(__unix__) || defined(__APPLE__)
namespace {

struct sigaction g_previous;

void on_sigint(int sig, siginfo_t* info, void* context) {
  request_interrupt();
  if (g_previous.sa_flags & SA_SIGINFO) {
    if (g_previous.sa_sigaction) g_previous.sa_sigaction(sig, info, context);
  } else if (g_previous.sa_handler == SIG_DFL) {
    std::signal(sig, SIG_DFL);
    std::raise(sig);
  } else if (g_previous.sa_handler != SIG_IGN && g_previous.sa_handler) {
    g_previous.sa_handler(sig);
  }
}

}  // namespace

void install_interrupt_handler() {
  struct sigaction current;
  if (sigaction(SIGINT, nullptr, &current) != 0) return;
  if (current.sa_flags & SA_SIGINFO && current.sa_sigaction == &on_sigint) return;  // installed
  if (!(current.sa_flags & SA_SIGINFO) && current.sa_handler == SIG_IGN) return;    // ignored
  g_previous = current;
  struct sigaction ours = {};
  ours.sa_sigaction = &on_sigint;
  ours.sa_flags = SA_SIGINFO | (current.sa_flags & SA_RESTART);
  sigemptyset(&ours.sa_mask);
  sigaction(SIGINT, &ours, nullptr);
}
#else
void install_interrupt_handler() {}
#endif

void register_runtime(py::module_& m) {
  m.def("manual_seed", &manual_seed, py::arg("seed"));
  m.def("initial_seed", &initial_seed);
  m.def("_uniform_", &uniform_, py::arg("t"), py::arg("low"), py::arg("high"));
  m.def("_normal_", &normal_, py::arg("t"), py::arg("mean"), py::arg("std"));

  m.def("get_num_threads", &get_num_threads);
  m.def("set_num_threads", &set_num_threads, py::arg("n"));
  m.def("_num_threads_explicit", &num_threads_explicit,
        "Whether the thread count was set by set_num_threads or LINCORE_NUM_THREADS");
  m.def("_follow_num_threads", &follow_num_threads, py::arg("n"),
        "Sets the thread count to n unless the user chose one (a host framework's count)");

  // kind "fp32" (the float kernels' family, also fp64), "int8" (the quantized kernels' level)
  // or "bf16" (the bfloat16 kernels' level).
  m.def(
      "cpu_capability",
      [](const std::string& kind) {
        if (kind == "int8") return int8_capability();
        if (kind == "bf16") return bf16_capability();
        if (kind != "fp32")
          throw py::value_error("cpu_capability: kind must be 'fp32', 'int8' or 'bf16', got '" +
                                kind + "'");
        return cpu_capability();
      },
      py::arg("kind") = "fp32");
  m.def(
      "supported_cpu_capabilities",
      [](const std::string& kind) {
        if (kind == "int8") return supported_int8_capabilities();
        if (kind == "bf16") return supported_bf16_capabilities();
        if (kind != "fp32")
          throw py::value_error(
              "supported_cpu_capabilities: kind must be 'fp32', 'int8' or 'bf16', got '" + kind +
              "'");
        return supported_capabilities();
      },
      py::arg("kind") = "fp32");
  m.def("_set_cpu_capability", &set_cpu_capability, py::arg("isa"));

  // The kernels' block sizes, stated once in the kernel files and read from here by the tests,
  // whose shape grids are derived from them (change KC and the edge cases follow).
  m.def(
      "_kernel_blocking",
      [] {
        auto sizes = [](const auto& b) {
          py::dict d;
          d["mr"] = b.mr;
          d["nr"] = b.nr;
          d["mc"] = b.mc;
          d["kc"] = b.kc;
          return d;
        };
        py::dict families;
        for (int i = 0; i < detail::family_count(); ++i) {
          const detail::KernelFamily& f = detail::family_at(i);
          py::dict per_dtype;
          per_dtype["float32"] = sizes(f.f32);
          per_dtype["float64"] = sizes(f.f64);
          families[f.name] = per_dtype;
        }
        py::dict out;
        out["families"] = families;
        out["wide_rows"] = detail::kWideRows;
        out["wide_panels"] = detail::kWidePanels;
        return out;
      },
      "Every compiled kernel family's register tile (mr x nr) and cache blocks (mc, kc) per "
      "dtype, and the row count and panel count of the few-row multi-panel tile");
}

}  // namespace lincore::bindings
