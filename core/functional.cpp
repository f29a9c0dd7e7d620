#include "core/functional.h"

#include "core/autograd.h"
#include "core/ops.h"

namespace fragile {

namespace {
// A fresh leaf sharing x's data, so differentiating never touches the caller's tensor or graph.
Tensor fresh_leaf(const Tensor& x) {
  Tensor leaf = x.detach();
  leaf.set_requires_grad(true);
  return leaf;
}
}  // namespace

VjpResult vjp(const ScalarFn& f, const Tensor& x, const Tensor& v, bool create_graph) {
  EnableGradGuard enable;
  Tensor leaf = fresh_leaf(x);
  Tensor y = f(leaf);
  Tensor g = grad({y}, {leaf}, {v}, create_graph, /*allow_unused=*/true)[0];
  return {create_graph ? y : y.detach(), g};
}

HvpResult hvp(const ScalarFn& f, const Tensor& x, const Tensor& v, bool create_graph) {
  FRAGILE_CHECK(v.shape() == x.shape(), "hvp: vector shape ", shape_str(v.shape()),
                " differs from input shape ", shape_str(x.shape()));
  EnableGradGuard enable;
  Tensor leaf = fresh_leaf(x);
  Tensor y = f(leaf);
  FRAGILE_CHECK(y.numel() == 1, "hvp: f must return one element, got shape ",
                shape_str(y.shape()));
  // Reverse-over-reverse: g(x) = df/dx recorded with its graph, then d<g(x), v>/dx = H v.
  Tensor g = grad({y}, {leaf}, {}, /*create_graph=*/true)[0];
  Tensor hv;
  if (g.requires_grad()) {
    hv = grad({g}, {leaf}, {v}, create_graph, /*allow_unused=*/true)[0];
  } else {
    hv = Tensor::zeros(x.shape(), x.dtype(), x.device());  // f is linear in x: H = 0
  }
  if (!create_graph) return {y.detach(), g.detach(), hv};
  return {y, g, hv};
}

}  // namespace fragile
