// lincore's own persistent thread pool (not OpenMP, which is not fork-safe and clashes with the
// runtimes numpy/torch bring). The caller thread takes part, so n threads means n - 1 workers.
// Workers spin ~1 ms after a job (a hand-off then costs well under a microsecond) and then
// sleep on a condition variable, so an idle process uses no CPU. After fork() the child starts a
// fresh pool on first use.
#pragma once

#include <cstdint>
#include <functional>

namespace lincore {

// The default: LINCORE_NUM_THREADS, else OMP_NUM_THREADS, else the CPUs this process may run on
// (affinity mask, capped by a cgroup CPU quota).
int default_num_threads();
int get_num_threads();
void set_num_threads(int n);  // std::invalid_argument when n < 1

// Whether the count was chosen by the user (set_num_threads, or LINCORE_NUM_THREADS in the
// environment) rather than defaulted. A host framework's count (torch.get_num_threads() inside
// a module that lincore.optimize swapped) is followed through follow_num_threads only when it
// was not: lincore and the host then take turns on the same threads, never more than it uses.
bool num_threads_explicit();
void follow_num_threads(int n);  // set_num_threads, unless num_threads_explicit()

// Runs fn(t) for t = 0..nt-1 and returns when all are done; t = 0 runs on the caller. nt is
// capped by get_num_threads(). When the pool is busy with another caller's job, or the caller is
// itself a pool worker, everything runs on the caller: never more threads than asked for.
void parallel_run(int nt, const std::function<void(int)>& fn);

// Splits [0, n) into one contiguous range per thread, each of at least `grain` items (fewer
// threads when n is small: then it all runs on the caller), and calls fn(begin, end) for each.
// For passes over memory whose items are independent (elementwise updates, packing): the
// result does not depend on the thread count.
void parallel_for(std::int64_t n, std::int64_t grain,
                  const std::function<void(std::int64_t, std::int64_t)>& fn);

}  // namespace lincore
