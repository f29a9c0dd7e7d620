// Every small op model of gen_onnx_models.py against the PyTorch interpreter there: forward
// values and the input gradient of sum(y * w), in float64 (tight) and float32.
#include "core/autograd.h"
#include "core/ops.h"
#include "nn/onnx_io.h"
#include "nn/session.h"
#include "nn/transforms.h"
#include "tests/nn/nn_test_util.h"

namespace fragile::nntest {
namespace {

struct OpResult {
  Tensor y, grad;
};

OpResult run_case(const nn::Model& model, const nlohmann::json& c, DType dtype) {
  nn::Session s(model, dtype);
  Tensor x = npy(c["input"]).to(dtype).set_requires_grad(true);
  Tensor y = s.run({{"x", x}}, {model.graph.outputs[0].name})[0];
  Tensor w = npy(c["weight"]).to(dtype);
  Tensor g = grad({sum(mul(y, w))}, {x})[0];
  return {y, g};
}

TEST(OnnxOps, EveryCaseMatchesPyTorch) {
  for (const auto& c : manifest()["ops"]) {
    const std::string name = c["name"];
    SCOPED_TRACE(name);
    try {
      nn::Model model = nn::load_onnx(data_path(c["model"]));
      const Tensor y_ref = npy(c["output"]), g_ref = npy(c["grad"]);
      OpResult r64 = run_case(model, c, DType::Float64);
      EXPECT_LT(rel_err(r64.y, y_ref), 1e-10);
      EXPECT_LT(rel_err(r64.grad, g_ref), 1e-10);
      OpResult r32 = run_case(model, c, DType::Float32);
      EXPECT_EQ(r32.y.dtype(), DType::Float32);
      EXPECT_LT(rel_err(r32.y, y_ref), 1e-5);
      EXPECT_LT(rel_err(r32.grad, g_ref), 1e-5);
    } catch (const std::exception& e) {
      ADD_FAILURE() << name << ": " << e.what();
    }
  }
}

TEST(OnnxOps, FoldBatchNormIntoPrecedingConv) {
  const nlohmann::json* c = nullptr;
  for (const auto& e : manifest()["ops"]) {
    if (e["name"] == "bn_fold") c = &e;
  }
  ASSERT_NE(c, nullptr);
  nn::Model model = nn::load_onnx(data_path((*c)["model"]));
  const size_t inits_before = model.graph.initializers.size();
  EXPECT_EQ(nn::fold_batchnorm(model), 2);  // the BatchNorm after Concat has no Conv to go into
  int64_t bn = 0, conv = 0;
  for (const auto& n : model.graph.nodes) {
    bn += n.op_type == "BatchNormalization";
    conv += n.op_type == "Conv";
  }
  EXPECT_EQ(bn, 1);
  EXPECT_EQ(conv, 2);
  EXPECT_LT(model.graph.initializers.size(), inits_before);  // old weights and BN stats pruned
  OpResult r = run_case(model, *c, DType::Float64);
  EXPECT_LT(rel_err(r.y, npy((*c)["output"])), 1e-10);
  EXPECT_LT(rel_err(r.grad, npy((*c)["grad"])), 1e-10);
  EXPECT_EQ(nn::fold_batchnorm(model), 0);
}

TEST(OnnxOps, ExternalDataMatchesInline) {
  const auto& m = manifest();
  nn::Model ext = nn::load_onnx(data_path(m["external_data_model"]));
  nn::Model inl = nn::load_onnx(data_path(m["external_data_same_as"]));
  ASSERT_EQ(ext.graph.initializers.size(), inl.graph.initializers.size());
  for (const auto& [name, tv] : inl.graph.initializers) {
    EXPECT_EQ(ext.graph.initializers.at(name).value.to_vector(), tv.value.to_vector()) << name;
  }
  // The data file missing or cut short: one error naming the tensor.
  const fs::path d = temp_dir("external");
  fs::copy_file(data_path(m["external_data_model"]), d / "external.onnx");
  EXPECT_ERROR_WITH(nn::load_onnx(d / "external.onnx"), "cannot open external data file");
  const std::string data = read_bytes(data_path("models/external.onnx.data"));
  write_bytes(d / "external.onnx.data", data.substr(0, data.size() - 10));
  EXPECT_ERROR_WITH(nn::load_onnx(d / "external.onnx"), "initializer", "external data");
}

}  // namespace
}  // namespace fragile::nntest
