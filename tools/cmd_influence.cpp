// fragile influence validate | attack | scores
//
// Binary Fashion-MNIST (default sneaker = 7 vs ankle boot = 9), features from a frozen network
// (the input of its last Gemm), a logistic last layer trained with L2 by Newton; influence
// functions on that layer (influence/). See docs/influence.md.
//
//   validate: predicted loss change -I(z_i, z_t)/n vs leave-one-out retraining for the top
//             training points of a few test points; Pearson correlation.
//   attack:   Ghorbani et al.'s eq. 4 one-step attack vs a random-sign baseline; Spearman rank
//             correlation of all influences before/after and top-5 overlap, per epsilon.
//   scores:   the most influential training points of one test point.
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <new>

#include "core/error.h"
#include "core/ops.h"
#include "influence/experiments.h"
#include "influence/plot.h"
#include "influence/stats.h"
#include "nn/onnx_io.h"
#include "nn/transforms.h"
#include "tools/cli_common.h"
#include "tools/cli_influence.h"

namespace fragile::cli {

namespace inf = fragile::influence;
namespace fs = std::filesystem;
using json = nlohmann::json;

// ---- shared with cmd_hessian.cpp (cli_influence.h) -----------------------------------------------

std::string default_fashion_model() {
  const fs::path rel = fs::path("tools") / "models" / "fashion_cnn.onnx";
  std::vector<fs::path> candidates;
  std::error_code ec;
  // <repo>/<build>/bin/fragile: a build folder inside the repository (build-cpu, ...).
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec && exe.is_absolute()) {
    candidates.push_back(exe.parent_path().parent_path().parent_path() / rel);
  }
#ifdef FRAGILE_SOURCE_DIR
  candidates.push_back(fs::path(FRAGILE_SOURCE_DIR) / rel);
#endif
  // The source tree this file was compiled from (CMake passes absolute source paths):
  // <repo>/tools/cmd_influence.cpp.
  const fs::path here(__FILE__);
  if (here.is_absolute()) candidates.push_back(here.parent_path().parent_path() / rel);
  for (const fs::path& c : candidates) {
    if (fs::is_regular_file(c, ec)) return c.lexically_normal().string();
  }
  return candidates.empty() ? rel.string() : candidates.back().lexically_normal().string();
}

void add_fashion_model_options(CLI::App& app, ModelOptions& m, const std::string& model_help) {
  m.path = default_fashion_model();
  m.dtype = "float64";
  m.add_to(app, /*with_model_flag=*/true);
  app.get_option("--model")->required(false)->description(model_help)->capture_default_str();
  // The solvers, Newton training and Lanczos run on host vectors: no GPU path here.
  app.remove_option(app.get_option("--device"));
}

void check_model_options(const ModelOptions& m) {
  m.validate();
  std::error_code ec;
  if (!fs::is_regular_file(m.path, ec)) {
    FRAGILE_CHECK(m.path != default_fashion_model(), "the default model ", m.path,
                  " is missing (the repository ships it as tools/models/fashion_cnn.onnx); pass "
                  "-m MODEL");
    FRAGILE_FAIL("--model '", m.path, "': no such file");
  }
}

std::ostream& HumanOut::stream() const { return to_stderr ? std::cerr : std::cout; }

HumanOut human_out_for(const std::string& json_out) { return HumanOut{json_out == "-"}; }

void write_text_output(const std::string& flag, const std::string& path, const std::string& text) {
  if (path.empty()) return;
  if (path == "-") {
    std::cout << text << std::flush;
    return;
  }
  std::ofstream f(path);
  FRAGILE_CHECK(f, flag, ": cannot write ", path);
  f << text;
  f.close();
  FRAGILE_CHECK(f, flag, ": cannot write ", path);
  std::cerr << "wrote " << path << "\n";
}

namespace {

constexpr const char* kJsonHelp =
    "write results as JSON here ('-': stdout; the human-readable output then goes to stderr, so "
    "that stdout is one JSON document)";

void write_json(const std::string& path, const json& j) {
  write_text_output("--json", path, j.dump(2) + "\n");
}

void check_index(const char* flag, int64_t i, int64_t n, const std::vector<int64_t>& classes) {
  FRAGILE_CHECK(i >= 0 && i < n, flag, " ", i, " is out of range: there are ", n,
                " test points of classes ", classes.at(0), " and ", classes.at(1), " (0..", n - 1,
                ")");
}

struct SetupOptions {
  ModelOptions model;  // -m, --dtype, --activation, --fold-bn
  std::string data = inf::kFashionDir;
  std::vector<int64_t> classes = {7, 9};
  int64_t train = 1000;
  double l2 = 0.01;

  void add_to(CLI::App& app) {
    add_fashion_model_options(app, model,
                              "frozen network (ONNX); influence uses its last layer. --activation "
                              "softplus:BETA replaces every ReLU (the attack needs a non-zero "
                              "second derivative); --dtype is the network's, the last layer is "
                              "float64 either way");
    app.add_option("--data", data, "folder with the Fashion-MNIST idx files (.gz)")
        ->capture_default_str();
    app.add_option("--classes", classes,
                   "the two classes: negative,positive (two different Fashion-MNIST classes, "
                   "0..9)")
        ->delimiter(',')
        ->expected(2)
        ->capture_default_str();
    app.add_option("--train", train, "training points (the first of the two classes), >= 2")
        ->capture_default_str();
    app.add_option("--l2", l2, "L2 weight lambda >= 0 of J = mean loss + lambda/2 |theta|^2")
        ->capture_default_str();
  }

  // The option values alone (no file is read but the model's existence checked).
  void check() const {
    check_model_options(model);
    FRAGILE_CHECK(classes.size() == 2, "--classes needs two values, got ", classes.size());
    for (int64_t c : classes) {
      FRAGILE_CHECK(c >= 0 && c <= 9, "--classes: ", c,
                    " is not a Fashion-MNIST class (0..9)");
    }
    FRAGILE_CHECK(classes[0] != classes[1], "--classes must be two different classes, got ",
                  classes[0], " twice");
    FRAGILE_CHECK(train >= 2, "--train must be at least 2, got ", train);
    FRAGILE_CHECK(std::isfinite(l2) && l2 >= 0, "--l2 must be a finite number >= 0, got ", l2);
  }

  // What depends on the data, from the label files alone (kilobytes; the images, features and
  // training come later): --train against the examples there are; returns the number of binary
  // test points, the range of --test / --tests / --images.
  int64_t check_data() const {
    const int64_t neg = classes.at(0), pos = classes.at(1);
    int64_t available = 0, taken = 0, taken_pos = 0;
    for (uint8_t c : inf::load_fashion_labels(data, "train")) {
      if (c != neg && c != pos) continue;
      ++available;
      if (taken < train) {
        ++taken;
        taken_pos += c == pos;
      }
    }
    FRAGILE_CHECK(train <= available, "--train ", train, " exceeds the ", available,
                  " training examples of classes ", neg, " and ", pos);
    FRAGILE_CHECK(taken_pos > 0 && taken_pos < taken, "--train ", train, ": the first ", taken,
                  " training examples of classes ", neg, " and ", pos, " are all of class ",
                  taken_pos > 0 ? pos : neg, "; use a larger --train");
    int64_t test = 0;
    for (uint8_t c : inf::load_fashion_labels(data, "test")) test += c == neg || c == pos;
    FRAGILE_CHECK(test > 0, "--classes ", neg, ",", pos, ": no test examples of these classes");
    return test;
  }

  inf::FashionInfluence prepare(const HumanOut& out) const {
    nn::Model m = model.load();
    inf::FashionSetup s;
    s.data_dir = data;
    s.class_neg = classes.at(0);
    s.class_pos = classes.at(1);
    s.num_train = train;
    s.l2 = l2;
    s.dtype = model.engine_dtype();
    inf::FashionInfluence fi = inf::prepare_fashion_influence(std::move(m), s);
    out.stream() << "features: '" << fi.feature_value << "' (" << fi.layer.features.size(1)
              << "-d); " << fi.train.y.size() << " training / " << fi.test.y.size()
              << " test points of classes " << s.class_neg << " vs " << s.class_pos << "\n"
              << "last layer: " << fi.num_params() << " parameters, Newton "
              << fi.fit.iterations << " iterations, |grad J|_inf " << fi.fit.grad_norm
              << "; accuracy train " << fi.train_accuracy << ", test " << fi.test_accuracy
              << " (" << fi.seconds << " s)\n";
    return fi;
  }

  json to_json(const inf::FashionInfluence& fi) const {
    return {{"model", model.path},
            {"activation", model.activation},
            {"dtype", model.dtype},
            {"accumulate", model.accumulate},
            {"fold_bn", model.fold_bn},
            {"data", data},
            {"classes", classes},
            {"num_train", fi.train.y.size()},
            {"num_test", fi.test.y.size()},
            {"l2", l2},
            {"feature_value", fi.feature_value},
            {"num_params", fi.num_params()},
            {"newton_iterations", fi.fit.iterations},
            {"newton_grad_norm", fi.fit.grad_norm},
            {"train_accuracy", fi.train_accuracy},
            {"test_accuracy", fi.test_accuracy}};
  }
};

struct SolverOptions {
  std::string method = "cg";
  double cg_tol = 1e-10;
  int cg_iters = 100;
  double lissa_scale = 0;  // 0: 1.05 x the largest Hessian eigenvalue (power iteration on HVPs)
  double lissa_damping = 0;
  int64_t lissa_depth = 10000;
  int64_t lissa_samples = 1;
  int64_t lissa_batch = 0;
  uint64_t seed = 0;

  void add_to(CLI::App& app) {
    app.add_option("--solver", method, "inverse HVP: cg | lissa | exact")->capture_default_str();
    app.add_option("--cg-tol", cg_tol, "CG relative residual tolerance, > 0")
        ->capture_default_str();
    app.add_option("--cg-iters", cg_iters, "CG iteration limit, >= 1")->capture_default_str();
    app.add_option("--lissa-scale", lissa_scale,
                   "LiSSA scale, > 0 (0: 1.05 x largest Hessian eigenvalue)")
        ->capture_default_str();
    app.add_option("--lissa-damping", lissa_damping,
                   "LiSSA damping in [0, 1) (the recursion keeps (1 - damping) of each iterate)")
        ->capture_default_str();
    app.add_option("--lissa-depth", lissa_depth, "LiSSA recursion depth, >= 1")
        ->capture_default_str();
    app.add_option("--lissa-samples", lissa_samples, "LiSSA repetitions averaged, >= 1")
        ->capture_default_str();
    app.add_option("--lissa-batch", lissa_batch,
                   "examples per LiSSA HVP, >= 1 (0: the full objective)")
        ->capture_default_str();
  }

  // Every solver value is checked whichever --solver is chosen: a bad value is a typo either way.
  void check() const {
    FRAGILE_CHECK(method == "cg" || method == "lissa" || method == "exact",
                  "--solver must be cg, lissa or exact, got '", method, "'");
    FRAGILE_CHECK(std::isfinite(cg_tol) && cg_tol > 0, "--cg-tol must be a finite number > 0, got ",
                  cg_tol);
    FRAGILE_CHECK(cg_iters >= 1, "--cg-iters must be at least 1, got ", cg_iters);
    FRAGILE_CHECK(std::isfinite(lissa_scale) && lissa_scale >= 0,
                  "--lissa-scale must be a finite number > 0 (or 0: 1.05 x the largest Hessian "
                  "eigenvalue), got ", lissa_scale);
    FRAGILE_CHECK(std::isfinite(lissa_damping) && lissa_damping >= 0 && lissa_damping < 1,
                  "--lissa-damping must be in [0, 1), got ", lissa_damping);
    FRAGILE_CHECK(lissa_depth >= 1, "--lissa-depth must be at least 1, got ", lissa_depth);
    FRAGILE_CHECK(lissa_samples >= 1, "--lissa-samples must be at least 1, got ", lissa_samples);
    FRAGILE_CHECK(lissa_batch >= 0, "--lissa-batch must be >= 0 (0: the full objective), got ",
                  lissa_batch);
  }

  inf::IhvpOptions resolve(const inf::FashionInfluence& fi, const HumanOut& out) const {
    inf::IhvpOptions o;
    o.method = inf::parse_ihvp_method(method);
    o.cg.tol = cg_tol;
    o.cg.max_iter = cg_iters;
    o.lissa.damping = lissa_damping;
    o.lissa.depth = lissa_depth;
    o.lissa.samples = lissa_samples;
    o.lissa.seed = seed;
    o.lissa_batch = lissa_batch;
    o.lissa.scale = lissa_scale;
    if (o.method == inf::IhvpMethod::Lissa && lissa_scale <= 0) {
      const auto all = fi.objective.all();
      const inf::EigenPair top = inf::power_iteration(
          [&](const inf::Vec& v) { return fi.objective.hvp(fi.fit.theta, v, all); },
          fi.num_params(), 500, 1e-6, seed);
      o.lissa.scale = 1.05 * top.value;
      out.stream() << "LiSSA scale " << o.lissa.scale << " (largest Hessian eigenvalue "
                << top.value << ")\n";
    }
    return o;
  }
};

int64_t source_label(const inf::FashionInfluence& fi, double y) {
  return y > 0 ? fi.setup.class_pos : fi.setup.class_neg;
}

// ---- validate ------------------------------------------------------------------------------------

struct ValidateOptions {
  SetupOptions setup;
  SolverOptions solver;
  std::vector<int64_t> tests;
  int64_t top = 40;
  std::string json_out, plot;
};

void run_validate(const ValidateOptions& o) {
  // Every option before any image is decoded (the setup alone takes seconds).
  o.setup.check();
  o.solver.check();
  FRAGILE_CHECK(o.top >= 2, "--top must be at least 2 (a Pearson correlation needs two points), "
                "got ", o.top);
  check_output_path("--json", o.json_out, /*allow_stdout=*/true);
  check_output_path("--plot", o.plot, /*allow_stdout=*/false);
  const int64_t num_test = o.setup.check_data();
  for (int64_t t : o.tests) check_index("--tests", t, num_test, o.setup.classes);
  const HumanOut out = human_out_for(o.json_out);

  inf::FashionInfluence fi = o.setup.prepare(out);
  inf::LooOptions lo;
  lo.test_points = o.tests;
  lo.top = o.top;
  lo.ihvp = o.solver.resolve(fi, out);
  const inf::LooResult r = inf::run_loo_validation(fi, lo);
  json tests = json::array();
  std::vector<inf::ScatterSeries> series;
  const uint32_t colors[] = {0xd62728, 0x1f77b4, 0x2ca02c, 0xff7f0e, 0x9467bd, 0x8c564b};
  for (size_t k = 0; k < r.tests.size(); ++k) {
    const inf::LooTest& t = r.tests[k];
    std::fprintf(out.file(), "test %lld (file index %lld, class %lld): loss %.4g, %s %d ops, "
                 "|s - s_exact|/|s_exact| %.1e, top %zu: Pearson %.4f, Spearman %.4f\n",
                 static_cast<long long>(t.test_index),
                 static_cast<long long>(fi.test.source_index[t.test_index]),
                 static_cast<long long>(source_label(fi, fi.test.y[t.test_index])), t.test_loss,
                 inf::ihvp_method_name(lo.ihvp.method), t.ihvp.operator_calls,
                 t.s_test_error_vs_exact, t.points.size(), t.pearson, t.spearman);
    json pts = json::array();
    inf::ScatterSeries s;
    s.rgb = colors[k % 6];
    s.radius = 3;
    s.label = "test " + std::to_string(t.test_index) + " (r = " +
              std::to_string(t.pearson).substr(0, 5) + ")";
    for (const inf::LooPoint& p : t.points) {
      pts.push_back({{"train_index", p.train_index},
                     {"source_index", fi.train.source_index[p.train_index]},
                     {"label", source_label(fi, fi.train.y[p.train_index])},
                     {"influence", p.influence},
                     {"predicted", p.predicted},
                     {"actual", p.actual},
                     {"newton_iterations", p.newton_iterations}});
      s.x.push_back(p.predicted * 1e3);
      s.y.push_back(p.actual * 1e3);
    }
    series.push_back(s);
    tests.push_back({{"test_index", t.test_index},
                     {"source_index", fi.test.source_index[t.test_index]},
                     {"label", source_label(fi, fi.test.y[t.test_index])},
                     {"test_loss", t.test_loss},
                     {"operator_calls", t.ihvp.operator_calls},
                     {"ihvp_relative_residual", t.ihvp.relative_residual},
                     {"s_test_error_vs_exact", t.s_test_error_vs_exact},
                     {"pearson", t.pearson},
                     {"spearman", t.spearman},
                     {"points", pts}});
  }
  std::fprintf(out.file(),
               "Pearson (predicted vs actual LOO loss change): pooled %.4f, min over test points "
               "%.4f (%.1f s)\n",
               r.pearson_pooled, r.min_pearson, r.seconds);
  json j = {{"command", "influence validate"},
            {"setup", o.setup.to_json(fi)},
            {"solver", inf::ihvp_method_name(lo.ihvp.method)},
            {"lissa_scale", lo.ihvp.lissa.scale},
            {"top", o.top},
            {"tests", tests},
            {"pearson_pooled", r.pearson_pooled},
            {"min_pearson", r.min_pearson},
            {"seconds", r.seconds}};
  write_json(o.json_out, j);
  if (!o.plot.empty()) {
    inf::write_scatter_png(o.plot, series, "Leave-one-out: predicted vs actual",
                           "predicted loss change x 1e-3", "actual loss change x 1e-3");
    std::cerr << "wrote " << o.plot << "\n";
  }
}

// ---- attack --------------------------------------------------------------------------------------

struct AttackCliOptions {
  SetupOptions setup;
  int64_t images = 50;
  std::vector<double> eps = {2, 4, 8};
  uint64_t seed = 0;
  std::string json_out, plot;
};

void run_attack(const AttackCliOptions& o) {
  // Every option before any image is decoded (the setup alone takes seconds).
  o.setup.check();
  FRAGILE_CHECK(o.images >= 1, "--images must be at least 1, got ", o.images);
  FRAGILE_CHECK(!o.eps.empty(), "--eps needs at least one budget");
  for (double e : o.eps) {
    FRAGILE_CHECK(std::isfinite(e) && e > 0 && e <= 255,
                  "--eps must be in (0, 255] pixel units, got ", e);
  }
  check_output_path("--json", o.json_out, /*allow_stdout=*/true);
  check_output_path("--plot", o.plot, /*allow_stdout=*/false);
  const int64_t num_test = o.setup.check_data();
  FRAGILE_CHECK(o.images <= num_test, "--images ", o.images, " exceeds the ", num_test,
                " test points of classes ", o.setup.classes.at(0), " and ",
                o.setup.classes.at(1));
  const HumanOut out = human_out_for(o.json_out);

  inf::FashionInfluence fi = o.setup.prepare(out);
  inf::AttackOptions ao;
  ao.num_images = o.images;
  ao.epsilons = o.eps;
  ao.seed = o.seed;
  const inf::AttackResult r = inf::run_influence_attack(fi, ao);
  std::fprintf(out.file(),
               "\n%lld test images, influence of all %zu training points (Spearman) and top-5 "
               "overlap, before vs after:\n\n",
               static_cast<long long>(o.images), fi.train.y.size());
  std::fprintf(out.file(),
               "| eps (/255) | Spearman targeted | Spearman random | top-5 targeted | top-5 random "
               "| label kept targeted | label kept random |\n");
  std::fprintf(out.file(), "|---|---|---|---|---|---|---|\n");
  json rows = json::array();
  for (const inf::AttackRow& row : r.rows) {
    std::fprintf(out.file(), "| %g | %.3f | %.3f | %.2f | %.2f | %.0f%% | %.0f%% |\n", row.epsilon,
                 row.targeted_spearman, row.random_spearman, row.targeted_overlap,
                 row.random_overlap, 100 * row.targeted_label_kept,
                 100 * row.random_label_kept);
    rows.push_back({{"epsilon", row.epsilon},
                    {"targeted_spearman", row.targeted_spearman},
                    {"random_spearman", row.random_spearman},
                    {"targeted_top5_overlap", row.targeted_overlap},
                    {"random_top5_overlap", row.random_overlap},
                    {"targeted_label_kept", row.targeted_label_kept},
                    {"random_label_kept", row.random_label_kept}});
  }
  std::fprintf(out.file(), "\n(%.1f s)\n", r.seconds);
  json images = json::array();
  for (const inf::AttackImage& im : r.images) {
    json per = json::array();
    for (size_t e = 0; e < o.eps.size(); ++e) {
      auto one = [](const inf::AttackOutcome& a) {
        return json{{"spearman", a.spearman},
                    {"overlap", a.overlap},
                    {"label_kept", a.label_kept},
                    {"top_influence_change", a.top_influence_change}};
      };
      per.push_back({{"epsilon", o.eps[e]},
                     {"targeted", one(im.targeted[e])},
                     {"random", one(im.random[e])}});
    }
    images.push_back({{"test_index", im.test_index},
                      {"source_index", fi.test.source_index[im.test_index]},
                      {"results", per}});
  }
  json j = {{"command", "influence attack"},
            {"setup", o.setup.to_json(fi)},
            {"num_images", o.images},
            {"attack_top", ao.attack_top},
            {"overlap_k", ao.overlap_k},
            {"seed", o.seed},
            {"rows", rows},
            {"images", images},
            {"seconds", r.seconds}};
  write_json(o.json_out, j);
  if (!o.plot.empty() && !r.example_before.empty()) {
    inf::ScatterSeries rnd{r.example_before, r.example_random, 0xa0a0a0, 2,
                           "random sign, eps " + std::to_string(static_cast<int>(o.eps.back()))};
    inf::ScatterSeries tgt{r.example_before, r.example_targeted, 0xd62728, 2,
                           "targeted (eq. 4), eps " + std::to_string(static_cast<int>(o.eps.back()))};
    inf::ScatterSeries top{{}, {}, 0x000000, 4, "attacked top-3"};
    for (int64_t i : r.example_top) {
      top.x.push_back(r.example_before[i]);
      top.y.push_back(r.example_targeted[i]);
    }
    inf::write_scatter_png(o.plot, {rnd, tgt, top}, "Influence of each training point, test image 0",
                           "influence before", "influence after");
    std::cerr << "wrote " << o.plot << "\n";
  }
}

// ---- scores --------------------------------------------------------------------------------------

struct ScoresOptions {
  SetupOptions setup;
  SolverOptions solver;
  int64_t test = 0;
  int64_t top = 10;
  std::string json_out;
};

void run_scores(const ScoresOptions& o) {
  // Every option before any image is decoded (the setup alone takes seconds).
  o.setup.check();
  o.solver.check();
  FRAGILE_CHECK(o.top >= 1, "--top must be at least 1, got ", o.top);
  check_output_path("--json", o.json_out, /*allow_stdout=*/true);
  check_index("--test", o.test, o.setup.check_data(), o.setup.classes);
  const HumanOut out = human_out_for(o.json_out);

  inf::FashionInfluence fi = o.setup.prepare(out);
  const inf::IhvpOptions io = o.solver.resolve(fi, out);
  const inf::IhvpResult s = inf::inverse_hvp(fi.objective, fi.fit.theta, fi.test_gradient(o.test), io);
  const inf::Vec infl = inf::influence_from_s_test(fi.train_grads, s.x);
  const double score = fi.scores(contiguous(slice(fi.test.images, 0, o.test, o.test + 1)))[0];
  std::fprintf(out.file(),
               "test %lld (file index %lld, class %lld): last-layer score %.4g, %s %d ops, "
               "residual %.1e\n",
               static_cast<long long>(o.test), static_cast<long long>(fi.test.source_index[o.test]),
               static_cast<long long>(source_label(fi, fi.test.y[o.test])), score,
               inf::ihvp_method_name(io.method), s.operator_calls, s.relative_residual);
  json lists = json::object();
  for (int sign : {+1, -1}) {
    const char* name = sign > 0 ? "harmful" : "helpful";
    std::fprintf(out.file(), "most %s (I %s 0: up-weighting %s the test loss):\n", name,
                 sign > 0 ? ">" : "<", sign > 0 ? "raises" : "lowers");
    json arr = json::array();
    for (int64_t i : inf::top_k(sign * infl, o.top)) {
      std::fprintf(out.file(), "  train %5lld  file index %5lld  class %lld  I = %+.5g\n",
                   static_cast<long long>(i), static_cast<long long>(fi.train.source_index[i]),
                   static_cast<long long>(source_label(fi, fi.train.y[i])), infl[i]);
      arr.push_back({{"train_index", i},
                     {"source_index", fi.train.source_index[i]},
                     {"label", source_label(fi, fi.train.y[i])},
                     {"influence", infl[i]}});
    }
    lists[name] = arr;
  }
  json j = {{"command", "influence scores"},
            {"setup", o.setup.to_json(fi)},
            {"test_index", o.test},
            {"source_index", fi.test.source_index[o.test]},
            {"solver", inf::ihvp_method_name(io.method)},
            {"top", lists},
            {"influence", std::vector<double>(infl.data(), infl.data() + infl.size())}};
  write_json(o.json_out, j);
}

}  // namespace

void add_influence_commands(CLI::App& app) {
  CLI::App* inf_cmd = app.add_subcommand(
      "influence", "Influence functions on binary Fashion-MNIST with a frozen network's features "
                   "and a logistic last layer: leave-one-out validation, the influence attack, "
                   "scores");
  inf_cmd->require_subcommand(1);

  auto v = std::make_shared<ValidateOptions>();
  CLI::App* val = inf_cmd->add_subcommand(
      "validate", "Predicted loss change -I/n vs leave-one-out retraining (Newton) for the top "
                  "training points of a few test points; Pearson correlation");
  v->setup.add_to(*val);
  v->solver.add_to(*val);
  val->add_option("--tests", v->tests,
                  "binary test indices (default: the highest-loss test point and those at the "
                  "90th and 50th loss percentiles)")
      ->delimiter(',');
  val->add_option("--top", v->top,
                  "training points per test point, by |predicted change|; >= 2 (Pearson)")
      ->capture_default_str();
  val->add_option("--json", v->json_out, kJsonHelp);
  val->add_option("--plot", v->plot, "write a predicted-vs-actual scatter PNG here");
  val->callback([v] { run_guarded([&] { run_validate(*v); return 0; }); });

  auto a = std::make_shared<AttackCliOptions>();
  CLI::App* att = inf_cmd->add_subcommand(
      "attack", "Ghorbani et al.'s influence attack, delta = -eps sign(grad_x sum_top3 I), vs a "
                "random-sign baseline: rank correlation and top-5 overlap of the influences");
  a->setup.add_to(*att);
  att->add_option("--images", a->images, "the first N binary test images")->capture_default_str();
  att->add_option("--eps", a->eps, "L_inf budgets in pixel units (/255), each in (0, 255]")
      ->delimiter(',')
      ->capture_default_str();
  att->add_option("--seed", a->seed, "random-sign baseline seed")
      ->check(seed_check())
      ->capture_default_str();
  att->add_option("--json", a->json_out, kJsonHelp);
  att->add_option("--plot", a->plot,
                  "write the before-vs-after influence scatter (first image, largest eps) here");
  att->callback([a] { run_guarded([&] { run_attack(*a); return 0; }); });

  auto s = std::make_shared<ScoresOptions>();
  CLI::App* sc = inf_cmd->add_subcommand(
      "scores", "The most helpful and most harmful training points of one test point");
  s->setup.add_to(*sc);
  s->solver.add_to(*sc);
  sc->add_option("--test", s->test, "binary test index")->capture_default_str();
  sc->add_option("--top", s->top, "points listed per sign, >= 1")->capture_default_str();
  sc->add_option("--json", s->json_out, std::string(kJsonHelp) + "; includes every influence");
  sc->callback([s] { run_guarded([&] { run_scores(*s); return 0; }); });

  add_hessian_command(app);
}

}  // namespace fragile::cli
