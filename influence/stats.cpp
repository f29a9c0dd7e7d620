#include "influence/stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "influence/influence.h"

namespace fragile::influence {

double mean_of(const std::vector<double>& v) {
  FRAGILE_CHECK(!v.empty(), "mean of an empty list");
  return std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}

double pearson(const std::vector<double>& a, const std::vector<double>& b) {
  FRAGILE_CHECK(a.size() == b.size() && a.size() >= 2, "pearson: need two lists of equal length "
                                                       ">= 2, got ", a.size(), " and ", b.size());
  const double ma = mean_of(a), mb = mean_of(b);
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) * (a[i] - ma);
    sbb += (b[i] - mb) * (b[i] - mb);
  }
  if (saa == 0 || sbb == 0) return 0.0;  // a constant list: no correlation defined
  return sab / std::sqrt(saa * sbb);
}

std::vector<double> average_ranks(const std::vector<double>& v) {
  std::vector<size_t> idx(v.size());
  std::iota(idx.begin(), idx.end(), size_t{0});
  std::stable_sort(idx.begin(), idx.end(), [&](size_t x, size_t y) { return v[x] < v[y]; });
  std::vector<double> r(v.size());
  for (size_t i = 0; i < idx.size();) {
    size_t j = i;
    while (j + 1 < idx.size() && v[idx[j + 1]] == v[idx[i]]) ++j;
    const double rank = 0.5 * static_cast<double>(i + j) + 1.0;
    for (size_t k = i; k <= j; ++k) r[idx[k]] = rank;
    i = j + 1;
  }
  return r;
}

double spearman(const std::vector<double>& a, const std::vector<double>& b) {
  return pearson(average_ranks(a), average_ranks(b));
}

int64_t top_k_overlap(const std::vector<double>& a, const std::vector<double>& b, int64_t k) {
  FRAGILE_CHECK(a.size() == b.size(), "top_k_overlap: lists of different lengths");
  const Vec va = Eigen::Map<const Vec>(a.data(), static_cast<int64_t>(a.size()));
  const Vec vb = Eigen::Map<const Vec>(b.data(), static_cast<int64_t>(b.size()));
  std::vector<int64_t> ta = top_k(va, k), tb = top_k(vb, k);
  std::sort(ta.begin(), ta.end());
  std::sort(tb.begin(), tb.end());
  std::vector<int64_t> both;
  std::set_intersection(ta.begin(), ta.end(), tb.begin(), tb.end(), std::back_inserter(both));
  return static_cast<int64_t>(both.size());
}

}  // namespace fragile::influence
