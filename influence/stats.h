// Small statistics for comparing influence rankings and predictions.
#pragma once
#include <cstdint>
#include <vector>

namespace fragile::influence {

double mean_of(const std::vector<double>& v);
double pearson(const std::vector<double>& a, const std::vector<double>& b);
// Pearson correlation of the ranks (ties get their average rank), as scipy.stats.spearmanr.
double spearman(const std::vector<double>& a, const std::vector<double>& b);
// Ranks 1..n, ties averaged.
std::vector<double> average_ranks(const std::vector<double>& v);
// |top-k(a) intersect top-k(b)|, top-k = the k largest values (ties broken by index).
int64_t top_k_overlap(const std::vector<double>& a, const std::vector<double>& b, int64_t k);

}  // namespace fragile::influence
