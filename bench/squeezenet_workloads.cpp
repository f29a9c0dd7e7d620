#include "bench/squeezenet_workloads.h"

#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <utility>

#include "attacks/dissimilarity.h"
#include "attribution/attribution.h"
#include "core/autograd.h"
#include "core/functional.h"
#include "core/ops.h"
#include "nn/onnx_io.h"
#include "nn/transforms.h"

namespace fragile::bench {

std::string squeezenet_path() {
  return std::string(FRAGILE_SHARED_DIR) + "/models/squeezenet1.0.onnx";
}

bool have_squeezenet(benchmark::State& st) {
  if (std::filesystem::exists(squeezenet_path())) return true;
  st.SkipWithError(("missing " + squeezenet_path()).c_str());
  return false;
}

const nn::Session& squeezenet(double beta, Device device) {
  static auto* cache = new std::map<std::pair<double, Device>, std::unique_ptr<nn::Session>>;
  auto& s = (*cache)[{beta, device}];
  if (!s) {
    nn::Model m = nn::load_onnx(squeezenet_path());
    if (beta > 0) nn::swap_relu_for_softplus(m, beta);
    s = std::make_unique<nn::Session>(std::move(m), DType::Float32, device);
  }
  return *s;
}

Tensor squeezenet_input(int64_t n, uint64_t seed, Device device) {
  std::mt19937_64 rng(seed);
  Tensor x = Tensor::uniform({n, 3, 227, 227}, -110.0, 130.0, rng, DType::Float32);
  return device == Device::CPU ? x : x.to(device);
}

namespace {
Tensor class_score(const nn::Session& s, const Tensor& x) {
  return sum(slice(s.scores(x), 1, kClass, kClass + 1));
}
}  // namespace

Tensor input_grad(const nn::Session& s, const Tensor& x) {
  return grad({class_score(s, x)}, {x})[0];
}

Tensor input_hvp(const nn::Session& s, const Tensor& x, const Tensor& v) {
  return hvp([&](const Tensor& in) { return class_score(s, in); }, x, v).hvp;
}

AttackStep::AttackStep(int64_t n, Device device)
    : surrogate_(squeezenet(1.0, device)), x0_(squeezenet_input(n, 1, device)),
      classes_(static_cast<size_t>(n), kClass) {
  const Tensor s0 = attr::saliency_map(
      attr::attribute(squeezenet(0, device), x0_, classes_, attr::Method::Gradient));
  // topk_mask sorts on the host and returns a host tensor: moved to the device once.
  top_ = attacks::topk_mask(s0, 1000);
  if (device != Device::CPU) top_ = top_.to(device);
}

Tensor AttackStep::direction() const {
  Tensor x = x0_.detach();
  x.set_requires_grad(true);
  const Tensor a = attr::attribute(surrogate_, x, classes_, attr::Method::Gradient, {},
                                   /*create_graph=*/true);
  return grad({sum(attacks::masked_mass_fused(a, top_))}, {x})[0];
}

}  // namespace fragile::bench
