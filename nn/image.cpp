#include "nn/image.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/ops.h"
#include "nn/file_io.h"
#include "nn/jpeg_guard.h"
#include "nn/npy.h"

// stb_image, compiled here with internal linkage (no clash with any other copy), PNG and JPEG
// only, decoding from memory.
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wall"
#pragma GCC diagnostic ignored "-Wextra"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-function"
#endif
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_NO_STDIO
#define STBI_NO_LINEAR
#define STBI_NO_HDR
#define STBI_MAX_DIMENSIONS (1 << 15)
#include <stb/stb_image.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

namespace fragile::nn {
namespace {

namespace fs = std::filesystem;

// PyTorch's source index for align_corners=False: half-pixel centers, clamped at 0.
struct Tap {
  int64_t i0, i1;
  double w1;  // weight of i1
};
std::vector<Tap> taps(int64_t in, int64_t out, int64_t offset) {
  std::vector<Tap> t(out);
  const double scale = static_cast<double>(in) / static_cast<double>(out);
  for (int64_t o = 0; o < out; ++o) {
    double src = (static_cast<double>(o) + 0.5) * scale - 0.5;
    if (src < 0) src = 0;
    int64_t i0 = std::min<int64_t>(static_cast<int64_t>(src), in - 1);
    int64_t i1 = i0 + (i0 < in - 1 ? 1 : 0);
    t[o] = {i0 + offset, i1 + offset, src - static_cast<double>(i0)};
  }
  return t;
}

// mean / scale expanded to one value per model channel (1 for GRAY, 3 for RGB/BGR).
std::vector<double> per_channel(const std::vector<double>& v, int64_t channels, const char* what) {
  if (v.size() == 1) return std::vector<double>(channels, v[0]);
  FRAGILE_CHECK(static_cast<int64_t>(v.size()) == channels, what, " has ", v.size(),
                " values; the model's ", channels, "-channel input takes ",
                channels == 1 ? std::string("1 value") : "1 or " + std::to_string(channels) +
                                                             " values");
  return v;
}

// PIL's Image.convert("L") in integer arithmetic (ITU-R 601-2 luma, rounded), so a grayscale
// model sees exactly what its PIL-based training pipeline saw. Gray PNGs decode to R = G = B
// and map to themselves.
uint8_t luma(const uint8_t* rgb) {
  return static_cast<uint8_t>((rgb[0] * 19595u + rgb[1] * 38470u + rgb[2] * 7471u + 0x8000u) >> 16);
}

}  // namespace

Image decode_image(const std::string& bytes, const std::string& what) {
  FRAGILE_CHECK(!bytes.empty(), "cannot decode image ", what, ": empty file");
  FRAGILE_CHECK(bytes.size() < (size_t{1} << 31), "cannot decode image ", what, ": file too large");
  const std::string huffman = jpeg_huffman_problem(bytes);
  FRAGILE_CHECK(huffman.empty(), "cannot decode image ", what, ": a corrupt JPEG file (", huffman,
                ")");
  int w = 0, h = 0, comp = 0;
  stbi_uc* data = stbi_load_from_memory(reinterpret_cast<const stbi_uc*>(bytes.data()),
                                        static_cast<int>(bytes.size()), &w, &h, &comp, 3);
  if (!data) {
    // stb's reasons are terse codes ("outofdata", "first not IHDR", sometimes empty): say
    // what kind of file it is in words, keep the code for whoever debugs the file.
    const std::string reason = stbi_failure_reason() ? stbi_failure_reason() : "";
    const bool png = bytes.rfind("\x89PNG", 0) == 0;
    const bool jpeg = bytes.rfind("\xFF\xD8", 0) == 0;
    FRAGILE_CHECK(png || jpeg, "cannot decode image ", what,
                  ": not a PNG or JPEG file (the only image formats read; a preprocessed tensor "
                  "is read from a .npy file)");
    const char* kind = png ? "PNG" : "JPEG";
    FRAGILE_CHECK(reason != "too large", "cannot decode image ", what, ": a ", kind,
                  " too large to decode (at most ", STBI_MAX_DIMENSIONS,
                  " pixels a side and 2^30 bytes decoded), or corrupt");
    FRAGILE_CHECK(reason != "outofmem", "cannot decode image ", what,
                  ": out of memory while decoding the ", kind);
    FRAGILE_FAIL("cannot decode image ", what, ": a corrupt, truncated or unsupported ", kind,
                 " file (", bytes.size(), " bytes; decoder: ",
                 reason.empty() ? "no detail" : reason, ")");
  }
  Image img;
  img.width = w;
  img.height = h;
  img.rgb.assign(data, data + static_cast<size_t>(w) * h * 3);
  stbi_image_free(data);
  return img;
}

Image load_image(const fs::path& path) {
  return decode_image(read_file(path, "image"), "'" + path.string() + "'");
}

void Preprocess::validate() const {
  FRAGILE_CHECK(channel_order == "RGB" || channel_order == "BGR" || channel_order == "GRAY",
                "channel order must be RGB, BGR or GRAY, got '", channel_order, "'");
  const std::vector<double> m = per_channel(mean, channels(), "mean"),
                            s = per_channel(scale, channels(), "scale");
  for (size_t c = 0; c < m.size(); ++c) {
    // Inputs are float32: every pixel 0..255 must map to a finite, non-constant value.
    const double extreme = std::max(std::abs(0 - m[c]), std::abs(255 - m[c])) * std::abs(s[c]);
    FRAGILE_CHECK(std::isfinite(m[c]) && std::isfinite(s[c]) && s[c] != 0, "scale ", s[c],
                  " and mean ", m[c], " of channel ", c,
                  ": the scale must be a non-zero finite number and the mean finite");
    FRAGILE_CHECK(extreme < 1e30, "scale ", s[c], " and mean ", m[c], " of channel ", c,
                  " map pixels to values up to ", extreme, ", beyond float32's range");
  }
  FRAGILE_CHECK(size >= 0 && size <= kMaxInputSide, "size must be at most ", kMaxInputSide,
                " pixels (0: the image's own size), got ", size);
  FRAGILE_CHECK(resize == "center-crop-square,bilinear" || resize == "stretch,bilinear" ||
                    resize == "none",
                "resize must be 'center-crop-square,bilinear', 'stretch,bilinear' or 'none', got '",
                resize, "'");
  FRAGILE_CHECK(resize == "none" || size > 0, "resize '", resize, "' needs a size");
}

std::vector<double> parse_number_list(const std::string& text, const std::string& what) {
  std::vector<double> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    char* end = nullptr;
    const double v = std::strtod(item.c_str(), &end);
    FRAGILE_CHECK(end != item.c_str() && std::isfinite(v), what, ": '", text,
                  "' is not a comma-separated list of numbers");
    while (*end == ' ') ++end;
    FRAGILE_CHECK(*end == '\0', what, ": '", text, "' is not a comma-separated list of numbers");
    out.push_back(v);
  }
  FRAGILE_CHECK(!out.empty(), what, ": empty list");
  return out;
}

Preprocess preprocess_from_metadata(const Model& model) {
  Preprocess p;
  if (auto v = model.meta("preprocess.channel_order")) p.channel_order = *v;
  if (auto v = model.meta("preprocess.mean")) p.mean = parse_number_list(*v, "preprocess.mean");
  if (auto v = model.meta("preprocess.scale")) p.scale = parse_number_list(*v, "preprocess.scale");
  if (auto v = model.meta("preprocess.resize")) p.resize = *v;
  if (auto v = model.meta("preprocess.size")) {
    auto s = parse_number_list(*v, "preprocess.size");
    FRAGILE_CHECK(s.size() == 1 && s[0] >= 0 && s[0] <= kMaxInputSide && s[0] == std::floor(s[0]),
                  "metadata preprocess.size: '", *v, "' is not a side length of 0 (the image's "
                  "own) to ", kMaxInputSide, " pixels");
    p.size = static_cast<int64_t>(s[0]);
  } else {
    auto ins = model.graph.data_inputs();
    if (ins.size() == 1 && ins[0]->has_shape && ins[0]->dims.size() == 4 &&
        ins[0]->dims[2].value > 0 && ins[0]->dims[2].value == ins[0]->dims[3].value) {
      p.size = ins[0]->dims[2].value;
    }
  }
  return p;
}

Tensor preprocess_image(const Image& img, const Preprocess& p) {
  p.validate();
  FRAGILE_CHECK(img.width > 0 && img.height > 0 &&
                    img.rgb.size() == static_cast<size_t>(img.width * img.height * 3),
                "bad image buffer");
  const int64_t channels = p.channels();
  const std::vector<double> mean = per_channel(p.mean, channels, "mean"),
                            scale = per_channel(p.scale, channels, "scale");
  int64_t oh, ow;
  std::vector<Tap> ty, tx;
  if (p.resize == "none") {
    FRAGILE_CHECK(p.size == 0 || (img.width == p.size && img.height == p.size), "the image is ",
                  img.width, "x", img.height, " but the model takes ", p.size, "x", p.size,
                  " and resize is 'none'");
    oh = img.height;
    ow = img.width;
    ty = taps(oh, oh, 0);
    tx = taps(ow, ow, 0);
  } else {
    oh = ow = p.size;
    if (p.resize == "center-crop-square,bilinear") {
      const int64_t s = std::min(img.width, img.height);
      ty = taps(s, oh, (img.height - s) / 2);
      tx = taps(s, ow, (img.width - s) / 2);
    } else {
      ty = taps(img.height, oh, 0);
      tx = taps(img.width, ow, 0);
    }
  }
  Tensor out = Tensor::empty({1, channels, oh, ow}, DType::Float32);
  float* o = out.data<float>();
  const bool bgr = p.channel_order == "BGR";
  // A GRAY model reads one luma plane, made before resizing (as PIL converts, then resizes).
  std::vector<uint8_t> gray;
  if (channels == 1) {
    gray.resize(static_cast<size_t>(img.width * img.height));
    for (size_t i = 0; i < gray.size(); ++i) gray[i] = luma(&img.rgb[i * 3]);
  }
  const uint8_t* px = channels == 1 ? gray.data() : img.rgb.data();
  const int64_t pixel_stride = channels == 1 ? 1 : 3;
  const int64_t stride = img.width * pixel_stride;
  for (int64_t c = 0; c < channels; ++c) {
    const int64_t src_c = channels == 1 ? 0 : (bgr ? 2 - c : c);
    for (int64_t y = 0; y < oh; ++y) {
      const Tap& a = ty[y];
      for (int64_t x = 0; x < ow; ++x) {
        const Tap& b = tx[x];
        auto at = [&](int64_t yy, int64_t xx) {
          return static_cast<double>(px[yy * stride + xx * pixel_stride + src_c]);
        };
        const double top = (1 - b.w1) * at(a.i0, b.i0) + b.w1 * at(a.i0, b.i1);
        const double bot = (1 - b.w1) * at(a.i1, b.i0) + b.w1 * at(a.i1, b.i1);
        const double v = (1 - a.w1) * top + a.w1 * bot;
        o[(c * oh + y) * ow + x] = static_cast<float>((v - mean[c]) * scale[c]);
      }
    }
  }
  return out;
}

Tensor load_input(const fs::path& path, const Preprocess& p) {
  const std::string bytes = read_file(path, "input");
  const std::string what = "'" + path.string() + "'";
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
  const bool npy_magic = bytes.size() >= 6 && bytes.compare(0, 6, "\x93NUMPY", 6) == 0;
  FRAGILE_CHECK(npy_magic || ext != ".npy", what,
                ": not a .npy file (it does not start with the .npy magic bytes)");
  if (npy_magic) {
    Tensor t = parse_npy(bytes, what);
    FRAGILE_CHECK(t.numel() > 0, what, ": holds no values (shape ", shape_str(t.shape()), ")");
    FRAGILE_CHECK((t.dim() == 3 && (t.size(0) == 1 || t.size(0) == 3)) ||
                      (t.dim() == 4 && (t.size(1) == 1 || t.size(1) == 3)),
                  what, ": a .npy input must have shape [C,H,W] or [N,C,H,W] with C = 1 or 3, got ",
                  shape_str(t.shape()));
    return t.dim() == 3 ? reshape(t, {1, t.size(0), t.size(1), t.size(2)}) : t;
  }
  return preprocess_image(decode_image(bytes, what), p);
}

}  // namespace fragile::nn
