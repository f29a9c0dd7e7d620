#include "nn/transforms.h"

#include <cmath>
#include <cstdlib>
#include <set>

#include "core/error.h"

namespace fragile::nn {
namespace {

bool default_domain(const Node& n) { return n.domain.empty() || n.domain == "ai.onnx"; }

// The value of a one-element float constant (initializer), if `name` is one.
std::optional<double> scalar_constant(const Graph& g, const std::string& name) {
  auto it = g.initializers.find(name);
  if (it == g.initializers.end()) return std::nullopt;
  const Tensor& t = it->second.value;
  if (!is_floating(t.dtype()) || t.numel() != 1) return std::nullopt;
  return t.item();
}

// Removes the nodes whose indices are in `dead`.
void erase_nodes(Graph& g, const std::set<int64_t>& dead) {
  std::vector<Node> kept;
  kept.reserve(g.nodes.size());
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (!dead.count(static_cast<int64_t>(i))) kept.push_back(std::move(g.nodes[i]));
  }
  g.nodes = std::move(kept);
}

bool only_consumer(const Graph& g, const std::string& value, int64_t node) {
  auto c = g.consumers(value);
  return c.size() == 1 && c[0] == node && !g.is_graph_output(value);
}

}  // namespace

int64_t swap_relu_for_softplus(Model& model, double beta) {
  FRAGILE_CHECK(std::isfinite(beta) && beta > 0, "softplus beta must be positive and finite, got ",
                beta);
  int64_t count = 0;
  for (auto& n : model.graph.nodes) {
    if (n.op_type != "Relu" || !default_domain(n)) continue;
    n.op_type = "Softplus";
    n.attrs.clear();
    if (beta != 1.0) n.attrs["beta"] = Attribute::of_float(beta);
    ++count;
  }
  return count;
}

std::optional<double> parse_activation(const std::string& spec) {
  if (spec == "relu") return std::nullopt;
  const std::string prefix = "softplus:";
  FRAGILE_CHECK(spec.rfind(prefix, 0) == 0,
                "--activation must be 'relu' or 'softplus:BETA' (e.g. softplus:10), got '", spec,
                "'");
  const std::string num = spec.substr(prefix.size());
  char* end = nullptr;
  double beta = std::strtod(num.c_str(), &end);
  FRAGILE_CHECK(!num.empty() && end && *end == '\0' && std::isfinite(beta) && beta > 0,
                "--activation softplus:BETA needs a positive number, got '", num, "'");
  return beta;
}

int64_t fold_batchnorm(Model& model) {
  Graph& g = model.graph;
  std::set<int64_t> dead;
  int64_t folded = 0;
  for (size_t bi = 0; bi < g.nodes.size(); ++bi) {
    Node& bn = g.nodes[bi];
    if (bn.op_type != "BatchNormalization" || !default_domain(bn)) continue;
    if (bn.inputs.size() < 5 || bn.get_int("training_mode", 0) != 0) continue;
    bool extra_outputs = false;
    for (size_t o = 1; o < bn.outputs.size(); ++o) extra_outputs |= !bn.outputs[o].empty();
    if (extra_outputs) continue;
    const int64_t ci = g.producer(bn.inputs[0]);
    if (ci < 0) continue;
    Node& conv = g.nodes[ci];
    if (conv.op_type != "Conv" || !default_domain(conv) || conv.outputs.size() != 1) continue;
    if (!only_consumer(g, conv.outputs[0], static_cast<int64_t>(bi))) continue;
    bool constant = g.initializers.count(conv.inputs.at(1)) != 0 &&
                    (!conv.has_input(2) || g.initializers.count(conv.inputs[2]) != 0);
    for (int k = 1; k < 5; ++k) constant = constant && g.initializers.count(bn.inputs[k]) != 0;
    if (!constant) continue;

    const TensorValue& wv = g.initializers.at(conv.inputs[1]);
    const Tensor& w = wv.value;
    if (!is_floating(w.dtype()) || w.dim() < 2) continue;
    const int64_t cout = w.size(0);
    auto vec = [&](const std::string& name) {
      std::vector<double> v = g.initializers.at(name).value.to_vector();
      FRAGILE_CHECK(static_cast<int64_t>(v.size()) == cout, bn.describe(), ": parameter '", name,
                    "' has ", v.size(), " values for ", cout, " channels");
      return v;
    };
    const std::vector<double> gamma = vec(bn.inputs[1]), beta = vec(bn.inputs[2]),
                              mean = vec(bn.inputs[3]), var = vec(bn.inputs[4]);
    const double eps = bn.get_float("epsilon", 1e-5);
    std::vector<double> bias(cout, 0.0);
    if (conv.has_input(2)) bias = vec(conv.inputs[2]);

    std::vector<double> wd = w.to_vector();
    const int64_t per = w.numel() / cout;
    std::vector<double> new_bias(cout);
    for (int64_t c = 0; c < cout; ++c) {
      const double s = gamma[c] / std::sqrt(var[c] + eps);
      for (int64_t k = 0; k < per; ++k) wd[c * per + k] *= s;
      new_bias[c] = (bias[c] - mean[c]) * s + beta[c];
    }
    // New initializers (the old ones may be shared; unused ones are pruned below). They are
    // held in float64 so a float64 session computes the fold exactly; they keep the file's
    // ONNX type, so a model written back stores them as it stored the originals.
    const std::string wname = g.unique_name(conv.inputs[1] + "_bnfold");
    g.initializers[wname] = {Tensor::from_vector(wd, w.shape(), DType::Float64), wv.onnx_type};
    const std::string bname = g.unique_name(conv.outputs[0] + "_bnfold_bias");
    g.initializers[bname] = {Tensor::from_vector(new_bias, {cout}, DType::Float64), wv.onnx_type};
    conv.inputs.resize(3);
    conv.inputs[1] = wname;
    conv.inputs[2] = bname;
    conv.outputs[0] = bn.outputs[0];
    dead.insert(static_cast<int64_t>(bi));
    ++folded;
  }
  erase_nodes(g, dead);
  g.prune_initializers();
  return folded;
}

std::string score_output(const Model& model) {
  const Graph& g = model.graph;
  auto is_value = [&](const std::string& v) {
    if (g.initializers.count(v)) return true;
    for (const auto& in : g.inputs) {
      if (in.name == v) return true;
    }
    return g.producer(v) >= 0;
  };
  if (auto s = model.meta("score_output")) {
    FRAGILE_CHECK(is_value(*s), "metadata score_output names '", *s,
                  "', which is not a value of the graph");
    return *s;
  }
  FRAGILE_CHECK(!g.outputs.empty(), "the graph has no outputs");
  for (const auto& out : g.outputs) {
    std::string v = out.name;
    // Walk back through pass-through nodes to a final Softmax.
    for (int guard = 0; guard < 16; ++guard) {
      const int64_t p = g.producer(v);
      if (p < 0) break;
      const Node& n = g.nodes[p];
      if (!default_domain(n)) break;
      if (n.op_type == "Softmax") return n.inputs.at(0);
      if (n.op_type != "Identity" && n.op_type != "Dropout") break;
      v = n.inputs.at(0);
    }
  }
  return g.outputs[0].name;
}

int64_t fuse_softplus_beta(Model& model) {
  Graph& g = model.graph;
  std::set<int64_t> dead;
  int64_t fused = 0;
  for (size_t si = 0; si < g.nodes.size(); ++si) {
    Node& sp = g.nodes[si];
    if (sp.op_type != "Softplus" || !default_domain(sp) || sp.has("beta")) continue;
    if (sp.inputs.size() != 1 || sp.outputs.size() != 1) continue;
    const int64_t mi = g.producer(sp.inputs[0]);
    if (mi < 0 || dead.count(mi)) continue;
    const Node& mul = g.nodes[mi];
    if (mul.op_type != "Mul" || !default_domain(mul) || mul.inputs.size() != 2) continue;
    if (!only_consumer(g, mul.outputs[0], static_cast<int64_t>(si))) continue;
    int xi = -1;
    std::optional<double> beta;
    if ((beta = scalar_constant(g, mul.inputs[1]))) xi = 0;
    else if ((beta = scalar_constant(g, mul.inputs[0]))) xi = 1;
    if (xi < 0 || !(*beta > 0) || !std::isfinite(*beta)) continue;
    auto cons = g.consumers(sp.outputs[0]);
    if (cons.size() != 1 || g.is_graph_output(sp.outputs[0])) continue;
    const Node& un = g.nodes[cons[0]];
    if (!default_domain(un) || un.inputs.size() != 2 || un.inputs[0] != sp.outputs[0]) continue;
    auto c = scalar_constant(g, un.inputs[1]);
    if (!c) continue;
    const double tol = 1e-6 * *beta;
    const bool undoes = (un.op_type == "Div" && std::abs(*c - *beta) <= tol) ||
                        (un.op_type == "Mul" && std::abs(*c * *beta - 1.0) <= 1e-6);
    if (!undoes) continue;
    sp.inputs[0] = mul.inputs[xi];
    sp.outputs[0] = un.outputs[0];
    sp.attrs["beta"] = Attribute::of_float(*beta);
    dead.insert(mi);
    dead.insert(cons[0]);
    ++fused;
  }
  if (fused) {
    erase_nodes(g, dead);
    g.prune_initializers();
  }
  return fused;
}

int64_t expand_softplus_beta(Model& model) {
  Graph& g = model.graph;
  std::vector<Node> out;
  out.reserve(g.nodes.size());
  int64_t expanded = 0;
  // Every name in use, collected before nodes are moved out of the graph.
  std::set<std::string> taken;
  for (const auto& n : g.nodes) {
    taken.insert(n.name);
    taken.insert(n.inputs.begin(), n.inputs.end());
    taken.insert(n.outputs.begin(), n.outputs.end());
  }
  for (const auto& v : g.inputs) taken.insert(v.name);
  for (const auto& v : g.outputs) taken.insert(v.name);
  for (const auto& [k, _] : g.initializers) taken.insert(k);
  auto fresh = [&](const std::string& hint) {
    std::string n = hint;
    for (int64_t i = 1; taken.count(n); ++i) n = hint + "_" + std::to_string(i);
    taken.insert(n);
    return n;
  };
  for (auto& n : g.nodes) {
    if (n.op_type != "Softplus" || !default_domain(n) || !n.has("beta")) {
      out.push_back(std::move(n));
      continue;
    }
    const double beta = n.get_float("beta", 1.0);
    n.attrs.erase("beta");
    if (beta == 1.0) {
      out.push_back(std::move(n));
      continue;
    }
    const std::string base = n.name.empty() ? n.outputs[0] : n.name;
    const std::string bname = fresh(base + "_beta");
    g.initializers[bname] = {Tensor::scalar(beta, DType::Float32), kOnnxFloat};
    const std::string scaled = fresh(n.outputs[0] + "_scaled");
    const std::string soft = fresh(n.outputs[0] + "_softplus");
    Node mul;
    mul.name = fresh(base + "/scale");
    mul.op_type = "Mul";
    mul.inputs = {n.inputs[0], bname};
    mul.outputs = {scaled};
    Node div;
    div.name = fresh(base + "/unscale");
    div.op_type = "Div";
    div.inputs = {soft, bname};
    div.outputs = {n.outputs[0]};
    n.inputs = {scaled};
    n.outputs = {soft};
    out.push_back(std::move(mul));
    out.push_back(std::move(n));
    out.push_back(std::move(div));
    ++expanded;
  }
  g.nodes = std::move(out);
  return expanded;
}

}  // namespace fragile::nn
