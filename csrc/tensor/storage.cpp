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
  std::shared_ptr<void> owner(p, [](void* q) { std::free(q); });
  return std::make_shared<Storage>(p, nbytes, std::move(owner), true, true);
}

std::shared_ptr<Storage> Storage::borrow(void* data, std::size_t nbytes, std::shared_ptr<void> owner,
                                         bool writable) {
  return std::make_shared<Storage>(data, nbytes, std::move(owner), writable, false);
}

}  // namespace lincore
