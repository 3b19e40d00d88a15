// lincore_bench: times gemm_run, y[m, n] = x[m, k] . w[n, k]^T + b[n], against this CPU's fp32/fp64
// FMA peak, which it measures itself first. Each case packs w once (timed once, apart), checks one
// gemm_run against gemm_ref (exit 1 on mismatch), warms up, then times gemm_run alone and prints
// one greppable key=value line. Usage and the results tables: bench/README.md.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define LINCORE_BENCH_X86 1
#endif

#include "kernels/bgemm.h"
#include "kernels/dispatch.h"
#include "kernels/gemm.h"
#include "kernels/qfamily.h"
#include "kernels/qgemm.h"
#include "runtime/thread_pool.h"
#include "tensor/bfloat16.h"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "lincore_bench: %s\n", msg.c_str());
  std::exit(1);
}

// ---------------------------------------------------------------------------------------------
// The FMA peak. Each loop runs C independent chains acc = acc * a + c; C is well above FMA latency
// (4) x FMA ports (2) on current cores, so the loop is throughput-bound. With a < 1 the chains
// converge to c / (1 - a) = 1: no overflow, no subnormals (which would trigger microcode assists).
// Each function is compiled for its ISA by a target attribute and only called after a CPUID check.

#ifdef LINCORE_BENCH_X86
constexpr int kChainsAvx512 = 24;  // 24 of the 32 zmm registers; a and c take two more
constexpr int kChainsAvx2 = 12;    // 12 of the 16 ymm registers; a and c take two more

template <class T, int N>
double sum_lanes(const T (&lanes)[N]) {
  double s = 0;
  for (T v : lanes) s += v;
  return s;
}

__attribute__((target("avx512f"))) double fma_chains_avx512_f32(std::int64_t iters) {
  const __m512 a = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-6f);
  __m512 acc[kChainsAvx512];
  for (int i = 0; i < kChainsAvx512; ++i) acc[i] = _mm512_set1_ps(static_cast<float>(i));
  for (std::int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 32
    for (int i = 0; i < kChainsAvx512; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, c);
  }
  for (int i = 1; i < kChainsAvx512; ++i) acc[0] = _mm512_add_ps(acc[0], acc[i]);
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, acc[0]);
  return sum_lanes(lanes);
}

__attribute__((target("avx512f"))) double fma_chains_avx512_f64(std::int64_t iters) {
  const __m512d a = _mm512_set1_pd(0.999999), c = _mm512_set1_pd(1e-6);
  __m512d acc[kChainsAvx512];
  for (int i = 0; i < kChainsAvx512; ++i) acc[i] = _mm512_set1_pd(static_cast<double>(i));
  for (std::int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 32
    for (int i = 0; i < kChainsAvx512; ++i) acc[i] = _mm512_fmadd_pd(acc[i], a, c);
  }
  for (int i = 1; i < kChainsAvx512; ++i) acc[0] = _mm512_add_pd(acc[0], acc[i]);
  alignas(64) double lanes[8];
  _mm512_store_pd(lanes, acc[0]);
  return sum_lanes(lanes);
}

__attribute__((target("avx2,fma"))) double fma_chains_avx2_f32(std::int64_t iters) {
  const __m256 a = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-6f);
  __m256 acc[kChainsAvx2];
  for (int i = 0; i < kChainsAvx2; ++i) acc[i] = _mm256_set1_ps(static_cast<float>(i));
  for (std::int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 16
    for (int i = 0; i < kChainsAvx2; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, c);
  }
  for (int i = 1; i < kChainsAvx2; ++i) acc[0] = _mm256_add_ps(acc[0], acc[i]);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, acc[0]);
  return sum_lanes(lanes);
}

__attribute__((target("avx2,fma"))) double fma_chains_avx2_f64(std::int64_t iters) {
  const __m256d a = _mm256_set1_pd(0.999999), c = _mm256_set1_pd(1e-6);
  __m256d acc[kChainsAvx2];
  for (int i = 0; i < kChainsAvx2; ++i) acc[i] = _mm256_set1_pd(static_cast<double>(i));
  for (std::int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 16
    for (int i = 0; i < kChainsAvx2; ++i) acc[i] = _mm256_fmadd_pd(acc[i], a, c);
  }
  for (int i = 1; i < kChainsAvx2; ++i) acc[0] = _mm256_add_pd(acc[0], acc[i]);
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, acc[0]);
  return sum_lanes(lanes);
}

// The int8 peak: the same chains of VPDPBUSD (64 u8 x s8 products added into 16 int32 lanes per
// zmm instruction: 128 int8 ops), all in one asm statement so that the 24 (12) accumulators stay
// in registers (GCC 12 copies VPDPBUSD accumulators through memory otherwise).
__attribute__((target("avx512f,avx512vnni"))) double vnni_chains_avx512(std::int64_t iters) {
  __m512i a0 = _mm512_set1_epi32(0), a1 = _mm512_set1_epi32(1), a2 = _mm512_set1_epi32(2),
          a3 = _mm512_set1_epi32(3), a4 = _mm512_set1_epi32(4), a5 = _mm512_set1_epi32(5),
          a6 = _mm512_set1_epi32(6), a7 = _mm512_set1_epi32(7), a8 = _mm512_set1_epi32(8),
          a9 = _mm512_set1_epi32(9), a10 = _mm512_set1_epi32(10), a11 = _mm512_set1_epi32(11),
          a12 = _mm512_set1_epi32(12), a13 = _mm512_set1_epi32(13), a14 = _mm512_set1_epi32(14),
          a15 = _mm512_set1_epi32(15), a16 = _mm512_set1_epi32(16), a17 = _mm512_set1_epi32(17),
          a18 = _mm512_set1_epi32(18), a19 = _mm512_set1_epi32(19), a20 = _mm512_set1_epi32(20),
          a21 = _mm512_set1_epi32(21), a22 = _mm512_set1_epi32(22), a23 = _mm512_set1_epi32(23);
  const __m512i x = _mm512_set1_epi8(1), w = _mm512_set1_epi8(1);
  for (std::int64_t it = 0; it < iters; ++it) {
    // Two statements of 12: an asm statement takes at most 30 operands.
    __asm__(
        "vpdpbusd %13, %12, %0\n\t"
        "vpdpbusd %13, %12, %1\n\t"
        "vpdpbusd %13, %12, %2\n\t"
        "vpdpbusd %13, %12, %3\n\t"
        "vpdpbusd %13, %12, %4\n\t"
        "vpdpbusd %13, %12, %5\n\t"
        "vpdpbusd %13, %12, %6\n\t"
        "vpdpbusd %13, %12, %7\n\t"
        "vpdpbusd %13, %12, %8\n\t"
        "vpdpbusd %13, %12, %9\n\t"
        "vpdpbusd %13, %12, %10\n\t"
        "vpdpbusd %13, %12, %11\n\t"
        : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5), "+v"(a6), "+v"(a7), "+v"(a8),
          "+v"(a9), "+v"(a10), "+v"(a11)
        : "v"(x), "v"(w));
    __asm__(
        "vpdpbusd %13, %12, %0\n\t"
        "vpdpbusd %13, %12, %1\n\t"
        "vpdpbusd %13, %12, %2\n\t"
        "vpdpbusd %13, %12, %3\n\t"
        "vpdpbusd %13, %12, %4\n\t"
        "vpdpbusd %13, %12, %5\n\t"
        "vpdpbusd %13, %12, %6\n\t"
        "vpdpbusd %13, %12, %7\n\t"
        "vpdpbusd %13, %12, %8\n\t"
        "vpdpbusd %13, %12, %9\n\t"
        "vpdpbusd %13, %12, %10\n\t"
        "vpdpbusd %13, %12, %11\n\t"
        : "+v"(a12), "+v"(a13), "+v"(a14), "+v"(a15), "+v"(a16), "+v"(a17), "+v"(a18), "+v"(a19),
          "+v"(a20), "+v"(a21), "+v"(a22), "+v"(a23)
        : "v"(x), "v"(w));
  }
  const __m512i sum = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11 + a12 + a13 +
                      a14 + a15 + a16 + a17 + a18 + a19 + a20 + a21 + a22 + a23;
  return static_cast<double>(_mm512_reduce_add_epi32(sum));
}

__attribute__((target("avx2,avxvnni"))) double vnni_chains_avx(std::int64_t iters) {
  __m256i a0 = _mm256_set1_epi32(0), a1 = _mm256_set1_epi32(1), a2 = _mm256_set1_epi32(2),
          a3 = _mm256_set1_epi32(3), a4 = _mm256_set1_epi32(4), a5 = _mm256_set1_epi32(5),
          a6 = _mm256_set1_epi32(6), a7 = _mm256_set1_epi32(7), a8 = _mm256_set1_epi32(8),
          a9 = _mm256_set1_epi32(9), a10 = _mm256_set1_epi32(10), a11 = _mm256_set1_epi32(11);
  const __m256i x = _mm256_set1_epi8(1), w = _mm256_set1_epi8(1);
  for (std::int64_t it = 0; it < iters; ++it) {
    __asm__(
        "%{vex%} vpdpbusd %13, %12, %0\n\t"
        "%{vex%} vpdpbusd %13, %12, %1\n\t"
        "%{vex%} vpdpbusd %13, %12, %2\n\t"
        "%{vex%} vpdpbusd %13, %12, %3\n\t"
        "%{vex%} vpdpbusd %13, %12, %4\n\t"
        "%{vex%} vpdpbusd %13, %12, %5\n\t"
        "%{vex%} vpdpbusd %13, %12, %6\n\t"
        "%{vex%} vpdpbusd %13, %12, %7\n\t"
        "%{vex%} vpdpbusd %13, %12, %8\n\t"
        "%{vex%} vpdpbusd %13, %12, %9\n\t"
        "%{vex%} vpdpbusd %13, %12, %10\n\t"
        "%{vex%} vpdpbusd %13, %12, %11\n\t"
        : "+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3), "+x"(a4), "+x"(a5), "+x"(a6), "+x"(a7), "+x"(a8),
          "+x"(a9), "+x"(a10), "+x"(a11)
        : "x"(x), "x"(w));
  }
  const __m256i sum = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;
  alignas(32) std::int32_t lanes[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), sum);
  return sum_lanes(lanes);
}

// The bf16 peak: chains of VDPBF16PS (32 bf16 x bf16 products added in pairs into 16 fp32 lanes
// per zmm instruction: 64 flops), 24 accumulators in asm as for VPDPBUSD. x = w = 0 keeps every
// sum at 0 (no overflow, no subnormals; the instruction's timing does not depend on the values).
__attribute__((target("avx512f,avx512bf16"))) double bf16_chains_avx512(std::int64_t iters) {
  __m512 a0 = _mm512_set1_ps(0), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0,
         a8 = a0, a9 = a0, a10 = a0, a11 = a0, a12 = a0, a13 = a0, a14 = a0, a15 = a0, a16 = a0,
         a17 = a0, a18 = a0, a19 = a0, a20 = a0, a21 = a0, a22 = a0, a23 = a0;
  const __m512i x = _mm512_set1_epi32(0), w = _mm512_set1_epi32(0);
  for (std::int64_t it = 0; it < iters; ++it) {
    __asm__(
        "vdpbf16ps %13, %12, %0\n\t"
        "vdpbf16ps %13, %12, %1\n\t"
        "vdpbf16ps %13, %12, %2\n\t"
        "vdpbf16ps %13, %12, %3\n\t"
        "vdpbf16ps %13, %12, %4\n\t"
        "vdpbf16ps %13, %12, %5\n\t"
        "vdpbf16ps %13, %12, %6\n\t"
        "vdpbf16ps %13, %12, %7\n\t"
        "vdpbf16ps %13, %12, %8\n\t"
        "vdpbf16ps %13, %12, %9\n\t"
        "vdpbf16ps %13, %12, %10\n\t"
        "vdpbf16ps %13, %12, %11\n\t"
        : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5), "+v"(a6), "+v"(a7), "+v"(a8),
          "+v"(a9), "+v"(a10), "+v"(a11)
        : "v"(x), "v"(w));
    __asm__(
        "vdpbf16ps %13, %12, %0\n\t"
        "vdpbf16ps %13, %12, %1\n\t"
        "vdpbf16ps %13, %12, %2\n\t"
        "vdpbf16ps %13, %12, %3\n\t"
        "vdpbf16ps %13, %12, %4\n\t"
        "vdpbf16ps %13, %12, %5\n\t"
        "vdpbf16ps %13, %12, %6\n\t"
        "vdpbf16ps %13, %12, %7\n\t"
        "vdpbf16ps %13, %12, %8\n\t"
        "vdpbf16ps %13, %12, %9\n\t"
        "vdpbf16ps %13, %12, %10\n\t"
        "vdpbf16ps %13, %12, %11\n\t"
        : "+v"(a12), "+v"(a13), "+v"(a14), "+v"(a15), "+v"(a16), "+v"(a17), "+v"(a18), "+v"(a19),
          "+v"(a20), "+v"(a21), "+v"(a22), "+v"(a23)
        : "v"(x), "v"(w));
  }
  const __m512 sum = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11 + a12 + a13 + a14 +
                     a15 + a16 + a17 + a18 + a19 + a20 + a21 + a22 + a23;
  return static_cast<double>(_mm512_reduce_add_ps(sum));
}
#endif

// VDPBF16PS when the CPU has it, else none (the widening bf16 levels run on the FMA units:
// judge them against the fp32 peak). Flops per iteration: 24 chains x 32 products x 2.
struct Bf16PeakLoop {
  const char* isa = "none";
  double (*fn)(std::int64_t) = nullptr;
  double flops_per_iter = 0;
};

Bf16PeakLoop bf16_peak_loop() {
  Bf16PeakLoop p;
#ifdef LINCORE_BENCH_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512bf16"))
    p = {"avx512_bf16", &bf16_chains_avx512, 2.0 * kChainsAvx512 * 32};
#endif
  return p;
}

// The widest VPDPBUSD this CPU has: int8 ops (a multiply and an add per product) per iteration.
struct Int8PeakLoop {
  const char* isa = "none";
  double (*fn)(std::int64_t) = nullptr;
  double ops_per_iter = 0;
};

Int8PeakLoop widest_int8_peak_loop() {
  Int8PeakLoop p;
#ifdef LINCORE_BENCH_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512vnni")) {
    p = {"avx512_vnni", &vnni_chains_avx512, 2.0 * kChainsAvx512 * 64};
  } else if (__builtin_cpu_supports("avxvnni")) {
    p = {"avx_vnni", &vnni_chains_avx, 2.0 * kChainsAvx2 * 32};
  }
#endif
  return p;
}

struct PeakLoop {
  const char* isa = "none";  // "none": no FMA ISA on this CPU, so no peak and pct_peak=nan
  double (*f32)(std::int64_t) = nullptr;
  double (*f64)(std::int64_t) = nullptr;
  double flops_per_iter_f32 = 0, flops_per_iter_f64 = 0;  // chains x lanes x 2
};

PeakLoop widest_peak_loop() {
  PeakLoop p;
#ifdef LINCORE_BENCH_X86
  __builtin_cpu_init();
  // __builtin_cpu_supports also checks that the OS saves the wide registers (XCR0).
  if (__builtin_cpu_supports("avx512f")) {
    p = {"avx512", &fma_chains_avx512_f32, &fma_chains_avx512_f64, 2.0 * kChainsAvx512 * 16,
         2.0 * kChainsAvx512 * 8};
  } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    p = {"avx2", &fma_chains_avx2_f32, &fma_chains_avx2_f64, 2.0 * kChainsAvx2 * 8,
         2.0 * kChainsAvx2 * 4};
  }
#endif
  return p;
}

volatile double g_sink;  // keeps the peak loops' results alive

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

struct PeakRun {
  double gflops;     // all threads together
  double cpu_share;  // the threads' CPU time / (threads x wall time): below 1 on a busy machine
};

// Total GFLOP/s of `fn` run on `nthreads` std::threads at once, from the wall time between the
// start signal and the last join; best of 5 runs of `seconds` each (this VM is noisy).
PeakRun measure_peak(double (*fn)(std::int64_t), double flops_per_iter, int nthreads,
                     double seconds) {
  if (!fn) return {std::numeric_limits<double>::quiet_NaN(), 1};
  // Calibrate on one thread (this also wakes the core up to its turbo frequency).
  std::int64_t iters = 1 << 14;
  for (;;) {
    const auto t0 = Clock::now();
    g_sink = fn(iters);
    const double t = seconds_since(t0);
    if (t > 0.02) {
      iters = std::max<std::int64_t>(1, static_cast<std::int64_t>(iters * seconds / t));
      break;
    }
    iters *= 4;
  }
  PeakRun best{0, 0};
  for (int rep = 0; rep < 5; ++rep) {
    std::atomic<int> ready{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    std::vector<double> sinks(nthreads), cpu(nthreads);
    for (int t = 0; t < nthreads; ++t) {
      threads.emplace_back([&, t] {
        ready.fetch_add(1);
        while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
        const double c0 = thread_cpu_seconds();
        sinks[t] = fn(iters);
        cpu[t] = thread_cpu_seconds() - c0;
      });
    }
    while (ready.load() != nthreads) std::this_thread::yield();
    const auto t0 = Clock::now();
    go.store(true, std::memory_order_release);
    for (auto& th : threads) th.join();
    const double t = seconds_since(t0);
    double cpu_total = 0;
    for (int i = 0; i < nthreads; ++i) {
      g_sink = g_sink + sinks[i];
      cpu_total += cpu[i];
    }
    const double gflops = flops_per_iter * static_cast<double>(iters) * nthreads / t / 1e9;
    if (gflops > best.gflops) best = {gflops, cpu_total / (nthreads * t)};
  }
  return best;
}

// Read bandwidth: nthreads threads stream disjoint slices of one buffer as large as the biggest
// weight here (64 MiB: 4096 x 4096 fp32), XOR-reducing 64-bit words (vectorizes, unlike a
// float sum). Each thread reads its slice as 16 interleaved streams with software prefetch, as
// the kernel does: on this VM one plain sequential stream is latency-bound at a fraction of the
// bandwidth (10.8 GB/s measured, against 28 for the kernel). Best of 5 passes, GB/s for all threads
// together: the bound for the batch-1 cases, which read their whole weight once per call.
double measure_read_gbps(int nthreads) {
  const std::size_t words = (std::size_t{64} << 20) / sizeof(std::uint64_t);
  std::vector<std::uint64_t> buffer(words, 0x9e3779b97f4a7c15ULL);
  std::vector<std::uint64_t> sink(static_cast<std::size_t>(nthreads));
  double best = 0;
  for (int pass = 0; pass < 5; ++pass) {
    const auto t0 = Clock::now();
    std::vector<std::thread> threads;
    for (int t = 0; t < nthreads; ++t) {
      threads.emplace_back([&, t] {
        constexpr std::size_t streams = 16;
        const std::size_t lo = words * t / nthreads, hi = words * (t + 1) / nthreads;
        const std::size_t part = (hi - lo) / streams, chunk = 64;  // 512-byte steps per stream
        std::uint64_t acc[streams] = {};
        for (std::size_t i = 0; i + chunk <= part; i += chunk) {
          for (std::size_t s = 0; s < streams; ++s) {
            const std::uint64_t* p = buffer.data() + lo + s * part + i;
            for (std::size_t line = 0; line < chunk; line += 8)  // 8 chunks (4 KiB) ahead
              __builtin_prefetch(p + 8 * chunk + line, 0, 2);
            for (std::size_t j = 0; j < chunk; ++j) acc[s] ^= p[j];
          }
        }
        std::uint64_t all = 0;
        for (std::uint64_t a : acc) all ^= a;
        sink[t] = all;
      });
    }
    for (auto& th : threads) th.join();
    const double s = seconds_since(t0);
    best = std::max(best, static_cast<double>(words * sizeof(std::uint64_t)) / s / 1e9);
  }
  return best;
}

struct Peak {
  double f32, f64;                                         // GFLOP/s for all threads together
  double i8 = std::numeric_limits<double>::quiet_NaN();    // G int8 ops/s (VPDPBUSD), all threads
  double bf16 = std::numeric_limits<double>::quiet_NaN();  // GFLOP/s of VDPBF16PS, all threads
  double read_gbps = 0;  // memory read bandwidth, all threads together
  template <class T>
  double of() const {
    return std::is_same_v<T, float> ? f32 : f64;
  }
};

// ---------------------------------------------------------------------------------------------
// Cases. Dimensions in lincore's order (m, n, k) = (batch, out_features, in_features).

struct Case {
  std::string name;
  bool f64;
  std::int64_t m, n, k;
  bool i8 = false;    // the int8 dynamic-quantization path (qgemm.h)
  bool bf16 = false;  // the bf16 path (bgemm.h), fp32 output
};

std::vector<Case> all_cases(bool quick) {
  // (batch, in_features, out_features), as the project issue lists them.
  struct IssueShape {
    std::int64_t batch, in, out;
  };
  const IssueShape f32_cases[] = {{1, 3, 2},       {1, 784, 128},      {64, 784, 128},
                                  {256, 512, 512}, {1024, 1024, 1024}, {2048, 2048, 2048},
                                  {1, 4096, 4096}, {8, 4096, 4096},    {4096, 4096, 4096}};
  const IssueShape f64_cases[] = {{64, 784, 128}, {256, 512, 512}, {1024, 1024, 1024}};
  std::vector<Case> out;
  auto add = [&](const IssueShape& c, bool f64) {
    if (quick && c.batch == 4096 && c.in == 4096 && c.out == 4096) return;
    const std::string name = std::string(f64 ? "f64" : "f32") + "-m" + std::to_string(c.batch) +
                             "-n" + std::to_string(c.out) + "-k" + std::to_string(c.in);
    out.push_back({name, f64, c.batch, c.out, c.in});
  };
  for (const auto& c : f32_cases) add(c, false);
  for (const auto& c : f64_cases) add(c, true);
  // int8: the fp32 shapes again.
  for (const auto& c : f32_cases) {
    if (quick && c.batch == 4096) continue;
    out.push_back({"i8-m" + std::to_string(c.batch) + "-n" + std::to_string(c.out) + "-k" +
                       std::to_string(c.in),
                   false, c.batch, c.out, c.in, true});
  }
  for (const auto& c : f32_cases) {
    if (quick && c.batch == 4096) continue;
    out.push_back({"bf16-m" + std::to_string(c.batch) + "-n" + std::to_string(c.out) + "-k" +
                       std::to_string(c.in),
                   false, c.batch, c.out, c.in, false, true});
  }
  return out;
}

template <class T>
std::vector<T> random_values(std::int64_t count, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  std::vector<T> v(static_cast<std::size_t>(count));
  for (auto& e : v) e = static_cast<T>(dist(rng));
  return v;
}

// ---------------------------------------------------------------------------------------------
// Verification against the oracle, with docs/testing.md's bound for a length-k dot product in any
// summation order: |y - y_ref| <= c * gamma(k + 2) * G + (k + 1) * denorm_min, where
// G[i, j] = |b[j]| + sum_p |x[i, p]| * |w[j, p]| in double and gamma(n) = n u / (1 - n u).
// c = 2 for both dtypes: gemm_ref accumulates in double but rounds its result to T, which adds up
// to u * |y_exact| <= u * G on top of the kernel's own error (for float64 the reference's double
// sum also carries a gamma(k) * G error of its own), so c = 1 could flag a correct kernel.
// Large cases check a spread of whole rows (first and last included) rather than all of them, to
// keep the triple-loop oracle under about a second; every element is still checked as written.

struct CheckResult {
  std::int64_t rows_checked = 0;
  double worst = 0;  // max over checked elements of |y - y_ref| / bound
};

template <class T>
CheckResult check_against_ref(const Case& c, const std::vector<T>& x, const std::vector<T>& w,
                              const std::vector<T>& b, const std::vector<T>& y) {
  const std::int64_t m = c.m, n = c.n, k = c.k;
  for (std::int64_t i = 0; i < m; ++i) {
    for (std::int64_t j = 0; j < n; ++j) {
      if (!std::isfinite(y[i * n + j])) {
        die("case " + c.name + ": y[" + std::to_string(i) + ", " + std::to_string(j) +
            "] = " + std::to_string(y[i * n + j]) +
            " after gemm_run (y was pre-filled with NaN: not written, or not finite)");
      }
    }
  }
  constexpr double u = std::numeric_limits<T>::epsilon() / 2;  // unit roundoff: 2^-24, 2^-53
  const double gamma = (k + 2) * u / (1 - (k + 2) * u);
  const double subnormal_floor =
      (k + 1) * static_cast<double>(std::numeric_limits<T>::denorm_min());
  constexpr double c_factor = 2;
  constexpr std::int64_t kOracleBudget = std::int64_t(1) << 28;  // multiply-adds
  const std::int64_t rows = std::clamp<std::int64_t>(
      kOracleBudget / std::max<std::int64_t>(1, n * k), std::min<std::int64_t>(m, 2), m);
  CheckResult r;
  r.rows_checked = rows;
  std::vector<T> y_ref(static_cast<std::size_t>(n));
  for (std::int64_t s = 0; s < rows; ++s) {
    const std::int64_t i = rows == 1 ? 0 : s * (m - 1) / (rows - 1);
    lincore::gemm_ref<T>(1, n, k, &x[i * k], k, w.data(), k, b.data(), y_ref.data(), n, {});
    for (std::int64_t j = 0; j < n; ++j) {
      double g = std::fabs(static_cast<double>(b[j]));
      for (std::int64_t p = 0; p < k; ++p) {
        g += std::fabs(static_cast<double>(x[i * k + p])) *
             std::fabs(static_cast<double>(w[j * k + p]));
      }
      const double bound = c_factor * gamma * g + subnormal_floor;
      const double err =
          std::fabs(static_cast<double>(y[i * n + j]) - static_cast<double>(y_ref[j]));
      if (!(err <= bound)) {
        char msg[512];
        std::snprintf(msg, sizeof msg,
                      "case %s: MISMATCH at y[%lld, %lld]: gemm_run gives %.9g, gemm_ref %.9g, "
                      "|diff| %.3g > bound %.3g (isa=%s)",
                      c.name.c_str(), static_cast<long long>(i), static_cast<long long>(j),
                      static_cast<double>(y[i * n + j]), static_cast<double>(y_ref[j]), err, bound,
                      lincore::cpu_capability().c_str());
        die(msg);
      }
      r.worst = std::max(r.worst, err / bound);
    }
  }
  return r;
}

// ---------------------------------------------------------------------------------------------
// Timing. One sample times `inner` back-to-back calls (so that calls shorter than the clock's
// resolution are still measured) and records the time per call; min and median are over samples.
// Repeated calls see w warm in cache, as in steady-state inference.

struct Timing {
  double min_s, median_s;
};

template <class F>
Timing time_calls(F&& call, bool quick) {
  const double target_s = quick ? 0.05 : 0.2;
  const int min_samples = quick ? 3 : 5, max_samples = quick ? 50 : 200;
  // Warm-up: at least 2 calls and ~target/4 seconds; also estimates the time per call.
  std::int64_t calls = 0;
  const auto t0 = Clock::now();
  double elapsed = 0;
  while (calls < 2 || elapsed < target_s / 4) {
    call();
    ++calls;
    elapsed = seconds_since(t0);
  }
  const double per_call = elapsed / calls;
  const int samples = static_cast<int>(
      std::clamp<double>(std::ceil(target_s / per_call), min_samples, max_samples));
  const std::int64_t inner = std::max<std::int64_t>(
      1, static_cast<std::int64_t>(std::ceil(target_s / (samples * per_call))));
  std::vector<double> t(samples);
  for (auto& ti : t) {
    const auto s0 = Clock::now();
    for (std::int64_t r = 0; r < inner; ++r) call();
    ti = seconds_since(s0) / inner;
  }
  std::sort(t.begin(), t.end());
  const double median = samples % 2 ? t[samples / 2] : (t[samples / 2 - 1] + t[samples / 2]) / 2;
  return {t.front(), median};
}

template <class T>
void run_case(const Case& c, const Peak& peak, bool quick) {
  const std::int64_t m = c.m, n = c.n, k = c.k;
  std::mt19937_64 rng(0x6c696e636f7265ULL ^ static_cast<std::uint64_t>(m * 1000003 + n * 1009 + k));
  const auto x = random_values<T>(m * k, rng);
  const auto w = random_values<T>(n * k, rng);
  const auto b = random_values<T>(n, rng);

  const auto tp = Clock::now();
  const lincore::PackedWeight<T> pw = lincore::gemm_pack<T>(n, k, w.data(), k, b.data());
  const double pack_s = seconds_since(tp);

  std::vector<T> y(static_cast<std::size_t>(m * n), std::numeric_limits<T>::quiet_NaN());
  lincore::gemm_run<T>(m, x.data(), k, pw, y.data(), n, {});
  const CheckResult chk = check_against_ref<T>(c, x, w, b, y);

  const Timing tm =
      time_calls([&] { lincore::gemm_run<T>(m, x.data(), k, pw, y.data(), n, {}); }, quick);

  const double flops = 2.0 * static_cast<double>(m) * n * k;
  const double gflops = flops / tm.median_s / 1e9;
  std::printf(
      "case=%s dtype=%s m=%lld n=%lld k=%lld threads=%d isa=%s min_us=%.3f median_us=%.3f "
      "gflops=%.2f pct_peak=%.1f",
      c.name.c_str(), c.f64 ? "f64" : "f32", static_cast<long long>(m), static_cast<long long>(n),
      static_cast<long long>(k), lincore::get_num_threads(), lincore::cpu_capability().c_str(),
      tm.min_s * 1e6, tm.median_s * 1e6, gflops, 100.0 * gflops / peak.of<T>());
  if (m <= 8) {
    // Bandwidth-bound: every call streams the whole packed weight (panels and padded bias).
    const double bytes = static_cast<double>(pw.npad()) * (pw.k + (pw.bias ? 1 : 0)) * sizeof(T);
    const double gbps = bytes / tm.median_s / 1e9;
    std::printf(" gbps=%.2f pct_bw=%.1f", gbps, 100.0 * gbps / peak.read_gbps);
  }
  std::printf(" pack_us=%.1f check_rows=%lld/%lld err_over_tol=%.3g\n", pack_s * 1e6,
              static_cast<long long>(chk.rows_checked), static_cast<long long>(m), chk.worst);
  std::fflush(stdout);
}

// One thread's read bandwidth of a buffer of `bytes` that stays in cache between passes (after
// one untimed pass): the speed limit of a batch-1 call whose packed weights fit there. 64-byte
// loads where the CPU has AVX-512 (as the kernel's), XOR-reduced into 8 independent accumulators.
#ifdef LINCORE_BENCH_X86
__attribute__((target("avx512f"))) std::uint64_t read_pass_avx512(const std::uint64_t* p,
                                                                  std::size_t words) {
  __m512i acc[8];
  for (auto& a : acc) a = _mm512_setzero_si512();
  for (std::size_t i = 0; i + 64 <= words; i += 64)
    for (int j = 0; j < 8; ++j)
      acc[j] = _mm512_xor_si512(acc[j], _mm512_load_si512(p + i + 8 * static_cast<std::size_t>(j)));
  for (int j = 1; j < 8; ++j) acc[0] = _mm512_xor_si512(acc[0], acc[j]);
  return static_cast<std::uint64_t>(_mm512_reduce_add_epi64(acc[0]));
}
#endif

std::uint64_t read_pass_plain(const std::uint64_t* p, std::size_t words) {
  std::uint64_t acc[8] = {};
  for (std::size_t i = 0; i + 8 <= words; i += 8)
    for (std::size_t j = 0; j < 8; ++j) acc[j] ^= p[i + j];
  std::uint64_t all = 0;
  for (std::uint64_t a : acc) all ^= a;
  return all;
}

double measure_warm_read_gbps(std::size_t bytes, bool quick) {
  const std::size_t words = std::max<std::size_t>(64, bytes / sizeof(std::uint64_t)) / 64 * 64;
  std::uint64_t* buf = static_cast<std::uint64_t*>(std::aligned_alloc(64, words * 8));
  if (buf == nullptr) die("out of memory for --read-kib");
  for (std::size_t i = 0; i < words; ++i) buf[i] = 0x9e3779b97f4a7c15ULL * (i + 1);
  auto pass = [&] {
#ifdef LINCORE_BENCH_X86
    if (__builtin_cpu_supports("avx512f")) return read_pass_avx512(buf, words);
#endif
    return read_pass_plain(buf, words);
  };
  volatile std::uint64_t sink = pass();  // warm
  const Timing tm = time_calls([&] { sink = sink ^ pass(); }, quick);
  std::free(buf);
  return static_cast<double>(words * 8) / tm.min_s / 1e9;
}

// A ReLU MLP (fp32; the last layer without ReLU) as a chain of gemm_runs, the whole-stack path
// of a compiled Sequential minus Python: its time per call, per layer, and its weight bytes.
void run_mlp(const std::vector<std::int64_t>& widths, std::int64_t m, bool quick) {
  std::mt19937_64 rng(0x6d6c70);
  std::vector<lincore::PackedWeight<float>> packs;
  std::vector<std::vector<float>> acts{random_values<float>(m * widths[0], rng)};
  std::int64_t bytes = 0;
  for (std::size_t l = 0; l + 1 < widths.size(); ++l) {
    const std::int64_t k = widths[l], n = widths[l + 1];
    const auto w = random_values<float>(n * k, rng);
    const auto b = random_values<float>(n, rng);
    packs.push_back(lincore::gemm_pack<float>(n, k, w.data(), k, b.data()));
    bytes += (packs.back().npad() * (k + 1)) * static_cast<std::int64_t>(sizeof(float));
    acts.push_back(std::vector<float>(static_cast<std::size_t>(m * n)));
  }
  auto layer = [&](std::size_t l) {
    const lincore::Epilogue ep{l + 2 < widths.size() ? lincore::Activation::relu
                                                     : lincore::Activation::none};
    lincore::gemm_run<float>(m, acts[l].data(), widths[l], packs[l], acts[l + 1].data(),
                             widths[l + 1], ep);
  };
  const Timing all = time_calls(
      [&] {
        for (std::size_t l = 0; l < packs.size(); ++l) layer(l);
      },
      quick);
  std::string name, per_layer;
  for (std::size_t l = 0; l < widths.size(); ++l)
    name += (l ? "-" : "") + std::to_string(widths[l]);
  for (std::size_t l = 0; l < packs.size(); ++l) {
    const Timing t = time_calls([&] { layer(l); }, quick);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%slayer%zu_min_us=%.3f", l ? " " : "", l, t.min_s * 1e6);
    per_layer += buf;
  }
  std::printf(
      "mlp=%s m=%lld threads=%d isa=%s min_us=%.3f median_us=%.3f weight_bytes=%lld gbps=%.1f "
      "%s\n",
      name.c_str(), static_cast<long long>(m), lincore::get_num_threads(),
      lincore::cpu_capability().c_str(), all.min_s * 1e6, all.median_s * 1e6,
      static_cast<long long>(bytes), static_cast<double>(bytes) / all.min_s / 1e9,
      per_layer.c_str());
  std::fflush(stdout);
}

// ---------------------------------------------------------------------------------------------

struct Options {
  int threads = 0;  // 0: lincore's default
  std::string isa, int8_isa, bf16_isa, filter;
  std::vector<Case> shapes;            // --shape: run these instead of the issue's cases
  std::vector<std::int64_t> mlp;       // --mlp: widths of a ReLU MLP timed as a chain of gemm_runs
  std::int64_t mlp_batch = 1;          // --mlp-batch
  std::vector<std::int64_t> read_kib;  // --read-kib: warm-buffer read bandwidths to measure
  bool quick = false, list = false;
};

// "[f64-]MxNxK" -> a case named like the fixed ones (f32 unless prefixed).
bool parse_shape(std::string s, Case& c) {
  c.f64 = s.rfind("f64-", 0) == 0;
  c.i8 = s.rfind("i8-", 0) == 0;
  c.bf16 = s.rfind("bf16-", 0) == 0;
  if (c.f64 || s.rfind("f32-", 0) == 0) s = s.substr(4);
  if (c.i8) s = s.substr(3);
  if (c.bf16) s = s.substr(5);
  long long m, n, k;
  char tail;
  if (std::sscanf(s.c_str(), "%lldx%lldx%lld%c", &m, &n, &k, &tail) != 3) return false;
  if (m < 0 || n < 0 || k < 0) return false;
  c.m = m;
  c.n = n;
  c.k = k;
  c.name = std::string(c.f64    ? "f64"
                       : c.i8   ? "i8"
                       : c.bf16 ? "bf16"
                                : "f32") +
           "-m" + std::to_string(m) + "-n" + std::to_string(n) + "-k" + std::to_string(k);
  return true;
}

void usage(std::FILE* f) {
  std::fprintf(f,
               "usage: lincore_bench [--threads N] [--isa avx512|avx2|sse2|scalar] "
               "[--int8-isa avx512_vnni|avx_vnni|avx2|scalar] "
               "[--bf16-isa avx512_bf16|avx512|avx2|scalar] [--filter SUBSTR] "
               "[--shape [f64-|i8-|bf16-]MxNxK]... [--mlp K,N1,N2,... [--mlp-batch M]] "
               "[--read-kib N]... [--quick] [--list]\n"
               "  --threads N      lincore::set_num_threads(N) (default: LINCORE_NUM_THREADS or "
               "the CPUs available)\n"
               "  --isa NAME       lincore::set_cpu_capability(NAME) (default: the best "
               "supported)\n"
               "  --int8-isa NAME  lincore::set_int8_capability(NAME) for the i8 cases\n"
               "  --bf16-isa NAME  lincore::set_bf16_capability(NAME) for the bf16 cases\n"
               "  --filter SUBSTR  run only the cases whose name contains SUBSTR (i8 for int8, "
               "bf16)\n"
               "  --shape S        time this (m, n, k) instead of the fixed cases (repeatable),\n"
               "                   e.g. 1024x1024x1024, f64-64x128x784, i8-8x4096x4096 or "
               "bf16-1x4096x4096\n"
               "  --mlp W          also time a ReLU MLP of these widths (fp32, no ReLU after the\n"
               "                   last layer) as one chain of gemm_runs, e.g. 784,256,128,10\n"
               "  --mlp-batch M    its batch (default 1)\n"
               "  --read-kib N     also measure 1 thread's read bandwidth of a warm N-KiB buffer\n"
               "                   (repeatable: the L2 / L3 / memory the batch-1 cases read from)\n"
               "  --quick          fewer repeats, and skip the 4096x4096x4096 case\n"
               "  --list           print the case names and exit\n");
}

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        usage(stderr);
        die("missing value after " + a);
      }
      return argv[++i];
    };
    if (a == "--threads") {
      const std::string v = value();
      char* end = nullptr;
      const long t = std::strtol(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || t < 1 || t > 4096) {
        die("--threads expects an integer >= 1, got '" + v + "'");
      }
      o.threads = static_cast<int>(t);
    } else if (a == "--isa") {
      o.isa = value();
    } else if (a == "--int8-isa") {
      o.int8_isa = value();
    } else if (a == "--bf16-isa") {
      o.bf16_isa = value();
    } else if (a == "--filter") {
      o.filter = value();
    } else if (a == "--shape") {
      const std::string v = value();
      Case c;
      if (!parse_shape(v, c))
        die("--shape expects [f64-|i8-|bf16-]MxNxK with sizes >= 0, got '" + v + "'");
      o.shapes.push_back(c);
    } else if (a == "--mlp" || a == "--mlp-batch" || a == "--read-kib") {
      const std::string v = value();
      std::vector<std::int64_t> nums;
      for (std::size_t at = 0; at <= v.size();) {
        const std::size_t comma = std::min(v.find(',', at), v.size());
        const std::string part = v.substr(at, comma - at);
        char* end = nullptr;
        const long long x = std::strtoll(part.c_str(), &end, 10);
        if (part.empty() || *end != '\0' || x < 1)
          die(a + " expects integers >= 1, got '" + v + "'");
        nums.push_back(x);
        at = comma + 1;
      }
      if (a == "--mlp") {
        if (nums.size() < 2) die("--mlp expects at least two widths, got '" + v + "'");
        o.mlp = nums;
      } else if (a == "--mlp-batch") {
        if (nums.size() != 1) die("--mlp-batch expects one integer, got '" + v + "'");
        o.mlp_batch = nums[0];
      } else {
        o.read_kib.insert(o.read_kib.end(), nums.begin(), nums.end());
      }
    } else if (a == "--quick") {
      o.quick = true;
    } else if (a == "--list") {
      o.list = true;
    } else if (a == "--help" || a == "-h") {
      usage(stdout);
      std::exit(0);
    } else {
      usage(stderr);
      die("unknown argument '" + a + "'");
    }
  }
  return o;
}

}  // namespace

// int8: W quantized and packed once; each call quantizes x and runs the int8 kernel. Checked
// against a double evaluation of the same quantized arithmetic (codes from quantize_rows, which
// every level reproduces; exact integer sums): only the epilogue's three fp32 roundings differ,
// |y - ref| <= 3.01 u (|sx sw acc| + |b|).
void run_case_i8(const Case& c, const Peak& peak, bool quick) {
  const std::int64_t m = c.m, n = c.n, k = c.k;
  std::mt19937_64 rng(0x6c696e636f7265ULL ^ static_cast<std::uint64_t>(m * 1000003 + n * 1009 + k));
  const auto x = random_values<float>(m * k, rng);
  const auto w = random_values<float>(n * k, rng);
  const auto b = random_values<float>(n, rng);
  std::vector<std::int8_t> wq(static_cast<std::size_t>(n * k)), xq(static_cast<std::size_t>(m * k));
  std::vector<float> sw(static_cast<std::size_t>(n)), sx(static_cast<std::size_t>(m));
  const auto tp = Clock::now();
  lincore::quantize_rows(n, k, w.data(), k, wq.data(), k, sw.data(), true);
  const lincore::QPackedWeight pw = lincore::qgemm_pack(n, k, wq.data(), k, sw.data(), b.data());
  const double pack_s = seconds_since(tp);

  std::vector<float> y(static_cast<std::size_t>(m * n), std::numeric_limits<float>::quiet_NaN());
  lincore::qgemm_run(m, x.data(), k, pw, y.data(), n, {});
  lincore::quantize_rows(m, k, x.data(), k, xq.data(), k, sx.data(), true);
  constexpr std::int64_t kOracleBudget = std::int64_t(1) << 28;
  const std::int64_t rows = std::clamp<std::int64_t>(
      kOracleBudget / std::max<std::int64_t>(1, n * k), std::min<std::int64_t>(m, 2), m);
  double worst = 0;
  for (std::int64_t s = 0; s < rows; ++s) {
    const std::int64_t i = rows == 1 ? 0 : s * (m - 1) / (rows - 1);
    for (std::int64_t j = 0; j < n; ++j) {
      std::int64_t acc = 0;
      for (std::int64_t p = 0; p < k; ++p) acc += xq[i * k + p] * wq[j * k + p];
      const double prod = static_cast<double>(acc) * sx[i] * sw[j];
      const double bound = 3.01 * std::ldexp(1.0, -24) * (std::fabs(prod) + std::fabs(b[j])) +
                           4 * static_cast<double>(std::numeric_limits<float>::denorm_min());
      const double err = std::fabs(static_cast<double>(y[i * n + j]) - (prod + b[j]));
      if (!(err <= bound)) {
        char msg[256];
        std::snprintf(msg, sizeof msg, "case %s: MISMATCH at y[%lld, %lld]: %.9g vs %.9g (int8=%s)",
                      c.name.c_str(), static_cast<long long>(i), static_cast<long long>(j),
                      static_cast<double>(y[i * n + j]), prod + b[j],
                      lincore::int8_capability().c_str());
        die(msg);
      }
      worst = std::max(worst, err / bound);
    }
  }
  const Timing tm =
      time_calls([&] { lincore::qgemm_run(m, x.data(), k, pw, y.data(), n, {}); }, quick);
  const double gops = 2.0 * static_cast<double>(m) * n * k / tm.median_s / 1e9;
  std::printf(
      "case=%s dtype=i8 m=%lld n=%lld k=%lld threads=%d isa=%s min_us=%.3f median_us=%.3f "
      "gops=%.2f pct_int8_peak=%.1f",
      c.name.c_str(), static_cast<long long>(m), static_cast<long long>(n),
      static_cast<long long>(k), lincore::get_num_threads(), lincore::int8_capability().c_str(),
      tm.min_s * 1e6, tm.median_s * 1e6, gops, 100.0 * gops / peak.i8);
  if (m <= 8) {
    const double gbps = static_cast<double>(pw.bytes()) / tm.median_s / 1e9;
    std::printf(" gbps=%.2f pct_bw=%.1f", gbps, 100.0 * gbps / peak.read_gbps);
  }
  if (lincore::get_num_threads() == 1) {
    // Where a call's time goes: the level's quantizer of x, then its loop nest (kernel and
    // epilogue) over the quantized rows, each timed alone (one thread: qgemm_run runs them one
    // after the other on the calling thread).
    const lincore::detail::QFamily& fam = lincore::detail::active_qfamily();
    const std::int64_t kp = pw.kpad();
    std::vector<std::uint8_t> q(static_cast<std::size_t>(m * kp));
    std::vector<float> s(static_cast<std::size_t>(m));
    const Timing tq =
        time_calls([&] { fam.quantize(m, k, x.data(), k, q.data(), kp, s.data()); }, quick);
    lincore::detail::QArgs a;
    a.m = m;
    a.kgroups = kp / lincore::kQGroup;
    a.xq = q.data();
    a.ldq = kp;
    a.sx = s.data();
    a.pw = &pw;
    a.y = y.data();
    a.ldy = n;
    const Timing tl = time_calls([&] { fam.run(a, 0, m, 0, pw.npad() / lincore::kQPanel); }, quick);
    const double loop_gops = 2.0 * static_cast<double>(m) * n * k / tl.median_s / 1e9;
    std::printf(" quantize_us=%.3f loop_us=%.3f loop_pct_int8_peak=%.1f", tq.median_s * 1e6,
                tl.median_s * 1e6, 100.0 * loop_gops / peak.i8);
  }
  std::printf(" pack_us=%.1f weight_bytes=%lld check_rows=%lld/%lld err_over_tol=%.3g\n",
              pack_s * 1e6, static_cast<long long>(pw.bytes()), static_cast<long long>(rows),
              static_cast<long long>(m), worst);
  std::fflush(stdout);
}

// bf16: x and W random in [-1, 1) rounded to bf16, W packed once; each call runs bgemm_run with
// an fp32 output. Checked against a double evaluation of the same bf16 values with
// docs/testing.md's bound (c = 2, as for fp32 above); no input is subnormal (VDPBF16PS would
// count it as zero).
void run_case_bf16(const Case& c, const Peak& peak, bool quick) {
  const std::int64_t m = c.m, n = c.n, k = c.k;
  std::mt19937_64 rng(0x6c696e636f7265ULL ^ static_cast<std::uint64_t>(m * 1000003 + n * 1009 + k));
  const auto xf = random_values<float>(m * k, rng);
  const auto wf = random_values<float>(n * k, rng);
  const auto b = random_values<float>(n, rng);
  std::vector<std::uint16_t> x(xf.size()), w(wf.size());
  for (std::size_t i = 0; i < xf.size(); ++i) x[i] = lincore::float_to_bf16(xf[i]);
  for (std::size_t i = 0; i < wf.size(); ++i) w[i] = lincore::float_to_bf16(wf[i]);
  const auto tp = Clock::now();
  const lincore::BPackedWeight pw = lincore::bgemm_pack(n, k, w.data(), k, b.data());
  const double pack_s = seconds_since(tp);

  std::vector<float> y(static_cast<std::size_t>(m * n), std::numeric_limits<float>::quiet_NaN());
  lincore::bgemm_run(m, x.data(), k, pw, y.data(), n, false, {});
  constexpr std::int64_t kOracleBudget = std::int64_t(1) << 28;
  const std::int64_t rows = std::clamp<std::int64_t>(
      kOracleBudget / std::max<std::int64_t>(1, n * k), std::min<std::int64_t>(m, 2), m);
  const double u = std::ldexp(1.0, -24), gamma = (k + 2) * u / (1 - (k + 2) * u);
  double worst = 0;
  for (std::int64_t s = 0; s < rows; ++s) {
    const std::int64_t i = rows == 1 ? 0 : s * (m - 1) / (rows - 1);
    for (std::int64_t j = 0; j < n; ++j) {
      double ref = b[j], g = std::fabs(b[j]);
      for (std::int64_t p = 0; p < k; ++p) {
        const double t = static_cast<double>(lincore::bf16_to_float(x[i * k + p])) *
                         lincore::bf16_to_float(w[j * k + p]);
        ref += t;
        g += std::fabs(t);
      }
      const double bound =
          2 * gamma * g + (k + 1) * static_cast<double>(std::numeric_limits<float>::denorm_min());
      const double err = std::fabs(static_cast<double>(y[i * n + j]) - ref);
      if (!(err <= bound)) {
        char msg[256];
        std::snprintf(msg, sizeof msg, "case %s: MISMATCH at y[%lld, %lld]: %.9g vs %.9g (bf16=%s)",
                      c.name.c_str(), static_cast<long long>(i), static_cast<long long>(j),
                      static_cast<double>(y[i * n + j]), ref, lincore::bf16_capability().c_str());
        die(msg);
      }
      worst = std::max(worst, err / bound);
    }
  }
  const Timing tm =
      time_calls([&] { lincore::bgemm_run(m, x.data(), k, pw, y.data(), n, false, {}); }, quick);
  const double gflops = 2.0 * static_cast<double>(m) * n * k / tm.median_s / 1e9;
  std::printf(
      "case=%s dtype=bf16 m=%lld n=%lld k=%lld threads=%d isa=%s min_us=%.3f median_us=%.3f "
      "gflops=%.2f pct_bf16_peak=%.1f",
      c.name.c_str(), static_cast<long long>(m), static_cast<long long>(n),
      static_cast<long long>(k), lincore::get_num_threads(), lincore::bf16_capability().c_str(),
      tm.min_s * 1e6, tm.median_s * 1e6, gflops, 100.0 * gflops / peak.bf16);
  if (m <= 8) {
    const double gbps = static_cast<double>(pw.bytes()) / tm.median_s / 1e9;
    std::printf(" gbps=%.2f pct_bw=%.1f", gbps, 100.0 * gbps / peak.read_gbps);
  }
  std::printf(" pack_us=%.1f weight_bytes=%lld check_rows=%lld/%lld err_over_tol=%.3g\n",
              pack_s * 1e6, static_cast<long long>(pw.bytes()), static_cast<long long>(rows),
              static_cast<long long>(m), worst);
  std::fflush(stdout);
}

int main(int argc, char** argv) {
  const Options opt = parse_args(argc, argv);

  std::vector<Case> cases;
  // --mlp and --read-kib alone run only themselves; with --shape or --filter, those cases too.
  const bool extras_only =
      (!opt.mlp.empty() || !opt.read_kib.empty()) && opt.shapes.empty() && opt.filter.empty();
  for (const auto& c : opt.shapes.empty() ? all_cases(opt.quick) : opt.shapes)
    if (!extras_only && c.name.find(opt.filter) != std::string::npos) cases.push_back(c);
  if (opt.list) {
    for (const auto& c : cases) std::printf("%s\n", c.name.c_str());
    return 0;
  }
  if (cases.empty() && !extras_only)
    die("no case matches --filter '" + opt.filter + "' (see --list)");

  try {
    if (opt.threads > 0) lincore::set_num_threads(opt.threads);
    if (!opt.isa.empty()) lincore::set_cpu_capability(opt.isa);
    if (!opt.int8_isa.empty()) lincore::set_int8_capability(opt.int8_isa);
    if (!opt.bf16_isa.empty()) lincore::set_bf16_capability(opt.bf16_isa);
  } catch (const std::exception& e) {
    die(e.what());
  }
  const int threads = lincore::get_num_threads();

  std::string supported;
  for (const auto& s : lincore::supported_capabilities()) {
    supported += (supported.empty() ? "" : ",") + s;
  }
  std::printf("# lincore_bench supported=%s isa=%s threads=%d quick=%d\n", supported.c_str(),
              lincore::cpu_capability().c_str(), threads, opt.quick ? 1 : 0);

  // The peak of the CPU's widest FMA ISA, whatever --isa picks: pct_peak is against the machine.
  const PeakLoop loop = widest_peak_loop();
  const double peak_seconds = opt.quick ? 0.05 : 0.1;
  Peak peak{0, 0};
  double f32_per_core_1 = 0;
  for (int nt : {1, threads}) {
    const PeakRun r32 = measure_peak(loop.f32, loop.flops_per_iter_f32, nt, peak_seconds);
    const PeakRun r64 = measure_peak(loop.f64, loop.flops_per_iter_f64, nt, peak_seconds);
    const double f32 = r32.gflops, f64 = r64.gflops;
    std::printf(
        "peak isa=%s threads=%d f32_gflops=%.1f f32_gflops_per_core=%.1f f64_gflops=%.1f "
        "f64_gflops_per_core=%.1f\n",
        loop.isa, nt, f32, f32 / nt, f64, f64 / nt);
    // pct_peak is only as good as the peak: say so when the machine was not ours alone.
    const double share = std::min(r32.cpu_share, r64.cpu_share);
    if (share < 0.9) {
      std::printf(
          "# warning: the %d-thread peak loop got only %.0f%% of its CPU time (a busy "
          "machine): pct_peak of this run is unreliable\n",
          nt, 100.0 * share);
    }
    if (nt == 1) f32_per_core_1 = f32;
    if (nt > 1 && f32 / nt < 0.75 * f32_per_core_1) {
      std::printf(
          "# warning: %d threads reach only %.0f%% of the 1-thread peak per core: fewer "
          "free cores than threads, or a busy machine\n",
          nt, 100.0 * f32 / nt / f32_per_core_1);
    }
    peak.read_gbps = measure_read_gbps(nt);
    std::printf("bandwidth threads=%d read_gbps=%.1f (64 MiB buffer)\n", nt, peak.read_gbps);
    peak.f32 = f32;
    peak.f64 = f64;
    if (threads == 1) break;
  }
  std::fflush(stdout);

  // The int8 (VPDPBUSD) peak, when any case needs it.
  if (std::any_of(cases.begin(), cases.end(), [](const Case& c) { return c.i8; })) {
    const Int8PeakLoop q = widest_int8_peak_loop();
    const PeakRun r = measure_peak(q.fn, q.ops_per_iter, threads, peak_seconds);
    peak.i8 = r.gflops;
    std::printf("int8_peak isa=%s threads=%d gops=%.1f gops_per_core=%.1f int8_level=%s\n", q.isa,
                threads, r.gflops, r.gflops / threads, lincore::int8_capability().c_str());
  }
  for (const std::int64_t kib : opt.read_kib) {
    std::printf("warm_read kib=%lld threads=1 read_gbps=%.1f\n", static_cast<long long>(kib),
                measure_warm_read_gbps(static_cast<std::size_t>(kib) << 10, opt.quick));
    std::fflush(stdout);
  }
  if (!opt.mlp.empty()) run_mlp(opt.mlp, opt.mlp_batch, opt.quick);
  // The bf16 (VDPBF16PS) peak, when any case needs it.
  if (std::any_of(cases.begin(), cases.end(), [](const Case& c) { return c.bf16; })) {
    const Bf16PeakLoop q = bf16_peak_loop();
    const PeakRun r = measure_peak(q.fn, q.flops_per_iter, threads, peak_seconds);
    peak.bf16 = r.gflops;
    std::printf(
        "bf16_peak isa=%s threads=%d gflops=%.1f gflops_per_core=%.1f "
        "vdpbf16ps_g_per_s_per_core=%.2f bf16_level=%s\n",
        q.isa, threads, r.gflops, r.gflops / threads, r.gflops / threads / 64.0,
        lincore::bf16_capability().c_str());
  }
  for (const auto& c : cases) {
    if (c.bf16) {
      run_case_bf16(c, peak, opt.quick);
    } else if (c.i8) {
      run_case_i8(c, peak, opt.quick);
    } else if (c.f64) {
      run_case<double>(c, peak, opt.quick);
    } else {
      run_case<float>(c, peak, opt.quick);
    }
  }
  return 0;
}
