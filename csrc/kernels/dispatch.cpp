// CPU feature detection (CPUID + XGETBV) and the table of kernel families.
#include "kernels/dispatch.h"

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>

#include "kernels/bfamily.h"
#include "kernels/bgemm.h"
#include "kernels/qfamily.h"
#include "kernels/qgemm.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#define LINCORE_X86 1
#endif

namespace lincore {
namespace {

struct Entry {
  const detail::KernelFamily& (*get)();
  bool (*supported)();
};

#ifdef LINCORE_X86
std::uint64_t xgetbv0() {
  std::uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<std::uint64_t>(edx) << 32) | eax;
}

struct X86Features {
  bool avx2_fma = false, avx512 = false;
  bool avx_vnni = false, avx512_vnni = false;  // the int8 levels' VPDPBUSD (VEX ymm, EVEX zmm)
  bool avx512_bf16 = false;                    // the bf16 level's VDPBF16PS
  X86Features() {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    const bool osxsave = c & (1u << 27), avx = c & (1u << 28), fma = c & (1u << 12);
    if (!osxsave || !avx) return;
    // The OS must save the wide registers: XCR0 bits 1-2 (xmm, ymm); 5-7 (opmask, zmm).
    const std::uint64_t xcr0 = xgetbv0();
    const bool ymm_state = (xcr0 & 0x6) == 0x6, zmm_state = (xcr0 & 0xE6) == 0xE6;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return;
    const bool avx2 = b & (1u << 5);
    const bool f = b & (1u << 16), dq = b & (1u << 17), bw = b & (1u << 30), vl = b & (1u << 31);
    avx2_fma = ymm_state && avx2 && fma;
    avx512 = avx2_fma && zmm_state && f && dq && bw && vl;
    avx512_vnni = avx512 && (c & (1u << 11));
    if (__get_cpuid_count(7, 1, &a, &b, &c, &d)) {
      avx_vnni = avx2_fma && (a & (1u << 4));
      avx512_bf16 = avx512 && (a & (1u << 5));
    }
  }
};

const X86Features& x86() {
  static const X86Features features;
  return features;
}
#endif

bool always() { return true; }

// Best first. The index of an entry is what PackedWeight::family records.
const Entry kEntries[] = {
#ifdef LINCORE_X86
    {&detail::isa_avx512::family, [] { return x86().avx512; }},
    {&detail::isa_avx2::family, [] { return x86().avx2_fma; }},
    {&detail::isa_sse2::family, &always},
#endif
    {&detail::isa_scalar::family, &always},
};
constexpr int kCount = sizeof(kEntries) / sizeof(kEntries[0]);

int index_of(const std::string& isa) {
  for (int i = 0; i < kCount; ++i) {
    if (isa == kEntries[i].get().name) {
      if (!kEntries[i].supported()) {
        throw std::invalid_argument("cpu capability '" + isa +
                                    "' is not supported by this CPU; supported: " + [] {
                                      std::string s;
                                      for (const auto& n : supported_capabilities())
                                        s += (s.empty() ? "" : ", ") + n;
                                      return s;
                                    }());
      }
      return i;
    }
  }
  throw std::invalid_argument("unknown cpu capability '" + isa +
                              "'; expected one of avx512, avx2, sse2, scalar");
}

int initial_index() {
  if (const char* env = std::getenv("LINCORE_ISA"); env && *env) return index_of(env);
  for (int i = 0; i < kCount; ++i)
    if (kEntries[i].supported()) return i;
  return kCount - 1;
}

std::atomic<int>& active() {
  static std::atomic<int> index{initial_index()};
  return index;
}

}  // namespace

std::vector<std::string> supported_capabilities() {
  std::vector<std::string> out;
  for (const auto& e : kEntries)
    if (e.supported()) out.emplace_back(e.get().name);
  return out;
}

std::string cpu_capability() { return detail::active_family().name; }

void set_cpu_capability(const std::string& isa) { active().store(index_of(isa)); }

namespace detail {
int active_family_index() { return active().load(std::memory_order_relaxed); }
const KernelFamily& active_family() { return kEntries[active_family_index()].get(); }
const KernelFamily& family_at(int index) { return kEntries[index].get(); }
int family_count() { return kCount; }
}  // namespace detail

// The int8 levels, best first. Each needs an fp32 level: forcing the fp32 level (LINCORE_ISA)
// forces int8 down with it, to the best level whose instructions that fp32 level may use.
namespace {

struct QEntry {
  const detail::QFamily& (*get)();
  bool (*supported)();
  const char* fp32_level;  // the lowest fp32 level under which it runs by default
};

const QEntry kQEntries[] = {
#ifdef LINCORE_X86
    {&detail::isa_qavx512vnni::qfamily, [] { return x86().avx512_vnni; }, "avx512"},
    {&detail::isa_qavxvnni::qfamily, [] { return x86().avx_vnni; }, "avx2"},
    {&detail::isa_qavx2::qfamily, [] { return x86().avx2_fma; }, "avx2"},
#endif
    {&detail::isa_qscalar::qfamily, &always, "scalar"},
};
constexpr int kQCount = sizeof(kQEntries) / sizeof(kQEntries[0]);

int q_index_of(const std::string& isa) {
  for (int i = 0; i < kQCount; ++i) {
    if (isa != kQEntries[i].get().name) continue;
    if (!kQEntries[i].supported()) {
      std::string s;
      for (const auto& n : supported_int8_capabilities()) s += (s.empty() ? "" : ", ") + n;
      throw std::invalid_argument("int8 capability '" + isa +
                                  "' is not supported by this CPU; supported: " + s);
    }
    return i;
  }
  throw std::invalid_argument("unknown int8 capability '" + isa +
                              "'; expected one of avx512_vnni, avx_vnni, avx2, scalar");
}

// -1: follow the fp32 level; else the forced int8 level (LINCORE_INT8_ISA or
// set_int8_capability).
std::atomic<int>& q_forced() {
  static std::atomic<int> index{[] {
    const char* env = std::getenv("LINCORE_INT8_ISA");
    return env && *env ? q_index_of(env) : -1;
  }()};
  return index;
}

int q_active_index() {
  const int forced = q_forced().load(std::memory_order_relaxed);
  if (forced >= 0) return forced;
  const int fp32 = active().load(std::memory_order_relaxed);
  for (int i = 0; i < kQCount; ++i) {
    if (!kQEntries[i].supported()) continue;
    for (int f = fp32; f < kCount; ++f)  // the fp32 level in use, or a lower one
      if (std::string(kEntries[f].get().name) == kQEntries[i].fp32_level) return i;
  }
  return kQCount - 1;
}

}  // namespace

std::vector<std::string> supported_int8_capabilities() {
  std::vector<std::string> out;
  for (const auto& e : kQEntries)
    if (e.supported()) out.emplace_back(e.get().name);
  return out;
}

std::string int8_capability() { return detail::active_qfamily().name; }

void set_int8_capability(const std::string& isa) {
  q_forced().store(isa.empty() ? -1 : q_index_of(isa));
}

namespace detail {
const QFamily& active_qfamily() { return kQEntries[q_active_index()].get(); }
}  // namespace detail

// The bf16 levels (bgemm.h), best first, following the fp32 level as the int8 ones do.
namespace {

struct BEntry {
  const detail::BFamily& (*get)();
  bool (*supported)();
  const char* fp32_level;  // the lowest fp32 level under which it runs by default
};

const BEntry kBEntries[] = {
#ifdef LINCORE_X86
    {&detail::isa_bavx512bf16::bfamily, [] { return x86().avx512_bf16; }, "avx512"},
    {&detail::isa_bavx512::bfamily, [] { return x86().avx512; }, "avx512"},
    {&detail::isa_bavx2::bfamily, [] { return x86().avx2_fma; }, "avx2"},
#endif
    {&detail::isa_bscalar::bfamily, &always, "scalar"},
};
constexpr int kBCount = sizeof(kBEntries) / sizeof(kBEntries[0]);

int b_index_of(const std::string& isa) {
  for (int i = 0; i < kBCount; ++i) {
    if (isa != kBEntries[i].get().name) continue;
    if (!kBEntries[i].supported()) {
      std::string s;
      for (const auto& n : supported_bf16_capabilities()) s += (s.empty() ? "" : ", ") + n;
      throw std::invalid_argument("bf16 capability '" + isa +
                                  "' is not supported by this CPU; supported: " + s);
    }
    return i;
  }
  throw std::invalid_argument("unknown bf16 capability '" + isa +
                              "'; expected one of avx512_bf16, avx512, avx2, scalar");
}

// -1: follow the fp32 level; else the forced bf16 level (LINCORE_BF16_ISA or
// set_bf16_capability).
std::atomic<int>& b_forced() {
  static std::atomic<int> index{[] {
    const char* env = std::getenv("LINCORE_BF16_ISA");
    return env && *env ? b_index_of(env) : -1;
  }()};
  return index;
}

int b_active_index() {
  const int forced = b_forced().load(std::memory_order_relaxed);
  if (forced >= 0) return forced;
  const int fp32 = active().load(std::memory_order_relaxed);
  for (int i = 0; i < kBCount; ++i) {
    if (!kBEntries[i].supported()) continue;
    for (int f = fp32; f < kCount; ++f)  // the fp32 level in use, or a lower one
      if (std::string(kEntries[f].get().name) == kBEntries[i].fp32_level) return i;
  }
  return kBCount - 1;
}

}  // namespace

std::vector<std::string> supported_bf16_capabilities() {
  std::vector<std::string> out;
  for (const auto& e : kBEntries)
    if (e.supported()) out.emplace_back(e.get().name);
  return out;
}

std::string bf16_capability() { return detail::active_bfamily().name; }

void set_bf16_capability(const std::string& isa) {
  b_forced().store(isa.empty() ? -1 : b_index_of(isa));
}

namespace detail {
const BFamily& active_bfamily() { return kBEntries[b_active_index()].get(); }
int bfamily_count() { return kBCount; }
const BFamily& bfamily_at(int index) { return kBEntries[index].get(); }
}  // namespace detail

}  // namespace lincore
