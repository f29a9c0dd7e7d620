// Reverse-mode autodiff on a dynamic tape.
//
// Each recorded op creates a Node that keeps its inputs (so the graph stays alive as long as its
// outputs do) and op-specific attributes. Backward rules live in ONE table (derivatives.cpp) and
// are written with the ops of ops.h, so with create_graph=true the backward pass is itself
// recorded and can be differentiated again: grad-of-grad, HVPs, attacks on explanations.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace fragile {

struct Node;

// One entry of the derivative table.
struct OpDef {
  const char* name;
  // Returns one gradient per input (undefined where `needs[i]` is false or the input is not
  // differentiable). Null for ops without a derivative: using them under autograd throws.
  std::vector<Tensor> (*backward)(const Node& node, const Tensor& grad,
                                  const std::vector<bool>& needs);
  bool saves_output;  // the rule uses the forward output (e.g. exp, sigmoid)
};

// Looks an op up in the derivative table; throws naming the op if it has no entry.
const OpDef& op_def(const std::string& name);
// Every entry of the table (for tests that enforce coverage).
const std::vector<OpDef>& derivative_table();

struct Node : std::enable_shared_from_this<Node> {
  const OpDef* op = nullptr;
  std::vector<Tensor> inputs;
  std::shared_ptr<const void> attrs;
  std::shared_ptr<TensorImpl> output_data;  // set when op->saves_output; has no grad_fn (no cycle)

  // The forward output, re-attached to this node so that rules using it stay differentiable.
  Tensor output() const;
  template <typename A>
  const A& attr() const {
    return *static_cast<const A*>(attrs.get());
  }
};

// Grad mode: when off, ops record nothing. Thread-local.
bool grad_enabled();
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};
class EnableGradGuard {
 public:
  EnableGradGuard();
  ~EnableGradGuard();
  EnableGradGuard(const EnableGradGuard&) = delete;
  EnableGradGuard& operator=(const EnableGradGuard&) = delete;

 private:
  bool prev_;
};

// Called by ops: if grad mode is on and any input requires grad, attaches a Node for `def` to
// `out` (which must be freshly made by the op) and returns it; otherwise returns `out` as is.
template <typename Attrs>
Tensor record(const OpDef& def, std::vector<Tensor> inputs, Tensor out, Attrs attrs);
Tensor record(const OpDef& def, std::vector<Tensor> inputs, Tensor out);
Tensor record_impl(const OpDef& def, std::vector<Tensor> inputs, Tensor out,
                   std::shared_ptr<const void> attrs);

template <typename Attrs>
Tensor record(const OpDef& def, std::vector<Tensor> inputs, Tensor out, Attrs attrs) {
  return record_impl(def, std::move(inputs), std::move(out),
                     std::make_shared<const Attrs>(std::move(attrs)));
}

// Gradients of sum_i <grad_outputs[i], outputs[i]> with respect to each of `inputs`.
// grad_outputs may be empty when every output has one element (then ones are used).
// create_graph records the backward pass so the result can be differentiated again.
// allow_unused: an input the outputs do not depend on gets zeros (otherwise that throws).
std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs = {}, bool create_graph = false,
                         bool allow_unused = false);

}  // namespace fragile
