// Whole models against PyTorch (tools/gen_onnx_models.py): the real SqueezeNet, torchvision
// GoogLeNet and Inception v3 exports, and an Inception v1 in the ONNX zoo's layout (LRN).
//   - logits of the model as exported: within 1e-4 (relative to max |logit|) in float32;
//   - with every ReLU swapped for softplus(10): the input gradient of the top-1 logit and the
//     HVP with a random direction, against the float64 truth. In float64 to 1e-9: that is the
//     correctness check. In float32 within 1e-3 of the truth where float32 can get that close;
//     where it cannot, within 3x of PyTorch's own float32 distance from the truth (measured by
//     the generator in the same run). The sharp second derivative of softplus(10) makes these
//     quantities ill-conditioned in float32 whoever computes them: for seeded GoogLeNet, PyTorch
//     float32 lands 3e-3 to 6e-3 from the truth in the gradient and 6e-3 to 1.4e-2 in the HVP,
//     depending only on its convolution algorithm and thread count.
#include <algorithm>
#include <iostream>

#include "core/autograd.h"
#include "core/functional.h"
#include "core/ops.h"
#include "nn/onnx_io.h"
#include "nn/session.h"
#include "nn/transforms.h"
#include "tests/nn/nn_test_util.h"

namespace fragile::nntest {
namespace {

struct Tolerances {
  double logits, grad, hvp;
};

// The float32 bar: `tol`, widened to 3x PyTorch's own float32 error when that is larger.
double float32_bar(const nlohmann::json& e, const char* key, double tol, DType dtype) {
  if (dtype != DType::Float32 || !e.contains(key)) return tol;
  return std::max(tol, 3.0 * e[key].get<double>());
}

void check_model(const std::string& name, DType dtype, Tolerances tol) {
  const auto& e = model_entry(name);
  nn::Model model = nn::load_onnx(data_path(e["model"]));
  const Tensor x = npy(e["input"]).to(dtype);
  const char* dt = dtype_name(dtype);

  {
    nn::Session s(model, dtype);
    NoGradGuard ng;
    const double err = rel_err(s.scores(x), npy(e["logits"]));
    std::cout << "[" << name << " " << dt << "] logits rel err " << err << "\n";
    EXPECT_LT(err, tol.logits);
  }

  nn::Model sp = model;
  EXPECT_GT(nn::swap_relu_for_softplus(sp, e["beta"].get<double>()), 0);
  nn::Session s(sp, dtype);
  const int64_t cls = e["cls"];
  Tensor sp_logits;
  const ScalarFn score = [&](const Tensor& xi) {
    Tensor z = s.scores(xi);
    sp_logits = z.detach();
    return sum(slice(z, 1, cls, cls + 1));
  };
  if (e.contains("hvp")) {
    const Tensor v = npy(e["vector"]).to(dtype);
    HvpResult r = hvp(score, x, v);
    const double eg = rel_err(r.gradient, npy(e["grad"])), eh = rel_err(r.hvp, npy(e["hvp"]));
    std::cout << "[" << name << " " << dt << "] softplus(10): grad rel err " << eg
              << ", hvp rel err " << eh << " (PyTorch float32: grad "
              << e.value("torch_f32_grad_err", -1.0) << ", hvp "
              << e.value("torch_f32_hvp_err", -1.0) << ")\n";
    EXPECT_LT(eg, float32_bar(e, "torch_f32_grad_err", tol.grad, dtype));
    EXPECT_LT(eh, float32_bar(e, "torch_f32_hvp_err", tol.hvp, dtype));
  } else {
    Tensor xl = x.detach().clone_data().set_requires_grad(true);
    Tensor g = grad({score(xl)}, {xl})[0];
    const double eg = rel_err(g, npy(e["grad"]));
    std::cout << "[" << name << " " << dt << "] softplus(10): grad rel err " << eg
              << " (PyTorch float32: " << e.value("torch_f32_grad_err", -1.0) << ")\n";
    EXPECT_LT(eg, float32_bar(e, "torch_f32_grad_err", tol.grad, dtype));
  }
  EXPECT_LT(rel_err(sp_logits, npy(e["sp_logits"])), tol.logits);
}

TEST(Models, SqueezeNetFloat32) { check_model("squeezenet", DType::Float32, {1e-4, 1e-3, 1e-3}); }
TEST(Models, SqueezeNetFloat64) { check_model("squeezenet", DType::Float64, {1e-10, 1e-9, 1e-9}); }
TEST(Models, InceptionV1ZooLayoutFloat32) {
  check_model("inception_v1_zoo", DType::Float32, {1e-4, 1e-3, 1e-3});
}
TEST(Models, InceptionV1ZooLayoutFloat64) {
  check_model("inception_v1_zoo", DType::Float64, {1e-10, 1e-9, 1e-9});
}
TEST(Models, GoogLeNetFloat32) { check_model("googlenet", DType::Float32, {1e-4, 1e-3, 1e-3}); }
// The torchvision references come from the PyTorch module itself, while the ONNX file holds
// the exporter's float32 weights (BatchNorm folded into Conv in float32 for Inception v3), so
// in float64 the two agree only to that rounding (measured: logits 5e-10 and 1.4e-7, Inception
// v3 HVP 1.3e-5).
TEST(Models, GoogLeNetFloat64) { check_model("googlenet", DType::Float64, {1e-8, 1e-7, 1e-7}); }
TEST(Models, InceptionV3Float32) {
  check_model("inception_v3", DType::Float32, {1e-4, 1e-3, 1e-3});
}
TEST(Models, InceptionV3Float64) {
  check_model("inception_v3", DType::Float64, {1e-6, 1e-5, 1e-4});
}

}  // namespace
}  // namespace fragile::nntest
