// NumPy .npy files (format versions 1.0-3.0): little-endian float32 ('<f4') or float64 ('<f8'),
// C order. Enough to exchange inputs, directions and results with Python.
#pragma once
#include <filesystem>
#include <string>

#include "core/tensor.h"

namespace fragile::nn {

// Reads a float32/float64 C-order array as a tensor of the same dtype. Throws one clear message
// for a missing, truncated or malformed file, an unsupported dtype or Fortran order, and (when
// `allow_non_finite` is false) for a NaN or infinity, naming the first bad index.
Tensor read_npy(const std::filesystem::path& path, bool allow_non_finite = false);
Tensor parse_npy(const std::string& bytes, const std::string& what, bool allow_non_finite = false);
// Writes the tensor's values in its dtype (float32 or float64), format version 1.0.
void write_npy(const std::filesystem::path& path, const Tensor& t);
std::string serialize_npy(const Tensor& t);

}  // namespace fragile::nn
