// The --device cuda code paths of sessions, attribution methods and attacks, run on a machine
// without a GPU through the emulated device of tests/support/emulated_cuda.h. The same CPU
// kernels compute on both sides, so a CUDA run must reproduce the CPU run *exactly*: any
// difference means the device path does something else (a dropped option, a tensor made on
// the wrong device and moved, a different op sequence). The emulator also refuses any kernel
// argument left on the host, and counts host<->device transfers, which an attack iteration
// must keep to the label and map read-backs of its judge.
// tests/gpu/test_cuda_models.cpp runs the same comparisons on a real GPU (label gpu).
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "attacks/attack.h"
#include "attribution/attribution.h"
#include "core/accumulation.h"
#include "core/autograd.h"
#include "core/functional.h"
#include "core/ops.h"
#include "nn/image.h"
#include "nn/model_info.h"
#include "nn/onnx_io.h"
#include "nn/session.h"
#include "tests/support/emulated_cuda.h"
#include "tests/support/reference.h"

namespace fragile {
namespace {

namespace fs = std::filesystem;
using testing::EmulatedCudaScope;

fs::path model_dir() { return fs::path(test::source_dir()) / "tools" / "models"; }

// Every element equal (NaN-free inputs); reports the first difference.
void expect_identical(const Tensor& cuda, const Tensor& cpu, const std::string& what) {
  ASSERT_TRUE(cuda.defined() && cpu.defined()) << what;
  ASSERT_EQ(cuda.shape(), cpu.shape()) << what;
  const std::vector<double> g = cuda.to_vector(), r = cpu.to_vector();
  for (size_t i = 0; i < r.size(); ++i) {
    ASSERT_EQ(g[i], r[i]) << what << ": first difference at element " << i;
  }
}

class EmulatedCudaModels : public ::testing::Test {
 protected:
  void SetUp() override {
    const fs::path path = model_dir() / "fashion_cnn.onnx";
    ASSERT_TRUE(fs::exists(path)) << path << " is missing (it ships with the repo)";
    model_ = nn::load_onnx(path);
    pre_ = nn::preprocess_from_metadata(model_);
    const fs::path samples = model_dir() / "fashion_samples";
    x_ = concat({nn::load_input((samples / "test0_ankle_boot.png").string(), pre_),
              nn::load_input((samples / "test1_pullover.png").string(), pre_)},
             0)
             .to(DType::Float64);
  }

  // The ReLU twin of the shipped softplus model: exercises the surrogate's ReLU swap.
  nn::Model relu_twin() const {
    nn::Model m = model_;
    for (nn::Node& node : m.graph.nodes) {
      if (node.op_type == "Softplus") {
        node.op_type = "Relu";
        node.attrs.clear();
      }
    }
    return m;
  }

  EmulatedCudaScope emulated_;
  nn::Model model_;
  nn::Preprocess pre_;
  Tensor x_;  // two samples, host, float64
};

TEST_F(EmulatedCudaModels, ScoresGradientsAndHvpsAreTheCpus) {
  const nn::Session cpu(model_, DType::Float64, Device::CPU);
  const nn::Session gpu(model_, DType::Float64, Device::CUDA);
  Tensor zc, zg;
  {
    NoGradGuard no_grad;
    zc = cpu.scores(x_);
    zg = gpu.scores(x_);  // a host input without history is copied over by run()
  }
  EXPECT_EQ(zg.device(), Device::CUDA);
  expect_identical(zg, zc, "scores");

  const Tensor v = Tensor::full(x_.shape(), 0.5, DType::Float64);
  auto score_of = [](const nn::Session& s) {
    return [&s](const Tensor& x) { return sum(slice(s.scores(x), 1, 3, 4)); };
  };
  const HvpResult hc = hvp(score_of(cpu), x_, v);
  const HvpResult hg = hvp(score_of(gpu), x_.to(Device::CUDA), v.to(Device::CUDA));
  EXPECT_EQ(hg.hvp.device(), Device::CUDA);
  expect_identical(hg.gradient, hc.gradient, "input gradient");
  expect_identical(hg.hvp, hc.hvp, "input HVP");
}

TEST_F(EmulatedCudaModels, EveryAttributionMethodIsTheCpus) {
  const nn::Session cpu(model_, DType::Float64, Device::CPU);
  const nn::Session gpu(model_, DType::Float64, Device::CUDA);
  const Tensor xg = x_.to(Device::CUDA);
  const std::vector<int64_t> classes = {9, 2};
  attr::Options opt;
  opt.ig_steps = 6;
  opt.ig_batch = 4;  // two chunks
  opt.smoothgrad_samples = 3;
  for (const std::string& name : attr::method_names()) {
    const attr::Method method = attr::method_from_name(name);
    for (const bool create_graph : {false, true}) {
      const Tensor mc = attr::saliency_map(attr::attribute(cpu, x_, classes, method, opt,
                                                           create_graph));
      const Tensor mg = attr::saliency_map(attr::attribute(gpu, xg, classes, method, opt,
                                                           create_graph));
      EXPECT_EQ(mg.device(), Device::CUDA) << name;
      expect_identical(mg, mc, name + (create_graph ? " (create_graph)" : ""));
    }
  }
}

// One attack on both devices with the same configuration; the results must agree exactly.
void expect_same_attack(const nn::Session& cpu, const nn::Session& gpu, const Tensor& x,
                        const attacks::PixelSpace& space, const attacks::Config& cfg,
                        const std::string& what) {
  attacks::Surrogate sc(cpu), sg(gpu);
  const attacks::Result rc = attacks::run_attack(cpu, sc, x, space, cfg);
  const attacks::Result rg = attacks::run_attack(gpu, sg, x.to(Device::CUDA), space, cfg);
  ASSERT_EQ(rg.images.size(), rc.images.size()) << what;
  EXPECT_EQ(rg.perturbed.device(), Device::CUDA) << what;
  // Gradient directions are recorded from iteration 2 on unless switched off; random sign
  // and the manipulation run eagerly.
  const bool recordable = cfg.cuda_graph && cfg.iters >= 2 &&
                          cfg.kind != attacks::Kind::RandomSign &&
                          cfg.kind != attacks::Kind::Manipulate;
  EXPECT_EQ(rg.graph_replayed, recordable) << what << ": " << rg.graph_failure;
  EXPECT_EQ(rg.iteration_mode, recordable ? "cuda graph" : "eager") << what;
  EXPECT_TRUE(rg.graph_failure.empty()) << what << ": " << rg.graph_failure;
  EXPECT_FALSE(rc.graph_replayed) << what;
  expect_identical(rg.perturbed, rc.perturbed, what + ": perturbed input");
  expect_identical(rg.map_after, rc.map_after, what + ": map after");
  for (size_t i = 0; i < rc.images.size(); ++i) {
    EXPECT_EQ(rg.images[i].best_iter, rc.images[i].best_iter) << what;
    EXPECT_EQ(rg.images[i].kept_iters, rc.images[i].kept_iters) << what;
    EXPECT_EQ(rg.images[i].label_after, rc.images[i].label_after) << what;
    EXPECT_EQ(rg.images[i].topk_intersection, rc.images[i].topk_intersection) << what;
  }
}

TEST_F(EmulatedCudaModels, EveryAttackIsTheCpus) {
  const nn::Session cpu(model_, DType::Float64, Device::CPU);
  const nn::Session gpu(model_, DType::Float64, Device::CUDA);
  const attacks::PixelSpace space = attacks::PixelSpace::from_preprocess(pre_, 1);
  for (const attacks::Kind kind : {attacks::Kind::RandomSign, attacks::Kind::TopK,
                                   attacks::Kind::MassCenter, attacks::Kind::Targeted}) {
    attacks::Config cfg;
    cfg.kind = kind;
    cfg.iters = 4;
    cfg.k = 100;
    cfg.surrogate_beta = 0;  // the softplus model is its own smooth network
    if (kind == attacks::Kind::Targeted) {
      std::vector<double> mask(28 * 28, 0.0);
      for (int i = 0; i < 10 * 28; ++i) mask[i] = 1.0;  // the top rows
      cfg.region = Tensor::from_vector(mask, {1, 28, 28}, DType::Float64);
    }
    for (const bool graph : {true, false}) {
      cfg.cuda_graph = graph;
      expect_same_attack(cpu, gpu, x_, space, cfg,
                         std::string(attacks::kind_name(kind)) + (graph ? "" : " (eager)"));
    }
  }
  // Integrated gradients through the attack (chunked IG inside the double backward).
  attacks::Config ig;
  ig.iters = 2;
  ig.k = 100;
  ig.surrogate_beta = 0;
  ig.method = attr::Method::IntegratedGradients;
  ig.attribution.ig_steps = 4;
  ig.attribution.ig_batch = 3;
  expect_same_attack(cpu, gpu, x_, space, ig, "topk, integrated gradients");
}

// Float64 sums of float32 products (core/accumulation.h) with --device cuda: every product
// reaches the device in float64, iterations 2..P are still one recording, and the attack is
// the CPU's under the same setting. (On the device the widening is device-to-device copies.)
TEST_F(EmulatedCudaModels, Float64SumsReachTheDeviceAndAreRecorded) {
  const nn::Session cpu(model_, DType::Float32, Device::CPU);
  const nn::Session gpu(model_, DType::Float32, Device::CUDA);
  const attacks::PixelSpace space = attacks::PixelSpace::from_preprocess(pre_, 1);
  const Tensor x = x_.to(DType::Float32);
  attacks::Config cfg;
  cfg.kind = attacks::Kind::TopK;
  cfg.iters = 4;
  cfg.k = 100;
  cfg.surrogate_beta = 0;
  emulated_.device().reset_products();
  {
    Float32SumsScope sums(Float32Sums::Float64);
    expect_same_attack(cpu, gpu, x, space, cfg, "topk, float64 sums");
  }
  EXPECT_GT(emulated_.device().products().float64, 0);
  EXPECT_EQ(emulated_.device().products().float32, 0);
  emulated_.device().reset_products();
  expect_same_attack(cpu, gpu, x, space, cfg, "topk, float32 sums");
  EXPECT_GT(emulated_.device().products().float32, 0);
  EXPECT_EQ(emulated_.device().products().float64, 0);
}

TEST_F(EmulatedCudaModels, SurrogateAndManipulationAreTheCpus) {
  const nn::Model relu = relu_twin();
  const nn::Session cpu(relu, DType::Float64, Device::CPU);
  const nn::Session gpu(relu, DType::Float64, Device::CUDA);
  const attacks::PixelSpace space = attacks::PixelSpace::from_preprocess(pre_, 1);
  attacks::Config topk;
  topk.iters = 3;
  topk.k = 100;
  topk.surrogate_beta = 10;  // the direction comes from a softplus(10) copy made on the device
  expect_same_attack(cpu, gpu, x_, space, topk, "topk with a softplus surrogate");

  attacks::Config manip;
  manip.kind = attacks::Kind::Manipulate;
  manip.iters = 3;
  manip.epsilon = 0;
  manip.lr = 2.0;
  manip.beta_growth = true;
  manip.k = 100;
  manip.target_map = attacks::saliency(cpu, x_, {2, 9}, manip);  // host map: run() moves it
  expect_same_attack(cpu, gpu, x_, space, manip, "manipulation");
}

// The real SqueezeNet adds what the small CNN lacks: ceil-mode max pooling, Concat, Dropout,
// global average pooling, 1000 classes, float32, and the ReLU -> softplus surrogate.
TEST(EmulatedCudaSqueezeNet, MapsAndAnAttackAreTheCpus) {
  EmulatedCudaScope emulated;
  const nn::Model model = nn::load_onnx(test::shared_dir() + "/models/squeezenet1.0.onnx");
  const nn::Preprocess pre = nn::preprocess_from_metadata(model);
  const Tensor x = nn::load_input(test::shared_dir() + "/images/chelsea.png", pre);
  const nn::Session cpu(model, DType::Float32, Device::CPU);
  const nn::Session gpu(model, DType::Float32, Device::CUDA);
  for (const attr::Method method : {attr::Method::Gradient, attr::Method::DeepLift,
                                    attr::Method::LrpAlphaBeta}) {
    const Tensor mc = attr::saliency_map(attr::attribute(cpu, x, {285}, method));
    const Tensor mg = attr::saliency_map(attr::attribute(gpu, x.to(Device::CUDA), {285}, method));
    expect_identical(mg, mc, attr::method_name(method));
  }
  attacks::Config cfg;
  cfg.iters = 2;
  cfg.surrogate_beta = 10;
  expect_same_attack(cpu, gpu, x, attacks::PixelSpace::from_preprocess(pre, 3), cfg,
                     "squeezenet topk");
}

// The emulator itself: a host tensor handed to a device kernel is refused, naming the kernel
// and the argument, as a real GPU would fault on the host pointer.
TEST(EmulatedCudaDevice, RefusesHostTensorsInDeviceKernels) {
  EmulatedCudaScope emulated;
  const Tensor host = Tensor::ones({4});
  Tensor out = Tensor::empty({4}, DType::Float32, Device::CUDA);
  try {
    cuda_backend().unary(UnaryOp::Neg, host, out, {});
    FAIL() << "a host input was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unary was given x on cpu"), std::string::npos)
        << e.what();
  }
  // And transfers are counted by direction.
  const Tensor d = host.to(Device::CUDA);
  (void)d.to_vector();
  EXPECT_EQ(emulated.device().counts().uploads, 1);
  EXPECT_EQ(emulated.device().counts().downloads, 1);
}

// The recorded iteration really is what replays: the emulator counts one recording per
// attack and one replay per iteration after the first.
TEST_F(EmulatedCudaModels, IterationsTwoToPAreOneRecordingReplayed) {
  const nn::Session gpu(model_, DType::Float64, Device::CUDA);
  const attacks::PixelSpace space = attacks::PixelSpace::from_preprocess(pre_, 1);
  attacks::Config cfg;
  cfg.kind = attacks::Kind::MassCenter;
  cfg.iters = 5;
  cfg.surrogate_beta = 0;
  cfg.k = 100;
  attacks::Surrogate s(gpu);
  const int64_t captures = emulated_.device().captures(), replays = emulated_.device().replays();
  const attacks::Result r = attacks::run_attack(gpu, s, x_.to(Device::CUDA), space, cfg);
  EXPECT_EQ(r.iteration_mode, "cuda graph");
  EXPECT_EQ(emulated_.device().captures() - captures, 1);
  EXPECT_EQ(emulated_.device().replays() - replays, 4);
}

// A computation that reads a value back to the host cannot be recorded: the capture fails
// cleanly, says why, and the attack code can run it eagerly instead.
TEST_F(EmulatedCudaModels, ARecordingThatTransfersFailsCleanly) {
  std::string why;
  const Tensor x = Tensor::ones({3}, DType::Float64, Device::CUDA);
  auto reads_back = [](const std::vector<Tensor>& in) {
    const double total = sum(in[0]).item();  // a device -> host transfer
    return std::vector<Tensor>{mul(in[0], total)};
  };
  EXPECT_EQ(cuda_backend().capture(reads_back, {x}, &why), nullptr);
  EXPECT_NE(why.find("device-to-host transfer"), std::string::npos) << why;
  EXPECT_FALSE(emulated_.device().recording);
  auto device_only = [](const std::vector<Tensor>& in) {
    return std::vector<Tensor>{mul(in[0], 2.0)};
  };
  const auto recorded = cuda_backend().capture(device_only, {x}, &why);
  ASSERT_NE(recorded, nullptr) << why;
  const std::vector<Tensor> out = recorded->run({Tensor::full({3}, 4.0, DType::Float64,
                                                              Device::CUDA)});
  EXPECT_EQ(out[0].to_vector(), (std::vector<double>{8, 8, 8}));
}

// Host<->device transfers per attack iteration, measured as the difference between a run of
// P + 4 and one of P iterations. The judge reads the labels back every iteration (and the map
// when an image kept its label): anything more is a stall a GPU would wait on, and would keep
// the iteration out of a CUDA Graph.
TEST_F(EmulatedCudaModels, AnAttackIterationTransfersOnlyWhatItsJudgeReads) {
  const nn::Session gpu(model_, DType::Float64, Device::CUDA);
  const attacks::PixelSpace space = attacks::PixelSpace::from_preprocess(pre_, 1);
  const Tensor xg = x_.to(Device::CUDA);
  for (const attacks::Kind kind : {attacks::Kind::TopK, attacks::Kind::MassCenter}) {
    auto transfers = [&](int64_t iters) {
      attacks::Config cfg;
      cfg.kind = kind;
      cfg.iters = iters;
      cfg.k = 100;
      cfg.surrogate_beta = 0;
      attacks::Surrogate s(gpu);
      emulated_.device().reset_counts();
      (void)attacks::run_attack(gpu, s, xg, space, cfg);
      return emulated_.device().counts();
    };
    (void)transfers(1);  // once-per-attack uploads made and cached (the class mask)
    const testing::TransferCounts a = transfers(2), b = transfers(6);
    const double uploads = (b.uploads - a.uploads) / 4.0;
    const double downloads = (b.downloads - a.downloads) / 4.0;
    std::printf("%s: per iteration %.2f uploads, %.2f downloads\n", attacks::kind_name(kind),
                uploads, downloads);
    EXPECT_EQ(uploads, 0.0) << attacks::kind_name(kind);
    EXPECT_LE(downloads, 2.0) << attacks::kind_name(kind);  // labels, then the map
  }
}

}  // namespace
}  // namespace fragile
