// The bf16 kernel levels (kernels/bgemm.h) from Python: the level in use, forcing one, and
// private entries that run the kernels and the conversions on raw bf16 bits (numpy uint16), so
// the kernels are tested without the bf16 Tensor plumbing.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <memory>
#include <string>

#include "bindings/bindings.h"
#include "kernels/bfamily.h"
#include "kernels/bgemm.h"

namespace py = pybind11;

namespace lincore::bindings {
namespace {

using U16Array = py::array_t<std::uint16_t, py::array::c_style | py::array::forcecast>;
using F32Array = py::array_t<float, py::array::c_style | py::array::forcecast>;

Activation activation_named(const std::string& name) {
  std::string known;
  for (int c = 0; c <= static_cast<int>(kLastActivation); ++c) {
    const auto a = static_cast<Activation>(c);
    if (name == activation_name(a)) return a;
    known += (known.empty() ? "" : ", ") + std::string(activation_name(a));
  }
  throw py::value_error("unknown activation '" + name + "'; expected one of " + known);
}

using BWeight = std::shared_ptr<BPackedWeight>;

BWeight pack(const U16Array& w, const py::object& bias) {
  if (w.ndim() != 2)
    throw py::value_error("_bgemm_pack: expected a 2-D w (n, k), got " + std::to_string(w.ndim()) +
                          "-D");
  const std::int64_t n = w.shape(0), k = w.shape(1);
  F32Array b;
  if (!bias.is_none()) {
    b = bias.cast<F32Array>();
    if (b.ndim() != 1 || b.shape(0) != n)
      throw py::value_error("_bgemm: expected a bias of " + std::to_string(n) + " values");
  }
  const std::uint16_t* wp = w.data();
  const float* bp = bias.is_none() ? nullptr : b.data();
  py::gil_scoped_release nogil;
  return std::make_shared<BPackedWeight>(bgemm_pack(n, k, wp, k, bp));
}

// w: bf16 bits (n, k), packed for this call with `bias`, or a _BPackedWeight (which holds its
// bias: `bias` must then be None).
py::array bgemm(const U16Array& x, const py::object& w, const py::object& bias,
                const std::string& act, bool out_bf16, double negative_slope) {
  BWeight pw;
  if (py::isinstance<BPackedWeight>(w)) {
    if (!bias.is_none())
      throw py::value_error("_bgemm: a packed weight holds its bias; pass bias=None");
    pw = w.cast<BWeight>();
  } else {
    pw = pack(w.cast<U16Array>(), bias);
  }
  if (x.ndim() != 2)
    throw py::value_error("_bgemm: expected a 2-D x (m, k), got " + std::to_string(x.ndim()) +
                          "-D");
  const std::int64_t m = x.shape(0), k = x.shape(1), n = pw->n;
  if (pw->k != k)
    throw py::value_error("_bgemm: x has " + std::to_string(k) + " columns but w has " +
                          std::to_string(pw->k));
  const Epilogue ep{activation_named(act), negative_slope};
  py::array y = out_bf16 ? py::array(py::array_t<std::uint16_t>({m, n}))
                         : py::array(py::array_t<float>({m, n}));
  void* yp = y.mutable_data();
  const std::uint16_t* xp = x.data();
  {
    py::gil_scoped_release nogil;
    bgemm_run(m, xp, k, *pw, yp, n, out_bf16, ep);
  }
  return y;
}

}  // namespace

void register_bf16_kernels(py::module_& m) {
  m.def("bf16_capability", &bf16_capability);
  m.def("supported_bf16_capabilities", &supported_bf16_capabilities);
  m.def("_set_bf16_capability", &set_bf16_capability, py::arg("isa"),
        "Forces a bf16 level; '' follows the fp32 level again");
  py::class_<BPackedWeight, std::shared_ptr<BPackedWeight>>(
      m, "_BPackedWeight", "bf16 weights and bias packed for the bf16 kernels (kernels/bgemm.h)")
      .def_readonly("n", &BPackedWeight::n)
      .def_readonly("k", &BPackedWeight::k)
      .def_property_readonly("nbytes", &BPackedWeight::bytes)
      .def(
          "weight_bits",
          [](const BPackedWeight& w) {
            py::array_t<std::uint16_t> out({w.n, w.k});
            bgemm_unpack(w, out.mutable_data());
            return out;
          },
          "the weights back (bgemm_unpack): bf16 bits, (n, k), a new array");
  m.def("_bgemm_pack", &pack, py::arg("w"), py::arg("bias") = py::none(),
        "Packs bf16 bits w (uint16 (n, k)) and an fp32 bias (n values or None) once");
  m.def("_bgemm", &bgemm, py::arg("x"), py::arg("w"), py::arg("bias") = py::none(),
        py::arg("act") = "none", py::arg("out_bf16") = false, py::arg("negative_slope") = 0.01,
        "act(x @ w.T + bias) by the bf16 kernels, on bf16 bits (uint16 (m, k) and (n, k), or w "
        "a _BPackedWeight); float32 (m, n), or bf16 bits (uint16) when out_bf16");
  m.def(
      "_floats_to_bf16",
      [](const F32Array& a) {
        py::array_t<std::uint16_t> out(std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim()));
        const std::int64_t n = a.size();
        const float* s = a.data();
        std::uint16_t* d = out.mutable_data();
        py::gil_scoped_release nogil;
        floats_to_bf16(n, s, d);
        return out;
      },
      py::arg("a"), "float32 -> bf16 bits (uint16), the vectorized conversion of the level in use");
  m.def(
      "_bf16_to_floats",
      [](const U16Array& a) {
        py::array_t<float> out(std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim()));
        const std::int64_t n = a.size();
        const std::uint16_t* s = a.data();
        float* d = out.mutable_data();
        py::gil_scoped_release nogil;
        bf16_to_floats(n, s, d);
        return out;
      },
      py::arg("a"), "bf16 bits (uint16) -> float32, the vectorized conversion of the level in use");
  m.def(
      "_bf16_blocking",
      [] {
        py::dict levels;
        for (int i = 0; i < detail::bfamily_count(); ++i) {
          const detail::BFamily& f = detail::bfamily_at(i);
          py::dict d;
          d["mr"] = f.mr;
          levels[f.name] = d;
        }
        py::dict out;
        out["levels"] = levels;
        out["panel"] = kBPanel;
        out["pair"] = kBPair;
        return out;
      },
      "Every compiled bf16 level's row tile (mr), and the packed panel width and k pair");
}

}  // namespace lincore::bindings
