// libFuzzer target: arbitrary bytes as a PNG or JPEG photo (nn/image.h), decoded and then
// preprocessed as SqueezeNet's metadata asks (crop, resize to 227, BGR, mean). A corrupt,
// truncated or huge image must end in fragile::Error, never a crash or a sanitizer report.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "nn/image.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const fragile::nn::Image image =
        fragile::nn::decode_image(std::string(reinterpret_cast<const char*>(data), size),
                                  "fuzz input");
    fragile::nn::Preprocess p;
    p.channel_order = "BGR";
    p.mean = {103.939, 116.779, 123.68};
    p.size = 31;  // small, so each input is quick; the resize path is the same
    (void)fragile::nn::preprocess_image(image, p);
  } catch (const fragile::Error&) {
  }
  return 0;
}
