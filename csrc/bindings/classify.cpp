// lincore.onnx's one-call graphs: a dense chain from the graph's input to its output, and the
// common classifier graph (scikit-learn's, as skl2onnx writes it): a chain ending in the class
// probabilities, then the label at each row's arg-max and, optionally, ZipMap's list of
// {label: probability} dicts. At batch 1 the classifier's chain is ~1.5 us, and the numpy steps
// around it were ~5 us more; a plain chain's Python call layers (OnnxModule, Sequential) ~0.5 us.
// python/lincore/onnx/_module.py builds this run when the graph is exactly one of those, and
// runs anything else step by step.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "bindings/bindings.h"

namespace py = pybind11;

namespace lincore::bindings {
namespace {

// What each graph output is, in the graph's order.
enum Output : int { kProbabilities = 0, kLabels = 1, kZipMap = 2 };

// Rows past this many elements release the GIL for the arg-max (below it the release costs more
// than the scan).
constexpr std::int64_t kReleaseGil = 1 << 14;

// numpy's argmax of one row: the first maximum, a NaN counting as the maximum (the first one).
template <class T>
std::int64_t argmax_row(const T* p, std::int64_t n) {
  std::int64_t best = 0;
  T v = p[0];
  if (v != v) return 0;
  for (std::int64_t j = 1; j < n; ++j) {
    if (p[j] != p[j]) return j;
    if (p[j] > v) {
      v = p[j];
      best = j;
    }
  }
  return best;
}

template <class T>
void argmax_rows(const T* p, std::int64_t rows, std::int64_t n, std::int64_t* out) {
  for (std::int64_t r = 0; r < rows; ++r) out[r] = argmax_row(p + r * n, n);
}

class ChainRun {
 public:
  ChainRun(py::object plan_of, py::list token, py::object as_tensor, std::string input_name,
           py::object classes_obj, py::object zipmap_keys, std::vector<int> outputs)
      : input_name_(std::move(input_name)),
        plan_of_(std::move(plan_of)),
        token_(std::move(token)),
        as_tensor_(std::move(as_tensor)),
        outputs_(std::move(outputs)) {
    if (classes_obj.is_none()) {  // a plain chain: its output is the graph's
      if (!zipmap_keys.is_none() || outputs_ != std::vector<int>{kProbabilities}) {
        throw std::invalid_argument("ChainRun: a chain without classes has one output");
      }
      return;
    }
    const auto classes = py::array::ensure(classes_obj);
    if (!classes || classes.ndim() != 1 || classes.shape(0) < 1) {
      throw std::invalid_argument("ChainRun: classes must be a non-empty 1-D array");
    }
    const py::ssize_t n = classes.shape(0);
    if (classes.dtype().kind() == 'i' && classes.dtype().itemsize() == 8) {
      auto c = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>(classes);
      int_labels_.assign(c.data(), c.data() + n);
    } else if (classes.dtype().kind() == 'O') {
      for (py::ssize_t i = 0; i < n; ++i) str_labels_.push_back(classes[py::int_(i)]);
    } else {
      throw std::invalid_argument("ChainRun: classes must be int64 or object");
    }
    classes_ = n;
    if (!zipmap_keys.is_none()) {
      for (py::handle k : zipmap_keys) keys_.push_back(py::reinterpret_borrow<py::object>(k));
    }
    for (int o : outputs_) {
      if (o < kProbabilities || o > kZipMap || (o == kZipMap && keys_.empty())) {
        throw std::invalid_argument("ChainRun: bad output code " + std::to_string(o));
      }
    }
  }

  py::object call(py::handle x_obj) {
    const long long token = PyLong_AsLongLong(PyList_GET_ITEM(token_.ptr(), 0));
    if (token != seen_) {  // some module changed since: ask the chain for its plan again
      plan_ = plan_of_();
      seen_ = token;
    }
    // Held here: another thread may swap plan_ while this call runs its plan without the GIL.
    const py::object plan = plan_;
    if (plan.is_none()) return py::reinterpret_borrow<py::object>(Py_NotImplemented);
    py::object x =
        instance_of<Tensor>(x_obj) ? py::reinterpret_borrow<py::object>(x_obj) : as_tensor_(x_obj);
    if (classes_ == 0) return plan_call(plan, x);
    const Tensor& xt = x.cast<const Tensor&>();
    if (xt.dim() != 2) {
      throw std::invalid_argument("input '" + input_name_ +
                                  "': expected a 2-D tensor (batch, features), got shape " +
                                  shape_str(xt.shape()));
    }
    py::object probs = plan_call(plan, x);
    const Tensor& p = probs.cast<const Tensor&>();
    if (p.dim() != 2 || p.size(1) != classes_ || !is_floating_point(p.dtype())) {
      throw std::invalid_argument("the classifier's probabilities have shape " +
                                  shape_str(p.shape()) + ", expected (batch, " +
                                  std::to_string(classes_) + ")");
    }
    const Tensor pc = p.contiguous();
    const std::int64_t rows = pc.size(0);
    std::vector<std::int64_t> idx(static_cast<std::size_t>(rows));
    auto scan = [&] {
      if (pc.dtype() == DType::float32)
        argmax_rows(pc.data<float>(), rows, classes_, idx.data());
      else
        argmax_rows(pc.data<double>(), rows, classes_, idx.data());
    };
    if (pc.numel() > kReleaseGil) {
      py::gil_scoped_release nogil;
      scan();
    } else {
      scan();
    }
    py::tuple result(outputs_.size());
    for (std::size_t i = 0; i < outputs_.size(); ++i) {
      switch (outputs_[i]) {
        case kProbabilities:
          result[i] = probs;
          break;
        case kLabels:
          result[i] = labels(idx);
          break;
        default:
          result[i] = zipmap(pc);
          break;
      }
    }
    if (result.size() == 1) return result[0];
    return std::move(result);
  }

 private:
  // The labels at idx: an int64 Tensor, or a numpy array of the label objects (strings).
  py::object labels(const std::vector<std::int64_t>& idx) const {
    const auto rows = static_cast<py::ssize_t>(idx.size());
    if (str_labels_.empty()) {
      Tensor out = Tensor::empty({rows}, DType::int64);
      auto* d = out.data<std::int64_t>();
      for (py::ssize_t r = 0; r < rows; ++r) d[r] = int_labels_[idx[r]];
      return py::cast(std::move(out));
    }
    py::array out(py::dtype("O"), std::vector<py::ssize_t>{rows});  // (braces alone: a bool)
    auto** d = static_cast<PyObject**>(out.mutable_data());
    for (py::ssize_t r = 0; r < rows; ++r) {
      PyObject* label = str_labels_[idx[r]].ptr();
      Py_INCREF(label);
      Py_XDECREF(d[r]);  // numpy may have filled it (None) or left it NULL
      d[r] = label;
    }
    return std::move(out);
  }

  // ZipMap's output: one {key: probability} dict per row, the values as Python floats.
  py::object zipmap(const Tensor& p) const {
    const std::int64_t rows = p.size(0);
    py::list out(rows);
    for (std::int64_t r = 0; r < rows; ++r) {
      py::dict d;
      for (std::int64_t j = 0; j < classes_; ++j) {
        const double v = p.dtype() == DType::float32 ? p.data<float>()[r * classes_ + j]
                                                     : p.data<double>()[r * classes_ + j];
        d[keys_[j]] = py::float_(v);
      }
      out[r] = std::move(d);
    }
    return std::move(out);
  }

  std::string input_name_;
  py::object plan_of_;
  py::list token_;
  long long seen_ = -1;
  py::object plan_ = py::none();
  py::object as_tensor_;
  std::vector<int> outputs_;
  std::int64_t classes_ = 0;  // 0: a plain chain
  std::vector<std::int64_t> int_labels_;
  std::vector<py::object> str_labels_;
  std::vector<py::object> keys_;
};

}  // namespace

void register_classify(py::module_& m) {
  py::class_<ChainRun>(m, "ChainRun",
                       "A graph that is one dense chain, optionally followed by the label lookup "
                       "of its arg-max and ZipMap, as one call (lincore.onnx)")
      .def(py::init<py::object, py::list, py::object, std::string, py::object, py::object,
                    std::vector<int>>(),
           py::arg("plan_of"), py::arg("token"), py::arg("as_tensor"), py::arg("input_name"),
           py::arg("classes") = py::none(), py::arg("zipmap_keys") = py::none(),
           py::arg("outputs") = std::vector<int>{kProbabilities},
           "plan_of() gives the chain's current SequentialPlan, asked again whenever token[0] "
           "moves (None: the call returns NotImplemented, for the caller's general path); "
           "as_tensor converts an input that is not a Tensor; input_name: the graph's input, "
           "for messages. A classifier's classes: int64 or object labels (None: a plain chain, "
           "whose output the call returns); zipmap_keys: ZipMap's labels or None; outputs: per "
           "graph output, 0 for the probabilities, 1 the labels, 2 ZipMap's list of dicts")
      .def("__call__", &ChainRun::call, py::arg("x"));
}

}  // namespace lincore::bindings
