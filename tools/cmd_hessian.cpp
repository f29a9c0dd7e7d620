// fragile hessian: Ghorbani et al.'s section 5 analysis. For each image, the eigenpair of largest
// |eigenvalue| of the input Hessian of a class score S (the logit; default each image's top-1),
// by Lanczos (or power iteration) on double-backward HVPs, and the angle between grad_x S and
// that eigenvector; a histogram of the angles over the images. Images: Fashion-MNIST test images
// (all classes, preprocessed as the model's metadata says) or one --image file.
//
// The input Hessian of a ReLU network is zero almost everywhere (the network is piecewise linear
// in x), so a model that still has Relu nodes is refused unless --activation softplus:BETA
// replaces them; a Hessian that is exactly zero anyway (max-pooling and linear layers only) is
// reported as such, never as an angle.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "core/autograd.h"
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
  ModelOptions model;     // -m (default: the shipped Fashion-MNIST model), --dtype, ...
  PreprocessOptions pre;  // overrides of the model's preprocess.* metadata
  std::string image;
  std::string data = inf::kFashionDir;
  int64_t images = 100;
  int64_t cls = -1;
  std::string method = "lanczos";
  int steps = 30;
  int bins = 18;
  uint64_t seed = 0;
  std::string json_out, plot;
  // Image-geometry overrides given on the command line (--size, --resize, --channel-order):
  // counted by CLI11, whatever types PreprocessOptions stores them in.
  std::vector<std::string> geometry_flags;
};

// The option values alone, before the model or any data is loaded.
void check_options(const HessianCliOptions& o) {
  check_model_options(o.model);
  FRAGILE_CHECK(o.images >= 1, "--images must be at least 1, got ", o.images);
  FRAGILE_CHECK(o.cls >= -1, "--class must be a class index >= 0, got ", o.cls);
  FRAGILE_CHECK(o.method == "lanczos" || o.method == "power",
                "--method must be lanczos or power, got '", o.method, "'");
  FRAGILE_CHECK(o.steps >= 1, "--steps must be at least 1, got ", o.steps);
  FRAGILE_CHECK(o.bins >= 1, "--bins must be at least 1, got ", o.bins);
  if (o.image.empty()) {
    // Fashion-MNIST test images are 28x28 gray pixels fed as they are: only the value mapping
    // (--mean, --scale) applies to them.
    FRAGILE_CHECK(o.geometry_flags.empty(), o.geometry_flags.front(),
                  " applies to -i IMAGE only: --size, --resize and --channel-order do not apply "
                  "to Fashion-MNIST images, used as they are (28x28 gray; --mean/--scale do)");
  }
  check_output_path("--json", o.json_out, /*allow_stdout=*/true);
  check_output_path("--plot", o.plot, /*allow_stdout=*/false);
}

int64_t count_relu(const nn::Model& model) {
  return std::count_if(model.graph.nodes.begin(), model.graph.nodes.end(),
                       [](const nn::Node& n) { return n.op_type == "Relu"; });
}

void run_hessian(const HessianCliOptions& o) {
  check_options(o);
  int64_t num_test = 0;
  if (o.image.empty()) {
    // The labels file alone (kilobytes) bounds --images before 10000 images are decoded.
    num_test = static_cast<int64_t>(inf::load_fashion_labels(o.data, "test").size());
    FRAGILE_CHECK(o.images <= num_test, "--images ", o.images, " exceeds the ", num_test,
                  " Fashion-MNIST test images in ", o.data);
  }
  const HumanOut out = human_out_for(o.json_out);

  std::vector<std::string> log;
  nn::Model model = o.model.load(&log);
  const int64_t relus = count_relu(model);
  FRAGILE_CHECK(relus == 0, "the model has ", relus,
                " Relu nodes: the input Hessian of a ReLU network is zero almost everywhere, so "
                "its eigenvector and angle mean nothing; pass --activation softplus:BETA (e.g. "
                "softplus:10) to replace them by a smooth approximation");
  for (const std::string& line : log) out.stream() << line << "\n";
  const nn::Preprocess pre = o.pre.resolve(model);
  const DType dtype = o.model.engine_dtype();
  nn::Session session(std::move(model), dtype);

  std::vector<Tensor> xs;
  std::vector<int64_t> labels;  // -1 when unknown
  if (!o.image.empty()) {
    Tensor x = nn::load_input(o.image, pre);
    session.check_input(session.input().name, x);
    FRAGILE_CHECK(x.size(0) == 1, "--image: one image at a time");
    xs.push_back(x.to(dtype));
    labels.push_back(-1);
  } else {
    FRAGILE_CHECK(pre.mean.size() == 1 && pre.scale.size() == 1,
                  "Fashion-MNIST images are gray: the model's preprocessing (or --mean/--scale) "
                  "must have one mean and one scale, not one per colour channel");
    const inf::IdxImages d = inf::load_fashion_mnist(o.data, "test");
    const int64_t hw = d.rows * d.cols;
    for (int64_t i = 0; i < o.images; ++i) {
      std::vector<double> px(static_cast<size_t>(hw));
      for (int64_t k = 0; k < hw; ++k) px[k] = (d.pixels[i * hw + k] - pre.mean[0]) * pre.scale[0];
      xs.push_back(Tensor::from_vector(px, {1, 1, d.rows, d.cols}, dtype));
      labels.push_back(d.labels[i]);
    }
    session.check_input(session.input().name, xs.front());
  }

  if (o.cls >= 0) {
    // One forward pass tells the number of classes: --class is checked before any HVP.
    NoGradGuard no_grad;
    const int64_t c = session.scores(xs.front()).size(1);
    FRAGILE_CHECK(o.cls < c, "--class ", o.cls, " is out of range: the model has ", c,
                  " classes (0..", c - 1, ")");
  }

  inf::HessianOptions ho;
  ho.method = o.method;
  ho.steps = o.steps;
  ho.cls = o.cls;
  ho.seed = o.seed;
  std::vector<double> angles, residual_rel;  // images whose Hessian is not zero
  int64_t zero = 0;
  json per = json::array();
  int hvps = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const inf::InputHessianResult r = inf::analyse_input_hessian(session, xs[i], ho);
    hvps += r.hvps;
    if (r.hessian_zero) {
      ++zero;
    } else {
      angles.push_back(r.angle_deg);
      residual_rel.push_back(r.residual / std::max(std::abs(r.eigenvalue), 1e-300));
    }
    if (xs.size() <= 10) {
      if (r.hessian_zero) {
        std::fprintf(out.file(),
                     "image %zu: class %lld, S = %.4g, |grad S| = %.4g: the input Hessian is "
                     "exactly zero here (no eigenvector, no angle)\n",
                     i, static_cast<long long>(r.cls), r.score, r.grad_norm);
      } else {
        std::fprintf(out.file(),
                     "image %zu: class %lld, S = %.4g, lambda = %.5g (range [%.4g, %.4g]), "
                     "|grad S| = %.4g, angle = %.2f deg, residual %.1e\n",
                     i, static_cast<long long>(r.cls), r.score, r.eigenvalue, r.lambda_min,
                     r.lambda_max, r.grad_norm, r.angle_deg, r.residual);
      }
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
                   {"hessian_zero", r.hessian_zero},
                   {"angle_deg", r.hessian_zero ? json(nullptr) : json(r.angle_deg)},
                   {"hvps", r.hvps}});
  }
  FRAGILE_CHECK(!angles.empty(), "the input Hessian is exactly zero at ",
                xs.size() == 1 ? "the image" : "every one of the " + std::to_string(xs.size()) +
                                                   " images",
                ": the model is piecewise linear there (no smooth activation), so there is no "
                "eigenvector to compare with the gradient");
  std::vector<double> sorted = angles;
  std::sort(sorted.begin(), sorted.end());
  const double median = sorted[sorted.size() / 2];
  const std::vector<int64_t> counts = inf::histogram(angles, o.bins, 0.0, 90.0);
  const double max_res = *std::max_element(residual_rel.begin(), residual_rel.end());
  std::fprintf(out.file(),
               "%zu images, %s (%d steps): angle between grad_x S and the top Hessian "
               "eigenvector: mean %.2f deg, median %.2f deg, min %.2f, max %.2f; "
               "max relative residual %.1e; %d HVPs\n",
               angles.size(), o.method.c_str(), o.steps, inf::mean_of(angles), median,
               sorted.front(), sorted.back(), max_res, hvps);
  if (zero > 0) {
    std::fprintf(out.file(), "(%lld images left out: their input Hessian is exactly zero)\n",
                 static_cast<long long>(zero));
  }
  std::fprintf(out.file(), "histogram (%d bins over 0..90 deg):", o.bins);
  for (int64_t c : counts) std::fprintf(out.file(), " %lld", static_cast<long long>(c));
  std::fprintf(out.file(), "\n");

  if (!o.json_out.empty()) {
    json j = {{"command", "hessian"},
              {"model", o.model.path},
              {"activation", o.model.activation},
              {"dtype", o.model.dtype},
              {"accumulate", o.model.accumulate},
              {"fold_bn", o.model.fold_bn},
              {"method", o.method},
              {"steps", o.steps},
              {"class", o.cls},
              {"angle_mean_deg", inf::mean_of(angles)},
              {"angle_median_deg", median},
              {"histogram", {{"lo", 0}, {"hi", 90}, {"counts", counts}}},
              {"max_relative_residual", max_res},
              {"zero_hessian_images", zero},
              {"images", per}};
    write_text_output("--json", o.json_out, j.dump(2) + "\n");
  }
  if (!o.plot.empty()) {
    inf::write_histogram_png(o.plot, counts, 0.0, 90.0,
                             "Angle between grad S and top Hessian eigenvector",
                             "angle (degrees), " + std::to_string(angles.size()) + " images");
    std::cerr << "wrote " << o.plot << "\n";
  }
}

}  // namespace

void add_hessian_command(CLI::App& app) {
  auto o = std::make_shared<HessianCliOptions>();
  CLI::App* h = app.add_subcommand(
      "hessian", "Top eigenpair of the input Hessian of a class score (Lanczos or power "
                 "iteration on HVPs) and its angle with the score gradient, over test images");
  add_fashion_model_options(*h, o->model,
                            "ONNX model with smooth activations (softplus): one with Relu nodes "
                            "needs --activation softplus:BETA, its input Hessian being zero "
                            "almost everywhere");
  o->pre.add_to(*h);
  CLI::Option* image_flag = h->add_option("-i,--image", o->image,
                "one PNG/JPEG/.npy input instead of Fashion-MNIST (preprocessed as the model's "
                "metadata and --mean/--scale/--size/--resize/--channel-order say)");
  h->add_option("--data", o->data,
                "folder with the Fashion-MNIST idx files (their 28x28 gray images take "
                "--mean/--scale only)")
      ->capture_default_str()
      ->excludes(image_flag);  // silently unused otherwise
  h->add_option("--images", o->images, "the first N Fashion-MNIST test images")
      ->capture_default_str()
      ->excludes(image_flag);
  h->add_option("--class", o->cls, "class whose logit is S (default: each image's top-1)");
  h->add_option("--method", o->method, "lanczos | power")->capture_default_str();
  h->add_option("--steps", o->steps, "Lanczos steps / power iterations, >= 1")
      ->capture_default_str();
  h->add_option("--bins", o->bins, "histogram bins over 0..90 degrees, >= 1")
      ->capture_default_str();
  h->add_option("--seed", o->seed, "start vector seed")
      ->check(seed_check())
      ->capture_default_str();
  h->add_option("--json", o->json_out,
                "write per-image results as JSON here ('-': stdout; the human-readable output "
                "then goes to stderr)");
  h->add_option("--plot", o->plot, "write the angle histogram PNG here");
  h->callback([o, h] {
    run_guarded([&] {
      o->geometry_flags.clear();
      for (const char* flag : {"--size", "--resize", "--channel-order"}) {
        if (h->get_option(flag)->count() > 0) o->geometry_flags.push_back(flag);
      }
      run_hessian(*o);
      return 0;
    });
  });
}

}  // namespace fragile::cli
