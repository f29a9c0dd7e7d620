// The experiments of issue 6 on binary Fashion-MNIST (default sneaker = 7 vs ankle boot = 9):
//  1. leave-one-out validation: predicted loss change -I(z_i, z_t) / n vs actual retraining;
//  2. the influence attack (Ghorbani et al. eq. 4) beside a random-sign baseline;
//  3. the input-Hessian analysis (Ghorbani et al. section 5): top eigenpair of the input Hessian
//     of a class score and its angle with the score gradient.
// The frozen network supplies features (fashion.h); influence uses the last layer only, as in
// Koh & Liang and Ghorbani et al.; the attack backpropagates to the image through the network.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "influence/fashion.h"
#include "influence/influence.h"

namespace fragile::influence {

struct FashionSetup {
  std::filesystem::path data_dir = kFashionDir;
  int64_t class_neg = 7;    // sneaker: y = -1
  int64_t class_pos = 9;    // ankle boot: y = +1
  int64_t num_train = 1000;  // first examples of the two classes in the training file
  double l2 = 0.01;
  // The frozen network's compute dtype. Features, the last layer and every influence are float64
  // either way (Newton trains to |grad| <= 1e-13); float32 only rounds the network's forward and
  // the attack's backward pass through it.
  DType dtype = DType::Float64;
};

// Everything the experiments share: the frozen network, features, the trained last layer at
// theta-hat, per-example training gradients and the Cholesky factor of the exact Hessian.
struct FashionInfluence {
  FashionSetup setup;
  std::unique_ptr<nn::Session> session;  // setup.dtype (float64 by default)
  std::string feature_value;             // the penultimate value's name
  BinarySet train, test;                 // test: every test image of the two classes
  LogisticLastLayer layer;
  Objective objective;
  NewtonResult fit;
  Mat train_grads;  // n x P, dL(z_i)/dtheta at theta-hat
  Mat hessian;      // P x P at theta-hat (includes l2)
  Eigen::LLT<Mat> hessian_llt;
  double pixel_mean = 0.0, pixel_scale = 1.0 / 255;  // the model's preprocess.* metadata
  double train_accuracy = 0.0, test_accuracy = 0.0;
  double seconds = 0.0;

  int64_t num_params() const { return objective.layout.size(); }
  Vec theta() const { return fit.theta; }
  // Test features [B, D] of binary test examples.
  Tensor test_features(const std::vector<int64_t>& test_indices) const;
  // grad_theta L(z_t) of binary test example t (image x_t, or `image` [1,1,28,28] instead).
  Vec test_gradient(int64_t t, const Tensor& image = Tensor()) const;
  double test_loss(int64_t t, const Vec& theta) const;
  // Last-layer score f(x) w + b of an image batch [B, 1, 28, 28].
  std::vector<double> scores(const Tensor& images) const;
};

// Loads data and model (one gray channel; preprocess.mean/scale from its metadata), extracts
// features, trains the last layer by Newton to |grad|_inf <= 1e-13.
FashionInfluence prepare_fashion_influence(nn::Model model, const FashionSetup& setup);

// ---- 1. leave-one-out validation -------------------------------------------------------------
struct LooOptions {
  std::vector<int64_t> test_points;  // binary test indices; empty: the 3 highest-loss test points
  int64_t top = 40;                  // training points per test point, by |predicted change|;
                                     // >= 2 (a Pearson correlation needs two points)
  IhvpOptions ihvp;                  // how s_test = H^{-1} grad L(z_t) is computed
};
struct LooPoint {
  int64_t train_index = 0;     // in the binary training subset
  double influence = 0.0;      // I(z_i, z_t)
  double predicted = 0.0;      // -I / n
  double actual = 0.0;         // L_t(theta_{-i}) - L_t(theta-hat) after Newton retraining
  int newton_iterations = 0;
};
struct LooTest {
  int64_t test_index = 0;
  double test_loss = 0.0;
  IhvpResult ihvp;
  double s_test_error_vs_exact = 0.0;  // |s - s_exact| / |s_exact|
  std::vector<LooPoint> points;
  double pearson = 0.0, spearman = 0.0;
};
struct LooResult {
  std::vector<LooTest> tests;
  double pearson_pooled = 0.0;  // over every (test, train) pair
  double min_pearson = 0.0;
  double seconds = 0.0;
};
LooResult run_loo_validation(const FashionInfluence& fi, const LooOptions& opts);

// ---- 2. the influence attack -----------------------------------------------------------------
struct AttackOptions {
  int64_t num_images = 50;                // the first binary test images
  // L_inf budgets in pixel units, each in (0, 255]; the image stays within the valid pixel range.
  std::vector<double> epsilons = {2, 4, 8};
  int64_t attack_top = 3;                 // eq. 4 sums I over the top-3 training points
  int64_t overlap_k = 5;                  // top-5 intersection
  uint64_t seed = 0;                      // random-sign baseline
};
struct AttackOutcome {
  double spearman = 0.0;     // rank correlation of all n influences, before vs after
  int64_t overlap = 0;       // |top-k before intersect top-k after|
  bool label_kept = true;    // the last layer's predicted class is unchanged
  double top_influence_change = 0.0;  // sum over the attacked top-3 of I_after - I_before
};
struct AttackImage {
  int64_t test_index = 0;
  std::vector<AttackOutcome> targeted, random;  // per epsilon
};
struct AttackRow {
  double epsilon = 0.0;
  double targeted_spearman = 0.0, random_spearman = 0.0;  // means over images
  double targeted_overlap = 0.0, random_overlap = 0.0;
  double targeted_label_kept = 0.0, random_label_kept = 0.0;  // fractions
};
struct AttackResult {
  std::vector<AttackRow> rows;
  std::vector<AttackImage> images;
  // Influences of every training point for the first image, before and after the largest
  // epsilon (targeted and random), for the scatter plot.
  std::vector<double> example_before, example_targeted, example_random;
  std::vector<int64_t> example_top;  // its attacked top-3
  double seconds = 0.0;
};
AttackResult run_influence_attack(const FashionInfluence& fi, const AttackOptions& opts);

// The attack direction for binary test example t: grad_x sum_{i in top} I(z_i, z_t) at `image`
// ([1,1,28,28]), by double backward (theta-gradient of the test loss, dotted with
// H^{-1} sum_i grad L(z_i), differentiated w.r.t. the image through the frozen network).
Tensor influence_input_gradient(const FashionInfluence& fi, int64_t t, const Tensor& image,
                                const std::vector<int64_t>& top);

// ---- 3. input-Hessian analysis -----------------------------------------------------------------
struct HessianOptions {
  std::string method = "lanczos";  // or "power"
  int steps = 30;                  // Lanczos steps / power iterations
  double tol = 1e-6;               // power iteration stopping tolerance
  int64_t cls = -1;                // class score S; -1: each image's top-1 class
  uint64_t seed = 0;
};
struct InputHessianResult {
  int64_t cls = 0;
  double score = 0.0;       // S(x), the logit
  double eigenvalue = 0.0;  // of largest magnitude
  double residual = 0.0;    // |H v - lambda v|
  double lambda_max = 0.0, lambda_min = 0.0;  // algebraic extremes (Lanczos only)
  double grad_norm = 0.0;
  double angle_deg = 0.0;   // angle between grad_x S and the eigenvector, in [0, 90]; NaN when
                            // hessian_zero (no eigenvector then means anything)
  // Every Ritz value (or the power-iteration value) is exactly 0: the input Hessian vanishes at
  // x, as for a piecewise-linear network (ReLU, max-pooling, no smooth activation).
  bool hessian_zero = false;
  int hvps = 0;
  Vec eigenvector;
};
// x: one preprocessed input [1, C, H, W] of `session`'s model.
InputHessianResult analyse_input_hessian(const nn::Session& session, const Tensor& x,
                                         const HessianOptions& opts);

}  // namespace fragile::influence
