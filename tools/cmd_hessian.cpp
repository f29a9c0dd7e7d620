// fragile hessian: Ghorbani et al.'s section 5 analysis. For each image, the eigenpair of largest
// |eigenvalue| of the input Hessian of a class score S (the logit; default each image's top-1),
// by Lanczos (or power iteration) on double-backward HVPs, and the angle between grad_x S and
// that eigenvector; a histogram of the angles over the images. Images: Fashion-MNIST test images
// (all classes, preprocessed as the model's metadata says) or one --image file.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>

#include "core/error.h"
#include "core/ops.h"
#include "influence/experiments.h"
#include "influence/plot.h"
#include "influence/stats.h"
#include "nn/image.h"
#include "nn/onnx_io.h"
#include "nn/transforms.h"
#include "tools/cli_common.h"
#include "tools/cli_influence.h"

namespace fragile::cli {

namespace {

namespace inf = fragile::influence;
using json = nlohmann::json;

struct HessianCliOptions {
  std::string model = "tools/models/fashion_cnn.onnx";
  std::string activation;
  std::string image;
  std::string data = inf::kFashionDir;
  int64_t images = 100;
  int64_t cls = -1;
  std::string method = "lanczos";
  int steps = 30;
  int bins = 18;
  uint64_t seed = 0;
  std::string json_out, plot;
};

void run_hessian(const HessianCliOptions& o) {
  nn::Model model = nn::load_onnx(o.model);
  if (!o.activation.empty()) {
    if (auto beta = nn::parse_activation(o.activation)) nn::swap_relu_for_softplus(model, *beta);
  }
  const nn::Preprocess pre = nn::preprocess_from_metadata(model);
  nn::Session session(std::move(model), DType::Float64);

  std::vector<Tensor> xs;
  std::vector<int64_t> labels;  // -1 when unknown
  if (!o.image.empty()) {
    Tensor x = nn::load_input(o.image, pre);
    session.check_input(session.input().name, x);
    FRAGILE_CHECK(x.size(0) == 1, "--image: one image at a time");
    xs.push_back(x.to(DType::Float64));
    labels.push_back(-1);
  } else {
    const inf::IdxImages d = inf::load_fashion_mnist(o.data, "test");
    FRAGILE_CHECK(o.images >= 1 && o.images <= d.count, "--images must be in [1, ", d.count, "]");
    const int64_t hw = d.rows * d.cols;
    for (int64_t i = 0; i < o.images; ++i) {
      std::vector<double> px(static_cast<size_t>(hw));
      for (int64_t k = 0; k < hw; ++k) px[k] = (d.pixels[i * hw + k] - pre.mean.at(0)) * pre.scale.at(0);
      xs.push_back(Tensor::from_vector(px, {1, 1, d.rows, d.cols}, DType::Float64));
      labels.push_back(d.labels[i]);
    }
  }

  inf::HessianOptions ho;
  ho.method = o.method;
  ho.steps = o.steps;
  ho.cls = o.cls;
  ho.seed = o.seed;
  std::vector<double> angles, eigen, residual_rel;
  json per = json::array();
  int hvps = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const inf::InputHessianResult r = inf::analyse_input_hessian(session, xs[i], ho);
    hvps += r.hvps;
    angles.push_back(r.angle_deg);
    eigen.push_back(r.eigenvalue);
    residual_rel.push_back(r.residual / std::max(std::abs(r.eigenvalue), 1e-300));
    if (xs.size() <= 10) {
      std::printf("image %zu: class %lld, S = %.4g, lambda = %.5g (range [%.4g, %.4g]), "
                  "|grad S| = %.4g, angle = %.2f deg, residual %.1e\n",
                  i, static_cast<long long>(r.cls), r.score, r.eigenvalue, r.lambda_min,
                  r.lambda_max, r.grad_norm, r.angle_deg, r.residual);
    }
    per.push_back({{"index", i},
                   {"label", labels[i]},
                   {"class", r.cls},
                   {"score", r.score},
                   {"eigenvalue", r.eigenvalue},
                   {"lambda_max", r.lambda_max},
                   {"lambda_min", r.lambda_min},
                   {"residual", r.residual},
                   {"grad_norm", r.grad_norm},
                   {"angle_deg", r.angle_deg},
                   {"hvps", r.hvps}});
  }
  std::vector<double> sorted = angles;
  std::sort(sorted.begin(), sorted.end());
  const double median = sorted[sorted.size() / 2];
  const std::vector<int64_t> counts = inf::histogram(angles, o.bins, 0.0, 90.0);
  const double max_res = *std::max_element(residual_rel.begin(), residual_rel.end());
  std::printf("%zu images, %s (%d steps): angle between grad_x S and the top Hessian "
              "eigenvector: mean %.2f deg, median %.2f deg, min %.2f, max %.2f; "
              "max relative residual %.1e; %d HVPs\n",
              xs.size(), o.method.c_str(), o.steps, inf::mean_of(angles), median, sorted.front(),
              sorted.back(), max_res, hvps);
  std::printf("histogram (%d bins over 0..90 deg):", o.bins);
  for (int64_t c : counts) std::printf(" %lld", static_cast<long long>(c));
  std::printf("\n");

  if (!o.json_out.empty()) {
    json j = {{"command", "hessian"},
              {"model", o.model},
              {"activation", o.activation},
              {"method", o.method},
              {"steps", o.steps},
              {"class", o.cls},
              {"angle_mean_deg", inf::mean_of(angles)},
              {"angle_median_deg", median},
              {"histogram", {{"lo", 0}, {"hi", 90}, {"counts", counts}}},
              {"max_relative_residual", max_res},
              {"images", per}};
    std::ofstream f(o.json_out);
    FRAGILE_CHECK(f, "cannot write ", o.json_out);
    f << j.dump(2) << "\n";
    std::cerr << "wrote " << o.json_out << "\n";
  }
  if (!o.plot.empty()) {
    inf::write_histogram_png(o.plot, counts, 0.0, 90.0,
                             "Angle between grad S and top Hessian eigenvector",
                             "angle (degrees), " + std::to_string(xs.size()) + " images");
    std::cerr << "wrote " << o.plot << "\n";
  }
}

}  // namespace

void add_hessian_command(CLI::App& app) {
  auto o = std::make_shared<HessianCliOptions>();
  CLI::App* h = app.add_subcommand(
      "hessian", "Top eigenpair of the input Hessian of a class score (Lanczos or power "
                 "iteration on HVPs) and its angle with the score gradient, over test images");
  h->add_option("-m,--model", o->model, "ONNX model (smooth activations: softplus)")
      ->capture_default_str();
  h->add_option("--activation", o->activation, "replace every ReLU by 'softplus:BETA'");
  h->add_option("-i,--image", o->image, "one PNG/JPEG/.npy input instead of Fashion-MNIST");
  h->add_option("--data", o->data, "folder with the Fashion-MNIST idx files")
      ->capture_default_str();
  h->add_option("--images", o->images, "the first N Fashion-MNIST test images")
      ->capture_default_str();
  h->add_option("--class", o->cls, "class whose logit is S (default: each image's top-1)");
  h->add_option("--method", o->method, "lanczos | power")->capture_default_str();
  h->add_option("--steps", o->steps, "Lanczos steps / power iterations")->capture_default_str();
  h->add_option("--bins", o->bins, "histogram bins over 0..90 degrees")->capture_default_str();
  h->add_option("--seed", o->seed, "start vector seed")->capture_default_str();
  h->add_option("--json", o->json_out, "write per-image results as JSON here");
  h->add_option("--plot", o->plot, "write the angle histogram PNG here");
  h->callback([o] { run_guarded([&] { run_hessian(*o); return 0; }); });
}

}  // namespace fragile::cli
