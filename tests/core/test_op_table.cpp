// Every op of core/ops.h against PyTorch (ggml test-backend-ops style).
//
// tools/gen_reference.py writes ops.json: named cases, each with an "op", inputs, attributes,
// the forward output(s), a grad_output and the VJP of every input requiring grad. kOps below maps
// each op name to a lambda calling ops.h. The suite is parameterised by op name (known at
// compile time, so ctest can list the tests before the reference data exists); each test runs
// every case of that op:
//   Forward64 / Forward32   forward vs PyTorch: float64 at 1e-10, float32 at 1e-4 (relative)
//   Vjp64 / Vjp32           fragile::grad vs PyTorch's VJP: 1e-10 / 1e-3
//   Gradcheck               analytic VJPs vs float64 central differences
//   Gradgradcheck           second order w.r.t. the inputs and grad_output
// Non-differentiable ops (comparisons, one_hot) must produce outputs without history instead.
// OpTableCoverage fails when a derivative-table entry has no reference case, or ops.json names
// an op without a lambda here.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/ops.h"
#include "tests/support/gradcheck.h"
#include "tests/support/reference.h"

namespace fragile::test {
namespace {

using OpFn = std::function<std::vector<Tensor>(const std::vector<Tensor>& in, const json& attrs,
                                               DType fdt)>;

// ---- attribute readers ------------------------------------------------------------------------
double attr_double(const json& a, const char* key) {
  const json& v = a.at(key);
  if (v.is_string()) {
    const std::string s = v.get<std::string>();
    if (s == "inf") return std::numeric_limits<double>::infinity();
    if (s == "-inf") return -std::numeric_limits<double>::infinity();
    throw std::runtime_error(std::string("attribute ") + key + " = " + s);
  }
  return v.get<double>();
}
int64_t attr_int(const json& a, const char* key) { return a.at(key).get<int64_t>(); }
std::vector<int64_t> attr_ints(const json& a, const char* key) {
  return a.at(key).get<std::vector<int64_t>>();
}
std::array<int64_t, 2> pair_of(const json& a, const char* key) {
  auto v = attr_ints(a, key);
  return {v.at(0), v.at(1)};
}
Conv2dParams conv_params(const json& a) {
  Conv2dParams p;
  p.stride = pair_of(a, "stride");
  p.padding = pair_of(a, "padding");
  p.dilation = pair_of(a, "dilation");
  p.groups = attr_int(a, "groups");
  return p;
}
Pool2dParams pool_params(const json& a) {
  Pool2dParams p;
  p.kernel = pair_of(a, "kernel");
  p.stride = pair_of(a, "stride");
  p.padding = pair_of(a, "padding");
  p.ceil_mode = a.at("ceil_mode").get<bool>();
  p.count_include_pad = a.value("count_include_pad", true);
  return p;
}
DType dtype_attr(const json& a) {
  std::string s = a.at("dtype").get<std::string>();
  if (s == "float32") return DType::Float32;
  if (s == "float64") return DType::Float64;
  throw std::runtime_error("dtype attribute " + s);
}
Tensor maybe_permuted(const Tensor& x, const json& a) {
  return a.contains("pre_permute") ? permute(x, attr_ints(a, "pre_permute")) : x;
}

using V = std::vector<Tensor>;
#define OP(body) [](const V& in, const json& a, DType fdt) -> V { (void)a; (void)fdt; return {body}; }

// ---- the op table -----------------------------------------------------------------------------
const std::map<std::string, OpFn>& ops_table() {
  static const std::map<std::string, OpFn> table = {
      // element-wise
      {"add", OP(add(in[0], in[1]))},
      {"sub", OP(sub(in[0], in[1]))},
      {"mul", OP(mul(in[0], in[1]))},
      {"div", OP(div(in[0], in[1]))},
      {"pow", OP(pow(in[0], in[1]))},
      {"add_scalar", OP(add(in[0], attr_double(a, "scalar")))},
      {"sub_scalar", OP(sub(in[0], attr_double(a, "scalar")))},
      {"mul_scalar", OP(mul(in[0], attr_double(a, "scalar")))},
      {"div_scalar", OP(div(in[0], attr_double(a, "scalar")))},
      {"rsub", OP(rsub(attr_double(a, "scalar"), in[0]))},
      {"op_plus", OP(in[0] + in[1])},
      {"op_minus", OP(in[0] - in[1])},
      {"op_times", OP(in[0] * in[1])},
      {"op_divide", OP(in[0] / in[1])},
      {"op_negate", OP(-in[0])},
      {"op_times_scalar", OP(in[0] * attr_double(a, "scalar"))},
      {"op_scalar_times", OP(attr_double(a, "scalar") * in[0])},
      {"neg", OP(neg(in[0]))},
      {"exp", OP(exp(in[0]))},
      {"log", OP(log(in[0]))},
      {"abs", OP(abs(in[0]))},
      {"sign", OP(sign(in[0]))},
      {"sqrt", OP(sqrt(in[0]))},
      {"pow_scalar", OP(pow(in[0], attr_double(a, "exponent")))},
      {"clamp", OP(clamp(in[0], attr_double(a, "lo"), attr_double(a, "hi")))},
      {"where", OP(where(in[0], in[1], in[2]))},
      {"eq", OP(eq(in[0], in[1]))},
      {"ne", OP(ne(in[0], in[1]))},
      {"lt", OP(lt(in[0], in[1]))},
      {"le", OP(le(in[0], in[1]))},
      {"gt", OP(gt(in[0], in[1]))},
      {"ge", OP(ge(in[0], in[1]))},
      // reductions
      {"sum", OP(a.contains("dims") ? sum(in[0], attr_ints(a, "dims"), a.at("keepdim").get<bool>())
                                    : sum(in[0]))},
      {"mean", OP(a.contains("dims") ? mean(in[0], attr_ints(a, "dims"), a.at("keepdim").get<bool>())
                                     : mean(in[0]))},
      {"amax", OP(a.contains("dims") ? amax(in[0], attr_ints(a, "dims"), a.at("keepdim").get<bool>())
                                     : amax(in[0]))},
      {"sum_to", OP(sum_to(in[0], attr_ints(a, "shape")))},
      // shape and layout
      {"reshape", OP(reshape(maybe_permuted(in[0], a), attr_ints(a, "shape")))},
      {"flatten", OP(flatten(in[0], attr_int(a, "start_dim"), attr_int(a, "end_dim")))},
      {"permute", OP(permute(in[0], attr_ints(a, "dims")))},
      {"transpose", OP(transpose(in[0], attr_int(a, "d0"), attr_int(a, "d1")))},
      {"unsqueeze", OP(unsqueeze(in[0], attr_int(a, "dim")))},
      {"squeeze", OP(squeeze(in[0], attr_int(a, "dim")))},
      {"slice", OP(slice(in[0], attr_int(a, "dim"), attr_int(a, "start"), attr_int(a, "end"),
                         attr_int(a, "step")))},
      {"slice_backward", OP(slice_backward(in[0], attr_ints(a, "input_shape"), attr_int(a, "dim"),
                                           attr_int(a, "start"), attr_int(a, "end"),
                                           attr_int(a, "step")))},
      {"concat", OP(concat(in, attr_int(a, "dim")))},
      {"pad", OP(pad(in[0], attr_ints(a, "before"), attr_ints(a, "after"), attr_double(a, "value")))},
      {"expand", OP(expand(in[0], attr_ints(a, "shape")))},
      {"contiguous", OP(contiguous(maybe_permuted(in[0], a)))},
      {"to_dtype", OP(to_dtype(in[0], dtype_attr(a)))},
      {"dropout_inference", OP(dropout_inference(in[0]))},
      // linear algebra
      {"matmul", OP(matmul(in[0], in[1]))},
      {"linear", OP(linear(in[0], in[1], in.size() > 2 ? in[2] : Tensor()))},
      // convolution and pooling
      {"conv2d", OP(conv2d(in[0], in[1], in.size() > 2 ? in[2] : Tensor(), conv_params(a)))},
      {"conv2d_backward_input",
       OP(conv2d_backward_input(in[0], in[1], attr_ints(a, "input_shape"), conv_params(a)))},
      {"conv2d_backward_weight",
       OP(conv2d_backward_weight(in[0], in[1], attr_ints(a, "weight_shape"), conv_params(a)))},
      {"max_pool2d", OP(max_pool2d(in[0], pool_params(a)))},
      {"max_pool2d_with_indices",
       [](const V& in, const json& a, DType) -> V {
         PoolResult r = max_pool2d_with_indices(in[0], pool_params(a));
         return {r.values, r.indices};
       }},
      {"max_pool2d_backward",
       OP(max_pool2d_backward(in[0], in[1], attr_ints(a, "input_shape"), pool_params(a)))},
      {"max_pool2d_gather", OP(max_pool2d_gather(in[0], in[1], pool_params(a)))},
      {"avg_pool2d", OP(avg_pool2d(in[0], pool_params(a)))},
      {"avg_pool2d_backward",
       OP(avg_pool2d_backward(in[0], attr_ints(a, "input_shape"), pool_params(a)))},
      {"global_avg_pool2d", OP(global_avg_pool2d(in[0]))},
      // activations
      {"relu", OP(relu(in[0]))},
      {"relu_backward", OP(relu_backward(in[0], in[1]))},
      {"softplus", OP(softplus(in[0], attr_double(a, "beta")))},
      {"softplus_backward", OP(softplus_backward(in[0], in[1], attr_double(a, "beta")))},
      {"saliency_moments", OP(saliency_moments(in[0], in[1]))},
      {"saliency_moments_backward", OP(saliency_moments_backward(in[0], in[1], in[2], in[3]))},
      {"sigmoid", OP(sigmoid(in[0]))},
      {"tanh", OP(tanh(in[0]))},
      {"softmax", OP(softmax(in[0], attr_int(a, "dim")))},
      {"log_softmax", OP(log_softmax(in[0], attr_int(a, "dim")))},
      {"softmax_backward", OP(softmax_backward(in[0], in[1], attr_int(a, "dim")))},
      {"log_softmax_backward", OP(log_softmax_backward(in[0], in[1], attr_int(a, "dim")))},
      // losses and normalisation
      {"nll_loss", OP(nll_loss(in[0], in[1]))},
      {"cross_entropy", OP(cross_entropy(in[0], in[1]))},
      {"one_hot", OP(one_hot(in[0], attr_int(a, "num_classes"), fdt))},
      {"local_response_norm",
       OP(local_response_norm(in[0], attr_int(a, "size"), attr_double(a, "alpha"),
                              attr_double(a, "beta"), attr_double(a, "k")))},
      {"batch_norm_inference",
       OP(batch_norm_inference(in[0], in[1], in[2], in[3], in[4], attr_double(a, "eps")))},
  };
  return table;
}
#undef OP

// Derivative-table entries covered by reference cases of another name (none so far: every
// primitive is also an ops.h function of the same name).
const std::map<std::string, std::vector<std::string>> kTableAliases = {};

std::vector<std::string> op_names() {
  std::vector<std::string> names;
  for (const auto& [name, fn] : ops_table()) names.push_back(name);
  return names;
}

constexpr double kFwdTol64 = 1e-10;
constexpr double kFwdTol32 = 1e-4;
constexpr double kVjpTol64 = 1e-10;
constexpr double kVjpTol32 = 1e-3;

V run_op(const OpCase& c, const V& inputs, DType fdt) {
  return ops_table().at(c.op)(inputs, c.attrs, fdt);
}

class OpTable : public ::testing::TestWithParam<std::string> {
 protected:
  std::vector<const OpCase*> cases() {
    std::vector<const OpCase*> cs = op_cases_for(GetParam());
    EXPECT_FALSE(cs.empty()) << "op '" << GetParam() << "' has no case in ops.json "
                             << "(add one to tools/gen_reference.py)";
    return cs;
  }

  void check_forward(DType fdt, double tol) {
    for (const OpCase* c : cases()) {
      SCOPED_TRACE("case " + c->name);
      V outs = run_op(*c, c->input_tensors(fdt), fdt);
      ASSERT_EQ(outs.size(), c->outputs.size()) << c->name << ": number of outputs";
      for (size_t k = 0; k < outs.size(); ++k) {
        const RefTensor& ref = c->outputs[k];
        std::string what = c->name + " output " + std::to_string(k) + " (" + dtype_name(fdt) + ")";
        if (ref.is_int()) {
          ASSERT_EQ(outs[k].dtype(), DType::Int64) << what;
          ASSERT_EQ(outs[k].shape(), ref.shape) << what;
          EXPECT_EQ(outs[k].to_int64_vector(), ref.ints) << what;
          continue;
        }
        ASSERT_TRUE(is_floating(outs[k].dtype())) << what;
        DType expect = c->op == "to_dtype" ? dtype_attr(c->attrs) : fdt;
        EXPECT_EQ(outs[k].dtype(), expect) << what << ": dtype";
        double t = outs[k].dtype() == DType::Float32 ? std::max(tol, kFwdTol32) : tol;
        EXPECT_TRUE(all_close(outs[k], ref, t, what));
      }
    }
  }

  void check_vjp(DType fdt, double tol) {
    for (const OpCase* c : cases()) {
      SCOPED_TRACE("case " + c->name);
      V inputs = c->input_tensors(fdt);
      V outs = run_op(*c, inputs, fdt);
      if (!c->differentiable) {
        // Comparisons / one_hot: no history even when the inputs require grad.
        for (const Tensor& o : outs) {
          EXPECT_EQ(o.grad_fn(), nullptr) << c->name << ": a non-differentiable op recorded history";
          EXPECT_FALSE(o.requires_grad()) << c->name;
        }
        continue;
      }
      for (size_t k = 1; k < outs.size(); ++k)
        EXPECT_FALSE(outs[k].requires_grad()) << c->name << ": output " << k << " (indices)";
      V wrt;
      std::vector<size_t> idx;
      for (size_t i = 0; i < inputs.size(); ++i) {
        if (c->has_grad[i]) {
          wrt.push_back(inputs[i]);
          idx.push_back(i);
        }
      }
      ASSERT_FALSE(wrt.empty());
      ASSERT_TRUE(outs[0].requires_grad()) << c->name << ": output carries no history";
      Tensor go = c->grad_output.tensor(outs[0].dtype());
      V g = grad({outs[0]}, wrt, {go}, /*create_graph=*/false, /*allow_unused=*/true);
      for (size_t j = 0; j < idx.size(); ++j) {
        std::string what = c->name + " grad of input " + std::to_string(idx[j]) + " (" +
                           dtype_name(fdt) + ")";
        EXPECT_EQ(g[j].dtype(), inputs[idx[j]].dtype()) << what;
        EXPECT_TRUE(all_close(g[j], c->grads[idx[j]], tol, what));
        if (c->op == "sign") {
          for (double v : g[j].to_vector()) EXPECT_EQ(v, 0.0) << what << ": sign' must be 0";
        }
      }
    }
  }
};

TEST_P(OpTable, Forward64) { check_forward(DType::Float64, kFwdTol64); }
TEST_P(OpTable, Forward32) { check_forward(DType::Float32, kFwdTol32); }
TEST_P(OpTable, Vjp64) { check_vjp(DType::Float64, kVjpTol64); }
TEST_P(OpTable, Vjp32) { check_vjp(DType::Float32, kVjpTol32); }

TEST_P(OpTable, Gradcheck) {
  int checked = 0;
  for (const OpCase* c : cases()) {
    if (!c->gradcheck) continue;
    SCOPED_TRACE("case " + c->name);
    ++checked;
    auto fn = [c](const V& xs) { return run_op(*c, xs, DType::Float64)[0]; };
    EXPECT_TRUE(gradcheck(fn, c->input_tensors(DType::Float64))) << "case " << c->name;
  }
  // No case ran: legitimate only for a non-differentiable op (its outputs are checked to carry
  // no history in Vjp64). A differentiable op without a case here fails.
  if (checked == 0) {
    for (const OpCase* c : cases())
      EXPECT_FALSE(c->differentiable) << GetParam() << ": differentiable but no checked case";
  }
}

TEST_P(OpTable, Gradgradcheck) {
  int checked = 0;
  for (const OpCase* c : cases()) {
    if (!c->gradgradcheck) continue;
    SCOPED_TRACE("case " + c->name);
    ++checked;
    auto fn = [c](const V& xs) { return run_op(*c, xs, DType::Float64)[0]; };
    EXPECT_TRUE(gradgradcheck(fn, c->input_tensors(DType::Float64))) << "case " << c->name;
  }
  // No case ran: legitimate only for a non-differentiable op (its outputs are checked to carry
  // no history in Vjp64). A differentiable op without a case here fails.
  if (checked == 0) {
    for (const OpCase* c : cases())
      EXPECT_FALSE(c->differentiable) << GetParam() << ": differentiable but no checked case";
  }
}

INSTANTIATE_TEST_SUITE_P(Ops, OpTable, ::testing::ValuesIn(op_names()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

// ---- coverage ---------------------------------------------------------------------------------
TEST(OpTableCoverage, EveryDerivativeTableEntryHasAReferenceCase) {
  std::set<std::string> referenced;
  for (const OpCase& c : op_cases()) referenced.insert(c.op);
  std::vector<std::string> missing;
  for (const OpDef& def : derivative_table()) {
    bool covered = referenced.count(def.name) > 0;
    auto alias = kTableAliases.find(def.name);
    if (alias != kTableAliases.end())
      for (const std::string& n : alias->second) covered = covered || referenced.count(n) > 0;
    if (!covered) missing.push_back(def.name);
  }
  EXPECT_TRUE(missing.empty()) << "derivative-table entries without a PyTorch reference case in "
                               << "ops.json (add them to tools/gen_reference.py): "
                               << ::testing::PrintToString(missing);
}

TEST(OpTableCoverage, EveryReferenceOpHasALambda) {
  std::set<std::string> missing;
  for (const OpCase& c : op_cases())
    if (!ops_table().count(c.op)) missing.insert(c.op);
  EXPECT_TRUE(missing.empty()) << "ops in ops.json without a lambda in test_op_table.cpp: "
                               << ::testing::PrintToString(missing);
}

TEST(OpTableCoverage, EveryLambdaHasAReferenceCase) {
  std::set<std::string> referenced;
  for (const OpCase& c : op_cases()) referenced.insert(c.op);
  std::vector<std::string> missing;
  for (const auto& [name, fn] : ops_table())
    if (!referenced.count(name)) missing.push_back(name);
  EXPECT_TRUE(missing.empty()) << "lambdas without a case in ops.json: "
                               << ::testing::PrintToString(missing);
}

}  // namespace
}  // namespace fragile::test
