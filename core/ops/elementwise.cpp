// Element-wise ops: forward through the backend, history through record().
#include "core/op_attrs.h"
#include "core/ops/op_util.h"

namespace fragile {
using namespace detail;


namespace detail {
Tensor broadcast_view(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  const int64_t rank = static_cast<int64_t>(shape.size());
  const int64_t lead = rank - x.dim();
  FRAGILE_CHECK(lead >= 0, "cannot broadcast ", shape_str(x.shape()), " to ", shape_str(shape));
  Shape strides(rank, 0);
  for (int64_t d = 0; d < x.dim(); ++d) {
    int64_t xs = x.shape()[d];
    FRAGILE_CHECK(xs == shape[lead + d] || xs == 1, "cannot broadcast ", shape_str(x.shape()),
                  " to ", shape_str(shape));
    strides[lead + d] = xs == 1 ? 0 : x.strides()[d];
  }
  return make_view(x, shape, strides, x.offset());
}
}  // namespace detail

namespace {

Tensor unary(const char* name, UnaryOp op, const Tensor& x, ScalarArgs args = {}) {
  check_float(x, name);
  Tensor out = raw_unary(op, x, args);
  return record(op_def(name), {x}, out, ScalarAttrs{args.a, args.b});
}

Tensor binary(const char* name, BinaryOp op, const Tensor& a, const Tensor& b) {
  Tensor out = raw_binary(op, a, b, name);
  return record(op_def(name), {a, b}, out);
}

Tensor compare(BinaryOp op, const Tensor& a, const Tensor& b, const char* name) {
  // Comparisons are piecewise constant: their outputs carry no history.
  return raw_binary(op, a.detach(), b.detach(), name);
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) { return binary("add", BinaryOp::Add, a, b); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary("sub", BinaryOp::Sub, a, b); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary("mul", BinaryOp::Mul, a, b); }
Tensor div(const Tensor& a, const Tensor& b) { return binary("div", BinaryOp::Div, a, b); }
Tensor pow(const Tensor& a, const Tensor& b) { return binary("pow", BinaryOp::Pow, a, b); }
Tensor add(const Tensor& a, double b) { return add(a, scalar_like(a, b)); }
Tensor sub(const Tensor& a, double b) { return sub(a, scalar_like(a, b)); }
Tensor mul(const Tensor& a, double b) { return mul(a, scalar_like(a, b)); }
Tensor div(const Tensor& a, double b) { return div(a, scalar_like(a, b)); }
Tensor rsub(double a, const Tensor& b) { return sub(scalar_like(b, a), b); }

Tensor neg(const Tensor& x) { return unary("neg", UnaryOp::Neg, x); }
Tensor exp(const Tensor& x) { return unary("exp", UnaryOp::Exp, x); }
Tensor log(const Tensor& x) { return unary("log", UnaryOp::Log, x); }
Tensor abs(const Tensor& x) { return unary("abs", UnaryOp::Abs, x); }
Tensor sign(const Tensor& x) { return unary("sign", UnaryOp::Sign, x); }
Tensor sqrt(const Tensor& x) { return unary("sqrt", UnaryOp::Sqrt, x); }
Tensor pow(const Tensor& x, double exponent) {
  return unary("pow_scalar", UnaryOp::PowScalar, x, {exponent, 0});
}
Tensor clamp(const Tensor& x, double lo, double hi) {
  FRAGILE_CHECK(!(lo > hi), "clamp: lower bound ", lo, " exceeds upper bound ", hi);
  return unary("clamp", UnaryOp::Clamp, x, {lo, hi});
}
Tensor relu(const Tensor& x) { return unary("relu", UnaryOp::Relu, x); }
Tensor sigmoid(const Tensor& x) { return unary("sigmoid", UnaryOp::Sigmoid, x); }
Tensor tanh(const Tensor& x) { return unary("tanh", UnaryOp::Tanh, x); }
Tensor softplus(const Tensor& x, double beta) {
  FRAGILE_CHECK(beta > 0, "softplus: beta must be positive, got ", beta);
  return unary("softplus", UnaryOp::Softplus, x, {beta, 0});
}

Tensor softplus_backward(const Tensor& grad, const Tensor& x, double beta) {
  check_float(x, "softplus_backward");
  FRAGILE_CHECK(grad.shape() == x.shape(), "softplus_backward: grad ", shape_str(grad.shape()),
                " vs input ", shape_str(x.shape()));
  Tensor out = raw_binary(BinaryOp::SoftplusBackward, grad, x, "softplus_backward", {beta, 0});
  return record(op_def("softplus_backward"), {grad, x}, out, ScalarAttrs{beta, 0});
}

Tensor relu_backward(const Tensor& grad, const Tensor& x) {
  check_float(x, "relu_backward");
  FRAGILE_CHECK(grad.shape() == x.shape(), "relu_backward: grad ", shape_str(grad.shape()),
                " vs input ", shape_str(x.shape()));
  Tensor out = raw_binary(BinaryOp::ReluBackward, grad, x, "relu_backward");
  // x is recorded detached: the result is piecewise constant in x (no gradient flows to it),
  // so a ReLU network's gradient map keeps no history of its input. That flat second order is
  // why the attacks take their direction from a softplus surrogate.
  return record(op_def("relu_backward"), {grad, x.detach()}, out);
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  check_same(a, b, "where");
  check_same(cond, a, "where (condition)");
  Shape shape = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(),
                                 "where");
  Tensor out = Tensor::empty(shape, a.dtype(), a.device());
  backend_for(a.device())
      .where(broadcast_view(cond, shape), broadcast_view(a, shape), broadcast_view(b, shape), out);
  return record(op_def("where"), {cond.detach(), a, b}, out);
}

Tensor eq(const Tensor& a, const Tensor& b) { return compare(BinaryOp::Eq, a, b, "eq"); }
Tensor ne(const Tensor& a, const Tensor& b) { return compare(BinaryOp::Ne, a, b, "ne"); }
Tensor lt(const Tensor& a, const Tensor& b) { return compare(BinaryOp::Lt, a, b, "lt"); }
Tensor le(const Tensor& a, const Tensor& b) { return compare(BinaryOp::Le, a, b, "le"); }
Tensor gt(const Tensor& a, const Tensor& b) { return compare(BinaryOp::Gt, a, b, "gt"); }
Tensor ge(const Tensor& a, const Tensor& b) { return compare(BinaryOp::Ge, a, b, "ge"); }

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator-(const Tensor& x) { return neg(x); }
Tensor operator*(const Tensor& a, double b) { return mul(a, b); }
Tensor operator*(double a, const Tensor& b) { return mul(b, a); }

}  // namespace fragile
