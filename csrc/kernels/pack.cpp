// gemm_pack: a weight (w and its bias) packed once into gemm.h's PackedWeight layout for the
// kernel family in use, over the thread pool, by the family's own packing routine (its PackFn,
// when it has one for this layout) or the portable packing loop below. ISA-neutral: it only needs
// the family's NR and KC. The per-ISA packing sites (x panels, the ragged panel of a w' read in
// place, fp32 by in-register transposes) are in pack.h.
#include <algorithm>
#include <cassert>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "kernels/dispatch.h"
#include "kernels/gemm.h"
#include "runtime/aligned_alloc.h"
#include "runtime/thread_pool.h"

namespace lincore {

// Packing is a pass over memory: threads take ranges of panels once it is this big (elements).
constexpr std::int64_t kPackParallelElements = 1 << 15;
// The rows of w that a RowWriter writes just before they are packed: a fraction of L2, so that
// the strip (and the writer's other operands over it) is still there when it is packed.
constexpr std::int64_t kWriteStripBytes = 128 << 10;

template <class T>
PackedWeight<T> gemm_pack(std::int64_t n, std::int64_t k, const T* w, std::int64_t ldw, const T* b,
                          std::int64_t ldw_col, PackedWeight<T> recycled,
                          const RowWriter* write_rows) {
  assert(n >= 0 && k >= 0);
  assert(n == 0 || k == 0 || w != nullptr);
  PackedWeight<T> pw;
  pw.family = detail::active_family_index();
  const auto& family = detail::family_at(pw.family);
  const auto& blk = detail::blocking_of<T>(family);
  pw.n = n;
  pw.k = k;
  pw.nr = blk.nr;
  pw.slice_len = static_cast<int>(detail::balanced_slice_len(k, blk.kc));
  const std::int64_t npad = pw.npad(), nr = pw.nr, panels = npad / nr;
  const bool reuse = recycled.data && recycled.data.use_count() == 1 &&
                     recycled.family == pw.family && recycled.npad() * recycled.k == npad * k;
  pw.data = reuse ? std::move(recycled.data)
                  : std::static_pointer_cast<T>(
                        aligned_shared(sizeof(T) * static_cast<std::size_t>(npad * k)));
  T* dst = pw.data.get();
  detail::PackFn<T> pack_fn = nullptr;  // the family's own packing routine, when it has one
  if constexpr (std::is_same_v<T, float>) {
    if (ldw_col == 1 && ldw != 1) pack_fn = family.pack_f32;
  }
  const std::int64_t panel_grain =
      std::max<std::int64_t>(1, kPackParallelElements / (nr * (k + 1)));
  auto pack_panels = [&](std::int64_t jr0, std::int64_t jr1) {
    if (pack_fn) {
      pack_fn(n, k, pw.slice_len, w, ldw, dst, jr0, jr1);
      return;
    }
    // The portable packing loop. Slice pc starts at pc * npad; inside it panel jr starts at
    // jr * kcur * NR, k-major. When a panel's NR columns are adjacent in memory (ldw == 1: a
    // transposed view) each k step is one contiguous copy; otherwise each column is read along
    // its row (contiguous when ldw_col == 1) and written down the panel (measured faster than
    // gathering each k step across rows).
    for (std::int64_t pc = 0; pc < k; pc += pw.slice_len) {
      const std::int64_t kcur = k - pc < pw.slice_len ? k - pc : pw.slice_len;
      for (std::int64_t jr = jr0; jr < jr1; ++jr) {
        T* panel = dst + pc * npad + jr * kcur * nr;
        const std::int64_t j0 = jr * nr;
        const std::int64_t cols = n - j0 < nr ? n - j0 : nr;
        const T* src = w + j0 * ldw + pc * ldw_col;
        if (ldw == 1) {
          for (std::int64_t p = 0; p < kcur; ++p) {
            std::memcpy(panel + p * nr, src + p * ldw_col,
                        sizeof(T) * static_cast<std::size_t>(cols));
            for (std::int64_t c = cols; c < nr; ++c) panel[p * nr + c] = T(0);
          }
          continue;
        }
        for (std::int64_t c = 0; c < nr; ++c) {
          const T* in = src + c * ldw;
          if (c >= cols) {
            for (std::int64_t p = 0; p < kcur; ++p) panel[p * nr + c] = T(0);
          } else if (ldw_col == 1) {
            for (std::int64_t p = 0; p < kcur; ++p) panel[p * nr + c] = in[p];
          } else {
            for (std::int64_t p = 0; p < kcur; ++p) panel[p * nr + c] = in[p * ldw_col];
          }
        }
      }
    }
  };
  // A written strip is packed while it is in L2: strips of at most kWriteStripBytes of w.
  const std::int64_t panel_bytes =
      nr * std::max<std::int64_t>(k, 1) * static_cast<std::int64_t>(sizeof(T));
  const std::int64_t strip = std::max<std::int64_t>(1, kWriteStripBytes / panel_bytes);
  parallel_for(panels, panel_grain, [&](std::int64_t jr0, std::int64_t jr1) {
    if (write_rows == nullptr) {
      pack_panels(jr0, jr1);
      return;
    }
    for (std::int64_t jr = jr0; jr < jr1; jr += strip) {
      const std::int64_t je = std::min(jr1, jr + strip);
      (*write_rows)(jr* nr, std::min(n, je * nr));
      pack_panels(jr, je);
    }
  });
  if (b) {
    const bool reuse_bias = reuse && recycled.bias && recycled.bias.use_count() == 1;
    pw.bias = reuse_bias ? std::move(recycled.bias)
                         : std::static_pointer_cast<T>(
                               aligned_shared(sizeof(T) * static_cast<std::size_t>(npad)));
    std::memcpy(pw.bias.get(), b, sizeof(T) * n);
    std::memset(pw.bias.get() + n, 0, sizeof(T) * (npad - n));
  }
  return pw;
}

template PackedWeight<float> gemm_pack<float>(std::int64_t, std::int64_t, const float*,
                                              std::int64_t, const float*, std::int64_t,
                                              PackedWeight<float>, const RowWriter*);
template PackedWeight<double> gemm_pack<double>(std::int64_t, std::int64_t, const double*,
                                                std::int64_t, const double*, std::int64_t,
                                                PackedWeight<double>, const RowWriter*);

}  // namespace lincore
