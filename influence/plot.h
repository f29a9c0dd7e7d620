// Two small PNG plots drawn by hand (stb_image_write): a scatter of influence before vs after an
// attack, and a histogram (the angle between grad_x S and the top Hessian eigenvector). Text is a
// built-in 5x7 bitmap font (digits, letters shown upper case, a few symbols).
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace fragile::influence {

struct ScatterSeries {
  std::vector<double> x, y;
  uint32_t rgb = 0x1f77b4;  // 0xRRGGBB
  int radius = 2;
  std::string label;
};
// Axes fit every point; the diagonal y = x is drawn when `diagonal`.
void write_scatter_png(const std::filesystem::path& path, const std::vector<ScatterSeries>& series,
                       const std::string& title, const std::string& xlabel,
                       const std::string& ylabel, bool diagonal = true);

// Bars of `counts` over equal bins [lo, hi).
void write_histogram_png(const std::filesystem::path& path, const std::vector<int64_t>& counts,
                         double lo, double hi, const std::string& title,
                         const std::string& xlabel);

// Counts of `values` in `bins` equal bins over [lo, hi] (hi falls in the last bin).
std::vector<int64_t> histogram(const std::vector<double>& values, int bins, double lo, double hi);

}  // namespace fragile::influence
