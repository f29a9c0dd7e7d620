// Models a fuzzer made (tools/fuzz.sh, tests/fuzz/fuzz_onnx.cpp), rebuilt here by hand in their
// smallest form: each once crashed or reached undefined behaviour; each must now run or end in
// a fragile::Error naming what is wrong. Run under ASan + UBSan by tools/test.sh.
#include <onnx/onnx_pb.h>

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "core/ops.h"
#include "nn/onnx_io.h"
#include "nn/session.h"
#include "tests/nn/nn_test_util.h"

namespace fragile::nntest {
namespace {

// One node of a test model; named "the_<op>". Its output is "y" if it is the last node, else
// "t<index>".
struct NodeSpec {
  std::string op;
  std::vector<std::string> inputs = {"x"};
  std::vector<std::pair<std::string, std::vector<int64_t>>> ints = {};
  std::vector<std::pair<std::string, int64_t>> int_attrs = {};
  std::vector<std::pair<std::string, std::string>> strings = {};
};
// An int64 initializer (a shape, pads, an operand).
struct IntInit {
  std::string name;
  std::vector<int64_t> values;
  std::vector<int64_t> dims;
};

// A model with float input x of `shape`, the nodes in order, int64 initializers, output y.
std::string model_of(const std::vector<int64_t>& shape, const std::vector<NodeSpec>& nodes,
                     const std::vector<IntInit>& inits = {}, int64_t opset = 7) {
  onnx::ModelProto m;
  m.set_ir_version(7);
  m.add_opset_import()->set_version(opset);
  onnx::GraphProto* g = m.mutable_graph();
  g->set_name("hostile");
  onnx::ValueInfoProto* in = g->add_input();
  in->set_name("x");
  in->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
  for (int64_t d : shape)
    in->mutable_type()->mutable_tensor_type()->mutable_shape()->add_dim()->set_dim_value(d);
  g->add_output()->set_name("y");
  g->mutable_output(0)->mutable_type()->mutable_tensor_type()->set_elem_type(
      onnx::TensorProto::FLOAT);
  for (const IntInit& i : inits) {
    onnx::TensorProto* t = g->add_initializer();
    t->set_name(i.name);
    t->set_data_type(onnx::TensorProto::INT64);
    for (int64_t d : i.dims) t->add_dims(d);
    for (int64_t v : i.values) t->add_int64_data(v);
  }
  for (size_t k = 0; k < nodes.size(); ++k) {
    const NodeSpec& spec = nodes[k];
    onnx::NodeProto* n = g->add_node();
    n->set_op_type(spec.op);
    n->set_name("the_" + spec.op);
    for (const std::string& name : spec.inputs) n->add_input(name);
    n->add_output(k + 1 == nodes.size() ? "y" : "t" + std::to_string(k));
    for (const auto& [name, ints] : spec.ints) {
      onnx::AttributeProto* a = n->add_attribute();
      a->set_name(name);
      a->set_type(onnx::AttributeProto::INTS);
      for (int64_t v : ints) a->add_ints(v);
    }
    for (const auto& [name, v] : spec.int_attrs) {
      onnx::AttributeProto* a = n->add_attribute();
      a->set_name(name);
      a->set_type(onnx::AttributeProto::INT);
      a->set_i(v);
    }
    for (const auto& [name, v] : spec.strings) {
      onnx::AttributeProto* a = n->add_attribute();
      a->set_name(name);
      a->set_type(onnx::AttributeProto::STRING);
      a->set_s(v);
    }
  }
  return m.SerializeAsString();
}

// A one-node model: float input x of `shape`, node `op` with int-list attributes, output y.
std::string one_node_model(const std::string& op, const std::vector<int64_t>& shape,
                           std::initializer_list<std::pair<const char*, std::vector<int64_t>>> attrs,
                           int64_t opset = 7) {
  NodeSpec n{.op = op};
  for (const auto& [name, ints] : attrs) n.ints.emplace_back(name, ints);
  return model_of(shape, {n}, {}, opset);
}

Tensor run_with(const std::string& bytes, const Tensor& x) {
  const nn::Session s(nn::parse_onnx(bytes, fs::path("."), "hostile"), DType::Float64);
  return s.run({{"x", x}}, {"y"})[0];
}
Tensor run_one(const std::string& bytes, const Shape& shape) {
  return run_with(bytes, Tensor::zeros(shape, DType::Float64));
}

// Pad amounts near 2^63: the padded extent wrapped around to a small one, and the copy of x
// wrote past the end of the output.
TEST(HostileModels, PaddingPastInt64IsAnError) {
  const int64_t huge = std::numeric_limits<int64_t>::max() - 1;
  EXPECT_ERROR_WITH(run_one(one_node_model("Pad", {1, 2}, {{"pads", {0, huge, 0, 5}}}), {1, 2}),
                    "the_Pad", "padding", "too large");
  // Fits int64 as an element count, not as bytes.
  EXPECT_ERROR_WITH(
      run_one(one_node_model("Pad", {1, 2}, {{"pads", {0, 7022836102411059203, 0, 0}}}), {1, 2}),
      "the_Pad", "is too large", "elements of 8 bytes");
}

// A pooled input with no channels: its padded copy is an empty window, whose offset was
// added to the null data pointer of an empty tensor.
TEST(HostileModels, PoolingAnEmptyInputGivesAnEmptyOutput) {
  const std::string m =
      one_node_model("MaxPool", {1, 0, 48, 18}, {{"kernel_shape", {3, 3}}, {"pads", {6, 3, 2, 1}}});
  const Tensor y = run_one(m, {1, 0, 48, 18});
  EXPECT_EQ(y.shape(), (Shape{1, 0, 54, 20}));
}

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
constexpr int64_t kMin = std::numeric_limits<int64_t>::min();

// SAME padding of an input extent near 2^63 (a tensor without elements; a Pad of one gives
// such extents): `in + stride - 1` wrapped, the padding came out 455 + 455 instead of 0, and
// padding the input by it overflowed. ONNX: out = ceil(in / stride), here with no padding.
TEST(HostileModels, SamePaddingOfAHugeEmptyInputIsExact) {
  const Shape shape{1, 0, kMax - 100, 1};
  const NodeSpec pool{.op = "MaxPool",
                      .ints = {{"kernel_shape", {1, 1}}, {"strides", {1000, 1}}},
                      .strings = {{"auto_pad", "SAME_UPPER"}}};
  const std::string m = model_of(shape, {pool});
  EXPECT_EQ(run_one(m, shape).shape(), (Shape{1, 0, 9223372036854776, 1}));
}

// Window attributes are bounded before the SAME padding and the padding test use them: a
// stride near 2^63 overflowed `in + stride - 1`, a dilation of 2^62 the kernel's span, and pads
// of 2^62 `2 * pad`; the error names the attribute and its value.
TEST(HostileModels, WindowAttributesPast2To31AreErrors) {
  const Shape shape{1, 1, 4, 4};
  const int64_t big = int64_t{1} << 62;
  auto pool = [&](std::vector<std::pair<std::string, std::vector<int64_t>>> ints) {
    return run_one(model_of(shape, {{.op = "MaxPool", .ints = std::move(ints),
                                     .strings = {{"auto_pad", "SAME_UPPER"}}}}),
                   shape);
  };
  EXPECT_ERROR_WITH(pool({{"kernel_shape", {3, 3}}, {"strides", {kMax, 1}}}), "the_MaxPool",
                    "attribute 'strides' has entry 9223372036854775807", "2^31 - 1");
  EXPECT_ERROR_WITH(pool({{"kernel_shape", {3, 3}}, {"dilations", {big, 1}}}), "the_MaxPool",
                    "attribute 'dilations' has entry 4611686018427387904", "2^31 - 1");
  EXPECT_ERROR_WITH(pool({{"kernel_shape", {big, 1}}}), "the_MaxPool",
                    "attribute 'kernel_shape' has entry 4611686018427387904", "2^31 - 1");
  EXPECT_ERROR_WITH(run_one(one_node_model("MaxPool", shape, {{"kernel_shape", {1, 1}},
                                                              {"pads", {big, 0, big, 0}}}),
                            shape),
                    "the_MaxPool", "attribute 'pads' has entry 4611686018427387904", "2^31 - 1");
  EXPECT_ERROR_WITH(run_one(one_node_model("MaxPool", shape, {{"kernel_shape", {0, 1}}}), shape),
                    "the_MaxPool", "attribute 'kernel_shape' has entry 0", "outside [1,");
  // The bound itself is accepted.
  EXPECT_EQ(pool({{"kernel_shape", {1, 1}}, {"strides", {0x7fffffff, 1}}}).shape(),
            (Shape{1, 1, 1, 4}));
}

// Reshape's -1: the other extents' product wrapped (3 * 6148914691236517206 = 2^64 + 2 became
// 2) and passed the divisibility test.
TEST(HostileModels, ReshapeTargetPastInt64IsAnError) {
  const std::string m =
      model_of({-1}, {{.op = "Reshape", .inputs = {"x", "shape"}}},
               {{"shape", {-1, 3, 6148914691236517206}, {3}}});
  for (int64_t n : {4, 0}) {
    EXPECT_ERROR_WITH(run_one(m, {n}), "the_Reshape", "target shape [-1,3,6148914691236517206]",
                      "multiply past 2^63");
  }
  const std::string ok =
      model_of({-1}, {{.op = "Reshape", .inputs = {"x", "shape"}}}, {{"shape", {2, -1}, {2}}});
  EXPECT_EQ(run_one(ok, {6}).shape(), (Shape{2, 3}));
}

// A negative pad of INT64_MIN crops 2^63 elements: negating it overflowed (to itself), the crop
// came out as nothing and the input passed through unchanged.
TEST(HostileModels, PadCropOfInt64MinIsAnError) {
  EXPECT_ERROR_WITH(run_one(one_node_model("Pad", {1, 2}, {{"pads", {0, kMin, 0, 0}}}), {1, 2}),
                    "the_Pad", "negative pads -9223372036854775808 (begin) and 0 (end)",
                    "crop more than the extent 2 of dimension 1");
  EXPECT_ERROR_WITH(run_one(one_node_model("Pad", {1, 2}, {{"pads", {0, 0, 0, kMin}}}), {1, 2}),
                    "the_Pad", "0 (begin) and -9223372036854775808 (end)", "crop more");
  EXPECT_ERROR_WITH(run_one(one_node_model("Pad", {1, 2}, {{"pads", {0, -1, 0, -2}}}), {1, 2}),
                    "the_Pad", "crop more than the extent 2");
  EXPECT_EQ(run_one(one_node_model("Pad", {1, 2}, {{"pads", {0, -1, 0, 0}}}), {1, 2}).shape(),
            (Shape{1, 1}));
}

// int64 values (shape arithmetic) past int64 wrapped around; INT64_MIN / -1 trapped (SIGFPE).
TEST(HostileModels, Int64ArithmeticPastInt64IsAnError) {
  auto binary = [](const char* op, int64_t a, int64_t b) {
    return run_one(model_of({1}, {{.op = op, .inputs = {"a", "b"}}},
                            {{"a", {a}, {1}}, {"b", {b}, {1}}}),
                   {1});
  };
  EXPECT_ERROR_WITH(binary("Add", kMax, 1), "the_Add", "int64 9223372036854775807 + 1 overflows");
  EXPECT_ERROR_WITH(binary("Sub", kMin, 1), "the_Sub", "int64 -9223372036854775808 - 1 overflows");
  EXPECT_ERROR_WITH(binary("Mul", int64_t{1} << 32, int64_t{1} << 31), "the_Mul",
                    "int64 4294967296 * 2147483648 overflows");
  EXPECT_ERROR_WITH(binary("Div", kMin, -1), "the_Div",
                    "int64 -9223372036854775808 / -1 overflows");
  EXPECT_EQ(binary("Mul", int64_t{1} << 32, int64_t{1} << 30).to_int64_vector(),
            (std::vector<int64_t>{int64_t{1} << 62}));
  EXPECT_EQ(binary("Div", kMin, 1).to_int64_vector(), (std::vector<int64_t>{kMin}));
}

// A float made an int64 (Cast; float shapes, pads and axes) past int64's range or NaN came out
// as INT64_MIN.
TEST(HostileModels, FloatPastInt64IsAnError) {
  const std::string m =
      model_of({1}, {{.op = "Cast", .int_attrs = {{"to", onnx::TensorProto::INT64}}}});
  EXPECT_ERROR_WITH(run_with(m, Tensor::full({1}, 1e30, DType::Float64)), "the_Cast",
                    "value 1e+30 does not fit in int64");
  EXPECT_ERROR_WITH(run_with(m, Tensor::full({1}, std::nan(""), DType::Float64)), "the_Cast",
                    "does not fit in int64");
  EXPECT_EQ(run_with(m, Tensor::full({1}, -0x1p63, DType::Float64)).to_int64_vector(),
            (std::vector<int64_t>{kMin}));
}

// ONNX Flatten of [0, 5] at axis 1 is [0, 5]: the inner extent, computed as numel / outer, was
// 0. Extents whose product is past 2^63 (a transposed tensor without elements) are an error.
TEST(HostileModels, FlattenOfAnEmptyTensorKeepsItsShape) {
  auto flat = [](const Shape& shape, int64_t axis) {
    return run_one(model_of(shape, {{.op = "Flatten", .int_attrs = {{"axis", axis}}}}), shape)
        .shape();
  };
  EXPECT_EQ(flat({0, 5}, 1), (Shape{0, 5}));
  EXPECT_EQ(flat({2, 0, 3}, 2), (Shape{0, 3}));
  EXPECT_EQ(flat({2, 0, 3}, 1), (Shape{2, 0}));
  EXPECT_EQ(flat({2, 0, 3}, 0), (Shape{1, 0}));
  EXPECT_EQ(flat({2, 0, 3}, 3), (Shape{0, 1}));
  const Shape shape{int64_t{1} << 62, 0, 8};
  const std::string m = model_of(shape, {{.op = "Transpose", .ints = {{"perm", {1, 0, 2}}}},
                                         {.op = "Flatten", .inputs = {"t0"}}});
  EXPECT_ERROR_WITH(run_one(m, shape), "the_Flatten",
                    "dimensions 1 to 2 of [0,4611686018427387904,8] multiply past 2^63");
}

// Concat: an input with a zero extent along the axis contributes nothing; extents along the
// axis that add up past 2^63 (inputs without elements) are an error (three of 2^63 - 1 wrapped
// to 2^63 - 3).
TEST(HostileModels, ConcatOfEmptyTensors) {
  const NodeSpec concat{.op = "Concat", .inputs = {"x", "x", "x"}, .int_attrs = {{"axis", 1}}};
  const std::string m = model_of({0, kMax}, {concat});
  EXPECT_ERROR_WITH(run_one(m, {0, kMax}), "the_Concat", "extents along dim 1 add up past 2^63");
  const std::string pad_then_concat =
      model_of({2, 3}, {{.op = "Pad", .ints = {{"pads", {0, -3, 0, 0}}}},
                        {.op = "Concat", .inputs = {"t0", "x", "t0"}, .int_attrs = {{"axis", 1}}}});
  const Tensor x = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {2, 3}, DType::Float64);
  const Tensor y = run_with(pad_then_concat, x);
  EXPECT_EQ(y.shape(), (Shape{2, 3}));
  EXPECT_EQ(y.to_vector(), x.to_vector());
}

// Softmax before opset 13 flattens to [prod(shape[:axis]), prod(shape[axis:])]. An input
// without elements keeps its shape; for [2^62, 8, 0] at axis 2 the outer product used to be
// formed unchecked and pass 2^63 (undefined behaviour, which UBSan reports in the ASan build).
TEST(HostileModels, SoftmaxBeforeOpset13OfAnEmptyTensorKeepsItsShape) {
  auto softmax = [](const Shape& shape, int64_t axis) {
    return run_one(model_of(shape, {{.op = "Softmax", .int_attrs = {{"axis", axis}}}}), shape)
        .shape();
  };
  EXPECT_EQ(softmax({0, 5}, 1), (Shape{0, 5}));
  EXPECT_EQ(softmax({2, 0, 3}, 1), (Shape{2, 0, 3}));
  EXPECT_EQ(softmax({2, 0, 3}, 0), (Shape{2, 0, 3}));
  EXPECT_EQ(softmax({2, 0, 3}, 3), (Shape{2, 0, 3}));
  const Shape huge{int64_t{1} << 62, 8, 0};
  EXPECT_EQ(softmax(huge, 2), huge);
  EXPECT_EQ(softmax(huge, 1), huge);
}

}  // namespace
}  // namespace fragile::nntest
