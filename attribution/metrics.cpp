// Similarity metrics of saliency maps, matching scipy.stats / scikit-image conventions
// (checked against them by tools/gen_metric_reference.py). Maps are flattened row-major.
#include "attribution/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <utility>
#include <vector>

#include "core/error.h"

namespace fragile::attr {
namespace {

void check_pair(const std::vector<double>& a, const std::vector<double>& b, const char* what) {
  FRAGILE_CHECK(a.size() == b.size(), what, ": maps of different sizes (", a.size(), " and ",
                b.size(), ")");
  FRAGILE_CHECK(!a.empty(), what, ": empty maps");
}

void check_map(const std::vector<double>& m, int64_t h, int64_t w, const char* what) {
  FRAGILE_CHECK(h > 0 && w > 0 && static_cast<int64_t>(m.size()) == h * w, what, ": a map of ",
                m.size(), " values is not ", h, " x ", w);
}

// Ranks 1..n with ties given their average rank (scipy.stats.rankdata 'average').
std::vector<double> average_ranks(const std::vector<double>& v) {
  const size_t n = v.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t i, size_t j) { return v[i] < v[j]; });
  std::vector<double> rank(n);
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j + 1 < n && v[order[j + 1]] == v[order[i]]) ++j;
    const double r = 0.5 * static_cast<double>(i + j) + 1.0;  // mean of ranks i+1..j+1
    for (size_t k = i; k <= j; ++k) rank[order[k]] = r;
    i = j + 1;
  }
  return rank;
}

// Pairs tied within each run of equal keys: sum over runs of t (t - 1) / 2.
int64_t tied_pairs(const std::vector<double>& sorted_keys) {
  int64_t ties = 0, run = 1;
  for (size_t i = 1; i <= sorted_keys.size(); ++i) {
    if (i < sorted_keys.size() && sorted_keys[i] == sorted_keys[i - 1]) {
      ++run;
    } else {
      ties += run * (run - 1) / 2;
      run = 1;
    }
  }
  return ties;
}

// Counts inversions (i < j with v[i] > v[j]) by merge sort, sorting v.
int64_t count_inversions(std::vector<double>& v, std::vector<double>& buf, size_t lo, size_t hi) {
  if (hi - lo < 2) return 0;
  const size_t mid = lo + (hi - lo) / 2;
  int64_t inv = count_inversions(v, buf, lo, mid) + count_inversions(v, buf, mid, hi);
  size_t i = lo, j = mid, k = lo;
  while (i < mid && j < hi) {
    if (v[j] < v[i]) {
      inv += static_cast<int64_t>(mid - i);
      buf[k++] = v[j++];
    } else {
      buf[k++] = v[i++];
    }
  }
  while (i < mid) buf[k++] = v[i++];
  while (j < hi) buf[k++] = v[j++];
  std::copy(buf.begin() + lo, buf.begin() + hi, v.begin() + lo);
  return inv;
}

// Indices of the k largest values, ties broken by the lower index (tf.nn.top_k's order).
std::vector<size_t> top_indices(const std::vector<double>& v, size_t k) {
  std::vector<size_t> idx(v.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](size_t i, size_t j) {
    return v[i] > v[j] || (v[i] == v[j] && i < j);
  });
  idx.resize(k);
  return idx;
}

}  // namespace

double pearson(const std::vector<double>& a, const std::vector<double>& b) {
  check_pair(a, b, "pearson");
  const double n = static_cast<double>(a.size());
  const double ma = std::accumulate(a.begin(), a.end(), 0.0) / n;
  const double mb = std::accumulate(b.begin(), b.end(), 0.0) / n;
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double da = a[i] - ma, db = b[i] - mb;
    sab += da * db;
    saa += da * da;
    sbb += db * db;
  }
  if (saa == 0.0 || sbb == 0.0) return std::nan("");  // undefined for a constant map (scipy: nan)
  return std::clamp(sab / std::sqrt(saa * sbb), -1.0, 1.0);
}

double spearman(const std::vector<double>& a, const std::vector<double>& b) {
  check_pair(a, b, "spearman");
  return pearson(average_ranks(a), average_ranks(b));
}

// Knight's O(n log n) algorithm, as scipy.stats.kendalltau (variant 'b'):
// tau_b = (P - Q) / sqrt((n0 - n1)(n0 - n2)), n0 = n(n-1)/2, n1/n2 pairs tied in a/b.
double kendall_tau_b(const std::vector<double>& a, const std::vector<double>& b) {
  check_pair(a, b, "kendall_tau_b");
  const size_t n = a.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t i, size_t j) {
    return a[i] < a[j] || (a[i] == a[j] && b[i] < b[j]);
  });
  std::vector<double> sa(n), sb(n);
  for (size_t i = 0; i < n; ++i) {
    sa[i] = a[order[i]];
    sb[i] = b[order[i]];
  }
  const int64_t xtie = tied_pairs(sa);
  // Pairs tied in both a and b: runs of equal (a, b) in the lexicographic order.
  int64_t ntie = 0, run = 1;
  for (size_t i = 1; i <= n; ++i) {
    if (i < n && sa[i] == sa[i - 1] && sb[i] == sb[i - 1]) {
      ++run;
    } else {
      ntie += run * (run - 1) / 2;
      run = 1;
    }
  }
  // Discordant pairs: inversions of b in this order (pairs tied in a are sorted by b, so they
  // contribute none).
  std::vector<double> buf(n);
  const int64_t dis = count_inversions(sb, buf, 0, n);
  const int64_t ytie = tied_pairs(sb);  // sb is now sorted
  const int64_t tot = static_cast<int64_t>(n) * static_cast<int64_t>(n - 1) / 2;
  if (xtie == tot || ytie == tot) return std::nan("");
  const double con_minus_dis =
      static_cast<double>(tot - xtie - ytie + ntie) - 2.0 * static_cast<double>(dis);
  const double tau = con_minus_dis / std::sqrt(static_cast<double>(tot - xtie)) /
                     std::sqrt(static_cast<double>(tot - ytie));
  return std::clamp(tau, -1.0, 1.0);
}

double mse(const std::vector<double>& a, const std::vector<double>& b) {
  check_pair(a, b, "mse");
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += (a[i] - b[i]) * (a[i] - b[i]);
  return s / static_cast<double>(a.size());
}

double topk_intersection(const std::vector<double>& a, const std::vector<double>& b, int64_t k) {
  check_pair(a, b, "topk_intersection");
  FRAGILE_CHECK(k >= 1 && k <= static_cast<int64_t>(a.size()), "topk_intersection: k = ", k,
                " for maps of ", a.size(), " values");
  std::vector<size_t> ta = top_indices(a, static_cast<size_t>(k));
  std::vector<size_t> tb = top_indices(b, static_cast<size_t>(k));
  std::sort(ta.begin(), ta.end());
  std::sort(tb.begin(), tb.end());
  std::vector<size_t> both;
  std::set_intersection(ta.begin(), ta.end(), tb.begin(), tb.end(), std::back_inserter(both));
  return static_cast<double>(both.size()) / static_cast<double>(k);
}

std::pair<double, double> center_of_mass(const std::vector<double>& map, int64_t h, int64_t w) {
  check_map(map, h, w, "center_of_mass");
  double total = 0, r = 0, c = 0;
  for (int64_t i = 0; i < h; ++i) {
    for (int64_t j = 0; j < w; ++j) {
      const double v = map[i * w + j];
      FRAGILE_CHECK(v >= 0.0, "center_of_mass: the map has a negative value ", v, " at (", i, ", ",
                    j, ")");
      total += v;
      r += v * static_cast<double>(i);
      c += v * static_cast<double>(j);
    }
  }
  // An all-zero map (an image equal to the IG / DeepLIFT reference, a dead network) has no
  // centre: NaN, which the attack's best-iterate rule skips and result.json writes as null,
  // rather than an error that would end the whole batch.
  if (!(total > 0.0)) {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    return {nan, nan};
  }
  return {r / total, c / total};
}

double center_shift(const std::vector<double>& a, const std::vector<double>& b, int64_t h,
                    int64_t w) {
  auto [ra, ca] = center_of_mass(a, h, w);
  auto [rb, cb] = center_of_mass(b, h, w);
  return std::hypot(ra - rb, ca - cb);
}

// skimage.metrics.structural_similarity(a, b, data_range=R) with its defaults: 7x7 uniform
// window, K1 = 0.01, K2 = 0.03, sample covariance (N / (N - 1)), the mean SSIM over the windows
// lying entirely inside the image (skimage filters the whole image, then crops (7 - 1) / 2
// pixels from each border before averaging, which leaves exactly these windows).
double ssim(const std::vector<double>& a, const std::vector<double>& b, int64_t h, int64_t w) {
  check_map(a, h, w, "ssim");
  check_map(b, h, w, "ssim");
  constexpr int64_t kWin = 7;
  FRAGILE_CHECK(h >= kWin && w >= kWin, "ssim: maps must be at least 7 x 7, got ", h, " x ", w);
  const auto [amin, amax] = std::minmax_element(a.begin(), a.end());
  const auto [bmin, bmax] = std::minmax_element(b.begin(), b.end());
  const double range = std::max(*amax, *bmax) - std::min(*amin, *bmin);
  if (range == 0.0) return 1.0;  // two equal constant maps
  const double c1 = (0.01 * range) * (0.01 * range), c2 = (0.03 * range) * (0.03 * range);
  const double np = static_cast<double>(kWin * kWin), cov_norm = np / (np - 1.0);

  // Window sums taken directly (49 terms each): no cancellation from running sums.
  double total = 0;
  int64_t count = 0;
  for (int64_t i = 0; i + kWin <= h; ++i) {
    for (int64_t j = 0; j + kWin <= w; ++j) {
      double sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
      for (int64_t di = 0; di < kWin; ++di) {
        const double* pa = &a[(i + di) * w + j];
        const double* pb = &b[(i + di) * w + j];
        for (int64_t dj = 0; dj < kWin; ++dj) {
          sx += pa[dj];
          sy += pb[dj];
          sxx += pa[dj] * pa[dj];
          syy += pb[dj] * pb[dj];
          sxy += pa[dj] * pb[dj];
        }
      }
      const double ux = sx / np, uy = sy / np;
      const double vx = cov_norm * (sxx / np - ux * ux);
      const double vy = cov_norm * (syy / np - uy * uy);
      const double vxy = cov_norm * (sxy / np - ux * uy);
      total += ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2));
      ++count;
    }
  }
  return total / static_cast<double>(count);
}

}  // namespace fragile::attr
