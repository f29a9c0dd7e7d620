#include "core/image_streams.h"

#include "core/error.h"

namespace fragile {

ImageStreams::ImageStreams(uint64_t seed, int64_t first_image, int64_t count) {
  FRAGILE_CHECK(first_image >= 0 && count >= 0, "ImageStreams: first_image (", first_image,
                ") and count (", count, ") must be non-negative");
  streams_.reserve(static_cast<size_t>(count));
  for (int64_t n = 0; n < count; ++n) {
    const uint64_t i = static_cast<uint64_t>(first_image + n);
    // seed_seq spreads (seed, i) over the whole state: neighbouring images and seeds give
    // unrelated streams, unlike seeding mt19937_64 with seed + i.
    std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32),
                      static_cast<uint32_t>(i), static_cast<uint32_t>(i >> 32)};
    streams_.emplace_back(seq);
  }
}

Tensor ImageStreams::randn(const Shape& shape, DType dtype) {
  FRAGILE_CHECK(!shape.empty() && shape[0] == count(), "ImageStreams::randn: shape ",
                shape_str(shape), " must start with the ", count(), " images of the streams");
  Shape one = shape;
  one[0] = 1;
  const int64_t per_image = numel_of(one);
  std::vector<double> v;
  v.reserve(static_cast<size_t>(per_image * count()));
  for (std::mt19937_64& rng : streams_) {
    std::normal_distribution<double> dist(0.0, 1.0);
    for (int64_t j = 0; j < per_image; ++j) v.push_back(dist(rng));
  }
  return Tensor::from_vector(v, shape, dtype);
}

}  // namespace fragile
