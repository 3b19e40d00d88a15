// lincore's global random generator: mt19937_64 (fully specified by the C++ standard, so a seed
// gives the same numbers on every platform) with our own conversions to uniform and normal values
// (std:: distributions are implementation-defined). Thread-safe.
#pragma once

#include <cstdint>

#include "tensor/tensor.h"

namespace lincore {

constexpr std::uint64_t kDefaultSeed = 67280421310721ULL;  // PyTorch's default seed

void manual_seed(std::uint64_t seed);
std::uint64_t initial_seed();

// Fill a float32/float64 tensor in place: uniform in [low, high), or normal(mean, std).
void uniform_(Tensor& t, double low, double high);
void normal_(Tensor& t, double mean, double std);

// out[i] = 1 with probability prob, else 0, for i in [0, n): one uniform draw per element, in
// order (Dropout's mask).
void bernoulli(std::uint8_t* out, std::int64_t n, double prob);

}  // namespace lincore
