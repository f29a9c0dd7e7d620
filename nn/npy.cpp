#include "nn/npy.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <regex>
#include <sstream>

#include "core/error.h"
#include "nn/file_io.h"

namespace fragile::nn {
namespace {

constexpr char kMagic[] = "\x93NUMPY";

std::string header_value(const std::string& header, const std::string& key,
                         const std::string& what) {
  // 'key': value   where value is a quoted string, True/False, or a parenthesised tuple.
  std::regex re("['\"]" + key + "['\"]\\s*:\\s*('[^']*'|\"[^\"]*\"|True|False|\\([^)]*\\))");
  std::smatch m;
  FRAGILE_CHECK(std::regex_search(header, m, re), what, ": .npy header has no '", key, "'");
  return m[1].str();
}

}  // namespace

Tensor parse_npy(const std::string& bytes, const std::string& what, bool allow_non_finite) {
  FRAGILE_CHECK(bytes.size() >= 10 && bytes.compare(0, 6, kMagic, 6) == 0, what,
                ": not a .npy file (bad magic)");
  const int major = static_cast<unsigned char>(bytes[6]);
  size_t header_len = 0, offset = 0;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
    offset = 10;
  } else if (major == 2 || major == 3) {
    FRAGILE_CHECK(bytes.size() >= 12, what, ": truncated .npy header");
    for (int i = 3; i >= 0; --i) header_len = (header_len << 8) | static_cast<unsigned char>(bytes[8 + i]);
    offset = 12;
  } else {
    FRAGILE_FAIL(what, ": unsupported .npy format version ", major);
  }
  FRAGILE_CHECK(header_len <= bytes.size() - offset, what, ": truncated .npy header");
  const std::string header = bytes.substr(offset, header_len);
  offset += header_len;

  std::string descr = header_value(header, "descr", what);
  descr = descr.substr(1, descr.size() - 2);
  DType dtype;
  if (descr == "<f4" || descr == "=f4" || descr == "f4") {
    dtype = DType::Float32;
  } else if (descr == "<f8" || descr == "=f8" || descr == "f8") {
    dtype = DType::Float64;
  } else {
    FRAGILE_FAIL(what, ": unsupported .npy dtype '", descr,
                 "' (expected little-endian float32 '<f4' or float64 '<f8')");
  }
  FRAGILE_CHECK(header_value(header, "fortran_order", what) == "False", what,
                ": Fortran-order .npy arrays are not supported");
  const std::string tuple = header_value(header, "shape", what);
  Shape shape;
  {
    std::string inner = tuple.substr(1, tuple.size() - 2);
    std::stringstream ss(inner);
    std::string item;
    while (std::getline(ss, item, ',')) {
      size_t a = item.find_first_not_of(" \t"), b = item.find_last_not_of(" \tL");
      if (a == std::string::npos) continue;
      const std::string num = item.substr(a, b - a + 1);
      FRAGILE_CHECK(!num.empty() && num.find_first_not_of("0123456789") == std::string::npos,
                    what, ": bad .npy shape ", tuple);
      FRAGILE_CHECK(num.size() < 13, what, ": .npy shape too large ", tuple);
      shape.push_back(std::stoll(num));
    }
  }
  int64_t n = 1;
  for (int64_t d : shape) {
    FRAGILE_CHECK(d == 0 || n <= (int64_t{1} << 40) / d, what, ": .npy array too large");
    n *= d;
  }
  const size_t nbytes = static_cast<size_t>(n) * dtype_size(dtype);
  FRAGILE_CHECK(bytes.size() - offset >= nbytes, what, ": truncated .npy data (",
                bytes.size() - offset, " bytes for shape ", shape_str(shape), ", need ", nbytes,
                ")");
  FRAGILE_CHECK(bytes.size() - offset == nbytes, what, ": ", bytes.size() - offset - nbytes,
                " bytes after the data of shape ", shape_str(shape),
                " (not one .npy array: a .npz, or a concatenation?)");
  Tensor t = Tensor::empty(shape, dtype);
  if (nbytes) std::memcpy(t.raw_data(), bytes.data() + offset, nbytes);
  if (!allow_non_finite) {
    FRAGILE_DISPATCH_FLOAT(dtype, "read_npy", [&] {
      const scalar_t* p = t.data<scalar_t>();
      for (int64_t i = 0; i < n; ++i) {
        FRAGILE_CHECK(std::isfinite(p[i]), what, ": contains ", std::isnan(p[i]) ? "NaN" : "inf",
                      " at flat index ", i);
      }
    });
  }
  return t;
}

Tensor read_npy(const std::filesystem::path& path, bool allow_non_finite) {
  return parse_npy(read_file(path, ".npy file"), "'" + path.string() + "'", allow_non_finite);
}

std::string serialize_npy(const Tensor& t) {
  FRAGILE_CHECK(is_floating(t.dtype()), "write_npy: only float32/float64 tensors");
  std::string shape = "(";
  for (size_t i = 0; i < t.shape().size(); ++i) {
    shape += std::to_string(t.shape()[i]) + (t.shape().size() == 1 ? "," : "");
    if (i + 1 < t.shape().size()) shape += ", ";
  }
  shape += ")";
  std::string header = std::string("{'descr': '") +
                       (t.dtype() == DType::Float32 ? "<f4" : "<f8") +
                       "', 'fortran_order': False, 'shape': " + shape + ", }";
  // Pad with spaces so data starts at a multiple of 64 bytes; end with a newline.
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::string out(kMagic, 6);
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>((header.size() >> 8) & 0xff);
  out += header;
  Tensor c = t.detach().to(Device::CPU).clone_data();  // contiguous host copy
  out.append(static_cast<const char*>(c.raw_data()), c.numel() * dtype_size(c.dtype()));
  return out;
}

void write_npy(const std::filesystem::path& path, const Tensor& t) {
  write_file(path, serialize_npy(t));
}

}  // namespace fragile::nn
