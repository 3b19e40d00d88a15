// The one rule between load_state_dict and a module's forward, process-wide: every result comes
// from one set of weights.
//
// A seqlock. A load (Module.load_state_dict, through _core.parameter_load()) makes the epoch odd
// while it copies weights, holding the load lock, and even again after. A forward that overlapped
// a load (the epoch was odd, or changed while it ran: its kernels may have packed half-copied
// weights, or some layers old and some new) runs again, holding the load lock, so loads wait for
// it: a thread that loads in a loop cannot starve forwards (with retries alone, a forward racing
// back-to-back loads could retry for minutes). A half-copied pack never survives: its cache key
// holds the storage version from before the copy, which the copy then bumps. Forwards pay two
// atomic loads. The lock is reentrant: a forward run under it may call other modules' forwards.
#pragma once

#include <pybind11/pybind11.h>

#include <atomic>
#include <cstdint>

namespace lincore::bindings {

extern std::atomic<std::uint64_t> load_epoch;

// The load lock (a threading.RLock, so that waiting on it lets other Python threads run), held
// for the life of a LoadLockHold.
class LoadLockHold {
 public:
  LoadLockHold();
  ~LoadLockHold();
  LoadLockHold(const LoadLockHold&) = delete;
  LoadLockHold& operator=(const LoadLockHold&) = delete;
};

// compute() from one set of weights: run once optimistically, and if a load overlapped it, again
// with loads held off. compute runs with the GIL held (it may release it inside).
template <class F>
pybind11::object consistent(F&& compute) {
  const std::uint64_t epoch = load_epoch.load(std::memory_order_acquire);
  if ((epoch & 1) == 0) {
    pybind11::object result = compute();
    if (load_epoch.load(std::memory_order_acquire) == epoch) return result;
  }
  LoadLockHold hold;
  return compute();
}

}  // namespace lincore::bindings
