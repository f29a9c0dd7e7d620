// Similarity of two saliency maps (flattened per image), as in Ghorbani et al. and Chen et al.
// All take host-side values; none is differentiable (attacks use the losses in attacks/).
#pragma once
#include <cstdint>
#include <vector>

namespace fragile::attr {

double spearman(const std::vector<double>& a, const std::vector<double>& b);    // ties: average ranks
double kendall_tau_b(const std::vector<double>& a, const std::vector<double>& b);
double pearson(const std::vector<double>& a, const std::vector<double>& b);
double mse(const std::vector<double>& a, const std::vector<double>& b);
// |topk(a) ∩ topk(b)| / k on flattened maps (k = 1000 in Ghorbani).
double topk_intersection(const std::vector<double>& a, const std::vector<double>& b, int64_t k);
// Centre of mass (row, col) of a non-negative H x W map, NaN for an all-zero map; and the L2
// distance between two (NaN when either is all zero).
std::pair<double, double> center_of_mass(const std::vector<double>& map, int64_t h, int64_t w);
double center_shift(const std::vector<double>& a, const std::vector<double>& b, int64_t h,
                    int64_t w);
// SSIM of two H x W maps (scikit-image's defaults: 7x7 uniform window, K1 0.01, K2 0.03,
// data_range = max - min over both maps, sample covariance).
double ssim(const std::vector<double>& a, const std::vector<double>& b, int64_t h, int64_t w);

}  // namespace fragile::attr
