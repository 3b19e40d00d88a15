// softmax / log_softmax, LayerNorm and Dropout: forward and backward kernels for nn.functional's
// recorded ops. Every compute call releases the GIL.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <vector>

#include "bindings/bindings.h"
#include "nn/dropout.h"
#include "nn/layer_norm.h"
#include "nn/softmax.h"

namespace py = pybind11;

namespace lincore::bindings {

void register_layers(py::module_& m) {
  m.def(
      "softmax",
      [](const Tensor& x, std::int64_t dim, bool log) {
        begin_computation();
        return without_gil([&] { return softmax(x, dim, log); });
      },
      py::arg("x"), py::arg("dim"), py::arg("log"),
      "softmax(x, dim) (log_softmax when log), computed stably in double");

  m.def(
      "softmax_backward",
      [](const Tensor& dy, const Tensor& y, std::int64_t dim, bool log) {
        begin_computation();
        return without_gil([&] { return softmax_backward(dy, y, dim, log); });
      },
      py::arg("grad_output"), py::arg("output"), py::arg("dim"), py::arg("log"),
      "dL/dx of y = softmax(x, dim) (log_softmax when log) from dL/dy and y");

  m.def(
      "layer_norm",
      [](const Tensor& x, const std::vector<std::int64_t>& normalized_shape, const Tensor* weight,
         const Tensor* bias, double eps) {
        begin_computation();
        LayerNormOut out =
            without_gil([&] { return layer_norm(x, Shape(normalized_shape), weight, bias, eps); });
        return py::make_tuple(out.y, out.stats);
      },
      py::arg("x"), py::arg("normalized_shape"), py::arg("weight"), py::arg("bias"), py::arg("eps"),
      "(y, stats): layer normalization over the trailing normalized_shape, and the per-row "
      "(mean, 1 / sqrt(var + eps)) in float64 that layer_norm_backward takes");

  m.def(
      "layer_norm_backward",
      [](const Tensor& dy, const Tensor& x, const Tensor& stats,
         const std::vector<std::int64_t>& normalized_shape, const Tensor* weight, bool need_dx,
         bool need_dweight, bool need_dbias) {
        begin_computation();
        LayerNormGrads g = without_gil([&] {
          return layer_norm_backward(dy, x, stats, Shape(normalized_shape), weight, need_dx,
                                     need_dweight, need_dbias);
        });
        return py::make_tuple(g.dx, g.dweight, g.dbias);
      },
      py::arg("grad_output"), py::arg("x"), py::arg("stats"), py::arg("normalized_shape"),
      py::arg("weight"), py::arg("need_dx"), py::arg("need_dweight"), py::arg("need_dbias"),
      "(dx, dweight, dbias) of layer_norm; None where not asked for");

  m.def(
      "dropout",
      [](const Tensor& x, double p) {
        begin_computation();
        DropoutOut out = without_gil([&] { return dropout(x, p); });
        return py::make_tuple(out.y, out.mask);
      },
      py::arg("x"), py::arg("p"),
      "(y, mask): x with each element zeroed with probability p (lincore's generator) and the "
      "rest scaled by 1 / (1 - p); mask holds those factors");

  m.def(
      "dropout_backward",
      [](const Tensor& dy, const Tensor& mask) {
        begin_computation();
        return without_gil([&] { return dropout_backward(dy, mask); });
      },
      py::arg("grad_output"), py::arg("mask"), "grad_output * mask");
}

}  // namespace lincore::bindings
