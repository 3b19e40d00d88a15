#include "tensor/storage.h"

#include <cstdlib>
#include <new>

#include "tensor/errors.h"

namespace lincore {

std::shared_ptr<Storage> Storage::allocate(std::size_t nbytes) {
  std::size_t rounded = (nbytes + alignment - 1) / alignment * alignment;
  if (rounded < nbytes) throw out_of_memory(nbytes);
  if (rounded == 0) rounded = alignment;
  void* p = std::aligned_alloc(alignment, rounded);
  if (p == nullptr) throw out_of_memory(nbytes);
  // Owned memory is freed by ~Storage, without an owner handle: one allocation less per tensor
  // (a small Linear's call allocates its output, and that is part of its cost).
  try {
    return std::make_shared<Storage>(p, nbytes, nullptr, true, true);
  } catch (...) {
    std::free(p);
    throw;
  }
}

std::shared_ptr<Storage> Storage::borrow(void* data, std::size_t nbytes, std::shared_ptr<void> owner,
                                         bool writable) {
  return std::make_shared<Storage>(data, nbytes, std::move(owner), writable, false);
}

}  // namespace lincore
