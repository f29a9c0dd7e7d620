// fragile explain --model M --image I [--image J | DIR ...] --method NAME [--class K]
//                 [--out MAP.npy] [--attribution-out A.npy] [--png MAP.png]
//
// Saliency map of each image for its top-1 class (or --class): the method's attribution, summed
// over channels in absolute value and normalised to sum 1 (Ghorbani et al.). Maps are written
// as one [N, H, W] .npy; heatmaps as PNG (MAP_i.png when there are several images).
// Also: add_explain_commands(), which registers this command and `attack`.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <memory>
#include <new>

#include "attacks/attack.h"
#include "attribution/metrics.h"
#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "nn/image.h"
#include "nn/npy.h"
#include "nn/session.h"
#include "tools/cli_explain.h"
#include "tools/heatmap.h"

namespace fragile::cli {

namespace fs = std::filesystem;

void MethodOptions::add_to(CLI::App& app) {
  std::string names;
  for (const std::string& n : attr::method_names()) names += (names.empty() ? "" : ", ") + n;
  app.add_option("--method", method, "attribution method: " + names)->capture_default_str();
  app.add_option("--ig-steps", ig_steps, "integrated gradients: M interpolation points")
      ->capture_default_str();
  app.add_option("--ig-batch", ig_batch,
                 "IG and SmoothGrad: points evaluated per chunk; attacks hold one chunk's "
                 "double-backward graph at a time (memory ~ this, not M) unless one chunk "
                 "covers all the points")
      ->capture_default_str();
  app.add_option("--smoothgrad-samples", smoothgrad_samples, "SmoothGrad: noise samples")
      ->capture_default_str();
  app.add_option("--smoothgrad-sigma", smoothgrad_sigma,
                 "SmoothGrad: noise std as a fraction of the input's range")
      ->capture_default_str();
  app.add_option("--smoothgrad-seed", smoothgrad_seed,
                 "SmoothGrad: noise seed (each image draws from its own stream: the seed and "
                 "its position among the inputs)")
      ->check(seed_check())
      ->capture_default_str();
  app.add_option("--reference", reference,
                 "integrated gradients and deeplift: the reference input. zero: the "
                 "preprocessed zero, i.e. the dataset's mean colour for a model that subtracts "
                 "it (SqueezeNet; Ghorbani et al.'s 'channel-wise mean image'); image-mean: each "
                 "image's own mean colour per channel; or a PNG/JPEG/.npy file, preprocessed "
                 "like the inputs")
      ->capture_default_str();
  app.add_option("--smoothing-beta", smoothing_beta,
                 "beta_smoothed: softplus beta of the smoothed network")
      ->capture_default_str();
}

std::vector<std::string> expand_inputs(const std::vector<std::string>& items) {
  std::vector<std::string> out;
  for (const std::string& item : items) {
    const fs::path p(item);
    FRAGILE_CHECK(fs::exists(p), "cannot open image ", item, ": no such file or directory");
    if (!fs::is_directory(p)) {
      out.push_back(item);
      continue;
    }
    std::vector<std::string> found;
    for (const fs::directory_entry& e : fs::directory_iterator(p)) {
      if (!e.is_regular_file()) continue;
      std::string ext = e.path().extension().string();
      std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
      if (ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".npy") {
        found.push_back(e.path().string());
      }
    }
    FRAGILE_CHECK(!found.empty(), "directory ", item, " holds no .png, .jpg, .jpeg or .npy file");
    std::sort(found.begin(), found.end());
    out.insert(out.end(), found.begin(), found.end());
  }
  FRAGILE_CHECK(!out.empty(), "no input image given (--image)");
  return out;
}

Inputs load_inputs(const std::vector<std::string>& files, const nn::Preprocess& pre, DType dtype) {
  Inputs in;
  std::vector<Tensor> parts;
  for (const std::string& f : files) {
    Tensor x = nn::load_input(f, pre);
    FRAGILE_CHECK(x.dim() == 4, "input ", f, " has shape ", shape_str(x.shape()),
                  "; expected [C, H, W] or [N, C, H, W]");
    if (!parts.empty()) {
      const Shape& a = parts.front().shape();
      FRAGILE_CHECK(a[1] == x.size(1) && a[2] == x.size(2) && a[3] == x.size(3), "input ", f,
                    " has shape ", shape_str(x.shape()), " but ", in.names.front(), " has ",
                    shape_str(a), "; all images of a run must have one size");
    }
    for (int64_t i = 0; i < x.size(0); ++i) {
      in.names.push_back(x.size(0) == 1 ? f : f + "[" + std::to_string(i) + "]");
    }
    parts.push_back(x.to(dtype));
  }
  in.x = contiguous(parts.size() == 1 ? parts[0] : concat(parts, 0));
  return in;
}

attr::Options attribution_options(const MethodOptions& o, const attacks::PixelSpace& space,
                                  const nn::Preprocess& pre, const Tensor& inputs) {
  FRAGILE_CHECK(o.ig_steps >= 1, "--ig-steps must be at least 1");
  FRAGILE_CHECK(o.ig_batch >= 1, "--ig-batch must be at least 1");
  FRAGILE_CHECK(o.smoothgrad_samples >= 1, "--smoothgrad-samples must be at least 1");
  FRAGILE_CHECK(o.smoothgrad_sigma >= 0, "--smoothgrad-sigma must be non-negative");
  FRAGILE_CHECK(o.smoothing_beta > 0, "--smoothing-beta must be positive");
  attr::Options a;
  a.ig_steps = o.ig_steps;
  a.ig_batch = o.ig_batch;
  a.smoothgrad_samples = o.smoothgrad_samples;
  a.smoothgrad_sigma = o.smoothgrad_sigma;
  a.seed = o.smoothgrad_seed;
  a.smoothing_beta = o.smoothing_beta;
  if (o.reference == "image-mean") {
    a.default_reference = attr::Options::DefaultReference::ImageChannelMean;
  } else if (o.reference != "zero") {
    FRAGILE_CHECK(!o.reference.empty(), "--reference must be zero, image-mean or a file");
    Tensor r = nn::load_input(o.reference, pre);  // [1 or N, C, H, W]; clear errors of its own
    FRAGILE_CHECK(r.dim() == 4 && (r.size(0) == 1 || r.size(0) == inputs.size(0)) &&
                      r.size(1) == inputs.size(1) && r.size(2) == inputs.size(2) &&
                      r.size(3) == inputs.size(3),
                  "--reference ", o.reference, " has shape ", shape_str(r.shape()),
                  " after preprocessing; the inputs are ", shape_str(inputs.shape()),
                  " (expected one image of their size)");
    FRAGILE_CHECK(r.size(0) == 1, "--reference ", o.reference, " holds ", r.size(0),
                  " images; give one reference for all inputs");
    a.reference = r.to(inputs.dtype());
  }
  // z^B rule bounds: the valid box of the input per channel, under the preprocessing in force
  // (command-line overrides included).
  a.lrp_low = space.lo;
  a.lrp_high = space.hi;
  return a;
}

std::string indexed_path(const std::string& path, int64_t index, int64_t count) {
  if (count <= 1) return path;
  const fs::path p(path);
  return (p.parent_path() / (p.stem().string() + "_" + std::to_string(index) +
                             p.extension().string()))
      .string();
}

int run_explain(const ModelOptions& m, const PreprocessOptions& p, const ExplainOptions& o) {
  const attr::Method method = attr::method_from_name(o.method.method);
  FRAGILE_CHECK(o.batch >= 1, "--batch must be at least 1");
  check_output_path("--out", o.out, /*allow_stdout=*/false);
  check_output_path("--attribution-out", o.attribution_out, false);
  check_output_path("--png", o.png, false);
  const std::vector<std::string> files = expand_inputs(o.images);
  const DType dtype = m.engine_dtype();
  nn::Model model = m.load();
  const nn::Preprocess pre = p.resolve(model);
  const std::vector<std::string> labels = load_labels(model);
  const Device device = m.engine_device();
  const nn::Session session(std::move(model), dtype, device);
  const Inputs in = load_inputs(files, pre, dtype);
  session.check_input(session.input().name, in.x);
  const attacks::PixelSpace space = attacks::PixelSpace::from_preprocess(pre, in.x.size(1));
  const attr::Options opts = attribution_options(o.method, space, pre, in.x);

  const int64_t n = in.x.size(0);
  std::vector<Tensor> maps, attributions;
  std::vector<int64_t> classes;
  std::vector<double> probs;
  for (int64_t b = 0; b < n; b += o.batch) {
    // On the session's device: the methods differentiate with respect to it.
    const Tensor xb = contiguous(slice(in.x, 0, b, std::min(n, b + o.batch))).to(device);
    Tensor z;
    {
      NoGradGuard no_grad;
      z = session.scores(xb);
    }
    std::vector<int64_t> cls = attacks::predicted_labels(z);
    require_finite(z, "the model's class scores");
    if (o.cls >= 0) {
      FRAGILE_CHECK(o.cls < z.size(1), "--class ", o.cls, " is out of range: the model has ",
                    z.size(1), " classes");
      std::fill(cls.begin(), cls.end(), o.cls);
    }
    const std::vector<double> pr = attacks::probabilities(z, cls);
    attr::Options batch_opts = opts;
    batch_opts.first_image = b;  // per-image random streams: batching changes nothing
    const Tensor a = attr::attribute(session, xb, cls, method, batch_opts, false).detach();
    require_finite(a, std::string("the ") + attr::method_name(method) + " attribution");
    maps.push_back(attr::saliency_map(a).detach());
    if (!o.attribution_out.empty()) attributions.push_back(a);
    classes.insert(classes.end(), cls.begin(), cls.end());
    probs.insert(probs.end(), pr.begin(), pr.end());
  }
  const Tensor map = contiguous(maps.size() == 1 ? maps[0] : concat(maps, 0));
  const int64_t h = map.size(1), w = map.size(2);

  if (!o.out.empty()) nn::write_npy(o.out, map);
  if (!o.attribution_out.empty()) {
    nn::write_npy(o.attribution_out,
                  contiguous(attributions.size() == 1 ? attributions[0] : concat(attributions, 0)));
  }
  const std::vector<double> values = map.to_vector();
  for (int64_t i = 0; i < n; ++i) {
    const std::vector<double> mi(values.begin() + i * h * w, values.begin() + (i + 1) * h * w);
    if (!o.png.empty()) {
      write_png(indexed_path(o.png, i, n),
                upscale(heatmap(mi, h, w), upscale_factor(h, w, 224)));
    }
    const auto [row, col] = attr::center_of_mass(mi, h, w);
    std::cout << in.names[i] << ": class " << classes[i];
    const std::string label = label_of(labels, classes[i]);
    if (!label.empty()) std::cout << " (" << label << ")";
    std::cout << ", prob " << probs[i] << "; " << attr::method_name(method) << " map " << h
              << "x" << w << ", max " << *std::max_element(mi.begin(), mi.end());
    if (std::isnan(row)) {
      // E.g. IG or DeepLIFT of an input equal to its reference: every attribution is zero.
      std::cout << ", all zero (no centre of mass)\n";
    } else {
      std::cout << ", centre of mass (" << row << ", " << col << ")\n";
    }
  }
  if (!o.out.empty()) std::cout << "wrote " << o.out << "\n";
  if (!o.attribution_out.empty()) std::cout << "wrote " << o.attribution_out << "\n";
  if (!o.png.empty()) std::cout << "wrote " << indexed_path(o.png, 0, n) << (n > 1 ? " ..." : "")
                                << "\n";
  return 0;
}

namespace {

struct ExplainCommand {
  ModelOptions model;
  PreprocessOptions pre;
  ExplainOptions opts;
};

struct AttackCommand {
  ModelOptions model;
  PreprocessOptions pre;
  AttackOptions opts;
};

}  // namespace

void add_explain_commands(CLI::App& app) {
  auto ex = std::make_shared<ExplainCommand>();
  CLI::App* e = app.add_subcommand(
      "explain",
      "Saliency map of each image for its top-1 class: |attribution| summed over channels, "
      "normalised to sum 1 (Ghorbani et al.)");
  ex->model.add_to(*e, /*with_model_flag=*/true);
  e->add_option("-i,--image", ex->opts.images,
                "PNG/JPEG image, preprocessed .npy tensor, or a directory of them; repeatable")
      ->required();
  ex->opts.method.add_to(*e);
  e->add_option("--class", ex->opts.cls, "class explained (default: each image's top-1)")
      ->check(class_index_check());
  e->add_option("--batch", ex->opts.batch, "images computed together")->capture_default_str();
  e->add_option("-o,--out", ex->opts.out, "write the maps [N, H, W] here (.npy)");
  e->add_option("--attribution-out", ex->opts.attribution_out,
                "write the raw attributions [N, C, H, W] here (.npy)");
  e->add_option("--png", ex->opts.png, "write a heatmap PNG (MAP_i.png for several images)");
  ex->pre.add_to(*e);
  e->callback(
      [ex] { run_guarded([&] { return run_explain(ex->model, ex->pre, ex->opts); }); });

  auto at = std::make_shared<AttackCommand>();
  AttackOptions& o = at->opts;
  std::string kinds;
  for (const std::string& k : attacks::kind_names()) kinds += (kinds.empty() ? "" : ", ") + k;
  CLI::App* a = app.add_subcommand(
      "attack",
      "Attack an explanation: perturb the image within an l-infinity ball so that its saliency "
      "map changes while the label stays (Ghorbani et al., Algorithm 1), or so that it "
      "reproduces another image's map (Dombrowski et al.). Writes DIR/result.json and "
      "DIR/perturbed.npy (all images), and perturbed.png, map_before.png, map_after.png and "
      "panel.png in DIR for one image, in DIR/<i>_<name>/ for each of several");
  at->model.add_to(*a, /*with_model_flag=*/true);
  a->add_option("-i,--image", o.images,
                "PNG/JPEG image, preprocessed .npy tensor, or a directory of them; repeatable")
      ->required();
  o.method.add_to(*a);
  a->add_option("--attack", o.attack, "attack: " + kinds)->capture_default_str();
  a->add_option("--epsilon", o.epsilon,
                "l-infinity radius in pixel units (0..255) [default: 8; manipulate: no ball]");
  a->add_option("--iters", o.iters, "iterations P [default: 300; manipulate: 1500]");
  a->add_option("--step", o.step, "sign step alpha in pixel units")->capture_default_str();
  a->add_option("--k", o.k,
                "top-k set size [default: 1000, or 100 when the map has under 4000 pixels]");
  a->add_option("--surrogate-beta", o.surrogate_beta,
                "softplus beta of the network giving attack directions; 0: differentiate the "
                "original network; auto: 1 (Keras softplus, as Ghorbani et al.), 0 for deeplift and "
                "beta_smoothed")
      ->capture_default_str();
  a->add_option("--batch", o.batch, "images attacked together (each independently)")
      ->capture_default_str();
  a->add_option("--seed", o.seed, "random sign attack: seed")
      ->check(seed_check())
      ->capture_default_str();
  a->add_option("--region", o.region,
                "target attack: ROW0,COL0,ROW1,COL1, the half-open box of model-input pixels "
                "that should receive the saliency");
  a->add_option("--target-image", o.target_image,
                "manipulate: image whose map (for its own top-1 class) is the target");
  a->add_option("--gamma", o.gamma,
                "manipulate: weight of the output term ||g(x_adv) - g(x)||^2 relative to the "
                "map term")
      ->capture_default_str();
  a->add_option("--lr", o.lr, "manipulate: Adam step in pixel units")->capture_default_str();
  a->add_flag("--beta-growth", o.beta_growth,
              "manipulate: grow the surrogate beta from --beta-start to --beta-end");
  a->add_option("--beta-start", o.beta_start, "manipulate: first beta")->capture_default_str();
  a->add_option("--beta-end", o.beta_end, "manipulate: last beta")->capture_default_str();
  a->add_option("-o,--out", o.out, "output directory (created if needed)")->required();
  a->add_flag("--no-progress", o.no_progress, "no progress bar on a terminal");
  a->add_flag("--no-cuda-graph", o.no_cuda_graph,
              "with --device cuda, run every iteration eagerly instead of recording iterations "
              "2..P as a CUDA Graph and replaying it (for timing comparisons and debugging)");
  at->pre.add_to(*a);
  a->callback(
      [at] { run_guarded([&] { return run_attack(at->model, at->pre, at->opts); }); });
}

}  // namespace fragile::cli
