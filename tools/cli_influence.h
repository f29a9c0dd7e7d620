// `fragile influence ...` and `fragile hessian ...` (influence functions, the influence attack,
// input-Hessian spectra; see docs/influence.md). Each subcommand runs from its own CLI11 callback
// during app.parse(); a failure prints "fragile: error: ..." on stderr and surfaces as a
// CLI::RuntimeError carrying exit status 1, which app.exit() returns without printing again.
#pragma once
#include <CLI/CLI.hpp>

#include <functional>

namespace fragile::cli {

// Registers `influence` (with subcommands validate, attack, scores) and `hessian` on `app`.
void add_influence_commands(CLI::App& app);

// Registers `hessian` (add_influence_commands calls it).
void add_hessian_command(CLI::App& app);

}  // namespace fragile::cli
