// The entry points gemm_run, gemm_run_serial and gemm_run_strided: gemm.h's preconditions
// asserted at entry (debug builds), then the product split over the thread pool (run_product)
// and run by the family's loop nest (loop_nest.h, compiled in the family's TU). Weights are
// packed by gemm_pack (pack.cpp).
#include <algorithm>
#include <atomic>
#include <cassert>
#include <cstdint>
#include <memory>

#include "kernels/dispatch.h"
#include "kernels/gemm.h"
#include "runtime/aligned_alloc.h"
#include "runtime/interrupt.h"
#include "runtime/thread_pool.h"

namespace lincore {
namespace {

// The elements [lo, hi) that a rows x cols operand with these element strides (any sign) spans.
struct Span {
  std::int64_t lo = 0, hi = 0;
};
Span span_of(std::int64_t rows, std::int64_t row_stride, std::int64_t cols,
             std::int64_t col_stride) {
  if (rows <= 0 || cols <= 0) return {};
  const std::int64_t r = (rows - 1) * row_stride, c = (cols - 1) * col_stride;
  return {std::min<std::int64_t>(r, 0) + std::min<std::int64_t>(c, 0),
          std::max<std::int64_t>(r, 0) + std::max<std::int64_t>(c, 0) + 1};
}

template <class T>
bool overlaps(const T* a, Span sa, const T* b, Span sb) {
  return a && b && sa.hi > sa.lo && sb.hi > sb.lo && a + sa.lo < b + sb.hi && b + sb.lo < a + sa.hi;
}

// gemm.h's preconditions, checked at the entry of every product in debug builds (and in the
// sanitizer build, which keeps assert on): a violation is a bug in the caller, so it aborts with
// the condition's text instead of writing where it must not. x and w are only read, so any
// strides do for them (rows may repeat or run backwards); y is write-only: its rows must not
// overlap each other, nor any input.
template <class T>
void assert_contract(const detail::GemmArgs<T>& a, int nr) {
  assert(a.m >= 0 && a.n >= 0 && a.k >= 0);
  assert(a.m == 0 || a.n == 0 || (a.y != nullptr && (a.m == 1 || a.ldy >= a.n)));
  assert(a.m == 0 || a.k == 0 || a.x != nullptr);
  assert(a.w_direct || a.slice_len >= 1);
  const std::int64_t npad = (a.n + nr - 1) / nr * nr;
  const Span y = span_of(a.m, a.ldy, a.n, 1);
  const Span x = a.x_colmajor ? span_of(a.m, 1, a.k, a.ldx) : span_of(a.m, a.ldx, a.k, 1);
  const Span w = a.w_direct ? span_of(a.n, 1, a.k, a.ldw) : Span{0, npad * a.k};
  assert(!overlaps(a.y, y, a.x, x));
  assert(!overlaps(a.y, y, a.w, w));
  assert(!overlaps(a.y, y, a.bias, Span{0, a.w_direct ? a.n : npad}));
  (void)y, (void)x, (void)w;
}

using detail::blocking_of;
using detail::GemmArgs;
using detail::run_of;
using detail::stride_aliases_in_l1;

}  // namespace

// Below this much work a second thread costs more (waking it, sharing caches) than it saves.
constexpr double kParallelMinFlops = 2.0e6;
// ... unless the product streams this many bytes of W (a batch of one or a few rows: little
// arithmetic, and the time goes into reading W). Split by columns, each thread then reads only
// its share, from its own core's cache when it is warm: measured 2026-12-02, 1x784->256 f32
// (800 KB) went from ~8 to ~5 us on 2 threads.
constexpr double kParallelMinWeightBytes = 256.0 * 1024;
// Above this much work a product checks for interrupts between chunks (~0.1 s of work on one
// core); below it a call finishes before anyone could press Ctrl-C and notice.
constexpr double kInterruptCheckFlops = 2.0e10;

namespace {

// Rows [i0, i1) of a product.
template <class T>
GemmArgs<T> row_range(const GemmArgs<T>& a, std::int64_t i0, std::int64_t i1) {
  GemmArgs<T> r = a;
  r.m = i1 - i0;
  r.x = a.x + (a.x_colmajor ? i0 : i0 * a.ldx);
  r.y = a.y + i0 * a.ldy;
  return r;
}

// Chunks [0, chunks) dealt to nt threads: thread t owns [chunks*t/nt, chunks*(t+1)/nt), takes
// its own in order, then the ones the others have not taken yet.
class ChunkQueues {
 public:
  static constexpr int kMaxThreads = 256;
  ChunkQueues(int nt, std::int64_t chunks) : nt_(std::min(nt, kMaxThreads)) {
    for (int t = 0; t < nt_; ++t) {
      next_[t].store(chunks * t / nt_, std::memory_order_relaxed);
      end_[t] = chunks * (t + 1) / nt_;
    }
  }
  // The next chunk for thread t, or -1 when none is left.
  std::int64_t next(int t) {
    for (int i = 0; i < nt_; ++i) {
      const int q = (t + i) % nt_;
      if (next_[q].load(std::memory_order_relaxed) >= end_[q]) continue;
      const std::int64_t c = next_[q].fetch_add(1, std::memory_order_relaxed);
      if (c < end_[q]) return c;
    }
    return -1;
  }

 private:
  int nt_;
  struct alignas(64) Cursor : std::atomic<std::int64_t> {};  // one cache line each
  Cursor next_[kMaxThreads];
  std::int64_t end_[kMaxThreads];
};

// Runs one product on the family that packed (or, for a direct w', is active), split over the
// thread pool when it is large enough to gain.
template <class T>
void run_product(const detail::KernelFamily& family, const GemmArgs<T>& a, bool serial) {
  const auto& blk = blocking_of<T>(family);
  assert_contract(a, blk.nr);
  if (a.m == 0 || a.n == 0) return;
  const auto run = run_of<T>(family);
  const std::int64_t mr = blk.mr;
  const std::int64_t panels = (a.n + blk.nr - 1) / blk.nr;
  const double flops = 2.0 * static_cast<double>(a.m) * static_cast<double>(a.n) *
                       static_cast<double>(a.k > 0 ? a.k : 1);
  const double w_bytes = static_cast<double>(a.n) * static_cast<double>(a.k) * sizeof(T);
  const bool worth_threads = flops >= kParallelMinFlops || w_bytes >= kParallelMinWeightBytes;
  int nt = serial || !worth_threads ? 1 : get_num_threads();
  // Large products are cut into chunks even on one thread, so that an interrupt (Ctrl-C) is
  // noticed between chunks, a fraction of a second apart.
  const bool interruptible = !serial && flops >= kInterruptCheckFlops;
  // Split the columns (W's panels) when rows are few: each thread then streams only its share
  // of W, and the split is the same on every call (thread t keeps the same columns, so they stay
  // in its core's cache). Otherwise split the rows in MR-aligned chunks; every thread reads all
  // of W. Rows are split too when x is packed (its rows alias in L1): each thread then packs
  // only its own rows, once per K-slice, instead of every thread packing all of them for each of
  // its column chunks. K is never split, so each output is one FMA chain whatever the thread
  // count.
  const bool packs_x = stride_aliases_in_l1(a.ldx, sizeof(T));
  const bool split_columns = a.m < 4 * mr * nt || (a.n >= a.m && !packs_x);
  if (split_columns)
    nt = static_cast<int>(std::min<std::int64_t>(nt, panels));
  else
    nt = static_cast<int>(std::min<std::int64_t>(nt, (a.m + mr - 1) / mr));
  if (nt <= 1 && !interruptible) {
    run(a, 0, panels);
    return;
  }
  nt = std::max(nt, 1);
  // The work is cut into a few chunks per thread. Thread t owns a contiguous run of them, the
  // same on every call, so that in a quiet process it keeps the same columns (or rows) call
  // after call, and finds them in its core's cache; the same split as gemm_pack's and the
  // optimizers' passes over a weight. A thread that is done takes the chunks another has not
  // started yet: one that starts late (its core busy with another library's spinning pool, say)
  // then finds its work done by the others instead of holding everyone up.
  const std::int64_t units = split_columns ? panels : (a.m + mr - 1) / mr;
  const std::int64_t target_chunks =
      interruptible ? std::max<std::int64_t>(4 * nt, static_cast<std::int64_t>(flops / 2e10) * nt)
                    : 4 * nt;
  const std::int64_t chunks = std::min<std::int64_t>(units, target_chunks);
  ChunkQueues queues(nt, chunks);
  parallel_run(nt, [&](int t) {
    for (std::int64_t c = queues.next(t); c >= 0; c = queues.next(t)) {
      if (interruptible && interrupt_requested()) return;  // the caller throws below
      const std::int64_t u0 = units * c / chunks, u1 = units * (c + 1) / chunks;
      if (split_columns) {
        run(a, u0, u1);
      } else {
        run(row_range(a, u0 * mr, std::min(a.m, u1 * mr)), 0, panels);
      }
    }
  });
  if (interruptible) check_interrupt();
}

template <class T>
GemmArgs<T> packed_args(std::int64_t m, const T* x, std::int64_t ldx, const PackedWeight<T>& pw,
                        T* y, std::int64_t ldy, Epilogue ep) {
  GemmArgs<T> a;
  a.m = m;
  a.n = pw.n;
  a.k = pw.k;
  a.x = x;
  a.ldx = ldx;
  a.w = pw.data.get();
  a.bias = pw.bias.get();
  a.y = y;
  a.ldy = ldy;
  a.ep = ep;
  a.slice_len = pw.slice_len;
  return a;
}

}  // namespace

template <class T>
void gemm_run(std::int64_t m, const T* x, std::int64_t ldx, const PackedWeight<T>& pw, T* y,
              std::int64_t ldy, Epilogue ep) {
  run_product(detail::family_at(pw.family), packed_args(m, x, ldx, pw, y, ldy, ep), false);
}

template <class T>
void gemm_run_serial(std::int64_t m, const T* x, std::int64_t ldx, const PackedWeight<T>& pw, T* y,
                     std::int64_t ldy, Epilogue ep) {
  run_product(detail::family_at(pw.family), packed_args(m, x, ldx, pw, y, ldy, ep), true);
}

template <class T>
void gemm_run_strided(std::int64_t m, std::int64_t n, std::int64_t k, const T* x,
                      std::int64_t ldx_row, std::int64_t ldx_col, const T* w, std::int64_t ldw_row,
                      std::int64_t ldw_col, const T* b, T* y, std::int64_t ldy, Epilogue ep) {
  if (m == 0 || n == 0) return;
  GemmArgs<T> a;
  a.m = m;
  a.n = n;
  a.k = k;
  a.bias = b;
  a.y = y;
  a.ldy = ldy;
  a.ep = ep;
  // x is read in place when it is row-major or column-major (any leading stride); otherwise a
  // contiguous copy is made.
  std::shared_ptr<T> xcopy;
  if (ldx_col == 1 || k <= 1) {
    a.x = x;
    a.ldx = ldx_row;
  } else if (ldx_row == 1 || m == 1) {
    a.x = x;
    a.ldx = ldx_col;
    a.x_colmajor = true;
  } else {
    xcopy =
        std::static_pointer_cast<T>(aligned_shared(sizeof(T) * static_cast<std::size_t>(m * k)));
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t p = 0; p < k; ++p) xcopy.get()[i * k + p] = x[i * ldx_row + p * ldx_col];
    a.x = xcopy.get();
    a.ldx = k;
  }
  // w is read in place when the product has so few rows that each of its values is used once,
  // and each k step's n values are adjacent (a transposed row-major matrix, as in the backward
  // pass). Otherwise it is packed for this call (by the pool's threads): measured faster than
  // reading panels in place, which the rows of x would reuse from L1 (256x1024x1024, dx: 6.2 ms
  // in place with panel copies, 4.7 ms + 0.5 ms to pack).
  if (m <= detail::kWideRows && (ldw_row == 1 || n == 1)) {
    a.w = w;
    a.ldw = ldw_col;
    a.w_direct = true;
    run_product(detail::active_family(), a, false);
    return;
  }
  const PackedWeight<T> pw = gemm_pack<T>(n, k, w, ldw_row, b, ldw_col);
  GemmArgs<T> p = packed_args(m, a.x, a.ldx, pw, y, ldy, ep);
  p.x_colmajor = a.x_colmajor;
  run_product(detail::family_at(pw.family), p, false);
}

template void gemm_run_serial<float>(std::int64_t, const float*, std::int64_t,
                                     const PackedWeight<float>&, float*, std::int64_t, Epilogue);
template void gemm_run_serial<double>(std::int64_t, const double*, std::int64_t,
                                      const PackedWeight<double>&, double*, std::int64_t, Epilogue);
template void gemm_run_strided<float>(std::int64_t, std::int64_t, std::int64_t, const float*,
                                      std::int64_t, std::int64_t, const float*, std::int64_t,
                                      std::int64_t, const float*, float*, std::int64_t, Epilogue);
template void gemm_run_strided<double>(std::int64_t, std::int64_t, std::int64_t, const double*,
                                       std::int64_t, std::int64_t, const double*, std::int64_t,
                                       std::int64_t, const double*, double*, std::int64_t,
                                       Epilogue);
template void gemm_run<float>(std::int64_t, const float*, std::int64_t, const PackedWeight<float>&,
                              float*, std::int64_t, Epilogue);
template void gemm_run<double>(std::int64_t, const double*, std::int64_t,
                               const PackedWeight<double>&, double*, std::int64_t, Epilogue);

}  // namespace lincore
