// Helpers shared by the op implementations (not part of the public API).
#pragma once
#include "core/autograd.h"
#include "core/backend.h"
#include "core/ops.h"

namespace fragile::detail {

inline void check_same(const Tensor& a, const Tensor& b, const char* op) {
  FRAGILE_CHECK(a.defined() && b.defined(), op, ": undefined input");
  FRAGILE_CHECK(a.dtype() == b.dtype(), op, ": dtype mismatch (", dtype_name(a.dtype()), " vs ",
                dtype_name(b.dtype()), ")");
  FRAGILE_CHECK(a.device() == b.device(), op, ": device mismatch (", device_name(a.device()),
                " vs ", device_name(b.device()), ")");
}

inline void check_float(const Tensor& x, const char* op) {
  FRAGILE_CHECK(x.defined(), op, ": undefined input");
  FRAGILE_CHECK(is_floating(x.dtype()), op, ": expected a float tensor, got ",
                dtype_name(x.dtype()));
}

// A broadcast view of x with `shape` (stride 0 on broadcast dims). No autograd.
Tensor broadcast_view(const Tensor& x, const Shape& shape);

inline Tensor raw_unary(UnaryOp op, const Tensor& x, ScalarArgs args = {}) {
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  backend_for(x.device()).unary(op, x, out, args);
  return out;
}

inline Tensor raw_binary(BinaryOp op, const Tensor& a, const Tensor& b, const char* name,
                         ScalarArgs args = {}) {
  check_same(a, b, name);
  Shape shape = broadcast_shapes(a.shape(), b.shape(), name);
  Tensor out = Tensor::empty(shape, a.dtype(), a.device());
  backend_for(a.device()).binary(op, broadcast_view(a, shape), broadcast_view(b, shape), out, args);
  return out;
}

inline Tensor scalar_like(const Tensor& x, double v) {
  return Tensor::full({}, v, x.dtype(), x.device());
}

}  // namespace fragile::detail
