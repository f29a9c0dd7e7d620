// influence/ against PyTorch (influence.json from tools/gen_influence_reference.py, float64):
// objective, gradient, double-backward HVP, exact Hessian, per-example gradients, s_test and
// influences of a softplus MLP; and the mixed derivative grad_x[-grad_theta L(x)^T u] that drives
// the influence attack, through a tiny conv network. Also the gzip decoder on a stream made by
// Python's gzip module (dynamic Huffman blocks).
#include <gtest/gtest.h>

#include <filesystem>

#include "core/ops.h"
#include "influence/gzip.h"
#include "influence/influence.h"
#include "tests/support/reference.h"

namespace fragile::influence {
namespace {

using test::json;
using test::reference_json;

const json& doc() { return reference_json("influence.json"); }

Vec vec_of(const json& j) {
  const std::vector<double> v = test::ref_tensor(j).values;
  return Eigen::Map<const Vec>(v.data(), static_cast<int64_t>(v.size()));
}
Mat mat_of(const json& j) {
  const test::RefTensor r = test::ref_tensor(j);
  Mat m(r.shape.at(0), r.shape.at(1));
  for (int64_t i = 0; i < m.rows(); ++i)
    for (int64_t k = 0; k < m.cols(); ++k) m(i, k) = r.values[i * m.cols() + k];
  return m;
}
double rel(const Mat& got, const Mat& ref) {
  return (got - ref).cwiseAbs().maxCoeff() / ref.cwiseAbs().maxCoeff();
}

// The generator's MLP: cross-entropy of linear(softplus(linear(x))) per example.
struct RefMlp {
  Objective obj;
  Vec theta;
  Tensor xt;
  int64_t yt = 0;

  RefMlp() {
    const json& m = doc().at("mlp");
    const Tensor x = test::tensor_from_json(m.at("x"));
    const std::vector<int64_t> y = test::ref_tensor(m.at("y")).ints;
    xt = test::tensor_from_json(m.at("x_test"));
    yt = test::ref_tensor(m.at("y_test")).ints.at(0);
    for (const auto& s : m.at("param_shapes")) obj.layout.shapes.push_back(s.get<Shape>());
    obj.layout.dtype = DType::Float64;
    obj.num_examples = m.at("n").get<int64_t>();
    obj.l2 = m.at("l2").get<double>();
    theta = vec_of(m.at("theta"));
    obj.loss = [x, y](const std::vector<Tensor>& p, const std::vector<int64_t>& ex) {
      std::vector<Tensor> rows;
      std::vector<int64_t> labels;
      for (int64_t i : ex) {
        rows.push_back(slice(x, 0, i, i + 1));
        labels.push_back(y[static_cast<size_t>(i)]);
      }
      return cross_entropy_rows(concat(rows, 0), labels, p);
    };
  }
  static Tensor cross_entropy_rows(const Tensor& xs, const std::vector<int64_t>& labels,
                                   const std::vector<Tensor>& p) {
    const Tensor z = linear(softplus(linear(xs, p[0], p[1])), p[2], p[3]);
    const int64_t b = static_cast<int64_t>(labels.size());
    const Tensor mask = one_hot(Tensor::from_int64(labels, {b}), z.size(1), DType::Float64);
    return neg(sum(mul(log_softmax(z, 1), mask), {1}));
  }
};

TEST(InfluenceReference, ObjectiveGradientHvpHessianMatchPyTorch) {
  const json& m = doc().at("mlp");
  RefMlp p;
  const auto all = p.obj.all();
  EXPECT_NEAR(p.obj.value(p.theta, all), m.at("objective").get<double>(), 1e-12);
  EXPECT_LT(rel(p.obj.gradient(p.theta, all), vec_of(m.at("gradient"))), 1e-12);
  EXPECT_LT(rel(p.obj.hvp(p.theta, vec_of(m.at("v")), all), vec_of(m.at("hvp"))), 1e-12);
  EXPECT_LT(rel(p.obj.hessian(p.theta, all), mat_of(m.at("hessian"))), 1e-12);
  EXPECT_LT(rel(per_example_gradients(p.obj.loss, p.obj.layout, p.theta, all.examples),
                mat_of(m.at("per_example_gradients"))),
            1e-12);
}

TEST(InfluenceReference, InfluenceScoresMatchPyTorch) {
  const json& m = doc().at("mlp");
  RefMlp p;
  const Tensor xt = p.xt;
  const int64_t yt = p.yt;
  const ExampleLossFn test_loss = [&](const std::vector<Tensor>& params,
                                      const std::vector<int64_t>&) {
    return RefMlp::cross_entropy_rows(xt, {yt}, params);
  };
  const Vec gt = per_example_gradients(test_loss, p.obj.layout, p.theta, {0}).row(0).transpose();
  EXPECT_LT(rel(gt, vec_of(m.at("test_gradient"))), 1e-12);
  const Mat g = per_example_gradients(p.obj.loss, p.obj.layout, p.theta, p.obj.all().examples);
  for (IhvpMethod method : {IhvpMethod::Exact, IhvpMethod::Cg}) {
    IhvpOptions o;
    o.method = method;
    o.cg.tol = 1e-13;
    const Vec s = inverse_hvp(p.obj, p.theta, gt, o).x;
    EXPECT_LT(rel(s, vec_of(m.at("s_test"))), 1e-9) << ihvp_method_name(method);
    EXPECT_LT(rel(influence_from_s_test(g, s), vec_of(m.at("influence"))), 1e-9)
        << ihvp_method_name(method);
  }
}

TEST(InfluenceReference, AttackInputGradientMatchesPyTorch) {
  const json& a = doc().at("attack");
  const Tensor x = test::tensor_from_json(a.at("x"));
  const Tensor cw = test::tensor_from_json(a.at("conv_w")), cb = test::tensor_from_json(a.at("conv_b"));
  const Tensor fw = test::tensor_from_json(a.at("fc_w")), fb = test::tensor_from_json(a.at("fc_b"));
  const double y = a.at("y").get<double>();
  const std::vector<Tensor> params = {test::tensor_from_json(a.at("w")),
                                      test::tensor_from_json(a.at("b"))};
  const ParamLayout layout = ParamLayout::of(params);
  const InputLossFn loss = [&](const Tensor& xi, const std::vector<Tensor>& p) {
    const Tensor f = softplus(linear(flatten(softplus(conv2d(xi, cw, cb)), 1), fw, fb));
    return softplus(neg(mul(add(matmul(f, p[0]), p[1]), y)));
  };
  const Tensor gx =
      influence_input_gradient(loss, x, layout, layout.flatten(params), vec_of(a.at("u")));
  EXPECT_TRUE(test::all_close(gx, test::tensor_from_json(a.at("input_gradient")), 1e-10,
                              "influence attack input gradient"));
}

TEST(Gzip, DecodesPythonDynamicHuffmanStream) {
  const std::filesystem::path path = test::reference_dir() + "/influence_gzip.gz";
  (void)doc();  // throws ReferenceMissing with instructions when the references are absent
  ASSERT_TRUE(std::filesystem::exists(path)) << path << " missing";
  const std::vector<uint8_t> out = read_maybe_gzip(path);  // CRC-32 and size are checked inside
  ASSERT_EQ(out.size(), 20000u);
  const char* alphabet = "abcdefghij  \n";
  uint64_t state = 1;
  for (size_t i = 0; i < out.size(); ++i) {
    ASSERT_EQ(out[i], static_cast<uint8_t>(alphabet[(state >> 16) % 13])) << "byte " << i;
    state = (1103515245u * state + 12345u) % (uint64_t{1} << 31);
  }
}

}  // namespace
}  // namespace fragile::influence
