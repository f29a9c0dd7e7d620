// Google Benchmark: the workload fragile exists for, on the real SqueezeNet v1.0
// (../shared/models/squeezenet1.0.onnx, 227x227). bench/compare_pytorch.py runs the same graph
// in PyTorch.
//
//   squeezenet/input_grad/N    gradient of the top-1 logit w.r.t. the input (a saliency map)
//   squeezenet/input_hvp/N     H v of that logit, softplus(10) network (reverse over reverse)
//   squeezenet/attack_step/N   one top-k attack direction: the gradient-method saliency map with
//                              create_graph, Ghorbani's normalisation and the mass on the
//                              original top-1000 pixels (the fused saliency_moments op), and its
//                              gradient w.r.t. the input (softplus(1) surrogate, as `fragile
//                              attack` takes its directions)
#include <benchmark/benchmark.h>

#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "attacks/dissimilarity.h"
#include "attribution/attribution.h"
#include "core/autograd.h"
#include "core/functional.h"
#include "core/ops.h"
#include "nn/onnx_io.h"
#include "nn/session.h"
#include "nn/transforms.h"

using namespace fragile;

namespace {

std::string model_path() { return std::string(FRAGILE_SHARED_DIR) + "/models/squeezenet1.0.onnx"; }

// The network with every ReLU swapped for softplus(beta) (beta <= 0: as in the file).
const nn::Session& squeezenet(double beta) {
  static std::map<double, std::unique_ptr<nn::Session>> cache;
  auto& s = cache[beta];
  if (!s) {
    nn::Model m = nn::load_onnx(model_path());
    if (beta > 0) nn::swap_relu_for_softplus(m, beta);
    s = std::make_unique<nn::Session>(std::move(m), DType::Float32);
  }
  return *s;
}

// Inputs in the preprocessed range of BGR-minus-mean images.
Tensor input(int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  return Tensor::uniform({n, 3, 227, 227}, -110.0, 130.0, rng, DType::Float32);
}

bool have_model(benchmark::State& st) {
  if (std::filesystem::exists(model_path())) return true;
  st.SkipWithError(("missing " + model_path()).c_str());
  return false;
}

void squeezenet_input_grad(benchmark::State& st) {
  if (!have_model(st)) return;
  const nn::Session& s = squeezenet(0);
  const int64_t n = st.range(0);
  Tensor x = input(n, 1);
  x.set_requires_grad(true);
  for (auto _ : st) {
    Tensor score = sum(slice(s.scores(x), 1, 285, 286));
    benchmark::DoNotOptimize(grad({score}, {x})[0].raw_data());
  }
}

void squeezenet_input_hvp(benchmark::State& st) {
  if (!have_model(st)) return;
  const nn::Session& s = squeezenet(10.0);
  const int64_t n = st.range(0);
  const Tensor x = input(n, 1), v = input(n, 2);
  auto score = [&](const Tensor& in) { return sum(slice(s.scores(in), 1, 285, 286)); };
  for (auto _ : st) benchmark::DoNotOptimize(hvp(score, x, v).hvp.raw_data());
}

void squeezenet_attack_step(benchmark::State& st) {
  if (!have_model(st)) return;
  const nn::Session& original = squeezenet(0);
  const nn::Session& surrogate = squeezenet(1.0);
  const int64_t n = st.range(0);
  const Tensor x0 = input(n, 1);
  const std::vector<int64_t> classes(static_cast<size_t>(n), 285);
  const Tensor s0 = attr::saliency_map(
      attr::attribute(original, x0, classes, attr::Method::Gradient));
  const Tensor top = attacks::topk_mask(s0, 1000);
  for (auto _ : st) {
    Tensor x = x0.detach();
    x.set_requires_grad(true);
    // As `fragile attack` computes it: the fused normalisation + top-k mass.
    Tensor a = attr::attribute(surrogate, x, classes, attr::Method::Gradient, {},
                               /*create_graph=*/true);
    Tensor loss = sum(attacks::masked_mass_fused(a, top));
    benchmark::DoNotOptimize(grad({loss}, {x})[0].raw_data());
  }
}

}  // namespace

BENCHMARK(squeezenet_input_grad)->Name("squeezenet/input_grad")->Arg(1)->Arg(8)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(squeezenet_input_hvp)->Name("squeezenet/input_hvp")->Arg(1)->Arg(8)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(squeezenet_attack_step)->Name("squeezenet/attack_step")->Arg(1)->Arg(8)
    ->Unit(benchmark::kMillisecond);
