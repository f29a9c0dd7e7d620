#include "nn/file_io.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace fragile::nn {

namespace fs = std::filesystem;

std::string read_file(const fs::path& path, const std::string& what) {
  std::error_code ec;
  FRAGILE_CHECK(fs::exists(path, ec), "cannot open ", what, " '", path.string(),
                "': no such file");
  FRAGILE_CHECK(fs::is_regular_file(path, ec), "cannot open ", what, " '", path.string(),
                "': not a regular file");
  std::ifstream f(path, std::ios::binary);
  FRAGILE_CHECK(f.good(), "cannot open ", what, " '", path.string(), "': ", std::strerror(errno));
  std::ostringstream os;
  os << f.rdbuf();
  FRAGILE_CHECK(!f.bad(), "error reading ", what, " '", path.string(), "'");
  return os.str();
}

void write_file(const fs::path& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  FRAGILE_CHECK(f.good(), "cannot write '", path.string(), "': ", std::strerror(errno));
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  f.close();
  FRAGILE_CHECK(!f.fail(), "error writing '", path.string(), "'");
}

}  // namespace fragile::nn
