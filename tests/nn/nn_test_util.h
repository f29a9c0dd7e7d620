// Helpers for tests/nn: generated data (tools/gen_onnx_models.py), .npy references, errors
// (EXPECT_ERROR_WITH, tests/support/expect_error.h).
#pragma once
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <unistd.h>
#include <string>

#include "core/tensor.h"
#include "nn/npy.h"
#include "tests/support/expect_error.h"
#include "tests/support/reference.h"

namespace fragile::nntest {

namespace fs = std::filesystem;

// ${FRAGILE_REFERENCE_DIR}/nn
inline fs::path data_dir() { return fs::path(test::reference_dir()) / "nn"; }
inline fs::path shared_path(const std::string& rel) { return fs::path(test::shared_dir()) / rel; }

inline const nlohmann::json& manifest() {
  static const nlohmann::json m = [] {
    const fs::path p = data_dir() / "manifest.json";
    std::ifstream f(p);
    if (!f) {
      throw std::runtime_error(p.string() + " is missing; run ctest (fixture generate_onnx_models) "
                               "or /usr/bin/python3 tools/gen_onnx_models.py --out " +
                               data_dir().string() + " --shared ../shared");
    }
    nlohmann::json j;
    f >> j;
    return j;
  }();
  return m;
}

// The manifest entry of a whole-model case ("squeezenet", "googlenet", ...).
inline const nlohmann::json& model_entry(const std::string& name) {
  for (const auto& e : manifest()["models"]) {
    if (e["name"] == name) return e;
  }
  throw std::runtime_error("no model '" + name + "' in manifest.json");
}

// A manifest path: absolute, or relative to data_dir().
inline fs::path data_path(const std::string& p) {
  fs::path q(p);
  return q.is_absolute() ? q : data_dir() / q;
}
inline Tensor npy(const std::string& p) { return nn::read_npy(data_path(p)); }

// max |a - b| / max |b|: the error relative to the reference's scale (element-wise relative
// error is meaningless where the reference crosses zero).
inline double rel_err(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(shape_str(a.shape()), shape_str(b.shape()));
  const std::vector<double> va = a.to_vector(), vb = b.to_vector();
  if (va.size() != vb.size()) return INFINITY;
  double num = 0, den = 0;
  for (size_t i = 0; i < va.size(); ++i) {
    if (!std::isfinite(va[i])) return INFINITY;
    num = std::max(num, std::abs(va[i] - vb[i]));
    den = std::max(den, std::abs(vb[i]));
  }
  return den > 0 ? num / den : num;
}

// A fresh empty folder for one test.
inline fs::path temp_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() /
                     ("fragile_nn_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

inline void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}
inline std::string read_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}


}  // namespace fragile::nntest
