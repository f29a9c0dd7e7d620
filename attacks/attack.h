// Attacks on explanations: change a saliency map while the network's label stays.
//
// Ghorbani, Abid & Zou, "Interpretation of Neural Networks is Fragile", Algorithm 1 (random sign,
// top-k, mass-center, and a targeted-region variant): P sign steps of size alpha on a
// dissimilarity D between the map of the current iterate and the original map, projected onto
// the l-infinity ball of radius epsilon around the input and clipped to the valid pixel box.
// The direction is computed on a softplus(beta) copy of the network (a ReLU network's map has a
// zero input gradient almost everywhere); every iterate is judged on the original network, and
// the iterate returned is the most dissimilar one that keeps the label.
//
// Dombrowski et al., "Explanations can be manipulated and geometry is to blame": Adam on
// ||h(x_adv) - h_target||^2 + gamma ||g(x_adv) - g(x)||^2 (h the map, g the softmax output),
// optionally growing beta during the run, clamped to the valid box.
//
// All images of a batch are attacked together and independently: each has its own label,
// epsilon ball, direction and best iterate (the dissimilarities are per image and summed, so
// the gradient of the sum is each image's own gradient).
//
// Vocabulary: x0 [N, C, H, W] preprocessed inputs; maps [N, H, W]; lengths epsilon, alpha and
// the Adam step are in pixel units (0..255) and converted per channel by PixelSpace.
#pragma once
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "attacks/step.h"
#include "attribution/attribution.h"
#include "core/tensor.h"

namespace fragile::nn {
class Session;
}

namespace fragile::attacks {

enum class Kind { RandomSign, TopK, MassCenter, Targeted, Manipulate };

// "random", "topk", "center", "target", "manipulate"; throws listing them for another name.
Kind kind_from_name(const std::string& name);
const char* kind_name(Kind kind);
std::vector<std::string> kind_names();

// The network that supplies attack directions: a copy of the original with every ReLU replaced
// by softplus(beta), built on demand and cached (one beta at a time, so beta growth rebuilds it).
// beta <= 0, or a model without ReLU (already smooth), gives the original network itself.
class Surrogate {
 public:
  explicit Surrogate(const nn::Session& original);
  ~Surrogate();
  const nn::Session& at(double beta);
  int64_t relu_count() const { return relu_count_; }
  // True when at(beta) is the original network.
  bool is_original(double beta) const { return beta <= 0 || relu_count_ == 0; }

 private:
  const nn::Session& original_;
  int64_t relu_count_ = 0;
  double beta_ = std::numeric_limits<double>::quiet_NaN();
  std::unique_ptr<nn::Session> session_;
};

struct Config {
  Kind kind = Kind::TopK;
  attr::Method method = attr::Method::Gradient;
  attr::Options attribution;
  double epsilon = 8.0;  // l-infinity radius, pixel units; <= 0: no ball (Dombrowski's setting)
  double step = 0.5;     // alpha, pixel units (Ghorbani's notebooks: 0.5)
  int64_t iters = 300;   // P
  int64_t k = 1000;      // top-k set of the attack and of the reported intersection
  double surrogate_beta = 1.0;  // softplus beta of the direction network; <= 0: the original
  // Random sign directions: image n draws from its own stream (seed, attribution.first_image
  // + n), so a batch gives each image what it would get alone.
  uint64_t seed = 0;

  Tensor region;  // Targeted: 0/1 mask [1 or N, H, W] of where saliency should go

  // Manipulate.
  Tensor target_map;         // [1 or N, H, W] saliency to reproduce (normalised like the maps)
  double gamma = 1e-5;       // output term weight relative to the map term (their 1e6 / 1e11)
  double loss_scale = 1e11;  // overall factor (their code): keeps Adam's eps from dominating
  double lr = 0.0115;        // Adam step in pixel units: their 2e-4 on torchvision-normalised
                             // inputs (std ~0.226) is 2e-4 * 0.226 * 255 pixels
  bool beta_growth = false;  // beta_i = beta_start * (beta_end / beta_start)^(i / P)
  double beta_start = 10.0, beta_end = 100.0;

  // On a device that records graphs (CUDA), the direction and step of iterations 2..P are
  // recorded once as a CUDA Graph and replayed (iteration 1 runs eagerly, warming the caches
  // the recording needs). When recording fails the attack runs eagerly and says why in
  // Result::graph_failure. Random sign and manipulation always run eagerly.
  bool cuda_graph = true;

  // Called after each iteration with (iterations done, total). Optional.
  std::function<void(int64_t, int64_t)> progress;
};

struct ImageResult {
  int64_t label_before = -1, label_after = -1;
  double prob_before = 0, prob_after = 0;  // softmax probability of the predicted label
  bool success = false;                    // some iterate kept the label
  int64_t best_iter = -1;                  // 1..P; -1 when the attack failed
  int64_t kept_iters = 0;                  // iterates that kept the label
  double dissimilarity = 0;  // the selection measure of the returned iterate (see selection_value)
  // Original network's map before vs after (after = before when the attack failed).
  double topk_intersection = 1, spearman = 1, kendall = 1, center_shift = 0;
  double linf = 0;  // max |x - x0| in pixel units
  // Manipulate only: MSE between the map and the target map, before and after.
  double target_mse_before = std::numeric_limits<double>::quiet_NaN();
  double target_mse_after = std::numeric_limits<double>::quiet_NaN();
};

struct Result {
  Tensor perturbed;              // [N, C, H, W]; x0 where the attack failed
  Tensor map_before, map_after;  // original network's saliency maps [N, H, W]
  std::vector<ImageResult> images;
  bool graph_replayed = false;  // iterations 2..P replayed a recorded CUDA Graph
  std::string iteration_mode;   // "cuda graph" or "eager"
  std::string graph_failure;    // why recording failed on a device that records; else empty
};

// The measure that ranks iterates (higher = more dissimilar), on host-side maps of one image:
// random and topk: 1 - top-k intersection; center: centre-of-mass shift in pixels;
// target: saliency mass inside `region` (H*W 0/1, may be empty otherwise);
// manipulate: -MSE(map, target).
double selection_value(Kind kind, const std::vector<double>& s0, const std::vector<double>& s,
                       int64_t h, int64_t w, int64_t k, const std::vector<double>& region);

// Saliency maps of the original network for classes[n] (no history). [N, H, W]
Tensor saliency(const nn::Session& model, const Tensor& x, const std::vector<int64_t>& classes,
                const Config& config);

// Runs the configured attack on x0 (in the model's dtype). x0 must lie in the valid box.
Result run_attack(const nn::Session& model, Surrogate& surrogate, const Tensor& x0,
                  const PixelSpace& space, const Config& config);

// Dombrowski's manipulation (run_attack calls it for Kind::Manipulate).
Result run_manipulation(const nn::Session& model, Surrogate& surrogate, const Tensor& x0,
                        const PixelSpace& space, const Config& config);

// Fills r.images' labels, probabilities and before/after map metrics from r.perturbed,
// r.map_before and r.map_after (used by both attacks).
void finish_result(const nn::Session& model, Result& r, const Tensor& x0, const PixelSpace& space,
                   const Config& config);

}  // namespace fragile::attacks
