// Pieces shared by the `fragile` subcommands: model loading with transforms, preprocessing
// overrides, class labels.
#pragma once
#include <CLI/CLI.hpp>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/accumulation.h"
#include "nn/graph.h"
#include "nn/image.h"

namespace fragile::cli {

// Error messages are one line: newlines become spaces, trailing spaces go.
std::string one_line(std::string s);
// Runs a subcommand's body from its CLI11 callback. An exception becomes
// "fragile: error: <one line>" on stderr and a non-zero status becomes CLI::RuntimeError(status),
// which main's app.exit() returns as the exit status without printing again.
void run_guarded(const std::function<int()>& body);

// --dtype / --activation / --fold-bn, applied right after loading; --device for commands that
// compute (every one that reads -m/--model).
struct ModelOptions {
  std::string path;
  std::string dtype = "float32";
  std::string device = "cpu";
  std::string activation;  // empty: as in the file
  bool fold_bn = false;
  std::string accumulate = "float32";  // how float32 products sum (core/accumulation.h)

  void add_to(CLI::App& app, bool with_model_flag);
  DType engine_dtype() const;
  Device engine_device() const;
  Float32Sums engine_sums() const;
  // --dtype, --device, --accumulate and --activation parse: cheap, so commands call it before
  // slow work.
  void validate() const;
  // Loads, then folds BatchNorm and swaps activations as asked, and sets --accumulate for the
  // calling thread (the one every command computes on). Prints nothing.
  nn::Model load(std::vector<std::string>* log = nullptr) const;  // validates first
};

// Command-line overrides of the model's preprocess.* metadata.
struct PreprocessOptions {
  std::string channel_order, mean, scale, resize;
  std::optional<int64_t> size;

  void add_to(CLI::App& app);
  nn::Preprocess resolve(const nn::Model& model) const;
};

// CLI11 check of a --class value: an integer >= 0 (the upper bound is the model's, checked
// once its scores are known).
const CLI::Validator& class_index_check();
// CLI11 check of a --seed value: an unsigned integer. CLI11 reads "-1" into a uint64_t as
// 2^64 - 1; a negative seed is a mistake, not a wish for that number.
const CLI::Validator& seed_check();

// Throws naming `what` and the first offending element when `t` holds NaN or inf. Scores,
// maps and derivatives pass through it before they are printed or written: corrupt weights or
// an overflowing preprocessing must not come out as a NaN "result" with exit status 0.
void require_finite(const Tensor& t, const std::string& what);
// An output file given by `flag`, checked before the computation starts so that a bad path
// costs no work and leaves no partial output: its folder is created when missing (as `attack
// --out` creates its folder), the path must not be a folder, and it must be writable. '-'
// (stdout) passes when allow_stdout; an empty path (not asked for) always passes.
void check_output_path(const std::string& flag, const std::string& path, bool allow_stdout);

// Class names from the file that metadata `labels` names, next to the model (a relative path
// inside the model's folder); empty, with a note on stderr, when it cannot be read.
std::vector<std::string> load_labels(const nn::Model& model);
std::string label_of(const std::vector<std::string>& labels, int64_t c);

int run_import(const ModelOptions& m, const std::string& out);
struct PredictOptions {
  std::string image;
  int64_t top = 5;
  bool json = false;
};
int run_predict(const ModelOptions& m, const PreprocessOptions& p, const PredictOptions& o);
struct HvpOptions {
  std::string image, vector, out, grad_out;
  int64_t cls = -1;
};
int run_hvp(const ModelOptions& m, const PreprocessOptions& p, const HvpOptions& o);

}  // namespace fragile::cli
