#include "tensor/storage.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <new>
#include <utility>

#include "runtime/aligned_alloc.h"
#include "tensor/errors.h"

namespace lincore {

std::shared_ptr<Storage> Storage::allocate(std::size_t nbytes) {
  const AlignedBlock block = aligned_allocate(nbytes);
  if (block.data == nullptr) throw out_of_memory(nbytes);
  // Owned memory is freed by ~Storage, without an owner handle: one allocation less per tensor
  // (a small Linear's call allocates its output, and that is part of its cost).
  try {
    return std::make_shared<Storage>(block.data, nbytes, nullptr, true, block.base);
  } catch (...) {
    aligned_free(block.base);
    throw;
  }
}

Storage::~Storage() { aligned_free(block_); }

std::shared_ptr<Storage> Storage::borrow(void* data, std::size_t nbytes,
                                         std::shared_ptr<void> owner, bool writable) {
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
