#include "tensor/storage.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

#include "tensor/errors.h"

namespace lincore {

std::shared_ptr<Storage> Storage::allocate(std::size_t nbytes) {
  std::size_t rounded = (nbytes + alignment - 1) / alignment * alignment;
  if (rounded < nbytes) throw out_of_memory(nbytes);
  if (rounded == 0) rounded = alignment;
  // malloc, aligned by hand, rather than std::aligned_alloc: glibc's aligned allocation carves
  // every block out of a larger one, several hundred instructions, as much as the rest of a
  // batch-1 Linear's output allocation. malloc's own alignment (16) leaves at most
  // alignment - 16 bytes to skip.
  const std::size_t slack = alignment - alignof(std::max_align_t);
  if (rounded + slack < rounded) throw out_of_memory(nbytes);
  void* base = std::malloc(rounded + slack);
  if (base == nullptr) throw out_of_memory(nbytes);
  const auto addr = reinterpret_cast<std::uintptr_t>(base);
  void* p = reinterpret_cast<void*>((addr + alignment - 1) / alignment * alignment);
  // Owned memory is freed by ~Storage, without an owner handle: one allocation less per tensor
  // (a small Linear's call allocates its output, and that is part of its cost).
  try {
    return std::make_shared<Storage>(p, nbytes, nullptr, true, base);
  } catch (...) {
    std::free(base);
    throw;
  }
}

std::shared_ptr<Storage> Storage::borrow(void* data, std::size_t nbytes, std::shared_ptr<void> owner,
                                         bool writable) {
  return std::make_shared<Storage>(data, nbytes, std::move(owner), writable, nullptr);
}

}  // namespace lincore
