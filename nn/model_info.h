// What `fragile import` prints about a model: inputs, outputs, op counts, parameters, FLOPs.
#pragma once
#include <cstdint>
#include <map>
#include <string>

#include "nn/graph.h"

namespace fragile::nn {

struct ModelSummary {
  std::map<std::string, int64_t> op_counts;
  int64_t parameters = 0;        // elements of float initializers
  int64_t flops = -1;            // per image; -1 when the input size is unknown
  std::string flops_note;        // why flops is -1
  std::string score_output;
  std::string input_shape_used;  // the concrete [1,C,H,W] the FLOPs were counted on
};

// FLOPs are counted by running the graph once on a zero image (batch 1, float32, no autograd):
// 2 * multiply-accumulates for Conv, Gemm and MatMul, plus one per output element for the
// other ops (element-wise, pooling, normalisation), the usual convention for CNN FLOP tables.
ModelSummary summarize(const Model& model);
std::string format_summary(const Model& model, const ModelSummary& s);

}  // namespace fragile::nn
