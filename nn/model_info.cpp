#include "nn/model_info.h"

#include <cstdio>
#include <sstream>

#include "core/autograd.h"
#include "core/error.h"
#include "nn/image.h"
#include "nn/session.h"
#include "nn/transforms.h"

namespace fragile::nn {
namespace {

int64_t node_flops(const Node& n, const std::vector<Tensor>& ins, const std::vector<Tensor>& outs) {
  if (outs.empty() || !outs[0].defined()) return 0;
  const int64_t out_numel = outs[0].numel();
  if (n.op_type == "Conv") {
    const Tensor& w = ins.at(1);
    const int64_t macs_per_out = w.numel() / w.size(0);  // C_in/g * KH * KW
    return 2 * out_numel * macs_per_out + (n.has_input(2) ? out_numel : 0);
  }
  if (n.op_type == "Gemm" || n.op_type == "MatMul") {
    const Tensor& a = ins.at(0);
    const int64_t k = n.op_type == "Gemm" && n.get_int("transA", 0) ? a.size(0) : a.size(a.dim() - 1);
    return 2 * out_numel * k + (n.has_input(2) ? out_numel : 0);
  }
  static const char* kFree[] = {"Identity", "Dropout", "Reshape", "Flatten", "Concat", "Constant",
                                "Shape", "Gather", "Squeeze", "Unsqueeze", "Transpose", "Cast", "Pad"};
  for (const char* f : kFree) {
    if (n.op_type == f) return 0;
  }
  return outs[0].dtype() == DType::Int64 ? 0 : out_numel;
}

std::string human(double v) {
  const char* units[] = {" ", " K", " M", " G", " T"};
  int u = 0;
  while (v >= 1000 && u < 4) {
    v /= 1000;
    ++u;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, u ? "%.3g%s" : "%.0f%s", v, units[u]);
  return buf;
}

}  // namespace

ModelSummary summarize(const Model& model) {
  ModelSummary s;
  for (const auto& n : model.graph.nodes) {
    s.op_counts[(n.domain.empty() ? "" : n.domain + ".") + n.op_type]++;
  }
  for (const auto& [name, tv] : model.graph.initializers) {
    if (is_floating(tv.value.dtype())) s.parameters += tv.value.numel();
  }
  s.score_output = score_output(model);

  Session session(model, DType::Float32);  // throws for unsupported ops
  const ValueInfo& in = session.input();
  Shape shape;
  if (in.has_shape) {
    const Preprocess p = preprocess_from_metadata(model);
    for (size_t i = 0; i < in.dims.size(); ++i) {
      int64_t d = in.dims[i].value;
      if (d < 0 && i == 0) d = 1;
      if (d < 0 && i >= 2 && p.size > 0) d = p.size;
      if (d < 0) {
        s.flops_note = "input '" + in.name + "' has shape " + in.shape_str() +
                       " with an unknown extent";
        return s;
      }
      shape.push_back(d);
    }
  } else {
    s.flops_note = "input '" + in.name + "' has no declared shape";
    return s;
  }
  std::ostringstream os;
  os << shape_str(shape);
  s.input_shape_used = os.str();
  // FLOPs are counted by running the model once on zeros: a declared input larger than any
  // image preprocessing can make (kMaxInputSide) is not run (it would be allocated first).
  double numel = 1;  // double: a corrupt declaration may overflow int64
  for (int64_t d : shape) numel *= static_cast<double>(d);
  if (numel > 3.0 * kMaxInputSide * kMaxInputSide) {
    s.flops_note = "input '" + in.name + "' of shape " + os.str() +
                   " is too large to run for a FLOP count";
    return s;
  }
  NoGradGuard no_grad;
  int64_t total = 0;
  std::vector<std::string> outs;
  for (const auto& o : model.graph.outputs) outs.push_back(o.name);
  session.run({{in.name, Tensor::zeros(shape, DType::Float32)}}, outs,
              [&](const Node& n, const std::vector<Tensor>& i, const std::vector<Tensor>& o) {
                total += node_flops(n, i, o);
              });
  s.flops = shape.empty() || shape[0] == 0 ? total : total / shape[0];
  return s;
}

std::string format_summary(const Model& model, const ModelSummary& s) {
  std::ostringstream os;
  os << "model: " << (model.source.empty() ? "(memory)" : model.source.string()) << "\n";
  os << "  ir_version " << model.ir_version << ", opset " << model.opset();
  if (!model.producer_name.empty()) {
    os << ", producer " << model.producer_name << " " << model.producer_version;
  }
  os << "\n";
  os << "inputs:\n";
  for (const auto* in : model.graph.data_inputs()) {
    os << "  " << in->name << "  " << onnx_type_name(in->elem_type) << " " << in->shape_str()
       << "\n";
  }
  os << "outputs:\n";
  for (const auto& out : model.graph.outputs) {
    os << "  " << out.name << "  " << onnx_type_name(out.elem_type) << " " << out.shape_str()
       << (out.name == s.score_output ? "  (class scores)" : "") << "\n";
  }
  if (!model.graph.is_graph_output(s.score_output)) {
    os << "  class scores: " << s.score_output << "\n";
  }
  int64_t nodes = 0;
  for (const auto& [op, c] : s.op_counts) nodes += c;
  os << "ops (" << nodes << " nodes):\n";
  for (const auto& [op, c] : s.op_counts) os << "  " << op << " " << c << "\n";
  os << "parameters: " << s.parameters << " (" << human(static_cast<double>(s.parameters)) << ")\n";
  if (s.flops >= 0) {
    os << "FLOPs per image: " << s.flops << " (" << human(static_cast<double>(s.flops))
       << "FLOPs at input " << s.input_shape_used << ")\n";
  } else {
    os << "FLOPs per image: unknown (" << s.flops_note << ")\n";
  }
  if (!model.metadata.empty()) {
    os << "metadata:\n";
    for (const auto& [k, v] : model.metadata) os << "  " << k << " = " << v << "\n";
  }
  return os.str();
}

}  // namespace fragile::nn
