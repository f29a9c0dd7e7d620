#include "attribution/graph_walk.h"

#include <algorithm>
#include <array>
#include <optional>
#include <set>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "nn/onnx_ops.h"

namespace fragile::attr::detail {
namespace {

bool is_float(const Tensor& t) { return t.defined() && is_floating(t.dtype()); }

Tensor accumulate(const Tensor& acc, const Tensor& g) { return acc.defined() ? add(acc, g) : g; }

// Conv geometry as the Session reads it (nn/onnx_ops.cpp). `ok` is false for auto_pad SAME_*,
// which linear_vjp then handles generically.
struct ConvGeometry {
  Conv2dParams p;
  std::array<int64_t, 2> begin{0, 0}, end{0, 0};
  bool ok = true;
};
ConvGeometry conv_geometry(const nn::Node& n) {
  ConvGeometry c;
  auto strides = n.get_ints("strides", {1, 1});
  auto dil = n.get_ints("dilations", {1, 1});
  auto pads = n.get_ints("pads", {0, 0, 0, 0});
  const std::string auto_pad = n.get_string("auto_pad", "NOTSET");
  if (strides.size() != 2 || dil.size() != 2 || pads.size() != 4 ||
      (auto_pad != "NOTSET" && auto_pad != "VALID")) {
    c.ok = false;
    return c;
  }
  for (int i = 0; i < 2; ++i) {
    c.p.stride[i] = strides[i];
    c.p.dilation[i] = dil[i];
    c.begin[i] = auto_pad == "VALID" ? 0 : pads[i];
    c.end[i] = auto_pad == "VALID" ? 0 : pads[i + 2];
  }
  c.p.groups = n.get_int("group", 1);
  return c;
}

// dL/da of Conv(a, w): conv2d_backward_input, with the explicit padding the Session uses for
// asymmetric pads undone by a slice.
Tensor conv_vjp(const nn::Node& n, const Tensor& g, const Tensor& w, const Shape& a_shape) {
  ConvGeometry c = conv_geometry(n);
  if (c.begin == c.end) {
    c.p.padding = c.begin;
    return conv2d_backward_input(g, w, a_shape, c.p);
  }
  Shape padded = a_shape;
  padded[2] += c.begin[0] + c.end[0];
  padded[3] += c.begin[1] + c.end[1];
  Tensor gp = conv2d_backward_input(g, w, padded, c.p);
  gp = slice(gp, 2, c.begin[0], c.begin[0] + a_shape[2]);
  return slice(gp, 3, c.begin[1], c.begin[1] + a_shape[3]);
}

}  // namespace

std::vector<Tensor> run_node(const nn::Session& session, const nn::Node& node,
                             const std::vector<Tensor>& inputs) {
  auto impl = nn::detail::find_op(node.op_type);
  FRAGILE_CHECK(impl != nullptr, node.describe(), ": unsupported op '", node.op_type, "'");
  try {
    return impl(nn::detail::OpContext{node, inputs, session.model().opset(), session.dtype(),
                                      session.device()});
  } catch (const Error& e) {
    throw Error(node.describe() + ": " + e.what());
  }
}

Trace run_traced(const nn::Session& session, const Tensor& x, const NodeOverride& override) {
  const nn::Graph& g = session.model().graph;
  Trace t;
  t.input_name = session.input().name;
  t.score_name = session.score_name();
  session.check_input(t.input_name, x);
  FRAGILE_CHECK(x.device() == session.device(), "attribution input is on ",
                device_name(x.device()), " but the model runs on ", device_name(session.device()),
                "; create the input on ", device_name(session.device()));
  t.input = x.dtype() == session.dtype() ? x : to_dtype(x, session.dtype());

  std::unordered_map<std::string, Tensor> values;
  for (const auto& [name, p] : session.parameters()) values[name] = p;
  values[t.input_name] = t.input;
  std::unordered_set<std::string> data{t.input_name};

  const std::vector<bool> needed = g.nodes_needed_for({t.score_name});
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (!needed[i]) continue;
    const nn::Node& n = g.nodes[i];
    Step s;
    s.node = &n;
    bool on_path = false;
    for (const auto& name : n.inputs) {
      if (name.empty()) {
        s.inputs.emplace_back();
        s.data_input.push_back(false);
        continue;
      }
      auto it = values.find(name);
      FRAGILE_CHECK(it != values.end(), n.describe(), ": input '", name, "' is not available");
      s.inputs.push_back(it->second);
      const bool d = data.count(name) > 0 && is_float(it->second);
      s.data_input.push_back(d);
      on_path = on_path || d;
    }
    if (override && on_path) s.outputs = override(n, s.inputs);
    if (s.outputs.empty()) s.outputs = run_node(session, n, s.inputs);
    for (size_t k = 0; k < n.outputs.size(); ++k) {
      if (n.outputs[k].empty()) continue;
      FRAGILE_CHECK(k < s.outputs.size(), n.describe(), ": output ", k, " is not supported");
      values[n.outputs[k]] = s.outputs[k];
      if (on_path) data.insert(n.outputs[k]);
    }
    if (on_path) t.steps.push_back(std::move(s));
  }
  auto it = values.find(t.score_name);
  FRAGILE_CHECK(it != values.end(), "score output '", t.score_name, "' was not computed");
  t.score = it->second;
  FRAGILE_CHECK(data.count(t.score_name), "score output '", t.score_name,
                "' does not depend on the input '", t.input_name, "'");
  return t;
}

Tensor class_mask(const std::vector<int64_t>& classes, int64_t k, const Tensor& like) {
  for (size_t n = 0; n < classes.size(); ++n) {
    FRAGILE_CHECK(classes[n] >= 0 && classes[n] < k, "attribute: class ", classes[n],
                  " of image ", n, " is outside [0, ", k, ")");
  }
  auto host_mask = [&] {
    const Tensor idx = Tensor::from_int64(classes, {static_cast<int64_t>(classes.size())});
    return one_hot(idx, k, like.dtype());
  };
  if (like.device() == Device::CPU) return host_mask();
  // On a GPU the mask is an upload: a stall in every iteration of an attack, which asks for
  // the same few class lists P times (the labels; IG's full and last chunks repeat them).
  // The most recent masks are kept (masks are never written in place).
  struct Cached {
    std::vector<int64_t> classes;
    int64_t k;
    DType dtype;
    Tensor mask;
  };
  constexpr size_t kKept = 4;
  thread_local std::vector<Cached> cache;  // most recent first
  for (size_t i = 0; i < cache.size(); ++i) {
    const Cached& c = cache[i];
    if (c.classes == classes && c.k == k && c.dtype == like.dtype() &&
        c.mask.device() == like.device()) {
      std::rotate(cache.begin(), cache.begin() + i, cache.begin() + i + 1);
      return cache.front().mask;
    }
  }
  if (cache.size() == kKept) cache.pop_back();
  cache.insert(cache.begin(), Cached{classes, k, like.dtype(), host_mask().to(like.device())});
  return cache.front().mask;
}

Tensor scores_2d(const Tensor& score, int64_t n) {
  FRAGILE_CHECK(score.dim() >= 1 && score.size(0) == n, "score output has shape ",
                shape_str(score.shape()), ", expected a leading batch dimension of ", n);
  return score.dim() == 2 ? score : reshape(score, {n, -1});
}

Tensor propagate(const Trace& trace, const Tensor& seed, const BackwardRule& rule) {
  FRAGILE_CHECK(seed.shape() == trace.score.shape(), "propagate: seed ", shape_str(seed.shape()),
                " for a score of shape ", shape_str(trace.score.shape()));
  std::unordered_map<std::string, Tensor> cot;
  cot[trace.score_name] = seed;
  for (auto it = trace.steps.rbegin(); it != trace.steps.rend(); ++it) {
    const Step& s = *it;
    std::vector<Tensor> g_out(s.node->outputs.size());
    bool any = false;
    for (size_t k = 0; k < s.node->outputs.size(); ++k) {
      const std::string& name = s.node->outputs[k];
      if (name.empty()) continue;
      auto f = cot.find(name);
      if (f == cot.end()) continue;
      g_out[k] = f->second;
      cot.erase(f);  // consumers come later in topological order: every one has contributed
      any = true;
    }
    if (!any) continue;
    std::vector<Tensor> g_in = rule(s, g_out);
    FRAGILE_CHECK(g_in.size() == s.inputs.size(), s.node->describe(), ": backward rule returned ",
                  g_in.size(), " cotangents for ", s.inputs.size(), " inputs");
    for (size_t i = 0; i < g_in.size(); ++i) {
      if (!s.data_input[i] || !g_in[i].defined()) continue;
      FRAGILE_CHECK(g_in[i].shape() == s.inputs[i].shape(), s.node->describe(), ": cotangent ",
                    shape_str(g_in[i].shape()), " for input ", i, " of shape ",
                    shape_str(s.inputs[i].shape()));
      Tensor& slot = cot[s.node->inputs[i]];
      slot = accumulate(slot, g_in[i]);
    }
  }
  auto f = cot.find(trace.input_name);
  if (f != cot.end()) return f->second;
  return Tensor::zeros(trace.input.shape(), trace.input.dtype(), trace.input.device());
}

bool is_weighted(const std::string& op) { return op == "Conv" || op == "Gemm" || op == "MatMul"; }

bool is_linear(const std::string& op) {
  static const std::set<std::string> kLinear = {
      "Conv",      "Gemm",    "MatMul",  "MaxPool", "GlobalMaxPool", "AveragePool",
      "GlobalAveragePool",    "Concat",  "Flatten", "Reshape",       "Squeeze",
      "Unsqueeze", "Transpose", "Add",   "Sub",     "Sum",           "Dropout",
      "Identity"};
  return kLinear.count(op) > 0;
}

bool is_activation(const std::string& op) { return op == "Relu" || op == "Softplus"; }

void require_supported(bool ok, const char* method, const nn::Node& node,
                       const std::string& supported) {
  FRAGILE_CHECK(ok, method, ": ", node.describe(), " is not supported by this method (supported: ",
                supported, ")");
}

Tensor weighted_forward(const nn::Session& session, const Step& step, const Tensor& a,
                        const Tensor& w) {
  const nn::Node& n = *step.node;
  FRAGILE_CHECK(is_weighted(n.op_type), n.describe(), ": not a weighted layer");
  std::vector<Tensor> ins(step.inputs.size());
  ins[0] = a;
  ins[1] = w;  // bias (input 2, Conv and Gemm) stays omitted
  return run_node(session, n, ins)[0];
}

std::vector<Tensor> linear_vjp(const nn::Session& session, const Step& step,
                               const std::vector<Tensor>& g_out, bool create_graph,
                               const Tensor& weight_override) {
  const nn::Node& n = *step.node;
  std::vector<Tensor> result(step.inputs.size());
  if (is_weighted(n.op_type)) {
    FRAGILE_CHECK(step.data_input[0] && !step.data_input[1], n.describe(),
                  ": only a data input A times a constant weight B is supported");
  }
  const Tensor& w = weight_override.defined() ? weight_override : Tensor();
  // Conv: an explicit transposed convolution (no re-run of the forward).
  if (n.op_type == "Conv" && conv_geometry(n).ok && g_out[0].defined()) {
    std::optional<EnableGradGuard> with;
    std::optional<NoGradGuard> without;
    if (create_graph) with.emplace(); else without.emplace();
    result[0] = conv_vjp(n, g_out[0], w.defined() ? w : step.inputs[1], step.inputs[0].shape());
    return result;
  }
  // Everything else: re-run the node on fresh leaves holding the traced values and ask autograd
  // for the VJP. For a node linear in its data inputs the VJP does not depend on those values
  // (max pooling's argmax is piecewise constant), so fresh leaves lose nothing.
  std::vector<Tensor> ins = step.inputs, leaves;
  std::vector<size_t> leaf_index;
  for (size_t i = 0; i < ins.size(); ++i) {
    if (!step.data_input[i]) continue;
    ins[i] = step.inputs[i].detach();
    ins[i].set_requires_grad(true);
    leaves.push_back(ins[i]);
    leaf_index.push_back(i);
  }
  if (w.defined()) {
    ins[1] = w;
    if (ins.size() > 2) ins[2] = Tensor();
  }
  std::vector<Tensor> outs;
  {
    EnableGradGuard with;
    outs = run_node(session, n, ins);
  }
  std::vector<Tensor> o, g;
  for (size_t k = 0; k < g_out.size() && k < outs.size(); ++k) {
    if (!g_out[k].defined() || !outs[k].requires_grad()) continue;
    o.push_back(outs[k]);
    g.push_back(g_out[k]);
  }
  if (o.empty()) return result;
  std::vector<Tensor> grads = grad(o, leaves, g, create_graph, /*allow_unused=*/true);
  for (size_t j = 0; j < leaf_index.size(); ++j) result[leaf_index[j]] = grads[j];
  return result;
}

}  // namespace fragile::attr::detail
