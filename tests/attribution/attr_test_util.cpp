#include "tests/attribution/attr_test_util.h"

#include <algorithm>
#include <cmath>

#include "attribution/metrics.h"
#include "core/error.h"
#include "nn/onnx_io.h"

namespace fragile::test {

std::string attribution_reference(const std::string& name) {
  const std::string path = reference_dir() + "/attribution/" + name;
  if (!std::filesystem::exists(path)) {
    const bool metric = name == "metrics.json";
    throw ReferenceMissing(
        "reference file " + path + " is missing. Generate it with:\n  /usr/bin/python3 " +
        source_dir() + (metric ? "/tools/gen_metric_reference.py" : "/tools/gen_attribution_reference.py") +
        " --out " + reference_dir() + "/attribution" +
        (metric ? std::string() : " --shared " + shared_dir()) +
        "\n(ctest runs it as part of the `attribution_reference` fixture)");
  }
  return path;
}

const json& attribution_json(const std::string& name) {
  attribution_reference(name);  // a clear message when missing
  return reference_json("attribution/" + name);
}

nn::Session reference_session(const std::string& onnx_name, DType dtype) {
  return nn::Session(nn::load_onnx(attribution_reference(onnx_name)), dtype);
}

attr::Options options_from_json(const json& j, const Tensor& reference) {
  attr::Options o;
  if (j.contains("ig_steps")) o.ig_steps = j.at("ig_steps").get<int64_t>();
  if (j.contains("ig_batch")) o.ig_batch = j.at("ig_batch").get<int64_t>();
  if (j.contains("reference") && j.at("reference").get<bool>()) o.reference = reference;
  if (j.contains("default_reference")) {
    const std::string r = j.at("default_reference").get<std::string>();
    FRAGILE_CHECK(r == "zero" || r == "image_channel_mean", "unknown default_reference ", r);
    o.default_reference = r == "zero" ? attr::Options::DefaultReference::Zero
                                      : attr::Options::DefaultReference::ImageChannelMean;
  }
  if (j.contains("lrp_epsilon")) o.lrp_epsilon = j.at("lrp_epsilon").get<double>();
  if (j.contains("lrp_alpha")) o.lrp_alpha = j.at("lrp_alpha").get<double>();
  if (j.contains("lrp_beta")) o.lrp_beta = j.at("lrp_beta").get<double>();
  if (j.contains("lrp_low")) o.lrp_low = {j.at("lrp_low").get<double>()};
  if (j.contains("lrp_high")) o.lrp_high = {j.at("lrp_high").get<double>()};
  if (j.contains("smoothing_beta")) o.smoothing_beta = j.at("smoothing_beta").get<double>();
  return o;
}

std::vector<double> values(const Tensor& t) { return t.to_vector(); }

double spearman_of(const Tensor& a, const Tensor& b) {
  return attr::spearman(a.to_vector(), b.to_vector());
}

double max_error_rel_to_max(const Tensor& got, const Tensor& ref) {
  const std::vector<double> g = got.to_vector(), r = ref.to_vector();
  double err = 0, scale = 0;
  for (size_t i = 0; i < r.size(); ++i) {
    err = std::max(err, std::abs(g[i] - r[i]));
    scale = std::max(scale, std::abs(r[i]));
  }
  return err / std::max(scale, 1e-300);
}

}  // namespace fragile::test
