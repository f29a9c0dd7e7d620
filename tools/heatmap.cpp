#include "tools/heatmap.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

// stb_image_write compiled here with internal linkage, as nn/image.cpp does with stb_image.
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#endif
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

namespace fragile::cli {

namespace {

// matplotlib's "inferno" at t = 0, 1/8, ..., 1 (linearly interpolated in between).
constexpr uint8_t kInferno[9][3] = {{0, 0, 4},      {31, 12, 72},   {85, 15, 109},
                                    {136, 34, 106}, {186, 54, 85},  {227, 89, 51},
                                    {249, 140, 10}, {249, 201, 50}, {252, 255, 164}};

void colour(double t, uint8_t* out) {
  t = std::clamp(std::isfinite(t) ? t : 0.0, 0.0, 1.0) * 8.0;
  const int i = std::min(static_cast<int>(t), 7);
  const double f = t - i;
  for (int c = 0; c < 3; ++c) {
    out[c] = static_cast<uint8_t>(std::lround(kInferno[i][c] * (1 - f) + kInferno[i + 1][c] * f));
  }
}

}  // namespace

double heatmap_scale(const std::vector<double>& map) {
  if (map.empty()) return 1.0;
  std::vector<double> v(map.begin(), map.end());
  const size_t q = std::min(v.size() - 1, static_cast<size_t>(0.995 * (v.size() - 1) + 0.5));
  std::nth_element(v.begin(), v.begin() + q, v.end());
  double s = v[q];
  if (!(s > 0)) s = *std::max_element(map.begin(), map.end());
  return s > 0 ? s : 1.0;
}

Picture heatmap(const std::vector<double>& map, int64_t h, int64_t w, double vmax) {
  FRAGILE_CHECK(static_cast<int64_t>(map.size()) == h * w, "heatmap: ", map.size(),
                " values for a ", h, " x ", w, " map");
  const double s = vmax > 0 ? vmax : heatmap_scale(map);
  Picture p{w, h, 3, std::vector<uint8_t>(h * w * 3)};
  for (int64_t i = 0; i < h * w; ++i) colour(map[i] / s, &p.data[i * 3]);
  return p;
}

Picture input_picture(const Tensor& x, int64_t index, const attacks::PixelSpace& space,
                      bool bgr) {
  FRAGILE_CHECK(x.dim() == 4 && index >= 0 && index < x.size(0) &&
                    x.size(1) == space.channels() && (x.size(1) == 1 || x.size(1) == 3),
                "input_picture: cannot picture image ", index, " of a ", shape_str(x.shape()),
                " tensor");
  const int64_t c = x.size(1), h = x.size(2), w = x.size(3), hw = h * w;
  const std::vector<double> v = x.to_vector();
  Picture p{w, h, c, std::vector<uint8_t>(hw * c)};
  for (int64_t ch = 0; ch < c; ++ch) {
    const int64_t dst = (bgr && c == 3) ? 2 - ch : ch;
    for (int64_t i = 0; i < hw; ++i) {
      const double pixel = space.to_pixel(ch, v[(index * c + ch) * hw + i]);
      p.data[i * c + dst] = static_cast<uint8_t>(std::clamp(std::lround(pixel), 0L, 255L));
    }
  }
  return p;
}

Picture upscale(const Picture& p, int64_t factor) {
  FRAGILE_CHECK(factor >= 1, "upscale factor must be >= 1, got ", factor);
  if (factor == 1) return p;
  Picture out{p.width * factor, p.height * factor, p.channels, {}};
  out.data.resize(out.width * out.height * out.channels);
  for (int64_t y = 0; y < out.height; ++y) {
    for (int64_t x = 0; x < out.width; ++x) {
      const uint8_t* src = &p.data[((y / factor) * p.width + x / factor) * p.channels];
      std::copy_n(src, p.channels, &out.data[(y * out.width + x) * out.channels]);
    }
  }
  return out;
}

int64_t upscale_factor(int64_t h, int64_t w, int64_t min_side) {
  const int64_t side = std::max<int64_t>(1, std::max(h, w));
  return std::max<int64_t>(1, (min_side + side - 1) / side);
}

Picture hstack(const std::vector<Picture>& pictures, int64_t gap) {
  Picture out{0, 0, 3, {}};
  for (const Picture& p : pictures) {
    out.width += p.width;
    out.height = std::max(out.height, p.height);
  }
  if (!pictures.empty()) out.width += gap * static_cast<int64_t>(pictures.size() - 1);
  out.data.assign(out.width * out.height * 3, 255);
  int64_t x0 = 0;
  for (const Picture& p : pictures) {
    for (int64_t y = 0; y < p.height; ++y) {
      for (int64_t x = 0; x < p.width; ++x) {
        const uint8_t* src = &p.data[(y * p.width + x) * p.channels];
        uint8_t* dst = &out.data[(y * out.width + x0 + x) * 3];
        for (int c = 0; c < 3; ++c) dst[c] = src[p.channels == 3 ? c : 0];
      }
    }
    x0 += p.width + gap;
  }
  return out;
}

void write_png(const std::filesystem::path& path, const Picture& p) {
  FRAGILE_CHECK(p.width > 0 && p.height > 0 &&
                    static_cast<int64_t>(p.data.size()) == p.width * p.height * p.channels,
                "cannot write an empty or malformed picture to ", path.string());
  const int ok = stbi_write_png(path.string().c_str(), static_cast<int>(p.width),
                                static_cast<int>(p.height), static_cast<int>(p.channels),
                                p.data.data(), static_cast<int>(p.width * p.channels));
  FRAGILE_CHECK(ok != 0, "cannot write PNG ", path.string());
}

}  // namespace fragile::cli
