// int8 dynamic quantization: the packed weight of a quantized Linear (QLinearWeight), its
// forward, its Sequential step, and the int8 level in use. Codes, scales and bias cross to
// Python as numpy arrays (lincore tensors hold no int8): for saving, pickling and tests.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "bindings/bindings.h"
#include "kernels/qgemm.h"
#include "nn/qlinear.h"
#include "nn/sequential.h"

namespace py = pybind11;

namespace lincore::bindings {
namespace {

using QWeight = std::shared_ptr<QPackedWeight>;
using I8Array = py::array_t<std::int8_t, py::array::c_style | py::array::forcecast>;
using F32Array = py::array_t<float, py::array::c_style | py::array::forcecast>;

py::array codes_of(const QPackedWeight& w) {
  py::array_t<std::int8_t> out({w.n, w.k});
  qgemm_unpack(w, out.mutable_data());
  return std::move(out);
}

py::array scales_of(const QPackedWeight& w) {
  py::array_t<float> out(w.n);
  std::copy(w.scale, w.scale + w.n, out.mutable_data());
  return std::move(out);
}

py::object bias_of(const QPackedWeight& w) {
  if (!w.has_bias) return py::none();
  py::array_t<float> out(w.n);
  std::copy(w.bias, w.bias + w.n, out.mutable_data());
  return std::move(out);
}

// Rebuilds a pack from saved arrays, checking everything a hostile or mismatched file could get
// wrong: shapes, the code range [-127, 127] (the AVX2 level's exactness needs -128 absent),
// finite non-negative scales, a finite bias.
QWeight from_arrays(const py::array& codes_obj, const py::array& scales_obj,
                    const py::object& bias_obj) {
  if (codes_obj.dtype().kind() != 'i' || codes_obj.itemsize() != 1) {
    throw py::type_error("QLinearWeight: expected int8 codes, got dtype " +
                         py::str(codes_obj.dtype()).cast<std::string>());
  }
  if (codes_obj.ndim() != 2) {
    throw py::value_error("QLinearWeight: expected 2-D codes (out_features, in_features), got " +
                          std::to_string(codes_obj.ndim()) + "-D");
  }
  const I8Array codes = I8Array::ensure(codes_obj);
  const std::int64_t n = codes.shape(0), k = codes.shape(1);
  const F32Array scales = F32Array::ensure(scales_obj);
  if (!scales || scales.ndim() != 1 || scales.shape(0) != n) {
    throw py::value_error("QLinearWeight: expected " + std::to_string(n) +
                          " float32 scales (one per output feature)");
  }
  const std::int8_t* c = codes.data();
  for (std::int64_t i = 0; i < n * k; ++i)
    if (c[i] < -127)
      throw py::value_error("QLinearWeight: int8 weight codes must lie in [-127, 127]; found -128");
  const float* s = scales.data();
  for (std::int64_t j = 0; j < n; ++j)
    if (!(std::isfinite(s[j]) && s[j] >= 0.0f)) {
      throw py::value_error("QLinearWeight: scale " + std::to_string(j) +
                            " is not a finite non-negative number");
    }
  const float* b = nullptr;
  F32Array bias;
  if (!bias_obj.is_none()) {
    bias = F32Array::ensure(bias_obj);
    if (!bias || bias.ndim() != 1 || bias.shape(0) != n) {
      throw py::value_error("QLinearWeight: expected a bias of " + std::to_string(n) +
                            " float32 values");
    }
    b = bias.data();
    for (std::int64_t j = 0; j < n; ++j)
      if (!std::isfinite(b[j])) throw py::value_error("QLinearWeight: the bias is not finite");
  }
  return std::make_shared<QPackedWeight>(qgemm_pack(n, k, c, k, s, b));
}

}  // namespace

void register_quant(py::module_& m) {
  py::class_<QPackedWeight, QWeight>(
      m, "QLinearWeight",
      "A quantized Linear's weight: int8 codes per output channel (symmetric), their fp32 "
      "scales and the fp32 bias, packed once for the int8 kernels (kernels/qgemm.h)")
      .def_static(
          "quantize",
          [](const Tensor& weight, const Tensor* bias) {
            py::gil_scoped_release nogil;
            return qlinear_quantize(weight, bias);
          },
          py::arg("weight"), py::arg("bias") = py::none(),
          "Quantizes a float32 weight (out_features, in_features) per output channel")
      .def_static("from_int8", &from_arrays, py::arg("codes"), py::arg("scales"),
                  py::arg("bias") = py::none(),
                  "Packs saved codes (int8, out x in), scales (float32, out) and bias")
      .def_property_readonly("in_features", [](const QPackedWeight& w) { return w.k; })
      .def_property_readonly("out_features", [](const QPackedWeight& w) { return w.n; })
      .def_property_readonly("has_bias", [](const QPackedWeight& w) { return w.has_bias; })
      .def_property_readonly("nbytes", &QPackedWeight::bytes, "bytes the pack holds")
      .def("codes", &codes_of, "the int8 codes, (out_features, in_features), a new array")
      .def("scales", &scales_of, "the per-output-channel scales, float32, a new array")
      .def("bias", &bias_of, "the bias, float32, a new array, or None")
      .def(py::pickle(
          [](const QPackedWeight& w) {
            return py::make_tuple(codes_of(w), scales_of(w), bias_of(w));
          },
          [](const py::tuple& t) {
            if (t.size() != 3) throw py::value_error("QLinearWeight: bad pickled state");
            return from_arrays(t[0].cast<py::array>(), t[1].cast<py::array>(), t[2]);
          }));

  m.def(
      "qlinear",
      [](const Tensor& x, const QPackedWeight& w, int act, double slope) {
        if (act < 0 || act > static_cast<int>(kLastActivation)) {
          throw std::invalid_argument("unknown activation code " + std::to_string(act));
        }
        const Epilogue ep{static_cast<Activation>(act), slope};
        begin_computation();
        py::gil_scoped_release nogil;
        return qlinear(x, w, ep);
      },
      py::arg("x"), py::arg("weight"), py::arg("act") = 0, py::arg("negative_slope") = 0.01,
      "(*, in_features) float32 -> (*, out_features): act(x @ W.T + b), int8 dynamic rule");

  m.def(
      "_quantize_rows",
      [](const F32Array& x, bool active) {
        if (x.ndim() != 2) throw py::value_error("expected a 2-D array");
        const std::int64_t m = x.shape(0), k = x.shape(1);
        py::array_t<std::int8_t> q({m, k});
        py::array_t<float> s(m);
        quantize_rows(m, k, x.data(), k, q.mutable_data(), k, s.mutable_data(), false, active);
        return py::make_tuple(q, s);
      },
      py::arg("x"), py::arg("active") = false,
      "The int8 rule on the rows of a float32 array: (codes, scales); active=True: by the "
      "quantizer of the int8 level in use, else the portable one");

  m.def("int8_capability", &int8_capability);
  m.def("supported_int8_capabilities", &supported_int8_capabilities);
  m.def("_set_int8_capability", &set_int8_capability, py::arg("isa"),
        "Forces an int8 level; '' follows the fp32 level again");

  m.attr("QMAX_IN_FEATURES") = kQMaxK;

  m.def(
      "_qlinear_step",
      [](std::string name, QWeight w) {
        Step s;
        s.kind = Step::Kind::qlinear;
        s.name = std::move(name);
        s.qweight = std::move(w);
        return s;
      },
      py::arg("name"), py::arg("weight"));
}

}  // namespace lincore::bindings
