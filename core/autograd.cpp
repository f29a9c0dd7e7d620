// The backward engine: walks the recorded graph from the outputs, in reverse topological order,
// calling each node's rule from the derivative table once all of its consumers have contributed.
#include "core/autograd.h"

#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "core/ops.h"

namespace fragile {
namespace {
thread_local bool g_grad_enabled = true;
}

bool grad_enabled() { return g_grad_enabled; }
NoGradGuard::NoGradGuard() : prev_(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = prev_; }
EnableGradGuard::EnableGradGuard() : prev_(g_grad_enabled) { g_grad_enabled = true; }
EnableGradGuard::~EnableGradGuard() { g_grad_enabled = prev_; }

Tensor Node::output() const {
  FRAGILE_CHECK(output_data != nullptr, "op '", op->name,
                "': backward rule asked for the output but the table entry does not save it");
  auto impl = std::make_shared<TensorImpl>(*output_data);
  impl->grad_fn = std::const_pointer_cast<Node>(shared_from_this());
  impl->requires_grad = true;
  return Tensor(std::move(impl));
}

Tensor record(const OpDef& def, std::vector<Tensor> inputs, Tensor out) {
  return record_impl(def, std::move(inputs), std::move(out), nullptr);
}

Tensor record_impl(const OpDef& def, std::vector<Tensor> inputs, Tensor out,
                   std::shared_ptr<const void> attrs) {
  if (!grad_enabled()) return out;
  bool any = false;
  for (const Tensor& t : inputs) any = any || (t.defined() && t.requires_grad());
  if (!any) return out;
  FRAGILE_CHECK(def.backward != nullptr, "op '", def.name,
                "' has no derivative in the table, but one of its inputs requires grad");
  auto node = std::make_shared<Node>();
  node->op = &def;
  node->inputs = std::move(inputs);
  node->attrs = std::move(attrs);
  if (def.saves_output) {
    node->output_data = std::make_shared<TensorImpl>(out.impl());
    node->output_data->grad_fn = nullptr;
  }
  out.impl().grad_fn = std::move(node);
  out.impl().requires_grad = true;
  return out;
}

namespace {

// Gradients are keyed by what produced a tensor: its node when it has one, otherwise (a leaf)
// its TensorImpl. Two handles to the same leaf share the impl, so they share a gradient.
const void* key_of(const Tensor& t) {
  return t.grad_fn() ? static_cast<const void*>(t.grad_fn().get())
                     : static_cast<const void*>(t.impl_ptr().get());
}

Tensor accumulate(const Tensor& acc, const Tensor& g) { return acc.defined() ? add(acc, g) : g; }

}  // namespace

std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs, bool create_graph,
                         bool allow_unused) {
  FRAGILE_CHECK(!outputs.empty(), "grad: no outputs");
  FRAGILE_CHECK(grad_outputs.empty() || grad_outputs.size() == outputs.size(), "grad: ",
                grad_outputs.size(), " grad_outputs for ", outputs.size(), " outputs");

  std::unordered_map<const void*, size_t> wanted;  // key -> index in inputs
  for (size_t i = 0; i < inputs.size(); ++i) {
    FRAGILE_CHECK(inputs[i].requires_grad(), "grad: input ", i,
                  " does not require grad (call set_requires_grad(true) on the leaf)");
    wanted[key_of(inputs[i])] = i;
  }

  // needed(node): some requested input is reachable from it. Iterative post-order DFS.
  std::unordered_map<const Node*, bool> needed;
  std::vector<const Node*> topo;  // post-order: producers before consumers
  {
    struct Frame { const Node* node; size_t next; };
    std::vector<Frame> stack;
    for (const Tensor& out : outputs) {
      const Node* root = out.grad_fn().get();
      if (!root || needed.count(root)) continue;
      needed[root] = false;
      stack.push_back({root, 0});
      while (!stack.empty()) {
        Frame& f = stack.back();
        if (f.next < f.node->inputs.size()) {
          const Tensor& in = f.node->inputs[f.next++];
          if (!in.defined() || !in.requires_grad()) continue;
          const Node* child = in.grad_fn().get();
          if (child && !needed.count(child)) {
            needed[child] = false;
            stack.push_back({child, 0});
          }
          continue;
        }
        bool need = wanted.count(f.node) > 0;
        for (const Tensor& in : f.node->inputs) {
          if (!in.defined() || !in.requires_grad()) continue;
          if (wanted.count(key_of(in))) need = true;
          if (in.grad_fn() && needed[in.grad_fn().get()]) need = true;
        }
        needed[f.node] = need;
        topo.push_back(f.node);
        stack.pop_back();
      }
    }
  }

  std::optional<NoGradGuard> no_grad;
  std::optional<EnableGradGuard> with_grad;
  if (create_graph) with_grad.emplace(); else no_grad.emplace();

  std::unordered_map<const void*, Tensor> grads;
  for (size_t i = 0; i < outputs.size(); ++i) {
    const Tensor& out = outputs[i];
    Tensor g;
    if (grad_outputs.empty() || !grad_outputs[i].defined()) {
      FRAGILE_CHECK(out.numel() == 1, "grad: output ", i, " has shape ", shape_str(out.shape()),
                    "; pass grad_outputs for non-scalar outputs");
      g = Tensor::ones(out.shape(), out.dtype(), out.device());
    } else {
      g = grad_outputs[i];
      FRAGILE_CHECK(g.shape() == out.shape(), "grad: grad_output ", i, " has shape ",
                    shape_str(g.shape()), " but the output has ", shape_str(out.shape()));
    }
    if (!out.requires_grad()) continue;
    grads[key_of(out)] = accumulate(grads[key_of(out)], g);
  }

  // Reverse post-order visits every consumer before its producers.
  for (auto it = topo.rbegin(); it != topo.rend(); ++it) {
    const Node* node = *it;
    if (!needed[node]) continue;
    auto found = grads.find(node);
    if (found == grads.end() || !found->second.defined()) continue;  // no path from outputs
    Tensor g = found->second;
    if (!wanted.count(node)) grads.erase(found);  // free memory early unless it is a result

    std::vector<bool> needs(node->inputs.size(), false);
    bool any = false;
    for (size_t i = 0; i < node->inputs.size(); ++i) {
      const Tensor& in = node->inputs[i];
      if (!in.defined() || !in.requires_grad()) continue;
      needs[i] = wanted.count(key_of(in)) || (in.grad_fn() && needed[in.grad_fn().get()]);
      any = any || needs[i];
    }
    if (!any) continue;
    std::vector<Tensor> in_grads = node->op->backward(*node, g, needs);
    FRAGILE_CHECK(in_grads.size() == node->inputs.size(), "op '", node->op->name,
                  "': backward returned ", in_grads.size(), " gradients for ",
                  node->inputs.size(), " inputs");
    for (size_t i = 0; i < in_grads.size(); ++i) {
      if (!needs[i] || !in_grads[i].defined()) continue;
      const Tensor& in = node->inputs[i];
      FRAGILE_CHECK(in_grads[i].shape() == in.shape(), "op '", node->op->name,
                    "': gradient for input ", i, " has shape ", shape_str(in_grads[i].shape()),
                    ", expected ", shape_str(in.shape()));
      const void* k = key_of(in);
      grads[k] = accumulate(grads[k], in_grads[i]);
    }
  }

  std::vector<Tensor> result(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    auto found = grads.find(key_of(inputs[i]));
    if (found != grads.end() && found->second.defined()) {
      result[i] = found->second;
    } else {
      FRAGILE_CHECK(allow_unused, "grad: input ", i,
                    " is not reachable from the outputs (pass allow_unused=true to get zeros)");
      result[i] = Tensor::zeros(inputs[i].shape(), inputs[i].dtype(), inputs[i].device());
    }
  }
  return result;
}

}  // namespace fragile
