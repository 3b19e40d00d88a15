#include "tensor/storage.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <new>
#include <utility>

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

namespace {
// One lock for every storage's packer slot: it is touched once per repack and once per
// optimizer step of a weight, never on a call path that does not pack.
std::mutex packer_mutex;
}  // namespace

void Storage::set_packer(std::weak_ptr<void> packer) {
  std::lock_guard<std::mutex> lock(packer_mutex);
  packer_ = std::move(packer);
}

std::shared_ptr<void> Storage::packer() const {
  std::lock_guard<std::mutex> lock(packer_mutex);
  return packer_.lock();
}

}  // namespace lincore
