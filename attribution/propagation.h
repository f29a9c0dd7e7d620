// Internal to attribution/: the methods with a modified backward pass, written as explicit
// backward walks over a trace of the graph (attribution/graph_walk.h).
//
// Each returns the attribution [N, C, H, W] in the session dtype. `classes[n]` is the class
// explained for image n. With create_graph the walk is recorded, so the result can be
// differentiated with respect to x (and the model's parameters) once more.
#pragma once
#include <cstdint>
#include <vector>

#include "attribution/attribution.h"
#include "core/tensor.h"
#include "nn/session.h"

namespace fragile::attr::detail {

// DeepLIFT with the Rescale rule: (x - ref) * m, m the chain of multipliers where every
// activation f contributes (f(x) - f(ref)) / (x - ref) (f'(x) where x ~ ref) and every linear
// node its Jacobian (max pooling: gradient routing to the argmax of x). `ref` is already
// resolved ([1 or N, C, H, W]).
Tensor deeplift(const nn::Session& s, const Tensor& x, const Tensor& ref, const std::vector<int64_t>& classes,
                bool create_graph);

// Guided backprop: the gradient with every activation's backward replaced by
// relu(g) * f'(x) (ReLU: relu(g) * [x > 0]).
Tensor guided_backprop(const nn::Session& s, const Tensor& x, const std::vector<int64_t>& classes,
                       bool create_graph);

// LRP from R = S_c at the score: epsilon or alpha-beta on Conv/Gemm/MatMul, z^B on the layers
// reading the input, the epsilon-stabilised z-rule on pooling and Add, winner-take-all max
// pooling, activations and reshapes pass relevance through.
Tensor lrp(const nn::Session& s, const Tensor& x, const std::vector<int64_t>& classes, const Options& o,
           bool alpha_beta, bool create_graph);

}  // namespace fragile::attr::detail
