// Internal to attribution/: executes a Session's graph node by node, keeping every node's inputs
// and outputs (a "trace"), so that methods with a modified backward pass (DeepLIFT, guided
// backprop, LRP) can walk the graph in reverse with their own per-node rules, and methods that
// change the forward (beta-smoothing) can substitute a node.
//
// Nodes run through the Session's own ONNX op implementations (nn/onnx_ops.h), so a trace
// computes exactly what Session::run computes. Everything is recorded on the autograd tape when
// grad mode is on: a modified backward written with ops of core/ops.h on traced tensors is
// itself differentiable (create_graph), which is what attacks on these explanations need.
//
// Vocabulary: a "data value" depends on the model input x; nodes with a data input are "on the
// data path" (the only ones a backward walk visits). A "cotangent" is what flows backward: a
// gradient for gradient-like methods, a relevance for LRP.
#pragma once
#include <functional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/tensor.h"
#include "nn/graph.h"
#include "nn/session.h"

namespace fragile::attr::detail {

struct Step {
  const nn::Node* node = nullptr;
  std::vector<Tensor> inputs;   // undefined where an optional input is omitted
  std::vector<Tensor> outputs;
  std::vector<bool> data_input;  // per input: a data value
};

struct Trace {
  std::vector<Step> steps;  // executed nodes on the data path, topological order
  std::string input_name, score_name;
  Tensor input;  // the input as fed (session dtype)
  Tensor score;  // the score value as computed (any shape with leading N)
};

// Returns replacement outputs for a node, or an empty vector to run the node as the model says.
using NodeOverride =
    std::function<std::vector<Tensor>(const nn::Node& node, const std::vector<Tensor>& inputs)>;

// Runs the nodes the score output depends on with input x (converted to the session dtype).
Trace run_traced(const nn::Session& session, const Tensor& x, const NodeOverride& override = {});

// Runs one node on the given inputs with the Session's op implementation. Errors name the node.
std::vector<Tensor> run_node(const nn::Session& session, const nn::Node& node,
                             const std::vector<Tensor>& inputs);

// One-hot [N, K] of the explained classes (checked to lie in [0, K)), in like's dtype and device.
Tensor class_mask(const std::vector<int64_t>& classes, int64_t k, const Tensor& like);

// Score value -> [N, K].
Tensor scores_2d(const Tensor& score, int64_t n);

// Backward walk. `rule` receives a step and the cotangents of its outputs (undefined for outputs
// nothing flowed into) and returns one cotangent per input (undefined = none / not a data
// input). Cotangents reaching a value from several consumers are summed. `seed` is the
// cotangent of the score value (same shape). Returns the cotangent of the input (zeros when
// nothing reaches it).
using BackwardRule =
    std::function<std::vector<Tensor>(const Step& step, const std::vector<Tensor>& g_out)>;
Tensor propagate(const Trace& trace, const Tensor& seed, const BackwardRule& rule);

// The vector-Jacobian product of a node that is linear in its data inputs (Conv, Gemm, MatMul
// with a constant weight, pools, Concat, reshapes, Add, ...), evaluated with the node's own
// weights or with `weight_override` substituted for input 1 (and the bias dropped) when given.
// Max pooling routes to the argmax of the traced input. The result is differentiable in g_out
// (and in the weights) when create_graph is on; for a linear node it does not depend on the
// data inputs' values, so nothing of the second derivative is lost.
std::vector<Tensor> linear_vjp(const nn::Session& session, const Step& step,
                               const std::vector<Tensor>& g_out, bool create_graph,
                               const Tensor& weight_override = Tensor());

// The node's forward on substituted inputs (data input 0 -> a, weight -> w, bias omitted): the
// z of an LRP rule. Only for Conv, Gemm and MatMul.
Tensor weighted_forward(const nn::Session& session, const Step& step, const Tensor& a,
                        const Tensor& w);

// True for op types that are linear in their data inputs and have a constant weight (Conv, Gemm,
// MatMul): the layers LRP rules and the z^B rule apply to.
bool is_weighted(const std::string& op_type);
// True for op types whose backward is a plain routing/linear map (see linear_vjp).
bool is_linear(const std::string& op_type);
// True for element-wise activations with a rule in every modified-backward method.
bool is_activation(const std::string& op_type);

// Throws "<method>: node 'x' (Op) is not supported; supported: ..." unless `ok` holds.
void require_supported(bool ok, const char* method, const nn::Node& node,
                       const std::string& supported);

}  // namespace fragile::attr::detail
