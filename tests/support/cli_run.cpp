#include "tests/support/cli_run.h"

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <iterator>

namespace fragile::test {
namespace {

namespace fs = std::filesystem;

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

}  // namespace

CliRun run_binary(const std::string& binary, const std::vector<std::string>& args,
                  const fs::path& cwd) {
  static std::atomic<int> counter{0};
  const int id = counter++;
  const fs::path d = fs::temp_directory_path() / ("fragile_cli_" + std::to_string(::getpid()));
  fs::create_directories(d);
  const fs::path out = d / ("out" + std::to_string(id)), err = d / ("err" + std::to_string(id));
  std::string cmd = cwd.empty() ? std::string() : "cd " + quote(cwd.string()) + " && ";
  cmd += quote(binary);
  for (const auto& a : args) cmd += " " + quote(a);
  cmd += " >" + quote(out.string()) + " 2>" + quote(err.string());
  const int rc = std::system(cmd.c_str());
  CliRun r;
  r.status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  r.out = slurp(out);
  r.err = slurp(err);
  fs::remove(out);
  fs::remove(err);
  return r;
}

}  // namespace fragile::test
