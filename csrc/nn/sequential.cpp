#include "nn/sequential.h"

#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <type_traits>

#include "kernels/dispatch.h"
#include "nn/activation.h"
#include "nn/dropout.h"
#include "nn/layer_norm.h"
#include "nn/softmax.h"
#include "runtime/interrupt.h"
#include "runtime/thread_pool.h"
#include "tensor/errors.h"

namespace lincore {
namespace {

// Packed weights up to this size stay in a core's L2 (1 MiB on Zen 4 and Skylake-SP) while row
// blocks go through the stack. Measured 2026-12-04 on Zen 4, no_grad, row blocks (four per
// thread) against the layers one by one: 784-256-128-10 (0.95 MiB) 3-30% faster; 1024-wide
// stacks (12 MiB) 8% slower at batch 64 on 1 thread and at batch 256 on 2 threads, but 22-28%
// faster at batch 64 on 2 threads.
constexpr std::int64_t kStackInL2Bytes = 1 << 20;

// One step of a whole-stack run: a Linear (with the activation that follows it fused in), an
// activation on its own, or a softmax, log_softmax or LayerNorm over each row (`row`).
template <class T>
struct Op {
  std::shared_ptr<const PackedWeight<T>> pw;  // null for an activation or row step
  std::shared_ptr<const QPackedWeight> qpw;   // a quantized Linear (float stacks only)
  Epilogue ep;
  std::int64_t width;  // output features
  const Step* row = nullptr;
};

// A row step's forward on rows [0, m): the same per-row functions as the layer's own kernel.
template <class T>
void run_row_step(const Step& s, std::int64_t m, const T* x, std::int64_t ldx, T* y,
                  std::int64_t ldy, std::int64_t width) {
  if (s.kind == Step::Kind::layer_norm) {
    const T* w = s.norm_weight ? s.norm_weight->data<T>() : nullptr;
    const T* b = s.norm_bias ? s.norm_bias->data<T>() : nullptr;
    double stats[2];
    for (std::int64_t r = 0; r < m; ++r)
      layer_norm_row(x + r * ldx, w, b, y + r * ldy, width, s.eps, stats);
  } else {
    const bool log = s.kind == Step::Kind::log_softmax;
    for (std::int64_t r = 0; r < m; ++r) softmax_line(x + r * ldx, y + r * ldy, width, 1, log);
  }
}

// Two ping-pong buffers per thread for the intermediate activations of a row block, kept across
// calls: a warm Sequential call allocates nothing but its output.
template <class T>
T* scratch(int which, std::size_t count) {
  thread_local std::vector<T> buffers[2];
  auto& b = buffers[which];
  if (b.size() < count) b.resize(count);
  return b.data();
}

// Runs every op on rows [0, m) of x, writing the last op's output to y. `serial`: each gemm on
// the calling thread (the caller parallelises over row blocks); else each gemm may use the pool.
template <class T>
void run_rows(std::int64_t m, const T* x, std::int64_t ldx, const std::vector<Op<T>>& ops, T* y,
              std::int64_t ldy, bool serial) {
  const T* cur = x;
  std::int64_t ldcur = ldx;
  for (std::size_t i = 0; i < ops.size(); ++i) {
    const Op<T>& op = ops[i];
    const bool last = i + 1 == ops.size();
    T* out = last ? y : scratch<T>(static_cast<int>(i % 2), static_cast<std::size_t>(m * op.width));
    const std::int64_t ldout = last ? ldy : op.width;
    if (op.row) {
      run_row_step(*op.row, m, cur, ldcur, out, ldout, op.width);
    } else if (op.qpw) {
      if constexpr (std::is_same_v<T, float>)
        qgemm_run(m, cur, ldcur, *op.qpw, out, ldout, op.ep, serial);
    } else if (op.pw) {
      if (serial)
        gemm_run_serial<T>(m, cur, ldcur, *op.pw, out, ldout, op.ep);
      else
        gemm_run<T>(m, cur, ldcur, *op.pw, out, ldout, op.ep);
    } else {
      for (std::int64_t r = 0; r < m; ++r)
        for (std::int64_t c = 0; c < op.width; ++c)
          out[r * ldout + c] = activate(cur[r * ldcur + c], op.ep);
    }
    cur = out;
    ldcur = ldout;
  }
}

}  // namespace

// The whole-stack path: steps that are only Linear, activations, Identity and row steps, on
// float data, widths that chain. Returns false (and does nothing) when the stack does not qualify;
// the layer-by-layer path then runs it and reports any error.
template <class T>
bool Sequential::forward_fused(const Tensor& x, std::optional<Tensor>& out) const {
  std::vector<Op<T>> ops;
  ops.reserve(steps_.size());  // one allocation per call, not one per growth
  std::int64_t width = x.size(-1);
  for (std::size_t i = 0; i < steps_.size(); ++i) {
    const Step& s = steps_[i];
    if (s.kind == Step::Kind::identity) continue;
    if (s.kind == Step::Kind::activation) {
      ops.push_back({nullptr, nullptr, s.ep, width});
      continue;
    }
    // Row steps: a softmax along the last dim, a LayerNorm over it alone (contiguous parameters
    // of x's dtype); anything else goes layer by layer.
    if (s.kind == Step::Kind::softmax || s.kind == Step::Kind::log_softmax) {
      if (s.dim != -1 && s.dim != x.dim() - 1) return false;
      ops.push_back({nullptr, nullptr, Epilogue{}, width, &s});
      continue;
    }
    if (s.kind == Step::Kind::layer_norm) {
      for (const auto* p : {&s.norm_weight, &s.norm_bias})
        if (*p && ((*p)->dtype() != x.dtype() || !(*p)->is_contiguous())) return false;
      if (s.normalized_shape != Shape{width}) return false;
      ops.push_back({nullptr, nullptr, Epilogue{}, width, &s});
      continue;
    }
    if (s.kind == Step::Kind::qlinear) {
      if (!std::is_same_v<T, float> || s.qweight->k != width) return false;
      Op<T> op{nullptr, s.qweight, Epilogue{}, s.qweight->n};
      if (i + 1 < steps_.size() && steps_[i + 1].kind == Step::Kind::activation) {
        op.ep = steps_[++i].ep;
      }
      ops.push_back(op);
      width = op.width;
      continue;
    }
    if (s.kind != Step::Kind::linear || s.weight.dtype() != x.dtype() ||
        s.weight.size(1) != width || (s.bias && s.bias->dtype() != x.dtype())) {
      return false;
    }
    Op<T> op{s.cache->get<T>(s.weight, s.bias ? &*s.bias : nullptr), nullptr, Epilogue{},
             s.weight.size(0)};
    if (i + 1 < steps_.size() && steps_[i + 1].kind == Step::Kind::activation) {
      op.ep = steps_[++i].ep;
    }
    ops.push_back(op);
    width = op.width;
  }
  if (ops.empty()) return false;

  std::int64_t m = 1;
  for (std::int64_t d = 0; d + 1 < x.dim(); ++d) m *= x.shape()[d];
  Shape out_shape(x.shape());
  out_shape.back() = width;
  out = Tensor::empty(out_shape, x.dtype());
  if (out->numel() == 0) return true;
  Tensor x2 = x.reshape({m, x.size(-1)});
  if (x2.size(1) > 1 && x2.strides()[1] != 1) x2 = x2.contiguous();
  const T* xp = x2.data<T>();
  const std::int64_t ldx = x2.strides()[0];
  T* yp = out->data<T>();

  // Many rows: row blocks go through all layers, each thread its own blocks (one parallel
  // region per call, intermediates in that thread's cache). Few rows: layer by layer, each
  // layer's gemm free to split W's columns over the threads.
  //
  // Weights past a core's L2 stream from L3 once per row block. Then a batch that each gemm
  // would split by rows anyway (four row tiles per thread) goes layer by layer too, and a
  // smaller one takes one row block per thread (where each gemm would split W's columns, with a
  // barrier per layer).
  const auto& blk = [&]() -> const detail::Blocking<T>& {
    const auto& f = detail::active_family();
    if constexpr (std::is_same_v<T, float>)
      return f.f32;
    else
      return f.f64;
  }();
  const int threads = get_num_threads();
  std::int64_t weight_bytes = 0;
  for (const Op<T>& op : ops)
    if (op.pw) weight_bytes += op.pw->npad() * op.pw->k * static_cast<std::int64_t>(sizeof(T));
  for (const Op<T>& op : ops)
    if (op.qpw) weight_bytes += op.qpw->npad() * op.qpw->kpad();
  const bool weights_in_l2 = weight_bytes <= kStackInL2Bytes;
  if (m < 2 * blk.mr * threads || (!weights_in_l2 && m >= 4 * blk.mr * threads)) {
    run_rows<T>(m, xp, ldx, ops, yp, width, false);
    return true;
  }
  // Blocks of at most MC rows (four per thread while the weights fit in L2), taken from a shared
  // counter: a thread that starts late finds them done by the others.
  const std::int64_t blocks_per_thread = weights_in_l2 ? 4 : 1;
  const std::int64_t per_block =
      (m + blocks_per_thread * threads - 1) / (blocks_per_thread * threads);
  const std::int64_t block = std::min<std::int64_t>(
      blk.mc, std::max<std::int64_t>(blk.mr, (per_block + blk.mr - 1) / blk.mr * blk.mr));
  const std::int64_t blocks = (m + block - 1) / block;
  const int nt = static_cast<int>(std::min<std::int64_t>(threads, blocks));
  std::atomic<std::int64_t> next{nt};
  parallel_run(nt, [&](int t) {
    for (std::int64_t b = t; b < blocks; b = next.fetch_add(1, std::memory_order_relaxed)) {
      if (interrupt_requested()) return;  // checked again below, on the calling thread
      const std::int64_t r0 = b * block, rows = std::min(block, m - r0);
      run_rows<T>(rows, xp + r0 * ldx, ldx, ops, yp + r0 * width, width, true);
    }
  });
  check_interrupt();
  return true;
}

namespace {

// Whether a Linear on x's dtype may run the activation after it in its kernel. In bfloat16
// only when that gives the bits of PyTorch's two ops (the Linear's output rounded to bf16, then
// the activation in fp32 rounded again): for ReLU, which commutes with the rounding; a sigmoid
// of the unrounded sum could round to another bf16 value.
bool fuses(DType dtype, Epilogue ep) {
  if (dtype == DType::bfloat16) return ep.act == Activation::relu;
  return is_floating_point(dtype);
}

Tensor linear_step(const Tensor& x, const Step& s, Epilogue ep) {
  try {
    return linear(x, s.weight, s.bias ? &*s.bias : nullptr, ep, s.cache.get());
  } catch (const std::runtime_error& e) {
    // Name the layer: the kernel's message alone does not say which one failed.
    throw std::runtime_error(std::string(e.what()) + " (in layer " + s.name + ")");
  }
}

Tensor qlinear_step(const Tensor& x, const Step& s, Epilogue ep) {
  try {
    return qlinear(x, *s.qweight, ep);
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(std::string(e.what()) + " (in layer " + s.name + ")");
  }
}

// A softmax, log_softmax, LayerNorm or Dropout step's forward; `saved` gets what its backward
// needs (when not null).
Tensor norm_step(const Tensor& x, const Step& s, std::optional<Tensor>* saved) {
  try {
    switch (s.kind) {
      case Step::Kind::softmax:
      case Step::Kind::log_softmax: {
        Tensor y = softmax(x, s.dim, s.kind == Step::Kind::log_softmax);
        if (saved) *saved = y;
        return y;
      }
      case Step::Kind::layer_norm: {
        LayerNormOut out =
            layer_norm(x, s.normalized_shape, s.norm_weight ? &*s.norm_weight : nullptr,
                       s.norm_bias ? &*s.norm_bias : nullptr, s.eps);
        if (saved) *saved = std::move(out.stats);
        return std::move(out.y);
      }
      default: {  // dropout
        DropoutOut out = dropout(x, s.p);
        if (saved) *saved = std::move(out.mask);
        return std::move(out.y);
      }
    }
  } catch (const not_implemented_error& e) {
    throw not_implemented_error(std::string(e.what()) + " (in layer " + s.name + ")");
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(std::string(e.what()) + " (in layer " + s.name + ")");
  }
}

}  // namespace

Tensor Sequential::forward_train(const Tensor& input, Tape& tape) const {
  // Each step's input moves into the tape, and the entries are sized once: at batch 1 the
  // tape's own copies and growth were a visible part of a recorded call.
  tape.entries.reserve(tape.entries.size() + steps_.size());
  Tensor x = input;
  for (std::size_t i = 0; i < steps_.size(); ++i) {
    check_interrupt();
    const Step& s = steps_[i];
    // No backward runs on bf16 (inference only). A bf16 x meeting a Linear of another dtype
    // gets that Linear's dtype mismatch error instead, as PyTorch's does.
    if (x.dtype() == DType::bfloat16 &&
        !(s.kind == Step::Kind::linear && s.weight.dtype() != x.dtype())) {
      throw std::runtime_error(std::string(kBf16InferenceOnly) + " (in layer " + s.name + ")");
    }
    switch (s.kind) {
      case Step::Kind::identity:
        break;
      case Step::Kind::flatten: {
        Tensor out = x.flatten(s.start_dim, s.end_dim);
        tape.entries.push_back({i, std::move(x), std::nullopt, std::nullopt, Epilogue{}});
        x = std::move(out);
        break;
      }
      case Step::Kind::activation: {
        Tensor out = activation(x, s.ep);
        tape.entries.push_back({i, std::move(x), std::nullopt, std::nullopt, s.ep});
        x = std::move(out);
        break;
      }
      case Step::Kind::softmax:
      case Step::Kind::log_softmax:
      case Step::Kind::layer_norm:
      case Step::Kind::dropout: {
        std::optional<Tensor> saved;
        Tensor out = norm_step(x, s, &saved);
        tape.entries.push_back(
            {i, std::move(x), std::nullopt, std::nullopt, Epilogue{}, std::move(saved)});
        x = std::move(out);
        break;
      }
      case Step::Kind::qlinear: {
        // Inference only: recorded so that backward can say where the gradient stops.
        const bool fuse = i + 1 < steps_.size() && steps_[i + 1].kind == Step::Kind::activation;
        const Epilogue ep = fuse ? steps_[i + 1].ep : Epilogue{};
        Tensor out = qlinear_step(x, s, ep);
        tape.entries.push_back({i, std::move(x), std::nullopt, std::nullopt, ep});
        x = std::move(out);
        if (fuse) ++i;
        break;
      }
      case Step::Kind::linear: {
        const bool has_act = i + 1 < steps_.size() &&
                             steps_[i + 1].kind == Step::Kind::activation &&
                             is_floating_point(x.dtype());
        const Epilogue ep = has_act ? steps_[i + 1].ep : Epilogue{};
        if (has_act && backward_from_output(ep)) {
          // Fused, as in forward(): the same values as the Linear and then the activation.
          Tensor y = linear_step(x, s, ep);
          tape.entries.push_back({i, std::move(x), std::nullopt, y, ep});
          x = std::move(y);
        } else if (has_act) {
          Tensor z = linear_step(x, s, Epilogue{});
          Tensor out = activation(z, ep);
          tape.entries.push_back({i, std::move(x), std::move(z), std::nullopt, ep});
          x = std::move(out);
        } else {
          Tensor out = linear_step(x, s, Epilogue{});
          tape.entries.push_back({i, std::move(x), std::nullopt, std::nullopt, Epilogue{}});
          x = std::move(out);
        }
        if (has_act) ++i;
        break;
      }
    }
  }
  return x;
}

StackGrads Sequential::backward(const Tape& tape, const Tensor& dy, bool need_dx,
                                const std::vector<bool>& need_params) const {
  StackGrads grads;
  // Parameter steps (Linear, LayerNorm) by their place in need_params and the grads.
  std::vector<std::size_t> linear_index(steps_.size(), 0);
  std::size_t linears = 0;
  for (std::size_t i = 0; i < steps_.size(); ++i)
    if (steps_[i].kind == Step::Kind::linear || steps_[i].kind == Step::Kind::layer_norm)
      linear_index[i] = linears++;
  if (need_params.size() != 2 * linears) {
    throw std::invalid_argument("backward: expected " + std::to_string(2 * linears) +
                                " parameter flags, got " + std::to_string(need_params.size()));
  }
  grads.dw.resize(linears);
  grads.db.resize(linears);
  Tensor g = dy;
  for (std::size_t e = tape.entries.size(); e-- > 0;) {
    check_interrupt();
    const Tape::Entry& entry = tape.entries[e];
    const Step& s = steps_[entry.step];
    const bool first = e == 0;
    switch (s.kind) {
      case Step::Kind::identity:
        break;
      case Step::Kind::flatten:
        g = g.reshape(entry.input.shape());
        break;
      case Step::Kind::activation:
        g = activation_backward(g, entry.input, s.ep);
        break;
      case Step::Kind::softmax:
      case Step::Kind::log_softmax:
        g = softmax_backward(g, *entry.saved, s.dim, s.kind == Step::Kind::log_softmax);
        break;
      case Step::Kind::dropout:
        g = dropout_backward(g, *entry.saved);
        break;
      case Step::Kind::layer_norm: {
        const std::size_t li = linear_index[entry.step];
        LayerNormGrads lg = layer_norm_backward(
            g, entry.input, *entry.saved, s.normalized_shape,
            s.norm_weight ? &*s.norm_weight : nullptr, !first || need_dx,
            need_params[2 * li] && s.norm_weight, need_params[2 * li + 1] && s.norm_bias);
        grads.dw[li] = lg.dweight;
        grads.db[li] = lg.dbias;
        if (lg.dx) g = *lg.dx;
        break;
      }
      case Step::Kind::linear: {
        if (entry.z) g = activation_backward(g, *entry.z, entry.ep);
        if (entry.y) g = activation_backward_from_output(g, *entry.y, entry.ep);
        const std::size_t li = linear_index[entry.step];
        LinearGrads lg = linear_backward(entry.input, s.weight, g, !first || need_dx,
                                         need_params[2 * li], need_params[2 * li + 1] && s.bias);
        grads.dw[li] = lg.dw;
        grads.db[li] = lg.db;
        if (lg.dx) g = *lg.dx;
        break;
      }
      case Step::Kind::qlinear: {
        // No gradient flows through int8 arithmetic: fine when nothing before it wants one.
        bool wanted = need_dx;
        for (std::size_t j = 0; j < entry.step; ++j)
          if (steps_[j].kind == Step::Kind::linear || steps_[j].kind == Step::Kind::layer_norm)
            wanted =
                wanted || need_params[2 * linear_index[j]] || need_params[2 * linear_index[j] + 1];
        if (wanted) {
          throw not_implemented_error(
              "backward through a quantized Linear is not supported "
              "(int8 layers are for inference) (in layer " +
              s.name + ")");
        }
        return grads;
      }
    }
  }
  if (need_dx) grads.dx = g;
  return grads;
}

Tensor Sequential::forward(const Tensor& input) const {
  std::optional<Tensor> fused;  // (a default Tensor would allocate, on every call)
  if (input.dim() >= 1 && input.dtype() == DType::float32 && forward_fused<float>(input, fused)) {
    return std::move(*fused);
  }
  if (input.dim() >= 1 && input.dtype() == DType::float64 && forward_fused<double>(input, fused)) {
    return std::move(*fused);
  }
  Tensor x = input;
  for (std::size_t i = 0; i < steps_.size(); ++i) {
    check_interrupt();
    const Step& s = steps_[i];
    switch (s.kind) {
      case Step::Kind::identity:
        break;
      case Step::Kind::flatten:
        x = x.flatten(s.start_dim, s.end_dim);
        break;
      case Step::Kind::activation:
        x = activation(x, s.ep);
        break;
      case Step::Kind::softmax:
      case Step::Kind::log_softmax:
      case Step::Kind::layer_norm:
      case Step::Kind::dropout:
        x = norm_step(x, s, nullptr);
        break;
      case Step::Kind::linear: {
        Epilogue ep;
        const bool fuse = i + 1 < steps_.size() && steps_[i + 1].kind == Step::Kind::activation &&
                          fuses(x.dtype(), steps_[i + 1].ep);
        if (fuse) ep = steps_[i + 1].ep;
        x = linear_step(x, s, ep);
        if (fuse) ++i;
        break;
      }
      case Step::Kind::qlinear: {
        const bool fuse = i + 1 < steps_.size() && steps_[i + 1].kind == Step::Kind::activation;
        x = qlinear_step(x, s, fuse ? steps_[i + 1].ep : Epilogue{});
        if (fuse) ++i;
        break;
      }
    }
  }
  return x;
}

}  // namespace lincore
