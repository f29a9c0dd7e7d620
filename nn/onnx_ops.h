// ONNX op implementations for the Session (internal to nn/). Each maps one ONNX node to the
// engine's differentiable ops; ONNX semantics per opset are handled here (e.g. Softmax's axis
// before and after opset 13, Pad/Clip attributes becoming inputs in opset 11).
#pragma once
#include <string>
#include <vector>

#include "core/tensor.h"
#include "nn/graph.h"

namespace fragile::nn::detail {

struct OpContext {
  const Node& node;
  const std::vector<Tensor>& inputs;  // undefined where an optional input is omitted
  int64_t opset;                      // default-domain opset of the model
  DType dtype;                        // the session's float dtype
  Device device = Device::CPU;        // where the session's float tensors live (int64 shape
                                      // and index tensors always stay on the host)
};

using OpImpl = std::vector<Tensor> (*)(const OpContext& ctx);

// The implementation of `op_type` in the default domain, or null.
OpImpl find_op(const std::string& op_type);
std::vector<std::string> op_names();

}  // namespace fragile::nn::detail
