// Cooperative interruption of long computations: a process-wide flag that compute loops poll
// between chunks of work (a chunk is at most a fraction of a second). The bindings set it from
// a SIGINT handler and clear it when Python enters a computation; a computation that finds it
// set unwinds by throwing lincore::interrupted, which Python sees as KeyboardInterrupt.
#pragma once

#include <exception>

namespace lincore {

// Not a std::runtime_error: handlers that add context to errors (which layer failed) must let
// an interruption pass untouched.
struct interrupted : std::exception {
  const char* what() const noexcept override { return "interrupted"; }
};

void request_interrupt() noexcept;  // async-signal-safe
void clear_interrupt() noexcept;
bool interrupt_requested() noexcept;

inline void check_interrupt() {
  if (interrupt_requested()) throw interrupted();
}

}  // namespace lincore
