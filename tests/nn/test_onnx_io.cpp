// Loading, validation, transforms and writing of ONNX models.
#include <onnx/onnx_pb.h>

#include <cmath>
#include <cstring>

#include "core/autograd.h"
#include "core/ops.h"
#include "nn/model_info.h"
#include "nn/onnx_io.h"
#include "nn/session.h"
#include "nn/transforms.h"
#include "tests/nn/nn_test_util.h"

namespace fragile::nntest {
namespace {

const fs::path& squeezenet_path() {
  static const fs::path p = shared_path("models/squeezenet1.0.onnx");
  return p;
}

std::map<std::string, int64_t> op_counts(const nn::Model& m) {
  std::map<std::string, int64_t> c;
  for (const auto& n : m.graph.nodes) c[n.op_type]++;
  return c;
}

TEST(OnnxIo, LoadsSqueezeNet) {
  nn::Model m = nn::load_onnx(squeezenet_path());
  EXPECT_EQ(m.opset(), 12);
  EXPECT_EQ(m.graph.nodes.size(), 67u);
  auto ins = m.graph.data_inputs();
  ASSERT_EQ(ins.size(), 1u);
  EXPECT_EQ(ins[0]->name, "data");
  EXPECT_EQ(ins[0]->shape_str(), "[N,3,227,227]");
  EXPECT_EQ(nn::score_output(m), "logits");
  EXPECT_EQ(m.meta("preprocess.channel_order").value_or(""), "BGR");
  auto counts = op_counts(m);
  EXPECT_EQ(counts["Conv"], 26);
  EXPECT_EQ(counts["Relu"], 26);
  EXPECT_EQ(counts["MaxPool"], 3);

  const nn::ModelSummary s = nn::summarize(m);
  EXPECT_EQ(s.parameters, 1248424);
  // ~861 M multiply-accumulates in the convolutions (SqueezeNet v1.0 at 227x227).
  EXPECT_GT(s.flops, 1'700'000'000);
  EXPECT_LT(s.flops, 1'800'000'000);
  const std::string text = nn::format_summary(m, s);
  EXPECT_NE(text.find("data  float32 [N,3,227,227]"), std::string::npos) << text;
  EXPECT_NE(text.find("Conv 26"), std::string::npos) << text;
}

TEST(OnnxIo, TruncatedOrCorruptFilesAreErrors) {
  const std::string bytes = read_bytes(squeezenet_path());
  for (double frac : {0.0, 1e-5, 0.01, 0.3, 0.5, 0.9, 0.999}) {
    const size_t n = static_cast<size_t>(frac * static_cast<double>(bytes.size()));
    SCOPED_TRACE(n);
    EXPECT_THROW(nn::parse_onnx(bytes.substr(0, n), fs::path("."), "truncated"), Error);
  }
  std::string garbage(4096, '\0');
  for (size_t i = 0; i < garbage.size(); ++i) garbage[i] = static_cast<char>((i * 7919) % 251);
  EXPECT_THROW(nn::parse_onnx(garbage, fs::path("."), "garbage"), Error);
  EXPECT_ERROR_WITH(nn::load_onnx("/nonexistent/model.onnx"), "no such file");
}

// Initializers whose meaning is ambiguous are refused, naming the tensor.
TEST(OnnxIo, AmbiguousInitializersAreErrors) {
  onnx::ModelProto mp;
  ASSERT_TRUE(mp.ParseFromString(read_bytes(
      fs::path(FRAGILE_SOURCE_DIR) / "tools" / "models" / "fashion_cnn.onnx")));
  ASSERT_GT(mp.graph().initializer_size(), 0);
  const std::string first = mp.graph().initializer(0).name();
  {
    onnx::ModelProto dup = mp;
    *dup.mutable_graph()->add_initializer() = dup.graph().initializer(0);
    const std::string expected = "two initializers are named '" + first + "'";
    EXPECT_ERROR_WITH(nn::parse_onnx(dup.SerializeAsString(), fs::path("."), "dup"),
                      expected.c_str());
  }
  {
    onnx::ModelProto both = mp;
    onnx::TensorProto* t = both.mutable_graph()->mutable_initializer(0);
    ASSERT_TRUE(t->has_raw_data());
    t->add_float_data(1.0f);
    EXPECT_ERROR_WITH(nn::parse_onnx(both.SerializeAsString(), fs::path("."), "both"),
                      first.c_str(), "both raw_data and typed data");
  }
  {
    onnx::ModelProto nan = mp;
    onnx::TensorProto* t = nan.mutable_graph()->mutable_initializer(0);
    std::string raw = t->raw_data();
    const float q = std::nanf("");
    std::memcpy(raw.data() + 4, &q, 4);
    t->set_raw_data(raw);
    EXPECT_ERROR_WITH(nn::parse_onnx(nan.SerializeAsString(), fs::path("."), "nan"),
                      first.c_str(), "holds NaN at element 1");
  }
}

// An integer tensor where an op computes in float (an int32 bias) names the kind it is, not
// fragile's storage of ONNX integers (int64), and the node.
TEST(OnnxIo, IntegerWhereFloatIsNeededIsAnError) {
  onnx::ModelProto mp;
  ASSERT_TRUE(mp.ParseFromString(read_bytes(
      fs::path(FRAGILE_SOURCE_DIR) / "tools" / "models" / "fashion_cnn.onnx")));
  onnx::TensorProto* bias = nullptr;
  for (onnx::TensorProto& t : *mp.mutable_graph()->mutable_initializer()) {
    if (t.dims_size() == 1) { bias = &t; break; }
  }
  ASSERT_NE(bias, nullptr);
  const int64_t n = bias->dims(0);
  bias->clear_raw_data();
  bias->set_data_type(onnx::TensorProto::INT32);
  for (int64_t i = 0; i < n; ++i) bias->add_int32_data(1);
  nn::Session s(nn::parse_onnx(mp.SerializeAsString(), fs::path("."), "int_bias"));
  EXPECT_ERROR_WITH(s.scores(Tensor::zeros({1, 1, 28, 28})), "must be a float tensor",
                    "got an integer tensor");
}

TEST(OnnxIo, UnknownOpNamesNodeAndOp) {
  nn::Model m = nn::load_onnx(data_path(manifest()["unknown_op_model"]));
  EXPECT_ERROR_WITH(nn::Session{m}, "mystery_node", "FooBar", "unsupported op");
}

TEST(OnnxIo, WrongInputShapeIsAnError) {
  nn::Session s(nn::load_onnx(squeezenet_path()));
  EXPECT_ERROR_WITH(s.scores(Tensor::zeros({1, 3, 224, 224})), "input 'data'",
                    "[N,3,227,227]", "[1,3,224,224]");
  EXPECT_ERROR_WITH(s.scores(Tensor::zeros({3, 227, 227})), "input 'data'");
}

TEST(OnnxIo, ScoreOutputFallsBackToSoftmaxInput) {
  nn::Model zoo = nn::load_onnx(data_path("models/inception_v1_zoo.onnx"));
  EXPECT_EQ(nn::score_output(zoo), "loss3/classifier_1");
  EXPECT_EQ(zoo.opset(), 7);
  EXPECT_EQ(zoo.graph.data_inputs().size(), 1u);  // initializers listed as inputs are not data
  nn::Model m = nn::load_onnx(squeezenet_path());
  m.metadata.clear();
  EXPECT_EQ(nn::score_output(m), "logits");  // input of the Softmax producing `prob`
  m.set_meta("score_output", "nope");
  EXPECT_ERROR_WITH(nn::score_output(m), "score_output", "nope");
}

TEST(OnnxIo, SoftplusSwapWritesStandardOnnxAndReadsBack) {
  nn::Model m = nn::load_onnx(squeezenet_path());
  EXPECT_EQ(nn::swap_relu_for_softplus(m, 10.0), 26);
  EXPECT_EQ(op_counts(m)["Relu"], 0);
  EXPECT_EQ(op_counts(m)["Softplus"], 26);

  nn::Model expanded = m;
  EXPECT_EQ(nn::expand_softplus_beta(expanded), 26);
  auto c = op_counts(expanded);
  EXPECT_EQ(c["Mul"], 26);
  EXPECT_EQ(c["Div"], 26);
  EXPECT_EQ(c["Softplus"], 26);
  for (const auto& n : expanded.graph.nodes) EXPECT_FALSE(n.has("beta"));

  // serialize (expands) -> parse (fuses): the same graph and the same function.
  nn::Model back = nn::parse_onnx(nn::serialize_onnx(m), fs::path("."));
  EXPECT_EQ(op_counts(back), op_counts(m));
  for (const auto& n : back.graph.nodes) {
    if (n.op_type == "Softplus") EXPECT_DOUBLE_EQ(n.get_float("beta", 1.0), 10.0);
  }
  EXPECT_EQ(back.meta("score_output").value_or(""), "logits");
  std::mt19937_64 rng(3);
  Tensor x = Tensor::randn({1, 3, 227, 227}, rng) * 50.0;
  NoGradGuard ng;
  EXPECT_LT(rel_err(nn::Session(back).scores(x), nn::Session(m).scores(x)), 1e-6);

  EXPECT_ERROR_WITH(nn::parse_activation("softplus:-1"), "positive");
  EXPECT_ERROR_WITH(nn::parse_activation("tanh"), "softplus:BETA");
  EXPECT_EQ(nn::parse_activation("relu"), std::nullopt);
  EXPECT_EQ(nn::parse_activation("softplus:2.5"), 2.5);
}

TEST(OnnxIo, SaveAndLoadKeepsTheFunction) {
  const fs::path d = temp_dir("save");
  nn::Model m = nn::load_onnx(data_path("models/googlenet.onnx"));
  EXPECT_EQ(op_counts(m)["BatchNormalization"], 57);
  EXPECT_EQ(nn::fold_batchnorm(m), 57);
  EXPECT_EQ(op_counts(m)["BatchNormalization"], 0);
  nn::save_onnx(m, d / "folded.onnx");
  nn::Model back = nn::load_onnx(d / "folded.onnx");
  EXPECT_EQ(op_counts(back), op_counts(m));
  EXPECT_EQ(back.meta("preprocess.size").value_or(""), "224");
  EXPECT_EQ(back.graph.inputs[0].shape_str(), "[N,3,224,224]");
  NoGradGuard ng;
  const auto& e = model_entry("googlenet");
  Tensor z = nn::Session(back).scores(npy(e["input"]));
  Tensor z_ref = npy(e["logits"]);
  EXPECT_LT(rel_err(z, z_ref), 1e-4);
}

}  // namespace
}  // namespace fragile::nntest
