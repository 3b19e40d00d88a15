// lincore's one allocator for memory that kernels read with vector loads: tensor storage, packed
// weights and the kernels' per-thread scratch all come from here.
#pragma once

#include <cstddef>
#include <memory>

namespace lincore {

// Every block starts on a 64-byte boundary: a cache line, and one AVX-512 register.
constexpr std::size_t kAlignment = 64;

struct AlignedBlock {
  void* data = nullptr;  // kAlignment-aligned, at least the bytes asked for (at least one line)
  void* base = nullptr;  // what to hand to aligned_free
};

// nbytes rounded up to a whole number of cache lines (so that a vector load past the last
// element stays inside the block). {nullptr, nullptr} when the memory cannot be had or the
// size overflows: each caller raises its own error.
AlignedBlock aligned_allocate(std::size_t nbytes) noexcept;
void aligned_free(void* base) noexcept;

// The deleter of a std::unique_ptr<void, AlignedFree> that holds a block's base.
struct AlignedFree {
  void operator()(void* base) const noexcept { aligned_free(base); }
};

// A block of at least nbytes (aligned_allocate's), freed with its last owner: what a packed
// weight or a per-call copy holds. Throws std::bad_alloc. Out of line, so the per-ISA kernel
// files (compiled with their own -m flags) never hold a copy of it.
std::shared_ptr<void> aligned_shared(std::size_t nbytes);

}  // namespace lincore
