// Attribution methods: maps of how much each input element contributes to a class score.
//
// Every method is differentiable: with create_graph = true the returned map carries history,
// so an attack can differentiate a loss on the map with respect to the input (a Hessian-vector
// product underneath). That is the whole point of fragile.
//
// Vocabulary: x [N, C, H, W] preprocessed input; scores [N, K] pre-softmax class scores;
// classes[n] the class explained for image n; attribution [N, C, H, W]; saliency [N, H, W].
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace fragile::nn {
class Session;
}

namespace fragile::attr {

enum class Method {
  Gradient,             // dS/dx
  GradientTimesInput,   // x * dS/dx
  IntegratedGradients,  // (x - ref) * mean_{i=1..M} dS/dx(ref + i/M (x - ref))
  SmoothGrad,           // mean over n samples of dS/dx(x + N(0, sigma^2))
  DeepLift,             // Rescale rule; reference as for IG (Options::default_reference)
  GuidedBackprop,
  LrpEpsilon,
  LrpAlphaBeta,         // alpha-beta rule; z^B rule on the first layer
  SmoothedGradient,     // gradient of the beta-softplus network (Dombrowski's beta-smoothing)
};

// "gradient", "grad_x_input", "ig", "smoothgrad", "deeplift", "guided_backprop", "lrp_epsilon",
// "lrp_alphabeta", "beta_smoothed"; throws listing the valid names for an unknown one.
Method method_from_name(const std::string& name);
const char* method_name(Method m);
std::vector<std::string> method_names();

struct Options {
  int64_t ig_steps = 100;        // M (Ghorbani: 100)
  int64_t ig_batch = 16;         // IG / SmoothGrad points evaluated per chunk (memory vs speed)
  Tensor reference;              // IG / DeepLIFT reference [1 or N, C, H, W]; undefined = default
  // The reference when `reference` is undefined. Zero: the zero of the preprocessed input,
  // which for a model that subtracts the dataset's channel means (SqueezeNet) is Ghorbani's
  // "channel-wise mean image" for ImageNet (their code: np.zeros after mean subtraction), for
  // IG and DeepLIFT alike. ImageChannelMean: each image's own per-channel mean colour, a
  // function of x (an attack differentiates through it).
  enum class DefaultReference { Zero, ImageChannelMean };
  DefaultReference default_reference = DefaultReference::Zero;
  int64_t smoothgrad_samples = 50;
  double smoothgrad_sigma = 0.15;  // noise std as a fraction of (max - min) of the input
  uint64_t seed = 0;              // SmoothGrad noise
  // Index of x's first image in the caller's whole run: image n's SmoothGrad noise comes from
  // its own stream (seed, first_image + n) (core/image_streams.h), so its map does not depend
  // on how the run was cut into batches.
  int64_t first_image = 0;
  double lrp_epsilon = 1e-6;
  double lrp_alpha = 1.0, lrp_beta = 0.0;
  // z^B bounds of the first layer's input (the valid box): 1 value or one per channel, in
  // preprocessed units. Empty: derived from the model's preprocess.* metadata.
  std::vector<double> lrp_low, lrp_high;
  double smoothing_beta = 10.0;  // SmoothedGradient: ReLU -> softplus(beta)
};

// The model as seen by methods that only need scores. x -> scores [N, K].
using ScoreFn = std::function<Tensor(const Tensor& x)>;

// Attribution of classes[n] for each image of x. Methods that need the network's structure
// (DeepLIFT, guided backprop, LRP, beta-smoothing) take it from `model`.
Tensor attribute(const nn::Session& model, const Tensor& x, const std::vector<int64_t>& classes,
                 Method method, const Options& options = {}, bool create_graph = false);

// A loss on an attribution [N, C, H, W]: a tensor whose sum is differentiated (per-image
// losses may be returned as [N]).
using AttributionLoss = std::function<Tensor(const Tensor& attribution)>;

struct AttributionLossGradient {
  Tensor grad;         // d sum(loss(attribute(x))) / dx, shaped like x, no history
  Tensor attribution;  // attribute(x), no history
};

// The gradient an attack follows: the input gradient of a loss on the attribution (a
// Hessian-vector product underneath). Equal to differentiating attribute(..., create_graph =
// true) directly; for IG and SmoothGrad with more points than Options::ig_batch, memory is
// bounded by one chunk of points rather than growing with M (the chunks' shares of the map are
// recomputed with history one at a time, for one extra first-order pass over the points).
// Setting ig_batch >= the number of points keeps the direct, memory-hungry path.
AttributionLossGradient gradient_of_attribution_loss(const nn::Session& model, const Tensor& x,
                                                     const std::vector<int64_t>& classes,
                                                     Method method, const Options& options,
                                                     const AttributionLoss& loss);

// Ghorbani's saliency normalisation: sum over channels of |attribution|, divided by its total
// per image. [N, C, H, W] -> [N, H, W]; differentiable.
Tensor saliency_map(const Tensor& attribution);

}  // namespace fragile::attr
