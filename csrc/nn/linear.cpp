#include "nn/linear.h"

#include <algorithm>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/dispatch.h"
#include "runtime/thread_pool.h"
#include "tensor/errors.h"

namespace lincore {

bool PackCache::Key::operator==(const Key& o) const {
  return w_data == o.w_data && b_data == o.b_data && n == o.n && k == o.k && ldw == o.ldw &&
         w_inner == o.w_inner && w_version == o.w_version && b_version == o.b_version &&
         family == o.family && dtype == o.dtype;
}

const char* const kBf16InferenceOnly =
    "bfloat16 Linear layers are inference-only in lincore: autograd cannot run through them. "
    "Run the model under `with lincore.no_grad():` (or lincore.inference_mode()), or call "
    "requires_grad_(False) on its parameters and its input";

PackCache::Key PackCache::key_of(const Tensor& w, const Tensor* b, DType dtype, int family) {
  Key key;
  key.w_data = w.raw_data();
  key.b_data = b ? b->raw_data() : nullptr;
  key.n = w.shape()[0];
  key.k = w.shape()[1];
  key.ldw = w.strides()[0];
  key.w_inner = w.strides()[1];
  key.w_version = w.storage()->version();
  key.b_version = b ? b->storage()->version() : 0;
  key.family = family;
  key.dtype = dtype;
  return key;
}

template <class T>
PackCache::Key PackCache::key_of(const Tensor& w, const Tensor* b) {
  return key_of(w, b, dtype_of<T>(), detail::active_family_index());
}

template <class T>
std::size_t packed_size(const PackedWeight<T>& p) {
  return static_cast<std::size_t>(p.npad() * (p.k + (p.bias ? 1 : 0))) * sizeof(T);
}

void PackCache::install(const Key& key, std::shared_ptr<const void> packed, std::size_t bytes,
                        const Tensor& w) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    key_ = key;
    packed_ = std::move(packed);
    bytes_ = bytes;
    ++packs_built_;
  }
  w.storage()->set_packer(weak_from_this());  // empty when no shared_ptr owns this cache
}

template <class T>
std::shared_ptr<const PackedWeight<T>> PackCache::get(const Tensor& w, const Tensor* b) {
  const Key key = key_of<T>(w, b);
  const bool trusted = w.storage()->versioned() && (!b || b->storage()->versioned());
  PackedWeight<T> recycled;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (trusted && packed_ && key == key_) {
      return std::static_pointer_cast<const PackedWeight<T>>(packed_);
    }
    // A stale pack that no caller holds any more (checked under the lock, so no one can take
    // it now) lends its buffers to the new one.
    if (packed_ && packed_.use_count() == 1 && key_.dtype == key.dtype) {
      recycled = *std::static_pointer_cast<const PackedWeight<T>>(packed_);
      packed_.reset();
      key_ = Key{};
      bytes_ = 0;
    }
  }
  Tensor bc = b ? b->contiguous() : Tensor();
  auto packed = std::make_shared<PackedWeight<T>>(
      gemm_pack<T>(w.size(0), w.size(1), w.data<T>(), w.strides()[0], b ? bc.data<T>() : nullptr,
                   w.strides()[1], std::move(recycled)));
  install(key, packed, packed_size(*packed), w);
  return packed;
}

std::shared_ptr<const BPackedWeight> PackCache::get_bf16(const Tensor& w, const Tensor* b) {
  // One layout for every bf16 level: the family never makes the pack stale.
  const Key key = key_of(w, b, DType::bfloat16, -1);
  const bool trusted = w.storage()->versioned() && (!b || b->storage()->versioned());
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (trusted && packed_ && key == key_) {
      return std::static_pointer_cast<const BPackedWeight>(packed_);
    }
  }
  // bgemm_pack reads rows contiguous along k; the bias goes in as fp32 (widening is exact).
  const Tensor wc = w.strides()[1] == 1 || w.size(1) <= 1 ? w : w.contiguous();
  std::optional<Tensor> b32;
  if (b) b32 = b->to(DType::float32).contiguous();
  const std::int64_t ldw = wc.size(0) > 1 ? wc.strides()[0] : wc.size(1);
  auto packed = std::make_shared<BPackedWeight>(bgemm_pack(
      w.size(0), w.size(1), wc.data<std::uint16_t>(), ldw, b32 ? b32->data<float>() : nullptr));
  install(key, packed, static_cast<std::size_t>(packed->bytes()), w);
  return packed;
}

template <class T>
bool PackCache::rewrite_and_pack(Tensor& w, const Tensor* b, const RowWriter& write_rows) {
  if (w.dim() != 2 || !w.is_contiguous() || (b && !b->is_contiguous())) return false;
  if (!w.storage()->versioned() || (b && !b->storage()->versioned())) return false;
  Key key = key_of<T>(w, b);
  PackedWeight<T> recycled;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    // b has had its own step already, so only its identity is compared, not its version.
    key.b_version = key_.b_version;
    if (!packed_ || !(key == key_)) return false;
    if (packed_.use_count() == 1) {
      recycled = *std::static_pointer_cast<const PackedWeight<T>>(packed_);
    }
    packed_.reset();
    key_ = Key{};
    bytes_ = 0;
  }
  auto packed = std::make_shared<PackedWeight<T>>(
      gemm_pack<T>(w.size(0), w.size(1), w.data<T>(), w.size(1), b ? b->data<T>() : nullptr, 1,
                   std::move(recycled), &write_rows));
  w.storage()->bump_version();
  const std::size_t bytes = packed_size(*packed);
  install(key_of<T>(w, b), std::move(packed), bytes, w);
  return true;
}

const void* PackCache::bias_data() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return packed_ ? key_.b_data : nullptr;
}

std::uint64_t PackCache::packs_built() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return packs_built_;
}

std::size_t PackCache::packed_bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return bytes_;
}

namespace {

std::string dims_str(std::int64_t a, std::int64_t b) {
  return std::to_string(a) + "x" + std::to_string(b);
}

// Integer Linear: exact, wrapping on overflow like numpy and PyTorch (unsigned arithmetic).
void linear_int64(std::int64_t m, std::int64_t n, std::int64_t k, const std::int64_t* x,
                  std::int64_t ldx, const Tensor& w, const std::int64_t* b, std::int64_t* y) {
  Tensor wc = w.contiguous();
  const std::int64_t* wp = wc.data<std::int64_t>();
  for (std::int64_t i = 0; i < m; ++i) {
    for (std::int64_t j = 0; j < n; ++j) {
      std::uint64_t acc = b ? static_cast<std::uint64_t>(b[j]) : 0;
      for (std::int64_t p = 0; p < k; ++p) {
        acc +=
            static_cast<std::uint64_t>(x[i * ldx + p]) * static_cast<std::uint64_t>(wp[j * k + p]);
      }
      y[i * n + j] = static_cast<std::int64_t>(acc);
    }
  }
}

template <class T>
void linear_float(std::int64_t m, const T* x, std::int64_t ldx, const Tensor& w, const Tensor* b,
                  T* y, Epilogue ep, PackCache* cache) {
  std::shared_ptr<const PackedWeight<T>> packed;
  if (cache) {
    packed = cache->get<T>(w, b);
  } else {
    PackCache local;
    packed = local.get<T>(w, b);
  }
  gemm_run<T>(m, x, ldx, *packed, y, packed->n, ep);
}

void linear_bf16(std::int64_t m, const std::uint16_t* x, std::int64_t ldx, const Tensor& w,
                 const Tensor* b, std::uint16_t* y, Epilogue ep, PackCache* cache) {
  std::shared_ptr<const BPackedWeight> packed;
  if (cache) {
    packed = cache->get_bf16(w, b);
  } else {
    PackCache local;
    packed = local.get_bf16(w, b);
  }
  bgemm_run(m, x, ldx, *packed, y, packed->n, /*y_bf16=*/true, ep);
}

}  // namespace

Tensor linear(const Tensor& x, const Tensor& w, const Tensor* b, Epilogue ep, PackCache* cache) {
  if (x.dim() == 0 || w.dim() != 2) {
    throw std::runtime_error("both arguments to linear need to be at least 1D, but they are " +
                             std::to_string(x.dim()) + "D and " + std::to_string(w.dim()) + "D");
  }
  const std::int64_t n = w.size(0), k = w.size(1);
  const std::int64_t kx = x.size(-1);
  std::int64_t m = 1;  // rows: the product of the leading dims (1 for a 1-D x)
  for (std::int64_t d = 0; d + 1 < x.dim(); ++d) m *= x.shape()[d];
  if (kx != k) {
    throw std::runtime_error("mat1 and mat2 shapes cannot be multiplied (" + dims_str(m, kx) +
                             " and " + dims_str(k, n) + ")");
  }
  if (x.dtype() != w.dtype()) {
    throw std::runtime_error(std::string("mat1 and mat2 must have the same dtype, but got ") +
                             dtype_short_name(x.dtype()) + " and " + dtype_short_name(w.dtype()));
  }
  if (b) {
    if (b->dtype() != w.dtype()) {
      throw std::runtime_error(std::string("linear: expected the bias to have dtype ") +
                               dtype_name(w.dtype()) + ", but got " + dtype_name(b->dtype()));
    }
    if (b->dim() != 1 || b->size(0) != n) {
      throw std::runtime_error("linear: expected a bias of shape [" + std::to_string(n) +
                               "], but got " + shape_str(b->shape()));
    }
  }
  if (x.dtype() == DType::bool_) {
    throw type_error("\"addmm\" not implemented for 'Bool'");
  }
  if (x.dtype() == DType::int64 && ep.act != Activation::none) {
    throw type_error(std::string("\"") + activation_name(ep.act) + "\" not implemented for 'Long'");
  }

  // Sized once, and x used in place when it can be: at batch 1 each allocation and copy of a
  // shape is a visible part of the call.
  Shape out_shape(x.shape());
  out_shape.back() = n;
  Tensor y = Tensor::empty(out_shape, x.dtype());
  if (y.numel() == 0) return y;

  // The kernel needs rows contiguous along k with one row stride: x itself when it is 1-D or
  // 2-D with that layout (any row stride, even 0 or negative), else a view or a copy.
  const bool direct = (k <= 1 || x.strides().back() == 1) && x.dim() <= 2;
  std::optional<Tensor> reshaped;  // (a default Tensor would allocate)
  if (!direct) {
    reshaped = x.reshape({m, k});
    if (k > 1 && reshaped->strides()[1] != 1) reshaped = reshaped->contiguous();
  }
  const Tensor& x2 = direct ? x : *reshaped;
  const std::int64_t ldx = x2.dim() == 2 ? x2.strides()[0] : k;

  switch (x.dtype()) {
    case DType::float32:
      linear_float<float>(m, x2.data<float>(), ldx, w, b, y.data<float>(), ep, cache);
      break;
    case DType::bfloat16: {
      // bgemm reads rows ldx >= k apart: a broadcast (0) or reversed row stride is copied first.
      const bool rows_ok = m <= 1 || ldx >= k;
      const Tensor xr = rows_ok ? x2 : x2.reshape({m, k}).contiguous();
      linear_bf16(m, xr.data<std::uint16_t>(), rows_ok ? ldx : k, w, b, y.data<std::uint16_t>(), ep,
                  cache);
      break;
    }
    case DType::float64:
      linear_float<double>(m, x2.data<double>(), ldx, w, b, y.data<double>(), ep, cache);
      break;
    case DType::int64: {
      Tensor bc = b ? b->contiguous() : Tensor::empty({0}, DType::int64);
      linear_int64(m, n, k, x2.data<std::int64_t>(), ldx, w, b ? bc.data<std::int64_t>() : nullptr,
                   y.data<std::int64_t>());
      break;
    }
    case DType::bool_:
      break;
  }
  return y;
}

namespace {

template <class T>
LinearGrads linear_backward_typed(const Tensor& x2, const Tensor& w, const Tensor& dy2,
                                  bool need_dx, bool need_dw, bool need_db) {
  const std::int64_t m = x2.size(0), k = x2.size(1), n = w.size(0);
  const T* dy = dy2.data<T>();  // m x n, contiguous
  LinearGrads g;
  // Both products take their operands as strided views (gemm_run_strided): dy^T and x^T are
  // never materialized, and the w' operand is packed straight from the view, by all threads.
  if (need_dx) {
    // dx (m x k) = dy . w: x' = dy (row-major), w' = w^T (w'(c, j) = w[j][c]).
    Tensor dx = Tensor::empty({m, k}, x2.dtype());
    if (n == 0) {
      dx.fill(0.0);
    } else {
      gemm_run_strided<T>(m, k, n, dy, n, 1, w.data<T>(), w.strides()[1], w.strides()[0], nullptr,
                          dx.data<T>(), k, Epilogue{});
    }
    g.dx = dx;
  }
  if (need_dw) {
    // dw (n x k) = dy^T . x: x' = dy^T (column-major), w' = x^T (w'(c, i) = x[i][c]).
    Tensor dw = Tensor::empty({n, k}, x2.dtype());
    if (m == 0) {
      dw.fill(0.0);
    } else {
      gemm_run_strided<T>(n, k, m, dy, 1, n, x2.data<T>(), x2.strides()[1], x2.strides()[0],
                          nullptr, dw.data<T>(), k, Epilogue{});
    }
    g.dw = dw;
  }
  if (need_db) {
    // Column sums in double, rows in order; threads take column ranges (the same sums).
    Tensor db = Tensor::empty({n}, x2.dtype());
    T* out = db.data<T>();
    std::vector<double> acc(static_cast<std::size_t>(n), 0.0);
    double* sums = acc.data();
    const std::int64_t grain = std::max<std::int64_t>(1, (1 << 16) / std::max<std::int64_t>(m, 1));
    parallel_for(n, grain, [=](std::int64_t j0, std::int64_t j1) {
      for (std::int64_t i = 0; i < m; ++i)
        for (std::int64_t j = j0; j < j1; ++j) sums[j] += static_cast<double>(dy[i * n + j]);
      for (std::int64_t j = j0; j < j1; ++j) out[j] = static_cast<T>(sums[j]);
    });
    g.db = db;
  }
  return g;
}

}  // namespace

LinearGrads linear_backward(const Tensor& x, const Tensor& w, const Tensor& dy, bool need_dx,
                            bool need_dw, bool need_db) {
  if (w.dim() != 2 || x.dim() == 0 || x.size(-1) != w.size(1)) {
    throw std::invalid_argument("linear_backward: input " + shape_str(x.shape()) +
                                " does not match weight " + shape_str(w.shape()));
  }
  Shape y_shape(x.shape().begin(), x.shape().end() - 1);
  y_shape.push_back(w.size(0));
  if (dy.shape() != y_shape || dy.dtype() != x.dtype() || w.dtype() != x.dtype()) {
    throw std::invalid_argument("linear_backward: expected a gradient of shape " +
                                shape_str(y_shape) + " and dtype " + dtype_name(x.dtype()) +
                                ", got " + shape_str(dy.shape()) + " " + dtype_name(dy.dtype()));
  }
  const std::int64_t k = w.size(1), n = w.size(0);
  std::int64_t m = 1;
  for (std::int64_t d = 0; d + 1 < x.dim(); ++d) m *= x.shape()[d];
  Tensor x2 = x.reshape({m, k});
  Tensor dy2 = dy.reshape({m, n}).contiguous();
  LinearGrads g;
  switch (x.dtype()) {
    case DType::float32:
      g = linear_backward_typed<float>(x2, w, dy2, need_dx, need_dw, need_db);
      break;
    case DType::float64:
      g = linear_backward_typed<double>(x2, w, dy2, need_dx, need_dw, need_db);
      break;
    case DType::bfloat16:
      throw std::runtime_error(kBf16InferenceOnly);
    default:
      throw type_error(std::string("linear_backward: not implemented for '") +
                       dtype_short_name(x.dtype()) + "'");
  }
  if (g.dx) g.dx = g.dx->reshape(x.shape());
  return g;
}

template std::shared_ptr<const PackedWeight<float>> PackCache::get<float>(const Tensor&,
                                                                          const Tensor*);
template std::shared_ptr<const PackedWeight<double>> PackCache::get<double>(const Tensor&,
                                                                            const Tensor*);
template bool PackCache::rewrite_and_pack<float>(Tensor&, const Tensor*, const RowWriter&);
template bool PackCache::rewrite_and_pack<double>(Tensor&, const Tensor*, const RowWriter&);

}  // namespace lincore
