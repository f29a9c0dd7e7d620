// A small softplus CNN built from ops.h against PyTorch (small_cnn.json from
// tools/gen_reference.py): logits, the input gradient of one class score (a saliency map) and
// the input-space Hessian-vector product of that score (what an explanation attack needs).
//
//   conv(3->4, 3x3, pad 1) -> softplus(beta) -> maxpool 2 -> conv(4->6, 3x3) -> softplus(beta)
//   -> global avg pool -> flatten -> linear(6->5);   score = logits[0, target]
//
// Error measure: max |got - ref| / max |ref| over the whole tensor; 1e-6 in float64, 1e-3 in
// float32. The achieved errors are printed and recorded as test properties.
#include <gtest/gtest.h>

#include <cstdio>
#include <iostream>
#include <string>

#include "core/autograd.h"
#include "core/functional.h"
#include "core/ops.h"
#include "tests/support/reference.h"

namespace fragile::test {
namespace {

struct SmallCnn {
  Tensor w1, b1, w2, b2, wf, bf;
  double beta = 10.0;
  int64_t target = 2;

  Tensor logits(const Tensor& x) const {
    Conv2dParams pad1;
    pad1.padding = {1, 1};
    Pool2dParams pool;  // 2x2, stride 2
    Tensor h = conv2d(x, w1, b1, pad1);
    h = softplus(h, beta);
    h = max_pool2d(h, pool);
    h = conv2d(h, w2, b2, Conv2dParams{});
    h = softplus(h, beta);
    h = flatten(global_avg_pool2d(h), 1);
    return linear(h, wf, bf);
  }
  Tensor score(const Tensor& x) const {
    return reshape(slice(slice(logits(x), 0, 0, 1), 1, target, target + 1), {});
  }
};

SmallCnn load_cnn(const json& doc, DType dt) {
  SmallCnn m;
  m.w1 = tensor_from_json(doc.at("conv1_weight"), dt);
  m.b1 = tensor_from_json(doc.at("conv1_bias"), dt);
  m.w2 = tensor_from_json(doc.at("conv2_weight"), dt);
  m.b2 = tensor_from_json(doc.at("conv2_bias"), dt);
  m.wf = tensor_from_json(doc.at("fc_weight"), dt);
  m.bf = tensor_from_json(doc.at("fc_bias"), dt);
  m.beta = doc.at("beta").get<double>();
  m.target = doc.at("target").get<int64_t>();
  return m;
}

void check_cnn(DType dt, double tol) {
  const json& doc = reference_json("small_cnn.json");
  SmallCnn m = load_cnn(doc, dt);
  Tensor x = tensor_from_json(doc.at("input"), dt);
  Tensor v = tensor_from_json(doc.at("v"), dt);
  Tensor ref_logits = tensor_from_json(doc.at("logits"));
  Tensor ref_grad = tensor_from_json(doc.at("input_grad"));
  Tensor ref_hvp = tensor_from_json(doc.at("hvp"));

  Tensor logits;
  {
    NoGradGuard no_grad;
    logits = m.logits(x);
  }
  HvpResult r = hvp([&](const Tensor& xi) { return m.score(xi); }, x, v);

  const std::string tag = dtype_name(dt);
  struct Item {
    const char* name;
    Tensor got, ref;
  } items[] = {{"logits", logits, ref_logits},
               {"input_grad", r.gradient, ref_grad},
               {"hvp", r.hvp, ref_hvp}};
  for (const Item& it : items) {
    ASSERT_EQ(it.got.shape(), it.ref.shape()) << it.name;
    EXPECT_EQ(it.got.dtype(), dt) << it.name;
    double err = max_relative_error(it.got, it.ref);
    std::cout << "[small_cnn " << tag << "] " << it.name << " relative error (max abs err / max |ref|) = "
              << err << "\n";
    ::testing::Test::RecordProperty(std::string(it.name) + "_rel_err_" + tag, std::to_string(err));
    EXPECT_LE(err, tol) << it.name << " (" << tag << ") relative error " << err << " > " << tol;
  }
  EXPECT_NEAR(r.value.item(), ref_logits.to_vector()[m.target], tol * 10 + 1e-12);
}

TEST(SmallCnnHvp, Float64MatchesPyTorch) { check_cnn(DType::Float64, 1e-6); }
TEST(SmallCnnHvp, Float32MatchesPyTorch) { check_cnn(DType::Float32, 1e-3); }

}  // namespace
}  // namespace fragile::test
