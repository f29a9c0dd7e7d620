// Model inputs from files: PNG/JPEG photographs (decoded by stb_image) preprocessed the way the
// model's metadata_props say, or .npy arrays that are already preprocessed.
//
// Preprocessing, in order: resize (center square crop, then bilinear to size x size with
// half-pixel centers, i.e. PyTorch's interpolate(align_corners=False) without antialiasing);
// channel order (RGB, BGR, or GRAY: one luma channel as PIL's convert("L") makes it);
// x = (pixel - mean[c]) * scale[c], pixels in 0..255, mean and scale given in the model's
// channel order. Metadata keys: preprocess.channel_order, preprocess.mean,
// preprocess.scale, preprocess.size, preprocess.resize.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "nn/graph.h"

namespace fragile::nn {

struct Image {
  int64_t width = 0, height = 0;
  std::vector<uint8_t> rgb;  // height x width x 3, row-major
};

// Throws "cannot open image ...: no such file" / "cannot decode image ...: <reason>".
Image load_image(const std::filesystem::path& path);
Image decode_image(const std::string& bytes, const std::string& what);

// The largest input side preprocessing produces: a 4096 x 4096 x 3 float32 image is 200 MB
// before any activation; larger sizes are typos (and would be allocated before any check).
inline constexpr int64_t kMaxInputSide = 4096;

struct Preprocess {
  std::string channel_order = "RGB";   // "RGB", "BGR" or "GRAY"
  std::vector<double> mean{0};         // 1 value or one per channel, pixel units, model order
  std::vector<double> scale{1};        // 1 value or one per channel
  int64_t size = 0;                    // output side; 0 = the image's own size (resize "none")
  // "center-crop-square,bilinear", "stretch,bilinear" (no crop), or "none" (the image must
  // already have the input size).
  std::string resize = "center-crop-square,bilinear";

  int64_t channels() const { return channel_order == "GRAY" ? 1 : 3; }
  void validate() const;  // throws on unknown values
};

// Defaults above, overridden by the model's metadata; when the metadata gives no size, the
// input's fixed spatial extent (if square) is used.
Preprocess preprocess_from_metadata(const Model& model);
// "104,117,123" -> {104, 117, 123}; throws naming `what` on a malformed list.
std::vector<double> parse_number_list(const std::string& text, const std::string& what);

// [1, C, S, S] float32, C = p.channels().
Tensor preprocess_image(const Image& image, const Preprocess& p);

// A .npy file (recognised by its magic bytes) is returned as is, [C,H,W] becoming [1,C,H,W]
// (C = 1 or 3; the session checks it against the model's input);
// anything else is decoded as an image and preprocessed. Throws for NaN/inf in a .npy.
Tensor load_input(const std::filesystem::path& path, const Preprocess& p);

}  // namespace fragile::nn
