#include "tools/cli_common.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <new>
#include <sstream>

#include "core/error.h"
#include "core/tensor.h"
#include "nn/onnx_io.h"
#include "nn/transforms.h"

namespace fragile::cli {

std::string one_line(std::string s) {
  for (char& c : s) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

void run_guarded(const std::function<int()>& body) {
  int status = 0;
  try {
    status = body();
  } catch (const CLI::Error&) {
    throw;  // CLI11's own (usage) errors keep their path
  } catch (const std::bad_alloc&) {
    std::cerr << "fragile: error: out of memory\n";
    status = 1;
  } catch (const std::exception& e) {
    std::cerr << "fragile: error: " << one_line(e.what()) << "\n";
    status = 1;
  }
  if (status != 0) throw CLI::RuntimeError(status);
}

void ModelOptions::add_to(CLI::App& app, bool with_model_flag) {
  if (with_model_flag) {
    app.add_option("-m,--model", path, "ONNX model file")->required();
  } else {
    app.add_option("MODEL", path, "ONNX model file")->required();
  }
  app.add_option("--dtype", dtype, "compute dtype: float32 or float64")
      ->capture_default_str();
  app.add_option("--activation", activation,
                 "replace every ReLU: 'softplus:BETA' (e.g. softplus:10) or 'relu' (keep)");
  app.add_flag("--fold-bn", fold_bn, "fold BatchNormalization into the preceding Conv");
  if (with_model_flag) {
    app.add_option("--device", device,
                   "where to compute: cpu, or cuda (the first GPU; needs a CUDA build)")
        ->capture_default_str();
    app.add_option("--accumulate", accumulate,
                   "with --dtype float32: what matrix products and convolutions sum in. "
                   "float32 (fast), or float64 (each product computed in float64 and rounded "
                   "once; SqueezeNet's HVP on a 2-core CPU: 6x more accurate in 1.3-1.5x the "
                   "time; a GPU's float64 runs at a fraction of its float32 speed)")
        ->capture_default_str();
  }
}

DType ModelOptions::engine_dtype() const {
  if (dtype == "float32") return DType::Float32;
  if (dtype == "float64") return DType::Float64;
  FRAGILE_FAIL("--dtype must be float32 or float64, got '", dtype, "'");
}

Device ModelOptions::engine_device() const {
  if (device == "cpu") return Device::CPU;
  if (device == "cuda") return Device::CUDA;
  FRAGILE_FAIL("--device must be cpu or cuda, got '", device, "'");
}

Float32Sums ModelOptions::engine_sums() const {
  if (accumulate == "float32") return Float32Sums::Float32;
  if (accumulate == "float64") return Float32Sums::Float64;
  FRAGILE_FAIL("--accumulate must be float32 or float64, got '", accumulate, "'");
}

void ModelOptions::validate() const {
  engine_dtype();
  engine_device();
  FRAGILE_CHECK(engine_sums() == Float32Sums::Float32 || engine_dtype() == DType::Float32,
                "--accumulate float64 is for --dtype float32 runs: with --dtype ", dtype,
                " every sum is already float64");
  if (!activation.empty()) nn::parse_activation(activation);
}

nn::Model ModelOptions::load(std::vector<std::string>* log) const {
  validate();  // before the (slow) load
  std::optional<double> beta;
  if (!activation.empty()) beta = nn::parse_activation(activation);
  nn::Model model = nn::load_onnx(path);
  set_float32_sums(engine_sums());
  if (fold_bn) {
    const int64_t n = nn::fold_batchnorm(model);
    if (log) log->push_back("folded " + std::to_string(n) + " BatchNormalization into Conv");
  }
  if (beta) {
    const int64_t n = nn::swap_relu_for_softplus(model, *beta);
    std::ostringstream os;
    os << "replaced " << n << " Relu with softplus(beta=" << *beta << ")";
    if (log) log->push_back(os.str());
  }
  return model;
}

void PreprocessOptions::add_to(CLI::App& app) {
  app.add_option("--channel-order", channel_order,
                 "override preprocess.channel_order: RGB, BGR or GRAY");
  app.add_option("--mean", mean, "override preprocess.mean: 1 or 3 values in 0..255 units, "
                                 "model channel order (e.g. 104,117,123)");
  app.add_option("--scale", scale,
                 "override preprocess.scale: x = (pixel - mean) * scale, 1 or 3 values");
  app.add_option("--size", size, "override preprocess.size: square input side in pixels");
  app.add_option("--resize", resize,
                 "override preprocess.resize: center-crop-square,bilinear | stretch,bilinear | none");
}

nn::Preprocess PreprocessOptions::resolve(const nn::Model& model) const {
  nn::Preprocess p = nn::preprocess_from_metadata(model);
  if (!channel_order.empty()) p.channel_order = channel_order;
  if (!mean.empty()) p.mean = nn::parse_number_list(mean, "--mean");
  if (!scale.empty()) p.scale = nn::parse_number_list(scale, "--scale");
  if (!resize.empty()) p.resize = resize;
  if (size) {
    FRAGILE_CHECK(*size > 0 && *size <= nn::kMaxInputSide, "--size must be 1 to ",
                  nn::kMaxInputSide, " pixels, got ", *size);
    p.size = *size;
  }
  p.validate();
  // A --size the model's fixed input cannot take: say so now, not after preprocessing. (Only
  // for an explicit --size: a .npy input is never resized, whatever the metadata says.)
  const auto ins = model.graph.data_inputs();
  if (size && p.resize != "none" && ins.size() == 1 && ins[0]->has_shape &&
      ins[0]->dims.size() == 4) {
    const int64_t h = ins[0]->dims[2].value, w = ins[0]->dims[3].value;
    FRAGILE_CHECK(h <= 0 || w <= 0 || (p.size == h && p.size == w), "the input size ", p.size,
                  " (--size) does not fit the model's input '",
                  ins[0]->name, "', which is ", h, " x ", w);
  }
  return p;
}

const CLI::Validator& class_index_check() {
  static const CLI::Validator check(
      [](std::string& s) -> std::string {
        char* end = nullptr;
        errno = 0;
        const long long c = std::strtoll(s.c_str(), &end, 10);
        if (end == s.c_str() || *end != '\0' || errno != 0) {
          return "must be a class index (an integer >= 0), got '" + s + "'";
        }
        return c < 0 ? "must be a class index >= 0, got " + s : std::string();
      },
      "CLASS");
  return check;
}

const CLI::Validator& seed_check() {
  static const CLI::Validator check(
      [](std::string& s) -> std::string {
        // Digits only (strtoull would accept "-1" and " 7"), and no overflow.
        const bool digits = !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
        errno = 0;
        std::strtoull(s.c_str(), nullptr, 10);
        if (!digits || errno != 0) {
          return "must be a seed: an integer from 0 to 2^64 - 1, got '" + s + "'";
        }
        return std::string();
      },
      "SEED");
  return check;
}

void require_finite(const Tensor& t, const std::string& what) {
  const std::vector<double> v = t.to_vector();
  for (size_t i = 0; i < v.size(); ++i) {
    FRAGILE_CHECK(std::isfinite(v[i]), what, ": ", std::isnan(v[i]) ? "NaN" : "inf",
                  " at element ", i, " of ", v.size(),
                  " (check the model's weights and the preprocessing, --mean and --scale)");
  }
}

void check_output_path(const std::string& flag, const std::string& path, bool allow_stdout) {
  namespace fs = std::filesystem;
  if (path.empty()) return;
  if (path == "-") {
    FRAGILE_CHECK(allow_stdout, flag, " needs a file name ('-' is not supported here)");
    return;
  }
  std::error_code ec;
  const fs::path p(path);
  FRAGILE_CHECK(!fs::is_directory(p, ec), flag, " '", path, "' is a folder, not a file");
  const fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
  if (!fs::exists(dir, ec)) fs::create_directories(dir, ec);
  FRAGILE_CHECK(fs::is_directory(dir, ec), flag, " '", path, "': cannot make folder '",
                dir.string(), "'", ec ? " (" + ec.message() + ")" : std::string());
  // access() rather than opening the file: a run that fails later leaves no empty file behind.
  const char* target = fs::exists(p, ec) ? path.c_str() : dir.c_str();
  FRAGILE_CHECK(::access(target, W_OK) == 0, flag, " '", path, "' cannot be written (",
                std::strerror(errno), ")");
}

std::vector<std::string> load_labels(const nn::Model& model) {
  std::vector<std::string> labels;
  auto name = model.meta("labels");
  if (!name || model.source.empty()) return labels;
  // Same rule as external data: a file inside the model's folder, never elsewhere.
  const std::filesystem::path rel(*name);
  bool inside = rel.is_relative() && !rel.empty();
  for (const auto& part : rel) inside = inside && part != "..";
  const std::filesystem::path file = model.source.parent_path() / rel;
  std::ifstream f;
  if (inside && std::filesystem::is_regular_file(file)) f.open(file);
  if (!f.is_open()) {
    std::cerr << "note: no class names: the model's labels file '" << *name << "' "
              << (inside ? "cannot be read next to the model"
                         : "is not a relative path inside the model's folder")
              << "\n";
    return labels;
  }
  std::string line;
  while (std::getline(f, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    labels.push_back(line);
  }
  return labels;
}

std::string label_of(const std::vector<std::string>& labels, int64_t c) {
  return c >= 0 && c < static_cast<int64_t>(labels.size()) ? labels[c] : std::string();
}

}  // namespace fragile::cli
