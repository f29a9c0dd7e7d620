#include "nn/session.h"

#include <unordered_map>
#include <unordered_set>

#include "core/backend.h"
#include "core/error.h"
#include "core/ops.h"
#include "nn/onnx_ops.h"
#include "nn/transforms.h"

namespace fragile::nn {

Session::Session(Model model, DType dtype, Device device)
    : model_(std::move(model)), dtype_(dtype), device_(device) {
  FRAGILE_CHECK(is_floating(dtype), "a session computes in float32 or float64");
  if (device == Device::CUDA) (void)cuda_backend();  // throws, saying why, when there is no GPU
  for (const auto& n : model_.graph.nodes) {
    const bool default_domain = n.domain.empty() || n.domain == "ai.onnx";
    FRAGILE_CHECK(default_domain && detail::find_op(n.op_type) != nullptr, n.describe(),
                  ": unsupported op '", (default_domain ? "" : n.domain + "."), n.op_type, "'");
    for (const auto& [key, a] : n.attrs) {
      FRAGILE_CHECK(a.kind != Attribute::Kind::Unsupported, n.describe(), ": attribute '", key,
                    "' of type ", a.unsupported_type, " is not supported");
    }
  }
  for (const auto& [name, tv] : model_.graph.initializers) {
    // Float parameters live on the session's device; int64 initializers are shapes and
    // indices that ops read on the host.
    const Tensor& t = tv.value;
    if (!is_floating(t.dtype())) {
      params_[name] = t;
      continue;
    }
    const Tensor typed = t.dtype() != dtype ? t.to(dtype) : t;
    params_[name] = typed.to(device);
  }
  score_ = score_output(model_);
}

const ValueInfo& Session::input() const {
  auto ins = model_.graph.data_inputs();
  FRAGILE_CHECK(ins.size() == 1, "the model has ", ins.size(),
                " data inputs; expected exactly one");
  return *ins[0];
}

void Session::check_input(const std::string& name, const Tensor& x) const {
  const ValueInfo* info = nullptr;
  for (const auto& in : model_.graph.inputs) {
    if (in.name == name) info = &in;
  }
  FRAGILE_CHECK(info != nullptr, "the model has no input named '", name, "'");
  FRAGILE_CHECK(is_floating(x.dtype()), "input '", name, "' must be float32 or float64, got ",
                dtype_name(x.dtype()));
  if (!info->has_shape) return;
  bool ok = static_cast<int64_t>(info->dims.size()) == x.dim();
  for (size_t i = 0; ok && i < info->dims.size(); ++i) {
    ok = info->dims[i].value < 0 || info->dims[i].value == x.size(static_cast<int64_t>(i));
  }
  FRAGILE_CHECK(ok, "input '", name, "' expects shape ", info->shape_str(), ", got ",
                shape_str(x.shape()));
}

std::vector<Tensor> Session::run(const std::vector<std::pair<std::string, Tensor>>& feeds,
                                 const std::vector<std::string>& outputs,
                                 const NodeHook& hook) const {
  const Graph& g = model_.graph;
  std::unordered_map<std::string, Tensor> values;
  for (const auto& [name, t] : params_) values[name] = t;
  for (const auto& [name, t] : feeds) {
    check_input(name, t);
    Tensor v = t;
    if (v.device() != device_) {
      FRAGILE_CHECK(!v.requires_grad() && v.is_leaf(), "input '", name, "' is on ",
                    device_name(v.device()), " but the session runs on ", device_name(device_),
                    "; a tensor with autograd history cannot be moved without losing its "
                    "gradient: create it on ", device_name(device_));
      v = v.to(device_);
    }
    values[name] = v.dtype() == dtype_ ? v : to_dtype(v, dtype_);
  }
  for (const auto* in : g.data_inputs()) {
    FRAGILE_CHECK(values.count(in->name), "input '", in->name, "' was not given");
  }

  // Only the nodes the requested outputs depend on; each value is dropped after its last use.
  std::vector<std::string> sources;
  const std::vector<bool> needed = g.nodes_needed_for(outputs, &sources);
  for (const auto& v : sources) {
    FRAGILE_CHECK(values.count(v), "'", v, "' is not a value of the graph");
  }
  std::unordered_map<std::string, int64_t> uses;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (!needed[i]) continue;
    for (const auto& in : g.nodes[i].inputs) ++uses[in];
  }
  const std::unordered_set<std::string> keep(outputs.begin(), outputs.end());

  const int64_t opset = model_.opset();
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (!needed[i]) continue;
    const Node& n = g.nodes[i];
    std::vector<Tensor> ins;
    ins.reserve(n.inputs.size());
    for (const auto& name : n.inputs) {
      if (name.empty()) {
        ins.emplace_back();
        continue;
      }
      auto it = values.find(name);
      FRAGILE_CHECK(it != values.end(), n.describe(), ": input '", name, "' is not available");
      ins.push_back(it->second);
    }
    std::vector<Tensor> outs;
    try {
      outs = detail::find_op(n.op_type)(detail::OpContext{n, ins, opset, dtype_, device_});
    } catch (const Error& e) {
      throw Error(n.describe() + ": " + e.what());
    }
    for (size_t k = 0; k < n.outputs.size(); ++k) {
      if (n.outputs[k].empty()) continue;
      FRAGILE_CHECK(k < outs.size(), n.describe(), ": output ", k, " is not supported");
      values[n.outputs[k]] = outs[k];
    }
    if (hook) hook(n, ins, outs);
    for (const auto& name : n.inputs) {
      if (!name.empty() && --uses[name] == 0 && !keep.count(name) && !params_.count(name)) {
        values.erase(name);
      }
    }
  }
  std::vector<Tensor> result;
  for (const auto& o : outputs) {
    auto it = values.find(o);
    FRAGILE_CHECK(it != values.end(), "output '", o, "' was not computed");
    result.push_back(it->second);
  }
  return result;
}

Tensor Session::scores(const Tensor& x) const {
  Tensor z = run({{input().name, x}}, {score_})[0];
  FRAGILE_CHECK(z.dim() >= 1 && z.size(0) == x.size(0), "score output '", score_, "' has shape ",
                shape_str(z.shape()), ", expected a leading batch dimension of ", x.size(0));
  return z.dim() == 2 ? z : reshape(z, {z.size(0), -1});
}

std::vector<std::string> supported_ops() { return detail::op_names(); }

}  // namespace fragile::nn
