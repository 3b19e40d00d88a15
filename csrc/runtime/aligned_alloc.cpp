#include "runtime/aligned_alloc.h"

#include <cstdint>
#include <cstdlib>
#include <new>

namespace lincore {

AlignedBlock aligned_allocate(std::size_t nbytes) noexcept {
  std::size_t rounded = (nbytes + kAlignment - 1) / kAlignment * kAlignment;
  if (rounded < nbytes) return {};
  if (rounded == 0) rounded = kAlignment;
  // malloc, aligned by hand, rather than std::aligned_alloc: glibc's aligned allocation carves
  // every block out of a larger one, several hundred instructions, as much as the rest of a
  // batch-1 Linear's output allocation. malloc's own alignment (16) leaves at most
  // kAlignment - 16 bytes to skip.
  const std::size_t slack = kAlignment - alignof(std::max_align_t);
  if (rounded + slack < rounded) return {};
  void* base = std::malloc(rounded + slack);
  if (base == nullptr) return {};
  const auto addr = reinterpret_cast<std::uintptr_t>(base);
  return {reinterpret_cast<void*>((addr + kAlignment - 1) / kAlignment * kAlignment), base};
}

void aligned_free(void* base) noexcept { std::free(base); }

std::shared_ptr<void> aligned_shared(std::size_t nbytes) {
  const AlignedBlock block = aligned_allocate(nbytes);
  if (block.data == nullptr) throw std::bad_alloc();
  return std::shared_ptr<void>(block.data, [base = block.base](void*) { aligned_free(base); });
}

}  // namespace lincore
