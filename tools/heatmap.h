// PNG pictures of saliency maps and inputs for `fragile explain` / `fragile attack` (written with
// stb_image_write from Debian's libstb-dev).
#pragma once
#include <cstdint>
#include <filesystem>
#include <vector>

#include "attacks/step.h"
#include "core/tensor.h"

namespace fragile::cli {

// An 8-bit picture, row-major, `channels` (1 or 3) interleaved values per pixel.
struct Picture {
  int64_t width = 0, height = 0, channels = 3;
  std::vector<uint8_t> data;
};

// A saliency map (H x W, non-negative) in the "inferno" colour map, scaled so that the 99.5th
// percentile of the map (its maximum when vmax > 0 is given, that value) is the brightest
// colour: a few extreme pixels would otherwise leave the rest of the map black.
Picture heatmap(const std::vector<double>& map, int64_t h, int64_t w, double vmax = 0);
// The value heatmap() scales by when vmax is 0.
double heatmap_scale(const std::vector<double>& map);
// Image `index` of a preprocessed batch x [N, C, H, W] back in pixels (inverse preprocessing,
// rounded and clamped to 0..255); BGR models are written as RGB, one channel as gray.
Picture input_picture(const Tensor& x, int64_t index, const attacks::PixelSpace& space, bool bgr);
// Nearest-neighbour enlargement by an integer factor (crisp pixels for 28 x 28 maps).
Picture upscale(const Picture& p, int64_t factor);
// The factor that makes the longer side at least `min_side` pixels (>= 1).
int64_t upscale_factor(int64_t h, int64_t w, int64_t min_side = 224);
// Pictures side by side, top-aligned, separated by `gap` white pixels (gray ones become RGB).
Picture hstack(const std::vector<Picture>& pictures, int64_t gap = 4);
// Throws with the path on failure.
void write_png(const std::filesystem::path& path, const Picture& p);

}  // namespace fragile::cli
