// The int8 entry points (qgemm.h): weight quantization and packing, and qgemm_run: x quantized
// per row by the active level's quantizer, then the product split over the thread pool and run
// by that level's loop nest (qkernel.h, compiled in the level's TU).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/lowp_split.h"
#include "kernels/qfamily.h"
#include "kernels/qgemm.h"
#include "runtime/aligned_alloc.h"
#include "runtime/thread_pool.h"

namespace lincore {
namespace {

// Below this many int8 multiply-adds a second thread costs more than it saves (a quarter of
// fp32's 1 M FMAs: int8 runs about 4x faster) ...
constexpr double kQParallelMinMacs = 4.0e6;
// ... unless the product streams this many bytes of W (the few-row case, split by columns).
constexpr double kQParallelMinWeightBytes = 256.0 * 1024;

std::int64_t round_up(std::int64_t v, std::int64_t to) { return (v + to - 1) / to * to; }

}  // namespace

std::int64_t QPackedWeight::bytes() const {
  const std::int64_t np = npad();
  return round_up(np * kpad(), 64) + 3 * round_up(np * 4, 64);
}

void quantize_rows(std::int64_t m, std::int64_t k, const float* x, std::int64_t ldx, std::int8_t* q,
                   std::int64_t ldq, float* scale, bool finite_only, bool active_level) {
  // The portable quantizer (weights), or the one qgemm_run uses on x: the same rule and codes.
  const detail::QFamily& fam =
      active_level ? detail::active_qfamily() : detail::isa_qscalar::qfamily();
  std::vector<std::uint8_t> row(static_cast<std::size_t>(round_up(k, kQGroup)) + 1);
  for (std::int64_t i = 0; i < m; ++i) {
    fam.quantize(1, k, x + i * ldx, ldx, row.data(), 0, scale + i);
    if (finite_only && std::isnan(scale[i])) {
      throw std::invalid_argument("row " + std::to_string(i) +
                                  " holds a NaN or infinite value, which int8 cannot represent");
    }
    for (std::int64_t p = 0; p < k; ++p)  // q may be null when k == 0
      q[i * ldq + p] = static_cast<std::int8_t>(row[static_cast<std::size_t>(p)] - fam.code_offset);
  }
}

QPackedWeight qgemm_pack(std::int64_t n, std::int64_t k, const std::int8_t* wq, std::int64_t ldw,
                         const float* scale, const float* bias) {
  if (n < 0 || k < 0) throw std::invalid_argument("qgemm_pack: negative size");
  if (k > kQMaxK) {
    throw std::invalid_argument("int8 layers take at most " + std::to_string(kQMaxK) +
                                " input features (the int32 sums could overflow), got " +
                                std::to_string(k));
  }
  QPackedWeight pw;
  pw.n = n;
  pw.k = k;
  pw.has_bias = bias != nullptr;
  const std::int64_t np = pw.npad(), kp = pw.kpad();
  const std::int64_t data_bytes = round_up(np * kp, 64), arr = round_up(np * 4, 64);
  pw.block = aligned_shared(static_cast<std::size_t>(data_bytes + 3 * arr));
  auto* base = static_cast<unsigned char*>(pw.block.get());
  auto* data = reinterpret_cast<std::int8_t*>(base);
  auto* colsum = reinterpret_cast<std::int32_t*>(base + data_bytes);
  auto* sc = reinterpret_cast<float*>(base + data_bytes + arr);
  auto* b = reinterpret_cast<float*>(base + data_bytes + 2 * arr);
  std::memset(base, 0, static_cast<std::size_t>(data_bytes + 3 * arr));
  parallel_for(np / kQPanel, 64, [&](std::int64_t p0, std::int64_t p1) {
    for (std::int64_t jp = p0; jp < p1; ++jp) {
      std::int8_t* panel = data + jp * kp * kQPanel;
      for (int c = 0; c < kQPanel; ++c) {
        const std::int64_t j = jp * kQPanel + c;
        if (j >= n) break;
        std::int32_t sum = 0;
        for (std::int64_t p = 0; p < k; ++p) {
          const std::int8_t v = wq[j * ldw + p];
          panel[(p / kQGroup) * kQPanel * kQGroup + c * kQGroup + p % kQGroup] = v;
          sum += v;
        }
        colsum[j] = sum;
        sc[j] = scale[j];
        b[j] = bias ? bias[j] : 0.0f;
      }
    }
  });
  pw.data = data;
  pw.colsum = colsum;
  pw.scale = sc;
  pw.bias = b;
  return pw;
}

void qgemm_unpack(const QPackedWeight& pw, std::int8_t* wq) {
  const std::int64_t kp = pw.kpad();
  for (std::int64_t j = 0; j < pw.n; ++j) {
    const std::int8_t* panel = pw.data + (j / kQPanel) * kp * kQPanel;
    const int c = static_cast<int>(j % kQPanel);
    for (std::int64_t p = 0; p < pw.k; ++p)
      wq[j * pw.k + p] = panel[(p / kQGroup) * kQPanel * kQGroup + c * kQGroup + p % kQGroup];
  }
}

void qgemm_run(std::int64_t m, const float* x, std::int64_t ldx, const QPackedWeight& pw, float* y,
               std::int64_t ldy, Epilogue ep, bool serial) {
  if (m <= 0 || pw.n == 0) return;
  const detail::QFamily& fam = detail::active_qfamily();
  const std::int64_t kp = pw.kpad();
  const std::int64_t ldq = std::max<std::int64_t>(kp, kQGroup);
  // The quantized rows, in the calling thread's scratch (kept across calls: a warm call
  // allocates nothing); the pool's threads write into it below.
  thread_local std::vector<std::uint8_t> qbuf;
  thread_local std::vector<float> sbuf;
  if (qbuf.size() < static_cast<std::size_t>(m * ldq))
    qbuf.resize(static_cast<std::size_t>(m * ldq));
  if (sbuf.size() < static_cast<std::size_t>(m)) sbuf.resize(static_cast<std::size_t>(m));
  std::uint8_t* xq = qbuf.data();
  float* sx = sbuf.data();

  const double macs = static_cast<double>(m) * static_cast<double>(pw.n) *
                      static_cast<double>(std::max<std::int64_t>(pw.k, 1));
  const double w_bytes = static_cast<double>(pw.n) * static_cast<double>(pw.k);
  const bool worth = !serial && (macs >= kQParallelMinMacs || w_bytes >= kQParallelMinWeightBytes);
  int nt = worth ? get_num_threads() : 1;

  const auto quantize = [&](std::int64_t r0, std::int64_t r1) {
    fam.quantize(r1 - r0, pw.k, x + r0 * ldx, ldx, xq + r0 * ldq, ldq, sx + r0);
  };
  detail::prepare_rows(nt, m, pw.k, quantize);

  detail::QArgs a;
  a.m = m;
  a.kgroups = kp / kQGroup;
  a.xq = xq;
  a.ldq = ldq;
  a.sx = sx;
  a.pw = &pw;
  a.y = y;
  a.ldy = ldy;
  a.ep = ep;
  detail::split_product(nt, m, fam.mr, pw.npad() / kQPanel,
                        [&](std::int64_t r0, std::int64_t r1, std::int64_t p0, std::int64_t p1) {
                          fam.run(a, r0, r1, p0, p1);
                        });
}

}  // namespace lincore
