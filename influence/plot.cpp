#include "influence/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/error.h"

// Compiled here with internal linkage: no clash with any other copy of stb in the program.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>
#include <stb/stb_easy_font.h>
#pragma GCC diagnostic pop

namespace fragile::influence {

namespace {

constexpr int kW = 640, kH = 480;
constexpr int kLeft = 80, kRight = 24, kTop = 44, kBottom = 64;

struct Canvas {
  int w, h;
  std::vector<uint8_t> rgb;
  Canvas(int w_, int h_) : w(w_), h(h_), rgb(static_cast<size_t>(w_ * h_ * 3), 255) {}

  void set(int x, int y, uint32_t c) {
    if (x < 0 || y < 0 || x >= w || y >= h) return;
    uint8_t* p = &rgb[static_cast<size_t>((y * w + x) * 3)];
    p[0] = static_cast<uint8_t>(c >> 16);
    p[1] = static_cast<uint8_t>(c >> 8);
    p[2] = static_cast<uint8_t>(c);
  }
  void rect(int x0, int y0, int x1, int y1, uint32_t c) {  // filled, inclusive
    for (int y = std::min(y0, y1); y <= std::max(y0, y1); ++y)
      for (int x = std::min(x0, x1); x <= std::max(x0, x1); ++x) set(x, y, c);
  }
  void line(int x0, int y0, int x1, int y1, uint32_t c) {  // Bresenham
    const int dx = std::abs(x1 - x0), sx = x0 < x1 ? 1 : -1;
    const int dy = -std::abs(y1 - y0), sy = y0 < y1 ? 1 : -1;
    int err = dx + dy;
    for (;;) {
      set(x0, y0, c);
      if (x0 == x1 && y0 == y1) break;
      const int e2 = 2 * err;
      if (e2 >= dy) {
        err += dy;
        x0 += sx;
      }
      if (e2 <= dx) {
        err += dx;
        y0 += sy;
      }
    }
  }
  void disc(int cx, int cy, int r, uint32_t c) {
    for (int y = -r; y <= r; ++y)
      for (int x = -r; x <= r; ++x)
        if (x * x + y * y <= r * r + r) set(cx + x, cy + y, c);
  }
  // stb_easy_font: text as axis-aligned quads, drawn `scale` times enlarged.
  int text_width(const std::string& s, int scale) {
    return stb_easy_font_width(const_cast<char*>(s.c_str())) * scale;
  }
  void text(int x, int y, const std::string& s, uint32_t c, int scale = 1, bool vertical = false) {
    static float buf[4 * 4 * 2000];
    const int quads = stb_easy_font_print(0, 0, const_cast<char*>(s.c_str()), nullptr, buf,
                                          sizeof(buf));
    for (int q = 0; q < quads; ++q) {
      const float* v = buf + q * 16;  // 4 vertices of {x, y, z, rgba}
      const int qx0 = static_cast<int>(v[0]) * scale, qy0 = static_cast<int>(v[1]) * scale;
      const int qx1 = static_cast<int>(v[8]) * scale - 1, qy1 = static_cast<int>(v[9]) * scale - 1;
      if (vertical) {  // rotated 90 degrees counter-clockwise around (x, y)
        rect(x + qy0, y - qx0, x + qy1, y - qx1, c);
      } else {
        rect(x + qx0, y + qy0, x + qx1, y + qy1, c);
      }
    }
  }
  void save(const std::filesystem::path& path) {
    if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
    FRAGILE_CHECK(stbi_write_png(path.string().c_str(), w, h, 3, rgb.data(), w * 3) != 0,
                  "cannot write ", path.string());
  }
};

std::string fmt(double v) {
  char b[32];
  if (v == 0) return "0";
  std::snprintf(b, sizeof b, "%.3g", v);
  return b;
}

// About five "nice" ticks (1, 2, 5 x 10^k steps) covering [lo, hi].
std::vector<double> ticks(double lo, double hi) {
  const double raw = (hi - lo) / 5.0;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  }
  std::vector<double> t;
  for (double v = std::ceil(lo / step) * step; v <= hi + 1e-9 * step; v += step) {
    t.push_back(std::abs(v) < 1e-12 * step ? 0.0 : v);
  }
  return t;
}

struct Axes {
  double x0, x1, y0, y1;
  int px(double x) const {
    return kLeft + static_cast<int>(std::lround((x - x0) / (x1 - x0) * (kW - kLeft - kRight)));
  }
  int py(double y) const {
    return kH - kBottom -
           static_cast<int>(std::lround((y - y0) / (y1 - y0) * (kH - kTop - kBottom)));
  }
};

void frame(Canvas& c, const Axes& a, const std::string& title, const std::string& xlabel,
           const std::string& ylabel, bool yticks) {
  const uint32_t ink = 0x202020, grid = 0xe6e6e6;
  for (double t : ticks(a.x0, a.x1)) {
    c.line(a.px(t), kTop, a.px(t), kH - kBottom, grid);
    const std::string s = fmt(t);
    c.text(a.px(t) - c.text_width(s, 1) / 2, kH - kBottom + 6, s, ink);
  }
  if (yticks) {
    for (double t : ticks(a.y0, a.y1)) {
      c.line(kLeft, a.py(t), kW - kRight, a.py(t), grid);
      const std::string s = fmt(t);
      c.text(kLeft - 6 - c.text_width(s, 1), a.py(t) - 4, s, ink);
    }
  }
  c.line(kLeft, kTop, kLeft, kH - kBottom, ink);
  c.line(kLeft, kH - kBottom, kW - kRight, kH - kBottom, ink);
  c.line(kW - kRight, kTop, kW - kRight, kH - kBottom, ink);
  c.line(kLeft, kTop, kW - kRight, kTop, ink);
  c.text((kW - c.text_width(title, 2)) / 2, 12, title, ink, 2);
  c.text((kLeft + kW - kRight - c.text_width(xlabel, 2)) / 2, kH - 30, xlabel, ink, 2);
  c.text(8, (kTop + kH - kBottom + c.text_width(ylabel, 2)) / 2, ylabel, ink, 2, true);
}

}  // namespace

std::vector<int64_t> histogram(const std::vector<double>& values, int bins, double lo, double hi) {
  FRAGILE_CHECK(bins >= 1 && hi > lo, "histogram: need bins >= 1 and hi > lo");
  std::vector<int64_t> counts(static_cast<size_t>(bins), 0);
  for (double v : values) {
    int b = static_cast<int>(std::floor((v - lo) / (hi - lo) * bins));
    counts[static_cast<size_t>(std::clamp(b, 0, bins - 1))] += 1;
  }
  return counts;
}

void write_scatter_png(const std::filesystem::path& path, const std::vector<ScatterSeries>& series,
                       const std::string& title, const std::string& xlabel,
                       const std::string& ylabel, bool diagonal) {
  double lo_x = INFINITY, hi_x = -INFINITY, lo_y = INFINITY, hi_y = -INFINITY;
  for (const ScatterSeries& s : series) {
    FRAGILE_CHECK(s.x.size() == s.y.size(), "scatter: x and y differ in length");
    for (size_t i = 0; i < s.x.size(); ++i) {
      lo_x = std::min(lo_x, s.x[i]);
      hi_x = std::max(hi_x, s.x[i]);
      lo_y = std::min(lo_y, s.y[i]);
      hi_y = std::max(hi_y, s.y[i]);
    }
  }
  FRAGILE_CHECK(std::isfinite(lo_x) && std::isfinite(lo_y), "scatter: no finite points");
  if (diagonal) {  // same range on both axes so y = x is the diagonal
    lo_x = lo_y = std::min(lo_x, lo_y);
    hi_x = hi_y = std::max(hi_x, hi_y);
  }
  auto pad = [](double& lo, double& hi) {
    const double span = hi > lo ? hi - lo : std::max(1e-12, std::abs(hi));
    lo -= 0.05 * span;
    hi += 0.05 * span;
  };
  pad(lo_x, hi_x);
  pad(lo_y, hi_y);
  const Axes a{lo_x, hi_x, lo_y, hi_y};
  Canvas c(kW, kH);
  frame(c, a, title, xlabel, ylabel, true);
  if (diagonal) c.line(a.px(lo_x), a.py(lo_y), a.px(hi_x), a.py(hi_y), 0xa0a0a0);
  int legend_y = kTop + 8;
  for (const ScatterSeries& s : series) {
    for (size_t i = 0; i < s.x.size(); ++i) c.disc(a.px(s.x[i]), a.py(s.y[i]), s.radius, s.rgb);
    if (!s.label.empty()) {
      c.disc(kLeft + 14, legend_y + 4, 3, s.rgb);
      c.text(kLeft + 24, legend_y, s.label, 0x202020);
      legend_y += 14;
    }
  }
  c.save(path);
}

void write_histogram_png(const std::filesystem::path& path, const std::vector<int64_t>& counts,
                         double lo, double hi, const std::string& title,
                         const std::string& xlabel) {
  FRAGILE_CHECK(!counts.empty() && hi > lo, "histogram plot: empty or bad range");
  const int64_t top = std::max<int64_t>(1, *std::max_element(counts.begin(), counts.end()));
  const Axes a{lo, hi, 0.0, static_cast<double>(top) * 1.08};
  Canvas c(kW, kH);
  frame(c, a, title, xlabel, "count", true);
  const double w = (hi - lo) / static_cast<double>(counts.size());
  for (size_t b = 0; b < counts.size(); ++b) {
    if (counts[b] == 0) continue;
    const int x0 = a.px(lo + w * static_cast<double>(b)) + 1;
    const int x1 = a.px(lo + w * static_cast<double>(b + 1)) - 1;
    c.rect(x0, a.py(static_cast<double>(counts[b])), x1, a.py(0) - 1, 0x4c72b0);
  }
  c.save(path);
}

}  // namespace fragile::influence
