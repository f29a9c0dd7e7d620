// Whole models, attribution methods and attacks with --device cuda against the same run on the
// CPU: the shipped Fashion-MNIST softplus CNN (tools/models) and the real SqueezeNet
// (../shared/models). Every test skips itself when no device is present (label `gpu`).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "attacks/attack.h"
#include "attribution/attribution.h"
#include "core/autograd.h"
#include "core/backend.h"
#include "tests/gpu/gpu_device.h"
#include "core/ops.h"
#include "nn/image.h"
#include "nn/model_info.h"
#include "nn/onnx_io.h"
#include "nn/session.h"

namespace fragile {
namespace {

const std::string kFashion = std::string(FRAGILE_SOURCE_DIR) + "/tools/models/fashion_cnn.onnx";
const std::string kSqueezeNet = std::string(FRAGILE_SHARED_DIR) + "/models/squeezenet1.0.onnx";

double max_rel_error(const Tensor& got, const Tensor& ref) {
  const std::vector<double> g = got.to_vector(), r = ref.to_vector();
  double err = 0, scale = 0;
  for (size_t i = 0; i < r.size(); ++i) {
    err = std::max(err, std::abs(g[i] - r[i]));
    scale = std::max(scale, std::abs(r[i]));
  }
  return err / std::max(scale, 1e-30);
}

struct Model {
  nn::Model model;
  nn::Preprocess pre;
  Tensor x;  // host, preprocessed
};

Model load(const std::string& path, const std::string& image) {
  Model m;
  m.model = nn::load_onnx(path);
  m.pre = nn::preprocess_from_metadata(m.model);
  m.x = nn::load_input(image, m.pre);
  return m;
}

TEST(CudaModels, SqueezeNetScoresGradientsAndMapsMatchTheCpu) {
  FRAGILE_REQUIRE_CUDA_DEVICE();
  Model m = load(kSqueezeNet, std::string(FRAGILE_SHARED_DIR) + "/images/chelsea.png");
  const nn::Session cpu(m.model, DType::Float32, Device::CPU);
  const nn::Session gpu(m.model, DType::Float32, Device::CUDA);
  Tensor zc, zg;
  {
    NoGradGuard no_grad;
    zc = cpu.scores(m.x);
    zg = gpu.scores(m.x);  // a host input without history is copied over by run()
  }
  EXPECT_EQ(zg.device(), Device::CUDA);
  EXPECT_LT(max_rel_error(zg, zc), 1e-4);
  const std::vector<int64_t> cls = attacks::predicted_labels(zc);
  EXPECT_EQ(attacks::predicted_labels(zg), cls);
  for (const attr::Method method :
       {attr::Method::Gradient, attr::Method::DeepLift, attr::Method::GuidedBackprop,
        attr::Method::LrpEpsilon}) {
    const Tensor mc = attr::saliency_map(attr::attribute(cpu, m.x, cls, method));
    const Tensor mg = attr::saliency_map(attr::attribute(gpu, m.x.to(Device::CUDA), cls, method));
    EXPECT_LT(max_rel_error(mg, mc), 1e-3) << attr::method_name(method);
  }
}

TEST(CudaModels, HostInputRequiringGradIsRefused) {
  FRAGILE_REQUIRE_CUDA_DEVICE();
  Model m = load(kFashion, std::string(FRAGILE_SOURCE_DIR) +
                               "/tools/models/fashion_samples/test0_ankle_boot.png");
  const nn::Session gpu(m.model, DType::Float32, Device::CUDA);
  Tensor x = m.x.clone_data();
  x.set_requires_grad(true);
  EXPECT_THROW(gpu.scores(x), Error);  // the copy would cut the gradient off
}

TEST(CudaModels, AttacksMatchTheCpu) {
  FRAGILE_REQUIRE_CUDA_DEVICE();
  Model m = load(kFashion, std::string(FRAGILE_SOURCE_DIR) +
                               "/tools/models/fashion_samples/test0_ankle_boot.png");
  const nn::Session cpu(m.model, DType::Float64, Device::CPU);
  const nn::Session gpu(m.model, DType::Float64, Device::CUDA);
  const attacks::PixelSpace space = attacks::PixelSpace::from_preprocess(m.pre, m.x.size(1));
  const Tensor x64 = m.x.to(DType::Float64);
  for (const attacks::Kind kind :
       {attacks::Kind::TopK, attacks::Kind::MassCenter, attacks::Kind::RandomSign}) {
    for (const bool graph : {true, false}) {
      const std::string what =
          std::string(attacks::kind_name(kind)) + (graph ? "" : " (--no-cuda-graph)");
      attacks::Config cfg;
      cfg.kind = kind;
      cfg.iters = 5;
      cfg.k = 100;
      cfg.cuda_graph = graph;
      attacks::Surrogate sc(cpu), sg(gpu);
      const attacks::Result rc = attacks::run_attack(cpu, sc, x64, space, cfg);
      const attacks::Result rg = attacks::run_attack(gpu, sg, x64.to(Device::CUDA), space, cfg);
      ASSERT_EQ(rg.images.size(), 1u);
      EXPECT_EQ(rg.perturbed.device(), Device::CUDA);
      // Gradient directions are recorded as a CUDA Graph from iteration 2 on (the emulated
      // device checks the bookkeeping on every machine; this is the real recording).
      const bool recordable = graph && kind != attacks::Kind::RandomSign;
      EXPECT_EQ(rg.graph_replayed, recordable) << what << ": " << rg.graph_failure;
      // Float64 on both: the same iterates (sign steps are discrete, so any drift would show).
      EXPECT_LT(max_rel_error(rg.perturbed, rc.perturbed), 1e-9) << what;
      EXPECT_EQ(rg.images[0].best_iter, rc.images[0].best_iter) << what;
      EXPECT_NEAR(rg.images[0].topk_intersection, rc.images[0].topk_intersection, 1e-12) << what;
    }
  }
}

// The SqueezeNet top-k attack in float32 (the configuration users run), recorded and eager:
// the same labels kept and nearly the same iterates (float32 sums may differ in order between
// cuDNN algorithms, so a rare sign flip of a near-zero direction component is tolerated).
TEST(CudaModels, SqueezeNetAttackRecordedAsAGraph) {
  FRAGILE_REQUIRE_CUDA_DEVICE();
  Model m = load(kSqueezeNet, std::string(FRAGILE_SHARED_DIR) + "/images/chelsea.png");
  const nn::Session gpu(m.model, DType::Float32, Device::CUDA);
  const attacks::PixelSpace space = attacks::PixelSpace::from_preprocess(m.pre, m.x.size(1));
  attacks::Result runs[2];
  for (const bool graph : {true, false}) {
    attacks::Config cfg;
    cfg.iters = 6;
    cfg.surrogate_beta = 1;
    cfg.cuda_graph = graph;
    attacks::Surrogate s(gpu);
    runs[graph] = attacks::run_attack(gpu, s, m.x.to(Device::CUDA), space, cfg);
  }
  EXPECT_TRUE(runs[1].graph_replayed) << runs[1].graph_failure;
  EXPECT_EQ(runs[1].images[0].label_after, runs[0].images[0].label_after);
  EXPECT_EQ(runs[1].images[0].kept_iters, runs[0].images[0].kept_iters);
  EXPECT_LT(max_rel_error(runs[1].perturbed, runs[0].perturbed), 1e-2);
}

}  // namespace
}  // namespace fragile
