// A shared, reference-counted block of bytes. Our own allocations come from aligned_allocate
// (runtime/aligned_alloc.h), 64-byte aligned, so that kernels can use aligned vector loads; foreign
// memory (a numpy array) is borrowed with an owner handle that keeps it alive.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>

namespace lincore {

class Storage {
 public:
  // Allocates nbytes (at least one cache line, so data() is never null). Throws std::bad_alloc.
  static std::shared_ptr<Storage> allocate(std::size_t nbytes);
  // Borrows memory owned elsewhere; `owner` is released when the last tensor view goes away.
  // Writable borrowed memory can be written by its owner at any time, unseen by version().
  static std::shared_ptr<Storage> borrow(void* data, std::size_t nbytes,
                                         std::shared_ptr<void> owner, bool writable);

  void* data() const { return data_; }
  std::size_t nbytes() const { return nbytes_; }
  bool writable() const { return writable_; }

  // Bumped by every write made through lincore, so caches derived from the contents (packed
  // weights) can tell that they are stale.
  std::uint64_t version() const { return version_.load(std::memory_order_acquire); }
  void bump_version() { version_.fetch_add(1, std::memory_order_acq_rel); }

  // Writable views handed out to foreign code (a numpy array over a lincore tensor). Writes
  // through them are invisible to version(), so caches must not trust it while any is alive;
  // releasing one bumps the version.
  int exports() const { return exports_.load(std::memory_order_acquire); }
  // Whether version() tells every change: not while foreign code holds a writable view, and
  // for writable memory borrowed from foreign code only when its owner has promised to report
  // its writes (owner_reports_writes).
  bool versioned() const {
    return exports() == 0 &&
           (block_ != nullptr || !writable_ || owner_reports_.load(std::memory_order_acquire));
  }
  // The owner of borrowed memory promises to call bump_version() after each of its writes (the
  // PyTorch drop-in does, from the torch tensor's version counter): caches may then trust
  // version(), and a layer whose weight views a torch parameter stops repacking every call.
  void owner_reports_writes() { owner_reports_.store(true, std::memory_order_release); }
  void add_export() { exports_.fetch_add(1, std::memory_order_acq_rel); }
  void remove_export() {
    bump_version();
    exports_.fetch_sub(1, std::memory_order_acq_rel);
  }

  // The packed form most recently built from this storage as a layer's weight (a PackCache,
  // type-erased: tensors know nothing of layers), so that a writer of every element (an
  // optimizer step) can rebuild it in the same pass, while each part is in cache. Weak: the
  // storage does not keep it alive.
  void set_packer(std::weak_ptr<void> packer);
  std::shared_ptr<void> packer() const;

  // owned_block: the aligned_allocate'd block that holds data (lincore's own memory), freed
  // with the storage; null for borrowed memory, which `owner` keeps alive.
  Storage(void* data, std::size_t nbytes, std::shared_ptr<void> owner, bool writable,
          void* owned_block)
      : data_(data),
        nbytes_(nbytes),
        owner_(std::move(owner)),
        writable_(writable),
        block_(owned_block) {}
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

 private:
  void* data_;
  std::size_t nbytes_;
  std::shared_ptr<void> owner_;
  bool writable_;
  void* block_;  // lincore's own allocation that data_ lies in (freed with it); null if borrowed
  std::atomic<std::uint64_t> version_{0};
  std::atomic<int> exports_{0};
  std::atomic<bool> owner_reports_{false};
  std::weak_ptr<void> packer_;  // guarded by a lock in storage.cpp (set and read rarely)
};

}  // namespace lincore
