// Fused saliency ops: shape checks here, the math in Backend::saliency_moments(_backward),
// the derivatives in derivatives.cpp.
#include "core/ops/op_util.h"

namespace fragile {
using namespace detail;

namespace {

void check_moments_inputs(const Tensor& a, const Tensor& w, const char* name) {
  check_float(a, name);
  check_same(a, w, name);
  FRAGILE_CHECK(a.dim() == 4, name, ": attribution must be [N, C, H, W], got ",
                shape_str(a.shape()));
  FRAGILE_CHECK(w.dim() == 4 && (w.size(0) == 1 || w.size(0) == a.size(0)) && w.size(1) >= 1 &&
                    w.size(2) == a.size(2) && w.size(3) == a.size(3),
                name, ": weights must be [1 or ", a.size(0), ", K, ", a.size(2), ", ", a.size(3),
                "], got ", shape_str(w.shape()));
}

}  // namespace

Tensor saliency_moments(const Tensor& attribution, const Tensor& weights) {
  check_moments_inputs(attribution, weights, "saliency_moments");
  const Tensor w = weights.detach();
  Tensor out = Tensor::empty({attribution.size(0), w.size(1) + 1}, attribution.dtype(),
                             attribution.device());
  backend_for(attribution.device()).saliency_moments(attribution, w, out);
  return record(op_def("saliency_moments"), {attribution, w}, out);
}

Tensor saliency_moments_backward(const Tensor& grad, const Tensor& attribution,
                                 const Tensor& weights, const Tensor& moments) {
  const char* name = "saliency_moments_backward";
  check_moments_inputs(attribution, weights, name);
  check_same(grad, attribution, name);
  check_same(moments, attribution, name);
  const Shape ms = {attribution.size(0), weights.size(1) + 1};
  FRAGILE_CHECK(grad.shape() == ms && moments.shape() == ms, name, ": grad ",
                shape_str(grad.shape()), " and moments ", shape_str(moments.shape()),
                " must be ", shape_str(ms));
  const Tensor w = weights.detach();
  Tensor out = Tensor::empty(attribution.shape(), attribution.dtype(), attribution.device());
  backend_for(attribution.device()).saliency_moments_backward(grad, attribution, w, moments, out);
  return record(op_def(name), {grad, attribution, w, moments}, out);
}

}  // namespace fragile
