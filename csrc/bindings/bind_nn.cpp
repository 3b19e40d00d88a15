// Layers: the Linear forward, activations, packed-weight caches and whole Sequential stacks.
// Every compute call releases the GIL.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>

#include "bindings/bindings.h"
#include "bindings/grad_mode.h"
#include "bindings/load_guard.h"
#include "bindings/record.h"
#include "nn/activation.h"
#include "nn/linear.h"
#include "nn/loss.h"
#include "nn/sequential.h"
#include "nn/sgd.h"

namespace py = pybind11;

namespace lincore::bindings {
namespace {

Epilogue make_epilogue(int act, double negative_slope) {
  if (act < 0 || act > static_cast<int>(kLastActivation)) {
    throw std::invalid_argument("unknown activation code " + std::to_string(act));
  }
  return Epilogue{static_cast<Activation>(act), negative_slope};
}

py::object plan_apply(const py::object& self, py::handle x_obj) {
  const Plan& plan = self.cast<const Plan&>();
  const Tensor& x = tensor_arg(x_obj, "Sequential.forward", "input");
  begin_computation();
  bool any = false;
  if (grad_enabled()) {
    any = requires_grad(x_obj);
    for (const py::handle p : plan.params) any = any || requires_grad(p);
  }
  if (!any) return py::cast(without_gil([&] { return plan.stack.forward(x); }));
  // Which params require grad, as a list only for a recorded call (a plain call, grad mode on
  // or not, builds no Python objects but its output).
  py::list need;
  for (const py::handle p : plan.params) need.append(py::bool_(requires_grad(p)));
  auto tape = std::make_shared<Tape>();
  py::object y = py::cast(without_gil([&] { return plan.stack.forward_train(x, *tape); }));
  const std::int64_t dims = y.cast<const Tensor&>().dim();
  const py::handle node_class = plan.nodes[node_index_by_dims(dims)];
  set_grad_fn(y, node_class(self, x_obj, plan.params, py::cast(tape), need));
  return y;
}

}  // namespace

py::object plan_call(const py::object& plan, py::handle x) {
  return consistent([&] { return plan_apply(plan, x); });
}

const Tensor& tensor_arg(py::handle h, const char* fn, const char* name) {
  if (const Tensor* t = instance_of<Tensor>(h)) return *t;
  throw py::type_error(std::string(fn) + "(): argument '" + name +
                       "' must be a lincore Tensor, but got " +
                       py::str(py::type::handle_of(h).attr("__name__")).cast<std::string>());
}

void register_nn(py::module_& m) {
  // The activation codes by their C++ names: Python reads them from here, never copies them.
  py::dict activations;
  for (int a = 0; a <= static_cast<int>(kLastActivation); ++a) {
    activations[activation_name(static_cast<Activation>(a))] = a;
  }
  m.attr("ACTIVATIONS") = activations;
  py::tuple linear_nodes(2);
  for (std::size_t has_bias = 0; has_bias < 2; ++has_bias) {
    const auto& names = kLinearNodeNames[has_bias];
    linear_nodes[has_bias] = py::make_tuple(names[0], names[1], names[2]);
  }
  m.attr("LINEAR_NODE_NAMES") = linear_nodes;
  py::class_<PackCache, std::shared_ptr<PackCache>>(m, "PackCache")
      .def(py::init<>())
      .def_property_readonly("packed_bytes", &PackCache::packed_bytes)
      .def_property_readonly("packs_built", &PackCache::packs_built,
                             "how many packs this cache has built");

  m.def(
      "linear",
      [](const Tensor& x, const Tensor& w, const Tensor* b, int act, double slope,
         PackCache* cache) {
        Epilogue ep = make_epilogue(act, slope);
        begin_computation();
        py::gil_scoped_release nogil;
        return linear(x, w, b, ep, cache);
      },
      py::arg("x"), py::arg("weight"), py::arg("bias") = py::none(), py::arg("act") = 0,
      py::arg("negative_slope") = 0.01, py::arg("cache") = nullptr,
      "linear(x, weight, bias=None, act=0, negative_slope=0.01, cache=None)\n"
      "(*, in_features) -> (*, out_features): act(x @ weight.T + bias)");

  m.def(
      "activation",
      [](const Tensor& x, int act, double slope) {
        Epilogue ep = make_epilogue(act, slope);
        py::gil_scoped_release nogil;
        return activation(x, ep);
      },
      py::arg("x"), py::arg("act"), py::arg("negative_slope") = 0.01);

  m.def(
      "linear_backward",
      [](const Tensor& x, const Tensor& w, const Tensor& dy, bool need_dx, bool need_dw,
         bool need_db) {
        LinearGrads g;
        begin_computation();
        {
          py::gil_scoped_release nogil;
          g = linear_backward(x, w, dy, need_dx, need_dw, need_db);
        }
        return py::make_tuple(g.dx, g.dw, g.db);
      },
      py::arg("x"), py::arg("weight"), py::arg("grad_output"), py::arg("need_dx"),
      py::arg("need_dw"), py::arg("need_db"),
      "(dx, dw, db) of y = x @ weight.T + b for dL/dy = grad_output; None where not asked for");

  m.def(
      "activation_backward",
      [](const Tensor& dy, const Tensor& z, int act, double slope) {
        Epilogue ep = make_epilogue(act, slope);
        py::gil_scoped_release nogil;
        return activation_backward(dy, z, ep);
      },
      py::arg("grad_output"), py::arg("input"), py::arg("act"), py::arg("negative_slope") = 0.01);

  m.def(
      "cross_entropy",
      [](const Tensor& logits, const Tensor& target, int reduction, bool need_grad,
         const Tensor* weight, std::int64_t ignore_index, double label_smoothing,
         bool need_target_grad) {
        if (reduction < 0 || reduction > static_cast<int>(Reduction::sum)) {
          throw std::invalid_argument("unknown reduction code " + std::to_string(reduction));
        }
        const CrossEntropyOptions o{weight, ignore_index, label_smoothing, need_target_grad};
        const CrossEntropy r = without_gil([&] {
          return cross_entropy(logits, target, static_cast<Reduction>(reduction), need_grad, o);
        });
        const bool has_target_grad = need_target_grad && target.dtype() != DType::int64;
        return py::make_tuple(r.loss, need_grad ? py::cast(r.grad) : py::none(),
                              has_target_grad ? py::cast(r.target_grad) : py::none());
      },
      py::arg("logits"), py::arg("target"), py::arg("reduction"), py::arg("need_grad"),
      py::arg("weight") = nullptr, py::arg("ignore_index") = -100, py::arg("label_smoothing") = 0.0,
      py::arg("need_target_grad") = false,
      "(loss, dloss/dlogits or None, dloss/dtarget or None) of cross-entropy over class indices "
      "or probabilities; reduction 0 none, 1 mean, 2 sum");

  m.def(
      "sgd_step",
      [](Tensor& p, const Tensor& grad, Tensor* buf, bool first, double lr, double weight_decay,
         double momentum, double dampening, bool nesterov, bool maximize) {
        SgdOptions o{lr, weight_decay, momentum, dampening, nesterov, maximize};
        py::gil_scoped_release nogil;
        sgd_step(p, grad, buf, first, o);
      },
      py::arg("param"), py::arg("grad"), py::arg("buf"), py::arg("first"), py::arg("lr"),
      py::arg("weight_decay"), py::arg("momentum"), py::arg("dampening"), py::arg("nesterov"),
      py::arg("maximize"), "One torch.optim.SGD step on one parameter, in place");

  m.def(
      "sgd_step_group",
      [](const py::list& params, const py::list& grads, const py::list& bufs, double lr,
         double weight_decay, double momentum, double dampening, bool nesterov,
         bool maximize) -> py::object {
        // Items whose grad is None are skipped; anything that is not a tensor where one is
        // expected refuses the whole group (None), and the caller's checks say what is wrong.
        std::vector<SgdItem> items;
        std::vector<std::size_t> where;
        if (grads.size() != params.size() || bufs.size() != params.size()) return py::none();
        for (std::size_t i = 0; i < params.size(); ++i) {
          if (grads[i].is_none()) continue;
          if (!py::isinstance<Tensor>(params[i]) || !py::isinstance<Tensor>(grads[i]) ||
              !(bufs[i].is_none() || py::isinstance<Tensor>(bufs[i]))) {
            return py::none();
          }
          SgdItem it{params[i].cast<Tensor>(), grads[i].cast<Tensor>(), std::nullopt};
          if (!bufs[i].is_none()) it.buf = bufs[i].cast<Tensor>();
          items.push_back(std::move(it));
          where.push_back(i);
        }
        SgdOptions o{lr, weight_decay, momentum, dampening, nesterov, maximize};
        bool done = false;
        {
          py::gil_scoped_release nogil;
          done = sgd_step_group(items, o);
        }
        if (!done) return py::none();
        py::list out;
        for (std::size_t i = 0, next = 0; i < params.size(); ++i) {
          const bool has = next < items.size() && where[next] == i;
          out.append(has && items[next].buf ? py::cast(*items[next].buf) : py::none());
          next += has ? 1 : 0;
        }
        return std::move(out);
      },
      py::arg("params"), py::arg("grads"), py::arg("bufs"), py::arg("lr"), py::arg("weight_decay"),
      py::arg("momentum"), py::arg("dampening"), py::arg("nesterov"), py::arg("maximize"),
      "One torch.optim.SGD step on a group of parameters, all checked first: the momentum "
      "buffers after it (None per parameter without one), or None, changing nothing, when any "
      "item would be refused");

  py::class_<Tape, std::shared_ptr<Tape>>(m, "Tape",
                                          "What a recorded Sequential forward keeps for backward");

  // A layer of a compiled run, built by the layer's own _step() through one of these.
  py::class_<Step>(m, "Step", "One layer of a compiled Sequential run")
      .def_static(
          "linear",
          [](std::string name, Tensor weight, std::optional<Tensor> bias,
             std::shared_ptr<PackCache> cache) {
            Step s;
            s.kind = Step::Kind::linear;
            s.name = std::move(name);
            s.weight = std::move(weight);
            s.bias = std::move(bias);
            s.cache = std::move(cache);
            return s;
          },
          py::arg("name"), py::arg("weight"), py::arg("bias"), py::arg("cache"))
      .def_static(
          "activation",
          [](std::string name, int act, double negative_slope) {
            Step s;
            s.kind = Step::Kind::activation;
            s.name = std::move(name);
            s.ep = make_epilogue(act, negative_slope);
            return s;
          },
          py::arg("name"), py::arg("act"), py::arg("negative_slope"))
      .def_static(
          "flatten",
          [](std::string name, std::int64_t start_dim, std::int64_t end_dim) {
            Step s;
            s.kind = Step::Kind::flatten;
            s.name = std::move(name);
            s.start_dim = start_dim;
            s.end_dim = end_dim;
            return s;
          },
          py::arg("name"), py::arg("start_dim"), py::arg("end_dim"))
      .def_static(
          "softmax",
          [](std::string name, std::int64_t dim, bool log) {
            Step s;
            s.kind = log ? Step::Kind::log_softmax : Step::Kind::softmax;
            s.name = std::move(name);
            s.dim = dim;
            return s;
          },
          py::arg("name"), py::arg("dim"), py::arg("log"))
      .def_static(
          "layer_norm",
          [](std::string name, std::vector<std::int64_t> normalized_shape,
             std::optional<Tensor> weight, std::optional<Tensor> bias, double eps) {
            Step s;
            s.kind = Step::Kind::layer_norm;
            s.name = std::move(name);
            s.normalized_shape = std::move(normalized_shape);
            s.norm_weight = std::move(weight);
            s.norm_bias = std::move(bias);
            s.eps = eps;
            return s;
          },
          py::arg("name"), py::arg("normalized_shape"), py::arg("weight"), py::arg("bias"),
          py::arg("eps"))
      .def_static(
          "dropout",
          [](std::string name, double p) {
            Step s;
            s.kind = Step::Kind::dropout;
            s.name = std::move(name);
            s.p = p;
            return s;
          },
          py::arg("name"), py::arg("p"),
          "Dropout in training mode (in eval mode a Dropout compiles to an identity step)")
      .def_static(
          "identity",
          [](std::string name) {
            Step s;
            s.kind = Step::Kind::identity;
            s.name = std::move(name);
            return s;
          },
          py::arg("name"))
      .def_readonly("name", &Step::name);

  // A compiled run as Python holds it: the C++ stack, and what its recorded forward needs as
  // typed fields (the Linear parameters in step order, (weight, bias) per Linear with None for
  // no bias; the node classes of its output by dims 1, 2, 3+). Calling it is the one forward of
  // a native run, for Sequential.forward whether the whole stack is one run or several.
  py::class_<Plan>(m, "SequentialPlan")
      .def(py::init([](std::vector<Step> steps, py::list params, py::tuple nodes) {
             if (nodes.size() != 3) {
               throw std::invalid_argument("SequentialPlan: expected 3 node classes");
             }
             return Plan{Sequential(std::move(steps)), std::move(params), std::move(nodes)};
           }),
           py::arg("steps"), py::arg("params"), py::arg("nodes"))
      .def_readonly("params", &Plan::params)
      .def(
          "__call__", [](const py::object& self, py::handle x) { return plan_call(self, x); },
          py::arg("x"),
          "The run's forward, from one set of weights (load_guard.h), recorded in the graph "
          "under grad mode when x or a parameter requires grad: the output's grad_fn is "
          "nodes[min(y.dim(), 3) - 1](plan, x, params, tape, need), need saying which params "
          "require grad")
      .def(
          "backward",
          [](const Plan& plan, const Tape& tape, const Tensor& dy, bool need_dx,
             const std::vector<bool>& need_params) {
            StackGrads g;
            begin_computation();
            {
              py::gil_scoped_release nogil;
              g = plan.stack.backward(tape, dy, need_dx, need_params);
            }
            py::list params;
            for (std::size_t i = 0; i < g.dw.size(); ++i)
              params.append(py::make_tuple(g.dw[i], g.db[i]));
            return py::make_tuple(g.dx, params);
          },
          py::arg("tape"), py::arg("grad_output"), py::arg("need_dx"), py::arg("need_params"),
          "(dx, [(dw, db) per Linear or LayerNorm]): the whole stack's backward in one call");
}

}  // namespace lincore::bindings
