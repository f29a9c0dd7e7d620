// libFuzzer target: arbitrary bytes as a .npy file (nn/npy.h). A malformed header, a wrong
// size or an unsupported dtype must end in fragile::Error, never a crash or a sanitizer report.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "nn/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  for (const bool allow_non_finite : {false, true}) {
    try {
      const fragile::Tensor t = fragile::nn::parse_npy(bytes, "fuzz input", allow_non_finite);
      (void)t.to_vector();
    } catch (const fragile::Error&) {
    }
  }
  return 0;
}
