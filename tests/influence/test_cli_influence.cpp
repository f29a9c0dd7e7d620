// `fragile influence ...` and `fragile hessian` end to end through the real binary: every bad
// option is one line on stderr naming the flag, exit status 1, and comes before any data is
// loaded or anything computed (stdout stays empty); `--json -` keeps stdout one JSON document;
// the default model is found from any working directory; ReLU models are refused by `hessian`.
// The runs that compute use small settings (--train 100, one test point or image).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "nn/onnx_io.h"
#include "tests/support/cli_run.h"
#include "tests/support/reference.h"

namespace fragile::influence {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

using test::CliRun;

fs::path temp_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() /
                     ("fragile_influence_cli_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::string read_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// Runs the binary with `args`, in folder `cwd` when given.
CliRun run_cli(const std::vector<std::string>& args, const fs::path& cwd = {}) {
  return test::run_binary(FRAGILE_CLI_PATH, args, cwd);
}

fs::path source_path(const std::string& rel) { return fs::path(test::source_dir()) / rel; }
std::string fashion_model() { return source_path("tools/models/fashion_cnn.onnx").string(); }
std::string shared(const std::string& rel) { return (fs::path(test::shared_dir()) / rel).string(); }

// One clear line on stderr naming what was wrong, exit status 1, and nothing on stdout: the
// check came before any result was computed or printed.
void expect_early_failure(const CliRun& r, const std::vector<std::string>& must_contain) {
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_EQ(r.err.rfind("fragile: error: ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  for (const std::string& s : must_contain) EXPECT_NE(r.err.find(s), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << "printed before failing:\n" << r.out;
}

std::vector<std::string> with(std::vector<std::string> base, const std::vector<std::string>& more) {
  base.insert(base.end(), more.begin(), more.end());
  return base;
}

// ---- 1. --classes --------------------------------------------------------------------------------

TEST(InfluenceCli, ClassesMustBeTwoDistinctFashionClasses) {
  for (const char* sub : {"validate", "attack", "scores"}) {
    expect_early_failure(run_cli({"influence", sub, "--classes", "7", "10"}),
                         {"--classes", "10", "0..9"});
    expect_early_failure(run_cli({"influence", sub, "--classes=-1,9"}), {"--classes", "-1"});
    expect_early_failure(run_cli({"influence", sub, "--classes", "7,7"}),
                         {"--classes", "different"});
  }
}

// ---- 2. --eps ------------------------------------------------------------------------------------

TEST(InfluenceCli, AttackEpsMustBeAPositivePixelBudget) {
  for (const char* eps : {"-8", "0", "nan", "1000", "inf", "2,-1"}) {
    expect_early_failure(run_cli({"influence", "attack", std::string("--eps=") + eps}),
                         {"--eps", "(0, 255]"});
  }
  expect_early_failure(run_cli({"influence", "attack", "--eps=1000"}), {"1000"});
  expect_early_failure(run_cli({"influence", "attack", "--images", "0"}), {"--images"});
  expect_early_failure(run_cli({"influence", "attack", "--images", "100000"}),
                       {"--images", "100000"});
}

// ---- 4. validation before computation ------------------------------------------------------------

TEST(InfluenceCli, EveryOptionIsCheckedBeforeComputing) {
  expect_early_failure(run_cli({"influence", "scores", "--solver", "foo"}), {"--solver", "foo"});
  expect_early_failure(run_cli({"influence", "validate", "--solver", "foo"}), {"--solver", "foo"});
  expect_early_failure(run_cli({"influence", "scores", "--test", "5000"}), {"--test", "5000"});
  expect_early_failure(run_cli({"influence", "scores", "--test=-1"}), {"--test", "-1"});
  expect_early_failure(run_cli({"influence", "validate", "--tests", "0,5000"}),
                       {"--tests", "5000"});
  expect_early_failure(run_cli({"influence", "scores", "--lissa-depth", "0"}),
                       {"--lissa-depth", "0"});
  expect_early_failure(run_cli({"influence", "scores", "--top", "0"}), {"--top"});
  expect_early_failure(run_cli({"influence", "scores", "--train", "1"}), {"--train"});
  expect_early_failure(run_cli({"influence", "scores", "--train", "100000"}),
                       {"--train", "100000"});
  expect_early_failure(run_cli({"influence", "scores", "--l2=-1"}), {"--l2"});
  expect_early_failure(run_cli({"influence", "scores", "--dtype", "float16"}),
                       {"--dtype", "float16"});
  expect_early_failure(run_cli({"influence", "scores", "--activation", "tanh"}),
                       {"--activation", "tanh"});
  expect_early_failure(run_cli({"influence", "scores", "-m", "/nonexistent/m.onnx"}),
                       {"--model", "/nonexistent/m.onnx"});
  expect_early_failure(run_cli({"influence", "scores", "--data", "/nonexistent"}),
                       {"/nonexistent", "--data"});
  expect_early_failure(run_cli({"hessian", "--bins", "0"}), {"--bins", "0"});
  expect_early_failure(run_cli({"hessian", "--steps", "0"}), {"--steps", "0"});
  expect_early_failure(run_cli({"hessian", "--method", "qr"}), {"--method", "qr"});
  expect_early_failure(run_cli({"hessian", "--images", "0"}), {"--images"});
  expect_early_failure(run_cli({"hessian", "--images", "20000"}), {"--images", "20000"});
  expect_early_failure(run_cli({"hessian", "--class=-2"}), {"--class", "-2"});
  // Known only once the model has run (one forward pass), still before any HVP.
  const CliRun cls = run_cli({"hessian", "--class", "10", "--images", "1"});
  EXPECT_EQ(cls.status, 1) << cls.err;
  EXPECT_NE(cls.err.find("--class 10 is out of range: the model has 10 classes"),
            std::string::npos)
      << cls.err;
  // Output paths: a folder that cannot be made (a file stands where it would be), a folder given
  // as the file. (A merely missing folder is created, as attack --out does.)
  const fs::path d = temp_dir("paths");
  { std::ofstream(d / "file") << "x"; }
  const std::string missing = (d / "file" / "such" / "r.json").string();
  for (const std::vector<std::string>& cmd :
       std::vector<std::vector<std::string>>{{"influence", "validate"},
                                             {"influence", "attack"},
                                             {"influence", "scores"},
                                             {"hessian"}}) {
    expect_early_failure(run_cli(with(cmd, {"--json", missing})), {"--json", missing});
    expect_early_failure(run_cli(with(cmd, {"--json", d.string()})), {"--json", "folder"});
    if (cmd.back() != "scores") {
      expect_early_failure(run_cli(with(cmd, {"--plot", missing})), {"--plot", missing});
      expect_early_failure(run_cli(with(cmd, {"--plot", "-"})), {"--plot"});
    }
  }
  EXPECT_TRUE(fs::is_regular_file(d / "file"));
}

// ---- 5. validate --top ---------------------------------------------------------------------------

TEST(InfluenceCli, ValidateTopNeedsTwoPoints) {
  for (const char* top : {"0", "1", "-3"}) {
    expect_early_failure(run_cli({"influence", "validate", "--top", top}),
                         {"--top", "at least 2"});
  }
}

// ---- 6. solver values ----------------------------------------------------------------------------

TEST(InfluenceCli, SolverValuesAreChecked) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"--cg-iters", "0"},        {"--cg-iters", "-5"},      {"--cg-tol", "-1"},
      {"--cg-tol", "0"},          {"--cg-tol", "nan"},       {"--lissa-damping", "-1"},
      {"--lissa-damping", "1.5"}, {"--lissa-scale", "-1"},   {"--lissa-scale", "inf"},
      {"--lissa-batch", "-1"},    {"--lissa-samples", "0"},  {"--lissa-depth", "-2"}};
  for (const char* sub : {"validate", "scores"}) {
    for (const auto& [flag, value] : bad) {
      expect_early_failure(run_cli({"influence", sub, flag + "=" + value}), {flag, value});
    }
  }
}

// ---- 3. --json - keeps stdout one JSON document --------------------------------------------------

TEST(InfluenceCli, JsonOnStdoutIsParseable) {
  const std::vector<std::string> small = {"--train", "100"};
  CliRun r = run_cli(with({"influence", "validate", "--tests", "0", "--top", "2", "--json", "-"},
                          small));
  ASSERT_EQ(r.status, 0) << r.err;
  json j = json::parse(r.out);  // throws (fails the test) when anything else is on stdout
  EXPECT_EQ(j["command"], "influence validate");
  EXPECT_EQ(j["tests"].size(), 1u);
  EXPECT_NE(r.err.find("Pearson"), std::string::npos) << r.err;  // the summary went to stderr

  r = run_cli(with({"influence", "attack", "--images", "1", "--eps", "2", "--json", "-"}, small));
  ASSERT_EQ(r.status, 0) << r.err;
  j = json::parse(r.out);
  EXPECT_EQ(j["command"], "influence attack");
  EXPECT_EQ(j["rows"].size(), 1u);
  EXPECT_NE(r.err.find("| eps (/255)"), std::string::npos) << r.err;
  // The attack with a float32 network (its input gradient is float32, the images float64).
  r = run_cli(with({"influence", "attack", "--images", "1", "--eps", "2", "--dtype", "float32",
                    "--json", "-"},
                   small));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["rows"].size(), 1u);

  // scores, also in float32 (item 9: --dtype): the network rounds, the last layer does not.
  r = run_cli(with({"influence", "scores", "--top", "3", "--dtype", "float32", "--json", "-"},
                   small));
  ASSERT_EQ(r.status, 0) << r.err;
  j = json::parse(r.out);
  EXPECT_EQ(j["command"], "influence scores");
  EXPECT_EQ(j["setup"]["dtype"], "float32");
  EXPECT_EQ(j["influence"].size(), 100u);
  EXPECT_NE(r.err.find("most harmful"), std::string::npos) << r.err;

  // Without --json -, the table stays on stdout.
  r = run_cli(with({"influence", "scores", "--top", "2"}, small));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("most harmful"), std::string::npos) << r.out;
}

// ---- 7. hessian of a ReLU network / a zero Hessian -----------------------------------------------

TEST(HessianCli, ReluModelIsRefused) {
  expect_early_failure(run_cli({"hessian", "-m", shared("models/squeezenet1.0.onnx"), "-i",
                                shared("images/chelsea.png"), "--steps", "2"}),
                       {"Relu", "--activation softplus:BETA"});
  // The shipped model with its softplus turned into ReLU: refused, and fine again once
  // --activation puts a softplus back.
  nn::Model m = nn::load_onnx(fashion_model());
  int64_t swapped = 0;
  for (nn::Node& n : m.graph.nodes) {
    if (n.op_type == "Softplus") {
      n.op_type = "Relu";
      n.attrs.clear();
      ++swapped;
    }
  }
  ASSERT_GT(swapped, 0);
  const fs::path d = temp_dir("relu");
  nn::save_onnx(m, d / "relu.onnx");
  const std::string relu = (d / "relu.onnx").string();
  expect_early_failure(run_cli({"hessian", "-m", relu, "--images", "1", "--steps", "2"}),
                       {"Relu", "--activation softplus:BETA"});
  expect_early_failure(
      run_cli({"hessian", "-m", relu, "--images", "1", "--steps", "2", "--activation", "relu"}),
      {"Relu"});
  const CliRun ok = run_cli({"hessian", "-m", relu, "--images", "1", "--steps", "3",
                             "--activation", "softplus:10"});
  EXPECT_EQ(ok.status, 0) << ok.err;
  EXPECT_NE(ok.out.find("replaced"), std::string::npos) << ok.out;
  EXPECT_NE(ok.out.find("angle"), std::string::npos) << ok.out;
}

TEST(HessianCli, ExactlyZeroHessianIsReportedNotAnAngle) {
  // Softplus -> Identity: no Relu left, yet linear layers and max-pooling only, so the input
  // Hessian is exactly zero.
  nn::Model m = nn::load_onnx(fashion_model());
  for (nn::Node& n : m.graph.nodes) {
    if (n.op_type == "Softplus") {
      n.op_type = "Identity";
      n.attrs.clear();
    }
  }
  const fs::path d = temp_dir("linear");
  nn::save_onnx(m, d / "linear.onnx");
  const CliRun r = run_cli({"hessian", "-m", (d / "linear.onnx").string(), "--images", "2",
                            "--steps", "3"});
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_EQ(r.err.rfind("fragile: error: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find("exactly zero"), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find("angle ="), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("exactly zero"), std::string::npos) << r.out;
}

// ---- 8. the default model from any working directory ---------------------------------------------

TEST(HessianCli, DefaultModelDoesNotDependOnTheWorkingDirectory) {
  const fs::path elsewhere = temp_dir("cwd");
  const fs::path json_path = elsewhere / "h.json";
  const CliRun r = run_cli({"hessian", "--images", "1", "--steps", "3", "--json",
                            json_path.string()},
                           elsewhere);
  ASSERT_EQ(r.status, 0) << r.err;
  const json j = json::parse(read_bytes(json_path));
  const fs::path model = j["model"].get<std::string>();
  EXPECT_TRUE(model.is_absolute()) << model;
  EXPECT_TRUE(fs::equivalent(model, fashion_model())) << model;
  // --help names the same file as the default.
  for (const std::vector<std::string>& help :
       std::vector<std::vector<std::string>>{{"hessian", "--help"},
                                             {"influence", "scores", "--help"}}) {
    const CliRun h = run_cli(help, elsewhere);
    EXPECT_EQ(h.status, 0) << h.err;
    EXPECT_NE(h.out.find(model.string()), std::string::npos) << h.out;
  }
}

// ---- 9. hessian preprocessing and dtype ----------------------------------------------------------

TEST(HessianCli, PreprocessingAndDtypeOptions) {
  const std::string png = source_path("tools/models/fashion_samples/test0_ankle_boot.png").string();
  CliRun r = run_cli({"hessian", "-i", png, "--dtype", "float32", "--steps", "3", "--json", "-"});
  ASSERT_EQ(r.status, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["dtype"], "float32");
  ASSERT_EQ(j["images"].size(), 1u);
  EXPECT_FALSE(j["images"][0]["hessian_zero"].get<bool>());
  EXPECT_NE(r.err.find("angle"), std::string::npos) << r.err;  // the summary went to stderr
  // Explicit preprocessing equal to the model's metadata (gray, x = pixel / 255) gives the same.
  r = run_cli({"hessian", "-i", png, "--channel-order", "GRAY", "--mean", "0", "--scale",
               "0.00392156862745098", "--size", "28", "--steps", "3", "--json", "-"});
  ASSERT_EQ(r.status, 0) << r.err;
  const json k = json::parse(r.out);
  EXPECT_EQ(k["dtype"], "float64");
  EXPECT_NEAR(k["images"][0]["score"].get<double>(), j["images"][0]["score"].get<double>(), 1e-4);
  // Fashion-MNIST images take --mean/--scale only.
  expect_early_failure(run_cli({"hessian", "--size", "32"}), {"--size", "-i IMAGE"});
  expect_early_failure(run_cli({"hessian", "--resize", "none"}), {"--resize"});
  expect_early_failure(run_cli({"hessian", "--dtype", "half"}), {"--dtype", "half"});
  // -i IMAGE replaces the Fashion-MNIST options: both given is a usage error, not one ignored.
  for (const char* flag : {"--images", "--data"}) {
    const CliRun both = run_cli({"hessian", "-i", png, flag, "3"});
    EXPECT_EQ(both.status, 2) << both.err;
    EXPECT_NE(both.err.find("excludes"), std::string::npos) << both.err;
  }
  const CliRun seed = run_cli({"hessian", "-i", png, "--seed", "-1"});
  EXPECT_EQ(seed.status, 2) << seed.err;
  EXPECT_NE(seed.err.find("must be a seed"), std::string::npos) << seed.err;
  r = run_cli({"hessian", "--images", "1", "--steps", "3", "--mean", "0", "--scale",
               "0.00392156862745098", "--fold-bn"});
  EXPECT_EQ(r.status, 0) << r.err;
}

}  // namespace
}  // namespace fragile::influence
