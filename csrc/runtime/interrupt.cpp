#include "runtime/interrupt.h"

#include <atomic>

namespace lincore {
namespace {

// Lock-free, so setting it from a signal handler is safe.
std::atomic<bool> g_requested{false};
static_assert(std::atomic<bool>::is_always_lock_free);

}  // namespace

void request_interrupt() noexcept { g_requested.store(true, std::memory_order_relaxed); }
void clear_interrupt() noexcept { g_requested.store(false, std::memory_order_relaxed); }
bool interrupt_requested() noexcept { return g_requested.load(std::memory_order_relaxed); }

}  // namespace lincore
