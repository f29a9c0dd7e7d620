// Error reporting. Every failed check throws fragile::Error carrying the message and the
// source location, so a bad shape or a missing derivative is one clear line, never a crash.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace fragile {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
[[noreturn]] void throw_error(const char* file, int line, const std::string& msg);

template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

}  // namespace fragile

// FRAGILE_CHECK(cond, parts...) : throws fragile::Error("parts... (file:line)") when !cond.
#define FRAGILE_CHECK(cond, ...)                                                         \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      ::fragile::detail::throw_error(__FILE__, __LINE__,                                 \
                                     ::fragile::detail::concat(__VA_ARGS__));            \
    }                                                                                    \
  } while (0)

#define FRAGILE_FAIL(...) \
  ::fragile::detail::throw_error(__FILE__, __LINE__, ::fragile::detail::concat(__VA_ARGS__))
