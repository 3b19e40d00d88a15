// How the low-precision drivers (qgemm_driver.cpp for int8, bgemm_driver.cpp for bf16) share a
// product out over the thread pool: one rule for both, since their products differ only in the
// per-level kernels they run.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>

#include "runtime/thread_pool.h"

namespace lincore::detail {

// prepare(r0, r1) over the m rows of x (k inputs each: quantized for int8, narrowed for bf16),
// split over the pool in tasks of about 16 K inputs when nt > 1, else in one call.
template <class F>
void prepare_rows(int nt, std::int64_t m, std::int64_t k, const F& prepare) {
  if (nt > 1 && m > 1) {
    parallel_for(m, std::max<std::int64_t>(1, 16384 / std::max<std::int64_t>(k, 1)), prepare);
  } else {
    prepare(0, m);
  }
}

// run(r0, r1, p0, p1) over an m-row product whose packed W has `panels` column panels, on at
// most nt threads. Few rows split W's panels (each thread streams its share once); many split
// tiles of mr rows. Up to 4 chunks per thread, handed out as threads come free.
template <class F>
void split_product(int nt, std::int64_t m, std::int64_t mr, std::int64_t panels, const F& run) {
  const bool split_columns = m < 4 * mr * nt;
  const std::int64_t units = split_columns ? panels : (m + mr - 1) / mr;
  nt = static_cast<int>(std::min<std::int64_t>(nt, units));
  if (nt <= 1) {
    run(0, m, 0, panels);
    return;
  }
  const std::int64_t chunks = std::min<std::int64_t>(units, 4 * nt);
  std::atomic<std::int64_t> next{0};
  parallel_run(nt, [&](int) {
    for (std::int64_t c = next.fetch_add(1); c < chunks; c = next.fetch_add(1)) {
      const std::int64_t u0 = units * c / chunks, u1 = units * (c + 1) / chunks;
      if (split_columns)
        run(0, m, u0, u1);
      else
        run(u0 * mr, std::min(m, u1 * mr), 0, panels);
    }
  });
}

}  // namespace lincore::detail
