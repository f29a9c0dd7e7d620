// Random numbers that belong to an image, not to the batch it happens to run in.
//
// SmoothGrad's noise and the random-sign attack's directions are drawn for a batch [N, ...].
// With one generator for the batch, image n's draws depend on which images came before it, so
// a map or an attack result changed with --batch and with the image's place in the list.
// Here image i of a run (i = first_image + n, its position among all the run's images) has its
// own generator, seeded from (seed, i): its draws do not depend on how the run is cut into
// batches. They do depend on the position: list the images differently and an image gets
// another image's stream (a different but equally valid random draw).
#pragma once
#include <cstdint>
#include <random>
#include <vector>

#include "core/tensor.h"

namespace fragile {

class ImageStreams {
 public:
  ImageStreams(uint64_t seed, int64_t first_image, int64_t count);

  // Standard normal draws of `shape` = [count, rest...]: image n's slice is the next
  // [1, rest...] draw of its own stream (Tensor::randn order). On the CPU.
  Tensor randn(const Shape& shape, DType dtype);

  int64_t count() const { return static_cast<int64_t>(streams_.size()); }

 private:
  std::vector<std::mt19937_64> streams_;
};

}  // namespace fragile
