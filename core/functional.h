// Function transforms built on grad(): vector-Jacobian and Hessian-vector products.
#pragma once
#include <functional>
#include <utility>

#include "core/tensor.h"

namespace fragile {

using ScalarFn = std::function<Tensor(const Tensor&)>;

struct VjpResult {
  Tensor value;  // f(x)
  Tensor vjp;    // v^T J_f(x), shaped like x
};
// create_graph keeps the result differentiable.
VjpResult vjp(const ScalarFn& f, const Tensor& x, const Tensor& v, bool create_graph = false);

struct HvpResult {
  Tensor value;     // f(x), a scalar
  Tensor gradient;  // grad f(x)
  Tensor hvp;       // H_f(x) v, by reverse-over-reverse (double backward)
};
// f must return a one-element tensor. x is not modified; it is differentiated through a fresh
// leaf that shares its data.
HvpResult hvp(const ScalarFn& f, const Tensor& x, const Tensor& v, bool create_graph = false);

}  // namespace fragile
