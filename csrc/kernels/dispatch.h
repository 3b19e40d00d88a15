// Run-time choice of the kernel family from the CPU's features. The default is the best level
// this CPU supports; LINCORE_ISA=avx512|avx2|sse2|scalar (read once, at first use) or
// set_cpu_capability() force a level at or below it.
#pragma once

#include <string>
#include <vector>

#include "kernels/family.h"

namespace lincore {

// The levels this CPU and build support, best first ("avx512", "avx2", "sse2", "scalar").
std::vector<std::string> supported_capabilities();
std::string cpu_capability();                     // the level in use
void set_cpu_capability(const std::string& isa);  // std::invalid_argument if unsupported

namespace detail {
const KernelFamily& active_family();
int active_family_index();
const KernelFamily& family_at(int index);
int family_count();  // every family compiled in, supported by this CPU or not
}  // namespace detail

}  // namespace lincore
