#include "core/error.h"

#include <cstring>

namespace fragile::detail {

void throw_error(const char* file, int line, const std::string& msg) {
  // Only the file's base name: the message is for users, not for the build tree layout.
  const char* base = std::strrchr(file, '/');
  throw Error(msg + " [" + (base ? base + 1 : file) + ":" + std::to_string(line) + "]");
}

}  // namespace fragile::detail
