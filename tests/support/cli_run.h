// Runs the `fragile` binary as a user would (a shell command line), for the CLI tests of every
// layer: exit status, stdout and stderr captured separately.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

namespace fragile::test {

struct CliRun {
  int status = -1;  // exit status, or -1 when killed by a signal
  std::string out, err;
};

// `binary` with `args` (each quoted for the shell), in folder `cwd` when given.
CliRun run_binary(const std::string& binary, const std::vector<std::string>& args,
                  const std::filesystem::path& cwd = {});

}  // namespace fragile::test
