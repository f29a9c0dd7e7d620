// fragile attack --model M --image I [--image J | DIR ...] --method NAME
//                --attack {random,topk,center,target,manipulate} --epsilon E --iters P --step A
//                [--k K] [--surrogate-beta B] [--batch N] --out DIR
//
// Writes DIR/result.json (settings, then per image: label_before, label_after, prob_before,
// prob_after, success, best_iter, topk_intersection, spearman, kendall, center_shift, linf, ...;
// for a single image the same fields also at the top level), DIR/perturbed.npy (preprocessed,
// [N, C, H, W]) and, per image (in DIR, or DIR/<i>_<name>/ when there are several):
// perturbed.png, map_before.png, map_after.png and panel.png (input | map | perturbed | map).
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "attacks/attack.h"
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
using json = nlohmann::json;

namespace {

// A one-line progress bar on stderr, redrawn at most ten times a second; only on a terminal.
class ProgressBar {
 public:
  explicit ProgressBar(bool enabled) : enabled_(enabled && isatty(STDERR_FILENO)) {}
  ~ProgressBar() { finish(); }

  void update(const std::string& label, int64_t done, int64_t total) {
    if (!enabled_) return;
    const auto now = std::chrono::steady_clock::now();
    if (done < total && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    const double secs = std::chrono::duration<double>(now - start_).count();
    const int width = 30;
    const int filled = total > 0 ? static_cast<int>(width * done / total) : width;
    std::string bar(filled, '#');
    bar.resize(width, '.');
    std::fprintf(stderr, "\r%s [%s] %lld/%lld %.0fs", label.c_str(), bar.c_str(),
                 static_cast<long long>(done), static_cast<long long>(total), secs);
    std::fflush(stderr);
    drawn_ = true;
  }
  void finish() {
    if (drawn_) std::fputc('\n', stderr);
    drawn_ = false;
  }

 private:
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_{};
};

// "r0,c0,r1,c1" -> a [1, H, W] 0/1 mask.
Tensor region_mask(const std::string& spec, int64_t h, int64_t w, DType dtype) {
  const std::vector<double> v = nn::parse_number_list(spec, "--region");
  FRAGILE_CHECK(v.size() == 4, "--region needs ROW0,COL0,ROW1,COL1, got '", spec, "'");
  for (double e : v) {
    FRAGILE_CHECK(e == std::floor(e), "--region values must be integers, got '", spec, "'");
  }
  const int64_t r0 = static_cast<int64_t>(v[0]), c0 = static_cast<int64_t>(v[1]);
  const int64_t r1 = static_cast<int64_t>(v[2]), c1 = static_cast<int64_t>(v[3]);
  FRAGILE_CHECK(0 <= r0 && r0 < r1 && r1 <= h && 0 <= c0 && c0 < c1 && c1 <= w, "--region ", spec,
                " is empty or outside the ", h, " x ", w, " input");
  std::vector<double> m(h * w, 0.0);
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t c = c0; c < c1; ++c) m[r * w + c] = 1.0;
  }
  return Tensor::from_vector(m, {1, h, w}, dtype);
}

double resolve_beta(const std::string& spec, attr::Method method) {
  // DeepLIFT is attacked directly (Ghorbani et al.); the beta-smoothed map is already the map of
  // a softplus network, and a softplus(1) surrogate would replace the very ReLUs it smooths.
  if (spec == "auto") {
    return method == attr::Method::DeepLift || method == attr::Method::SmoothedGradient ? 0.0
                                                                                        : 1.0;
  }
  char* end = nullptr;
  const double b = std::strtod(spec.c_str(), &end);
  FRAGILE_CHECK(!spec.empty() && end && *end == '\0' && std::isfinite(b) && b >= 0,
                "--surrogate-beta must be 'auto' or a number >= 0 (0: no surrogate), got '", spec,
                "'");
  return b;
}

std::string safe_stem(const std::string& name) {
  std::string s = fs::path(name).stem().string();
  for (char& c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') c = '_';
  }
  return s.empty() ? "image" : s;
}

std::vector<double> image_row(const Tensor& t, int64_t i) {
  return contiguous(slice(t, 0, i, i + 1)).to_vector();
}

}  // namespace

int run_attack(const ModelOptions& m, const PreprocessOptions& p, const AttackOptions& o) {
  // Validate everything cheap before the (slow) model load.
  attacks::Config cfg;
  cfg.kind = attacks::kind_from_name(o.attack);
  cfg.method = attr::method_from_name(o.method.method);
  const bool manipulate = cfg.kind == attacks::Kind::Manipulate;
  cfg.epsilon = o.epsilon.value_or(manipulate ? 0.0 : 8.0);
  cfg.iters = o.iters.value_or(manipulate ? 1500 : 300);
  cfg.step = o.step;
  cfg.surrogate_beta = resolve_beta(o.surrogate_beta, cfg.method);
  cfg.seed = o.seed;
  cfg.gamma = o.gamma;
  cfg.lr = o.lr;
  cfg.beta_growth = o.beta_growth;
  cfg.cuda_graph = !o.no_cuda_graph;
  cfg.beta_start = o.beta_start;
  cfg.beta_end = o.beta_end;
  FRAGILE_CHECK(std::isfinite(cfg.epsilon) && (cfg.epsilon > 0 || (manipulate && cfg.epsilon == 0)),
                "--epsilon must be positive", manipulate ? " (0: no ball)" : "", ", got ",
                cfg.epsilon);
  FRAGILE_CHECK(cfg.epsilon <= 255, "--epsilon is in pixel units (0..255), got ", cfg.epsilon);
  FRAGILE_CHECK(cfg.iters >= 1, "--iters must be at least 1, got ", cfg.iters);
  FRAGILE_CHECK(std::isfinite(cfg.step) && (manipulate || cfg.step > 0),
                "--step must be positive, got ", o.step);
  FRAGILE_CHECK(!o.k || *o.k >= 1, "--k must be at least 1, got ", o.k.value_or(0));
  FRAGILE_CHECK(cfg.kind == attacks::Kind::Targeted || o.region.empty(),
                "--region is for --attack target only (this is --attack ", o.attack, ")");
  FRAGILE_CHECK(manipulate || o.target_image.empty(),
                "--target-image is for --attack manipulate only (this is --attack ", o.attack,
                ")");
  FRAGILE_CHECK(std::isfinite(o.gamma) && o.gamma >= 0, "--gamma must be >= 0, got ", o.gamma);
  FRAGILE_CHECK(o.batch >= 1, "--batch must be at least 1, got ", o.batch);
  FRAGILE_CHECK(cfg.kind != attacks::Kind::Targeted || !o.region.empty(),
                "--attack target needs --region ROW0,COL0,ROW1,COL1");
  FRAGILE_CHECK(!manipulate || !o.target_image.empty(),
                "--attack manipulate needs --target-image");
  FRAGILE_CHECK(!manipulate || o.lr > 0, "--lr must be positive, got ", o.lr);
  FRAGILE_CHECK(!o.out.empty(), "--out DIR is required");
  FRAGILE_CHECK(!fs::exists(o.out) || fs::is_directory(o.out), "--out ", o.out,
                " exists and is not a directory");
  const std::vector<std::string> files = expand_inputs(o.images);

  const DType dtype = m.engine_dtype();
  nn::Model model = m.load();
  const nn::Preprocess pre = p.resolve(model);
  const bool bgr = pre.channel_order == "BGR";
  const std::vector<std::string> labels = load_labels(model);
  const Device device = m.engine_device();
  const nn::Session session(std::move(model), dtype, device);
  const Inputs in = load_inputs(files, pre, dtype);
  session.check_input(session.input().name, in.x);
  const int64_t n = in.x.size(0), h = in.x.size(2), w = in.x.size(3);
  const attacks::PixelSpace space = attacks::PixelSpace::from_preprocess(pre, in.x.size(1));
  cfg.attribution = attribution_options(o.method, space, pre, in.x);
  cfg.k = o.k.value_or(h * w < 4000 ? 100 : 1000);
  FRAGILE_CHECK(cfg.k < h * w, "--k ", cfg.k, " must be smaller than the map's ", h * w,
                " pixels");
  if (cfg.kind == attacks::Kind::Targeted) cfg.region = region_mask(o.region, h, w, dtype);
  {
    // Inputs outside the valid box (e.g. a .npy from another preprocessing) would be clipped
    // by the first step: refuse them instead.
    const std::vector<double> v = in.x.to_vector();
    const int64_t c = in.x.size(1), hw = h * w;
    for (size_t i = 0; i < v.size(); ++i) {
      const int64_t ch = (static_cast<int64_t>(i) / hw) % c;
      const double tol = 1e-4 * space.unit[ch] * 255;
      FRAGILE_CHECK(v[i] >= space.lo[ch] - tol && v[i] <= space.hi[ch] + tol, "input ",
                    in.names[i / (c * hw)], " has value ", v[i], " in channel ", ch,
                    ", outside the valid range [", space.lo[ch], ", ", space.hi[ch],
                    "] of pixels 0..255 under this preprocessing");
    }
  }

  attacks::Surrogate surrogate(session);
  std::string surrogate_desc =
      surrogate.is_original(cfg.surrogate_beta)
          ? (cfg.surrogate_beta > 0 ? "none: the model has no ReLU" : "none: original network")
          : "softplus(beta=" + json(cfg.surrogate_beta).dump() + ") replacing " +
                std::to_string(surrogate.relu_count()) + " ReLU";
  if (manipulate && cfg.beta_growth) {
    surrogate_desc = "softplus(beta growing " + json(cfg.beta_start).dump() + " -> " +
                     json(cfg.beta_end).dump() + ")";
  }
  if (manipulate) {
    const Inputs t = load_inputs(expand_inputs({o.target_image}), pre, dtype);
    FRAGILE_CHECK(t.x.size(0) == 1 && t.x.size(2) == h && t.x.size(3) == w &&
                      t.x.size(1) == in.x.size(1),
                  "--target-image must be one image of the inputs' size");
    Tensor zt;
    {
      NoGradGuard no_grad;
      zt = session.scores(t.x);
    }
    cfg.target_map =
        attacks::saliency(session, t.x.to(device), attacks::predicted_labels(zt), cfg);
  }

  ProgressBar bar(!o.no_progress);
  const int64_t batches = (n + o.batch - 1) / o.batch;
  std::vector<Tensor> perturbed, before, after;
  std::vector<attacks::ImageResult> results;
  std::string iteration_mode, graph_failure;
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t b = 0; b < batches; ++b) {
    const int64_t lo = b * o.batch, hi = std::min(n, lo + o.batch);
    const std::string label = batches > 1 ? "batch " + std::to_string(b + 1) + "/" +
                                                std::to_string(batches)
                                          : std::string(attacks::kind_name(cfg.kind));
    attacks::Config c = cfg;
    c.attribution.first_image = lo;  // per-image random streams: batching changes nothing
    c.progress = [&](int64_t done, int64_t total) { bar.update(label, done, total); };
    const attacks::Result r =
        attacks::run_attack(session, surrogate, contiguous(slice(in.x, 0, lo, hi)).to(device),
                            space, c);
    // The first batch's mode stands for all: every batch records the same computation.
    if (b == 0) {
      iteration_mode = r.iteration_mode;
      graph_failure = r.graph_failure;
      if (!graph_failure.empty()) {
        std::cerr << "note: " << graph_failure << "; every iteration ran eagerly\n";
      }
    }
    perturbed.push_back(r.perturbed);
    before.push_back(r.map_before);
    after.push_back(r.map_after);
    results.insert(results.end(), r.images.begin(), r.images.end());
  }
  bar.finish();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  auto cat = [](const std::vector<Tensor>& v) {
    return contiguous(v.size() == 1 ? v[0] : concat(v, 0));
  };
  const Tensor xp = cat(perturbed), mb = cat(before), ma = cat(after);

  fs::create_directories(o.out);
  const fs::path dir(o.out);
  nn::write_npy(dir / "perturbed.npy", xp);
  json images = json::array();
  for (int64_t i = 0; i < n; ++i) {
    const attacks::ImageResult& r = results[i];
    const fs::path sub = n == 1 ? dir : dir / (std::to_string(i) + "_" + safe_stem(in.names[i]));
    fs::create_directories(sub);
    const std::vector<double> s0 = image_row(mb, i), s1 = image_row(ma, i);
    // Both maps on the original map's scale, so a brighter or darker map reads as one.
    const double vmax = heatmap_scale(s0);
    const int64_t f = upscale_factor(h, w, 224);
    const Picture p0 = upscale(heatmap(s0, h, w, vmax), f);
    const Picture p1 = upscale(heatmap(s1, h, w, vmax), f);
    const Picture img = input_picture(in.x, i, space, bgr);
    const Picture adv = input_picture(xp, i, space, bgr);
    write_png(sub / "perturbed.png", adv);
    write_png(sub / "map_before.png", p0);
    write_png(sub / "map_after.png", p1);
    write_png(sub / "panel.png", hstack({upscale(img, f), p0, upscale(adv, f), p1}));
    if (n > 1) nn::write_npy(sub / "perturbed.npy", contiguous(slice(xp, 0, i, i + 1)));

    json j = {{"image", in.names[i]},
              {"label_before", r.label_before},
              {"label_after", r.label_after},
              {"prob_before", r.prob_before},
              {"prob_after", r.prob_after},
              {"success", r.success},
              {"best_iter", r.best_iter},
              {"kept_iters", r.kept_iters},
              {"dissimilarity", r.dissimilarity},
              {"topk_intersection", r.topk_intersection},
              {"spearman", r.spearman},
              {"kendall", r.kendall},
              {"center_shift", r.center_shift},
              {"linf", r.linf}};
    if (!labels.empty()) {
      j["label_before_name"] = label_of(labels, r.label_before);
      j["label_after_name"] = label_of(labels, r.label_after);
    }
    if (manipulate) {
      j["target_mse_before"] = r.target_mse_before;
      j["target_mse_after"] = r.target_mse_after;
    }
    if (n > 1) j["dir"] = sub.filename().string();
    images.push_back(j);
  }
  json out = {{"model", m.path},
              {"dtype", m.dtype},
              {"accumulate", m.accumulate},
              // null: the model's own activations
              {"activation", m.activation.empty() ? json() : json(m.activation)},
              {"fold_bn", m.fold_bn},
              {"method", attr::method_name(cfg.method)},
              {"attack", attacks::kind_name(cfg.kind)},
              {"epsilon", cfg.epsilon},
              {"step", cfg.step},
              {"iters", cfg.iters},
              {"k", cfg.k},
              {"surrogate_beta", cfg.surrogate_beta},
              {"surrogate", surrogate_desc},
              {"reference", o.method.reference},  // IG / DeepLIFT
              {"ig_steps", o.method.ig_steps},
              {"smoothgrad", {{"samples", o.method.smoothgrad_samples},
                              {"sigma", o.method.smoothgrad_sigma},
                              {"seed", o.method.smoothgrad_seed}}},
              {"smoothing_beta", o.method.smoothing_beta},  // beta_smoothed
              {"seed", cfg.seed},
              {"random_streams",
               "per image: (seed, the image's position in the run) for random-sign directions; "
               "(smoothgrad.seed, position) for SmoothGrad noise"},
              {"batch", o.batch},
              {"seconds", seconds},
              {"device", device_name(device)},
              {"iteration_mode", iteration_mode},
              {"images", images}};
  if (manipulate) {
    out["target_image"] = o.target_image;
    out["gamma"] = cfg.gamma;
    out["lr"] = cfg.lr;
    out["beta_growth"] = cfg.beta_growth;
  }
  if (!graph_failure.empty()) out["cuda_graph_failure"] = graph_failure;
  if (cfg.kind == attacks::Kind::Targeted) out["region"] = o.region;
  if (n == 1) {
    for (auto it = images[0].begin(); it != images[0].end(); ++it) {
      if (it.key() != "image") out[it.key()] = it.value();
    }
  }
  {
    std::ofstream f(dir / "result.json");
    FRAGILE_CHECK(f.good(), "cannot write ", (dir / "result.json").string());
    f << out.dump(2) << "\n";
  }

  // Summary on stdout.
  int64_t failed = 0;
  for (int64_t i = 0; i < n; ++i) {
    const attacks::ImageResult& r = results[i];
    std::cout << in.names[i] << ": ";
    if (!r.success) {
      ++failed;
      if (r.kept_iters > 0) {
        // Iterates kept the label but none had a dissimilarity (NaN: an all-zero map).
        std::cout << "attack failed: the map has no centre of mass (all zero), label "
                  << r.label_before << "\n";
      } else {
        std::cout << "attack failed: no iterate kept label " << r.label_before << "\n";
      }
      continue;
    }
    std::cout << "label " << r.label_before;
    const std::string name = label_of(labels, r.label_before);
    if (!name.empty()) std::cout << " (" << name << ")";
    std::cout << " kept, prob " << r.prob_before << " -> " << r.prob_after << "; top-" << cfg.k
              << " intersection " << r.topk_intersection << ", spearman " << r.spearman
              << ", center shift " << r.center_shift << " px, linf " << r.linf
              << " px, best iterate " << r.best_iter << "/" << cfg.iters << "\n";
  }
  std::cout << "wrote " << (dir / "result.json").string() << " (" << seconds << " s";
  if (failed > 0) std::cout << "; " << failed << " of " << n << " attacks failed";
  std::cout << ")\n";
  return 0;
}

}  // namespace fragile::cli
