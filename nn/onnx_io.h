// ONNX files <-> the graph IR (nn/graph.h). Protobuf stays inside onnx_io.cpp.
//
// Import: initializers as raw_data, typed fields (float_data, int64_data, ...) or external data
// files (location relative to the model's folder); every size is checked against the dims, so a
// truncated or inconsistent file is an Error naming the tensor, never a crash. Nodes come out
// topologically sorted, and a softplus_beta written by save_onnx (Mul -> Softplus -> Div) is
// fused back into one Softplus node with a `beta` attribute.
#pragma once
#include <filesystem>
#include <string>

#include "nn/graph.h"

namespace fragile::nn {

// The default-domain opsets whose semantics the importer implements; others are refused.
inline constexpr int64_t kMinOpset = 7;
inline constexpr int64_t kMaxOpset = 18;

Model load_onnx(const std::filesystem::path& path);
// `bytes` is a serialized ModelProto; external data files are looked up in `base_dir`.
Model parse_onnx(const std::string& bytes, const std::filesystem::path& base_dir,
                 const std::string& what = "model");
// Writes standard ONNX: every initializer inline (raw_data); a Softplus with beta != 1 becomes
// Mul(x, beta) -> Softplus -> Div(., beta), which any ONNX runtime executes.
void save_onnx(const Model& model, const std::filesystem::path& path);
std::string serialize_onnx(const Model& model);

}  // namespace fragile::nn
