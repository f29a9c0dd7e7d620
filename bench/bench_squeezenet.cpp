// Google Benchmark: the workload fragile exists for, on the real SqueezeNet v1.0
// (../shared/models/squeezenet1.0.onnx, 227x227; the workloads are bench/squeezenet_workloads.h,
// shared with bench_cuda.cpp). bench/compare_pytorch.py runs the same graph in PyTorch.
//
//   squeezenet/input_grad/N    gradient of the top-1 logit w.r.t. the input (a saliency map)
//   squeezenet/input_hvp/N     H v of that logit, softplus(10) network (reverse over reverse)
//   squeezenet/input_hvp_float64_sums/N   the same with float32 products summed in float64
//                              (core/accumulation.h, `--accumulate float64`): its price
//   squeezenet/attack_step/N   one top-k attack direction: the gradient-method saliency map with
//                              create_graph, Ghorbani's normalisation and the mass on the
//                              original top-1000 pixels (the fused saliency_moments op), and its
//                              gradient w.r.t. the input (softplus(1) surrogate, as `fragile
//                              attack` takes its directions)
#include <benchmark/benchmark.h>

#include "bench/squeezenet_workloads.h"
#include "core/accumulation.h"
#include "core/tensor.h"

using namespace fragile;

namespace {

void squeezenet_input_grad(benchmark::State& st) {
  if (!bench::have_squeezenet(st)) return;
  const nn::Session& s = bench::squeezenet(0);
  Tensor x = bench::squeezenet_input(st.range(0), 1);
  x.set_requires_grad(true);
  for (auto _ : st) benchmark::DoNotOptimize(bench::input_grad(s, x).raw_data());
}

void squeezenet_input_hvp(benchmark::State& st) {
  if (!bench::have_squeezenet(st)) return;
  const nn::Session& s = bench::squeezenet(10.0);
  const Tensor x = bench::squeezenet_input(st.range(0), 1);
  const Tensor v = bench::squeezenet_input(st.range(0), 2);
  for (auto _ : st) benchmark::DoNotOptimize(bench::input_hvp(s, x, v).raw_data());
}

void squeezenet_input_hvp_float64_sums(benchmark::State& st) {
  Float32SumsScope sums(Float32Sums::Float64);
  squeezenet_input_hvp(st);
}

void squeezenet_attack_step(benchmark::State& st) {
  if (!bench::have_squeezenet(st)) return;
  const bench::AttackStep step(st.range(0), Device::CPU);
  for (auto _ : st) benchmark::DoNotOptimize(step.direction().raw_data());
}

}  // namespace

BENCHMARK(squeezenet_input_grad)->Name("squeezenet/input_grad")->Arg(1)->Arg(8)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(squeezenet_input_hvp)->Name("squeezenet/input_hvp")->Arg(1)->Arg(8)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(squeezenet_input_hvp_float64_sums)->Name("squeezenet/input_hvp_float64_sums")->Arg(1)
    ->Arg(8)->Unit(benchmark::kMillisecond);
BENCHMARK(squeezenet_attack_step)->Name("squeezenet/attack_step")->Arg(1)->Arg(8)
    ->Unit(benchmark::kMillisecond);
