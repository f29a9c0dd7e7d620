// Models a fuzzer made (tools/fuzz.sh, tests/fuzz/fuzz_onnx.cpp), rebuilt here by hand in their
// smallest form: each once crashed or reached undefined behaviour; each must now run or end in
// a fragile::Error naming what is wrong. Run under ASan + UBSan by tools/test.sh.
#include <onnx/onnx_pb.h>

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

// A one-node model: float input x of `shape`, node `op` with int-list attributes, output y.
std::string one_node_model(const std::string& op, const std::vector<int64_t>& shape,
                           std::initializer_list<std::pair<const char*, std::vector<int64_t>>> attrs,
                           int64_t opset = 7) {
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
  onnx::NodeProto* n = g->add_node();
  n->set_op_type(op);
  n->set_name("the_" + op);
  n->add_input("x");
  n->add_output("y");
  for (const auto& [name, ints] : attrs) {
    onnx::AttributeProto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t v : ints) a->add_ints(v);
  }
  return m.SerializeAsString();
}

Tensor run_one(const std::string& bytes, const Shape& shape) {
  const nn::Session s(nn::parse_onnx(bytes, fs::path("."), "hostile"), DType::Float64);
  return s.run({{"x", Tensor::zeros(shape, DType::Float64)}}, {"y"})[0];
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

}  // namespace
}  // namespace fragile::nntest
