// The bf16 entry points (bgemm.h): packing, the conversions, and bgemm_run: x prepared by the
// active level (read in place when the level multiplies bf16 pairs and k is even), then the
// product split over the thread pool and run by that level's loop nest (bkernel.h, compiled in
// the level's TU).
#include <algorithm>
#include <cstring>
#include <memory>
#include <stdexcept>

#include "kernels/bfamily.h"
#include "kernels/bgemm.h"
#include "kernels/lowp_split.h"
#include "runtime/aligned_alloc.h"
#include "runtime/thread_pool.h"

namespace lincore {
namespace {

// Below this many bf16 multiply-adds a second thread costs more than it saves (a half of fp32's
// 1 M FMAs: VDPBF16PS runs about 2x faster) ...
constexpr double kBParallelMinMacs = 2.0e6;
// ... unless the product streams this many bytes of W (the few-row case, split by columns).
constexpr double kBParallelMinWeightBytes = 256.0 * 1024;

std::int64_t round_up(std::int64_t v, std::int64_t to) { return (v + to - 1) / to * to; }

// Index of value p of column c (of its panel) in a panel: pairs of 16 columns x 2 k steps.
inline std::int64_t packed_index(std::int64_t c, std::int64_t p) {
  return (p / kBPair) * (kBPanel * kBPair) + c * kBPair + p % kBPair;
}

}  // namespace

std::int64_t BPackedWeight::bytes() const {
  const std::int64_t np = npad();
  return round_up(np * kpad() * 2, 64) + round_up(np * 4, 64);
}

void floats_to_bf16(std::int64_t n, const float* src, std::uint16_t* dst) {
  if (n > 0) detail::active_bfamily().to_bf16(n, src, dst);
}

void bf16_to_floats(std::int64_t n, const std::uint16_t* src, float* dst) {
  if (n > 0) detail::active_bfamily().to_float(n, src, dst);
}

BPackedWeight bgemm_pack(std::int64_t n, std::int64_t k, const std::uint16_t* w, std::int64_t ldw,
                         const float* bias) {
  if (n < 0 || k < 0) throw std::invalid_argument("bgemm_pack: negative size");
  BPackedWeight pw;
  pw.n = n;
  pw.k = k;
  pw.has_bias = bias != nullptr;
  const std::int64_t np = pw.npad(), kp = pw.kpad();
  const std::int64_t data_bytes = round_up(np * kp * 2, 64), bias_bytes = round_up(np * 4, 64);
  pw.block =
      aligned_shared(static_cast<std::size_t>(std::max<std::int64_t>(data_bytes + bias_bytes, 64)));
  auto* base = static_cast<unsigned char*>(pw.block.get());
  auto* data = reinterpret_cast<std::uint16_t*>(base);
  auto* b = reinterpret_cast<float*>(base + data_bytes);
  std::memset(base, 0, static_cast<std::size_t>(data_bytes + bias_bytes));
  // Panel by panel, pair by pair: the writes are sequential and the reads walk the panel's 16
  // rows side by side (a pair is one 4-byte copy), so a large W packs at memory speed.
  parallel_for(np / kBPanel, 8, [&](std::int64_t p0, std::int64_t p1) {
    for (std::int64_t jp = p0; jp < p1; ++jp) {
      std::uint16_t* out = data + jp * kp * kBPanel;
      const std::int64_t j0 = jp * kBPanel;
      const int cols = static_cast<int>(std::min<std::int64_t>(kBPanel, n - j0));
      const std::int64_t full = k / kBPair;
      for (std::int64_t g = 0; g < full; ++g, out += kBPanel * kBPair)
        for (int c = 0; c < cols; ++c)
          std::memcpy(out + c * kBPair, w + (j0 + c) * ldw + g * kBPair, kBPair * 2);
      if (k % kBPair)  // the last, odd k step; its partner stays zero
        for (int c = 0; c < cols; ++c) out[c * kBPair] = w[(j0 + c) * ldw + k - 1];
      for (int c = 0; c < cols; ++c) b[j0 + c] = bias ? bias[j0 + c] : 0.0f;
    }
  });
  pw.data = data;
  pw.bias = b;
  return pw;
}

void bgemm_unpack(const BPackedWeight& pw, std::uint16_t* w) {
  const std::int64_t kp = pw.kpad();
  for (std::int64_t j = 0; j < pw.n; ++j) {
    const std::uint16_t* panel = pw.data + (j / kBPanel) * kp * kBPanel;
    const std::int64_t c = j % kBPanel;
    for (std::int64_t p = 0; p < pw.k; ++p) w[j * pw.k + p] = panel[packed_index(c, p)];
  }
}

void bgemm_run(std::int64_t m, const std::uint16_t* x, std::int64_t ldx, const BPackedWeight& pw,
               void* y, std::int64_t ldy, bool y_bf16, Epilogue ep, bool serial) {
  if (m <= 0 || pw.n == 0) return;
  const detail::BFamily& fam = detail::active_bfamily();
  const std::int64_t kp = pw.kpad();

  const double macs = static_cast<double>(m) * static_cast<double>(pw.n) *
                      static_cast<double>(std::max<std::int64_t>(pw.k, 1));
  const double w_bytes = 2.0 * static_cast<double>(pw.n) * static_cast<double>(pw.k);
  const bool worth = !serial && (macs >= kBParallelMinMacs || w_bytes >= kBParallelMinWeightBytes);
  int nt = worth ? get_num_threads() : 1;

  detail::BArgs a;
  a.m = m;
  a.kpairs = kp / kBPair;
  a.pw = &pw;
  a.y = y;
  a.ldy = ldy;
  a.y_bf16 = y_bf16;
  a.ep = ep;
  if (fam.xbytes == 2 && pw.k % kBPair == 0) {
    // bf16 pairs in place: nothing to prepare.
    a.xp = reinterpret_cast<const unsigned char*>(x);
    a.ldxp = ldx * 2;
  } else {
    // The prepared rows, in the calling thread's scratch (kept across calls: a warm call
    // allocates nothing); the pool's threads write into it below.
    thread_local std::shared_ptr<void> xbuf;
    thread_local std::int64_t xbuf_bytes = 0;
    const std::int64_t ldp = round_up(std::max<std::int64_t>(kp, kBPair) * fam.xbytes, 64);
    if (xbuf_bytes < m * ldp) {
      xbuf_bytes = 0;
      xbuf.reset();
      xbuf = aligned_shared(static_cast<std::size_t>(m * ldp));
      xbuf_bytes = m * ldp;
    }
    auto* xp = static_cast<unsigned char*>(xbuf.get());
    const auto prepare = [&](std::int64_t r0, std::int64_t r1) {
      fam.prepare(r1 - r0, pw.k, x + r0 * ldx, ldx, xp + r0 * ldp, ldp);
    };
    detail::prepare_rows(nt, m, pw.k, prepare);
    a.xp = xp;
    a.ldxp = ldp;
  }

  detail::split_product(nt, m, fam.mr, pw.npad() / kBPanel,
                        [&](std::int64_t r0, std::int64_t r1, std::int64_t p0, std::int64_t p1) {
                          fam.run(a, r0, r1, p0, p1);
                        });
}

}  // namespace lincore
