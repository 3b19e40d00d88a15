#include "nn/sequential.h"

#include <stdexcept>

#include "nn/activation.h"

namespace lincore {

Tensor Sequential::forward(const Tensor& input) const {
  Tensor x = input;
  for (std::size_t i = 0; i < steps_.size(); ++i) {
    const Step& s = steps_[i];
    switch (s.kind) {
      case Step::Kind::identity: break;
      case Step::Kind::flatten: x = x.flatten(s.start_dim, s.end_dim); break;
      case Step::Kind::activation: x = activation(x, s.ep); break;
      case Step::Kind::linear: {
        Epilogue ep;
        const bool fuse = i + 1 < steps_.size() && steps_[i + 1].kind == Step::Kind::activation &&
                          is_floating_point(x.dtype());
        if (fuse) ep = steps_[i + 1].ep;
        try {
          x = linear(x, s.weight, s.bias ? &*s.bias : nullptr, ep, s.cache.get());
        } catch (const std::runtime_error& e) {
          // Name the layer: the kernel's message alone does not say which one failed.
          throw std::runtime_error(std::string(e.what()) + " (in layer " + s.name + ")");
        }
        if (fuse) ++i;
        break;
      }
    }
  }
  return x;
}

}  // namespace lincore
