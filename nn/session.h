// Executes an imported graph with the engine's ops (core/ops.h). Every op records itself on the
// autograd tape, so a Session's outputs can be differentiated to any order: input gradients,
// saliency maps, Hessian-vector products, attacks on explanations.
//
// Vocabulary: a "value" is a named tensor of the graph (graph input, initializer, or node
// output); the "score output" is the value holding pre-softmax class scores [N, classes].
#pragma once
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "nn/graph.h"

namespace fragile::nn {

// Called after each executed node with its inputs (undefined for omitted optional ones) and
// outputs. Used for FLOP counting and debugging.
using NodeHook = std::function<void(const Node& node, const std::vector<Tensor>& inputs,
                                    const std::vector<Tensor>& outputs)>;

class Session {
 public:
  // Float initializers are converted to `dtype` (float32 or float64) and copied to `device`
  // once, here; computation, inputs and outputs are in `dtype` on `device`. Throws, naming the
  // node, for any op the runtime lacks (and, for Device::CUDA, when no GPU is usable).
  explicit Session(Model model, DType dtype = DType::Float32, Device device = Device::CPU);

  const Model& model() const { return model_; }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  // The model's only data input (throws when it has several).
  const ValueInfo& input() const;
  // See nn/transforms.h score_output().
  const std::string& score_name() const { return score_; }

  // Computes `outputs` from `feeds` (name -> tensor), running only the nodes they need.
  // Feeds are checked against the declared input shapes and converted to dtype(). A feed on
  // another device is copied to device() when it carries no autograd history; one that does
  // (a leaf requiring grad, or a computed tensor) is an error, since the copy would cut the
  // gradient off from it: create such inputs on device() instead.
  std::vector<Tensor> run(const std::vector<std::pair<std::string, Tensor>>& feeds,
                          const std::vector<std::string>& outputs,
                          const NodeHook& hook = {}) const;
  // The single input x -> the score output reshaped to [N, classes].
  Tensor scores(const Tensor& x) const;

  // Throws "input 'data' expects shape [N,3,227,227], got [1,3,224,224]" on a mismatch.
  void check_input(const std::string& name, const Tensor& x) const;

  // The (converted) initializers: set requires_grad on one to differentiate with respect to it.
  std::map<std::string, Tensor>& parameters() { return params_; }
  const std::map<std::string, Tensor>& parameters() const { return params_; }

 private:
  Model model_;
  DType dtype_;
  Device device_;
  std::string score_;
  std::map<std::string, Tensor> params_;
};

// Op types the runtime executes (default ONNX domain), sorted.
std::vector<std::string> supported_ops();

}  // namespace fragile::nn
