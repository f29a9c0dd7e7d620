// Graph rewrites on an imported model.
#pragma once
#include <optional>
#include <string>

#include "nn/graph.h"

namespace fragile::nn {

// Replaces every Relu by softplus_beta(x) = log(1 + exp(beta x)) / beta: a smooth surrogate
// whose Hessian is not zero almost everywhere (Ghorbani et al.; Dombrowski et al.). Stored as a
// Softplus node with a `beta` attribute (no attribute when beta == 1, i.e. ONNX's Softplus).
// Returns the number of nodes replaced.
int64_t swap_relu_for_softplus(Model& model, double beta);

// Parses an --activation value: "relu" (no change) or "softplus:BETA" with BETA > 0.
// Returns the beta, or nullopt for relu; throws on anything else.
std::optional<double> parse_activation(const std::string& spec);

// Folds each BatchNormalization whose input comes only from a Conv with constant weights into
// that Conv: with s = gamma / sqrt(var + eps), W' = W * s (per output channel) and
// b' = (b - mean) * s + beta. Computed in float64, stored in the weights' dtype. BatchNorms with
// no such Conv before them stay (the runtime executes them). Returns the number folded.
int64_t fold_batchnorm(Model& model);

// The value whose elements are the pre-softmax class scores: metadata `score_output` when
// present, else the input of a Softmax producing a graph output, else the first graph output.
std::string score_output(const Model& model);

// Mul(x, c) -> Softplus -> Div(., c) (or Mul(., 1/c)) with a scalar constant c > 0 becomes one
// Softplus node with beta = c. Run by the loader; returns the number fused.
int64_t fuse_softplus_beta(Model& model);
// The inverse, used when writing ONNX for other runtimes.
int64_t expand_softplus_beta(Model& model);

}  // namespace fragile::nn
