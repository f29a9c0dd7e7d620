// `fragile influence ...` and `fragile hessian ...` (influence functions, the influence attack,
// input-Hessian spectra; see docs/influence.md). Each subcommand runs from its own CLI11 callback
// during app.parse(); a failure prints "fragile: error: ..." on stderr and surfaces as a
// CLI::RuntimeError carrying exit status 1, which app.exit() returns without printing again.
//
// Every option is checked before any data is loaded or anything computed, so a bad value costs
// nothing and never follows a screen of results.
#pragma once
#include <CLI/CLI.hpp>

#include <cstdio>
#include <functional>
#include <iosfwd>
#include <string>

#include "tools/cli_common.h"

namespace fragile::cli {

// Registers `influence` (with subcommands validate, attack, scores) and `hessian` on `app`.
void add_influence_commands(CLI::App& app);

// Registers `hessian` (add_influence_commands calls it).
void add_hessian_command(CLI::App& app);

// ---- pieces shared by cmd_influence.cpp and cmd_hessian.cpp --------------------------------------

// tools/models/fashion_cnn.onnx of the repository the binary was built from, found whatever the
// working directory: beside the executable (<repo>/<build>/bin/fragile), else in the source tree
// this file was compiled from. The first candidate that exists; the last one when none does.
std::string default_fashion_model();

// -m/--model with the shipped Fashion-MNIST model as its default (not required), float64 as the
// default --dtype (HVP solvers and Newton training want it), and no --device: these commands
// compute on the CPU. Adds --dtype, --activation and --fold-bn from ModelOptions.
void add_fashion_model_options(CLI::App& app, ModelOptions& m, const std::string& model_help);
// Cheap checks of ModelOptions before anything is loaded: --dtype, --activation, and that the
// model file exists (saying so when it is the missing default).
void check_model_options(const ModelOptions& m);

// Where the human-readable output goes: stdout, or stderr when the JSON goes to stdout
// (--json -), so that stdout stays one parseable JSON document.
struct HumanOut {
  bool to_stderr = false;
  std::FILE* file() const { return to_stderr ? stderr : stdout; }
  std::ostream& stream() const;
};
HumanOut human_out_for(const std::string& json_out);

// Writes `text` to `path` ('-': stdout) and says so on stderr; nothing when path is empty.
void write_text_output(const std::string& flag, const std::string& path, const std::string& text);

}  // namespace fragile::cli
