// `fragile explain` (saliency maps) and `fragile attack` (attacks on them).
//
// fragile_main.cpp wires both in with one call before parsing:
//   fragile::cli::add_explain_commands(app);
// Each subcommand runs from its CLI11 callback. A failure prints "fragile: error: ..." and is
// reported to the caller as CLI::RuntimeError(1), which app.exit() turns into exit status 1
// without printing anything more; usage errors stay CLI11's (exit status 2... as CLI11 says).
#pragma once
#include <CLI/CLI.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "attacks/step.h"
#include "attribution/attribution.h"
#include "core/tensor.h"
#include "tools/cli_common.h"

namespace fragile::cli {

// Attribution settings shared by both commands.
struct MethodOptions {
  std::string method = "gradient";
  int64_t ig_steps = 100;
  int64_t ig_batch = 16;
  int64_t smoothgrad_samples = 50;
  double smoothgrad_sigma = 0.15;
  uint64_t smoothgrad_seed = 0;
  double smoothing_beta = 10.0;
  std::string reference = "zero";  // IG / DeepLIFT: zero, image-mean, or a file

  void add_to(CLI::App& app);
};

struct ExplainOptions {
  std::vector<std::string> images;  // files or directories (PNG/JPEG/.npy inside)
  MethodOptions method;
  int64_t cls = -1;                 // class explained; -1: each image's top-1
  int64_t batch = 8;
  std::string out;                  // saliency maps [N, H, W] as .npy
  std::string attribution_out;      // raw attributions [N, C, H, W] as .npy
  std::string png;                  // heatmap PNG (MAP_i.png for several images)
};
int run_explain(const ModelOptions& m, const PreprocessOptions& p, const ExplainOptions& o);

struct AttackOptions {
  std::vector<std::string> images;
  MethodOptions method;
  std::string attack = "topk";
  std::optional<double> epsilon;  // pixels; unset: 8 (Ghorbani), or no ball for manipulate
  std::optional<int64_t> iters;   // unset: 300 (Ghorbani), 1500 for manipulate
  double step = 0.5;            // alpha, pixels
  std::optional<int64_t> k;       // unset: 1000, or 100 for maps under 4000 pixels
  std::string surrogate_beta = "auto";  // "auto": 1 (Keras softplus), direct for deeplift
  int64_t batch = 8;
  uint64_t seed = 0;
  std::string region;           // target: ROW0,COL0,ROW1,COL1 (half-open, input pixels)
  std::string target_image;     // manipulate: the image whose map is the target
  double gamma = 1e-5;
  double lr = 0.0115;           // Adam step, pixels
  bool beta_growth = false;
  double beta_start = 10, beta_end = 100;
  std::string out;              // output directory
  bool no_progress = false;
  bool no_cuda_graph = false;   // --device cuda: run every iteration eagerly
};
int run_attack(const ModelOptions& m, const PreprocessOptions& p, const AttackOptions& o);

// Pieces shared by both commands.
// Files as given, directories expanded to their .png/.jpg/.jpeg/.npy files (sorted); throws for
// a missing path or an empty list.
std::vector<std::string> expand_inputs(const std::vector<std::string>& items);
struct Inputs {
  Tensor x;                        // [N, C, H, W] preprocessed, in the compute dtype
  std::vector<std::string> names;  // one per image ("file" or "file[i]" for a batched .npy)
};
Inputs load_inputs(const std::vector<std::string>& files, const nn::Preprocess& pre, DType dtype);
// Checks the method flags; `inputs` (the run's images, preprocessed) fixes the shape a
// --reference file must have.
attr::Options attribution_options(const MethodOptions& o, const attacks::PixelSpace& space,
                                  const nn::Preprocess& pre, const Tensor& inputs);
// "path/to/map.png" -> "path/to/map_3.png" for image 3 of several.
std::string indexed_path(const std::string& path, int64_t index, int64_t count);

// Registers `explain` and `attack` on `app`.
void add_explain_commands(CLI::App& app);

}  // namespace fragile::cli
