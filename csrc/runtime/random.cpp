#include "runtime/random.h"

#include <cmath>
#include <mutex>
#include <random>
#include <string>

#include "tensor/errors.h"

namespace lincore {
namespace {

struct Generator {
  std::mutex mutex;
  std::uint64_t seed = kDefaultSeed;
  std::mt19937_64 engine{kDefaultSeed};
};

Generator& generator() {
  static Generator g;
  return g;
}

// Uniform in [0, 1) with 53 random bits.
double unit(std::mt19937_64& e) { return static_cast<double>(e() >> 11) * 0x1.0p-53; }

// Draws every value first, then writes them through copy_from, so strided tensors work and the
// stream of numbers does not depend on the layout.
template <class Draw>
void fill_with(Tensor& t, const char* what, Draw draw) {
  if (!is_floating_point(t.dtype())) {
    throw type_error(std::string("\"") + what + "\" not implemented for '" +
                     dtype_short_name(t.dtype()) + "'");
  }
  t.check_writable(what);
  Tensor values = Tensor::empty(t.shape(), DType::float64);
  double* v = values.data<double>();
  {
    Generator& g = generator();
    std::lock_guard<std::mutex> lock(g.mutex);
    draw(g.engine, v, values.numel());
  }
  t.copy_from(values);
}

}  // namespace

void manual_seed(std::uint64_t seed) {
  Generator& g = generator();
  std::lock_guard<std::mutex> lock(g.mutex);
  g.seed = seed;
  g.engine.seed(seed);
}

std::uint64_t initial_seed() {
  Generator& g = generator();
  std::lock_guard<std::mutex> lock(g.mutex);
  return g.seed;
}

void uniform_(Tensor& t, double low, double high) {
  fill_with(t, "uniform_", [&](std::mt19937_64& e, double* v, std::int64_t n) {
    for (std::int64_t i = 0; i < n; ++i) v[i] = low + (high - low) * unit(e);
  });
}

void normal_(Tensor& t, double mean, double std) {
  // Box-Muller, two values per pair of uniforms; 1 - u keeps the logarithm finite.
  fill_with(t, "normal_", [&](std::mt19937_64& e, double* v, std::int64_t n) {
    const double two_pi = 6.283185307179586476925;
    for (std::int64_t i = 0; i < n; i += 2) {
      const double r = std::sqrt(-2.0 * std::log(1.0 - unit(e)));
      const double theta = two_pi * unit(e);
      v[i] = mean + std * r * std::cos(theta);
      if (i + 1 < n) v[i + 1] = mean + std * r * std::sin(theta);
    }
  });
}

void bernoulli(std::uint8_t* out, std::int64_t n, double prob) {
  Generator& g = generator();
  std::lock_guard<std::mutex> lock(g.mutex);
  for (std::int64_t i = 0; i < n; ++i) out[i] = unit(g.engine) < prob;
}

}  // namespace lincore
