// softmax and log_softmax as primitive ops with fused kernels (Backend::softmax), and their
// backwards as ops of their own, so that every order of derivative runs fused kernels or
// plain element-wise ops (rules in derivatives.cpp). Before, both were composites of amax,
// sub, exp, sum, log: five kernels and five saved tensors per call, and as many again in each
// backward.
#include "core/op_attrs.h"
#include "core/ops/op_util.h"

namespace fragile {
using namespace detail;

namespace {

Tensor dense(const Tensor& t) { return t.is_contiguous() ? t : t.clone_data(); }

Tensor softmax_forward(const Tensor& x, int64_t dim, bool log, const char* name) {
  check_float(x, name);
  FRAGILE_CHECK(x.dim() >= 1, name, ": input must have at least one dimension");
  dim = wrap_dim(dim, x.dim(), name);
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  backend_for(x.device()).softmax(dense(x), dim, log, out);
  return record(op_def(name), {x}, out, DimAttrs{dim});
}

Tensor softmax_backward_op(const Tensor& grad, const Tensor& y, int64_t dim, bool log,
                           const char* name) {
  check_float(y, name);
  check_same(grad, y, name);
  FRAGILE_CHECK(grad.shape() == y.shape(), name, ": grad ", shape_str(grad.shape()),
                " and output ", shape_str(y.shape()), " differ in shape");
  FRAGILE_CHECK(y.dim() >= 1, name, ": output must have at least one dimension");
  dim = wrap_dim(dim, y.dim(), name);
  Tensor out = Tensor::empty(y.shape(), y.dtype(), y.device());
  backend_for(y.device()).softmax_backward(dense(grad), dense(y), dim, log, out);
  return record(op_def(name), {grad, y}, out, DimAttrs{dim});
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) { return softmax_forward(x, dim, false, "softmax"); }

Tensor log_softmax(const Tensor& x, int64_t dim) {
  return softmax_forward(x, dim, true, "log_softmax");
}

Tensor softmax_backward(const Tensor& grad, const Tensor& y, int64_t dim) {
  return softmax_backward_op(grad, y, dim, false, "softmax_backward");
}

Tensor log_softmax_backward(const Tensor& grad, const Tensor& y, int64_t dim) {
  return softmax_backward_op(grad, y, dim, true, "log_softmax_backward");
}

}  // namespace fragile
