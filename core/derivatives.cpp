// THE derivative table: every backward rule of every primitive op, in one place.
//
// Rules are written with the differentiable ops of ops.h, never raw kernels, so that running
// them with create_graph=true records a graph that can be differentiated again (to any order).
// A rule receives the node (inputs, attributes, output), the gradient of its output (`g`) and
// which inputs need a gradient; it returns one gradient per input (undefined = none).
// Ops whose backward is itself a fused kernel (softplus_backward, (log_)softmax_backward,
// conv2d_backward_*, the pooling backwards, slice_backward) are entries of their own, with
// formulas for every input including the incoming gradient (PyTorch's rule for
// derivatives.yaml).
// Subgradients at kinks: relu'(0) = 0, abs'(0) = 0, clamp' = 0 at the bounds, sign' = 0.
#include <numeric>
#include <unordered_map>

#include "core/autograd.h"
#include "core/op_attrs.h"
#include "core/ops.h"
#include "core/ops/op_util.h"

namespace fragile {
namespace {

using Grads = std::vector<Tensor>;
using Needs = std::vector<bool>;

const Tensor& in(const Node& n, size_t i) { return n.inputs[i]; }

// Constant masks (derivatives of piecewise-linear maps) carry no history: they are
// locally constant, so their own derivative is zero almost everywhere.
Tensor mask(UnaryOp op, const Tensor& x, ScalarArgs a = {}) {
  return detail::raw_unary(op, x.detach(), a);
}

// ---- element-wise ---------------------------------------------------------------------------
Grads add_bw(const Node& n, const Tensor& g, const Needs& need) {
  return {need[0] ? sum_to(g, in(n, 0).shape()) : Tensor(),
          need[1] ? sum_to(g, in(n, 1).shape()) : Tensor()};
}
Grads sub_bw(const Node& n, const Tensor& g, const Needs& need) {
  return {need[0] ? sum_to(g, in(n, 0).shape()) : Tensor(),
          need[1] ? sum_to(neg(g), in(n, 1).shape()) : Tensor()};
}
Grads mul_bw(const Node& n, const Tensor& g, const Needs& need) {
  return {need[0] ? sum_to(mul(g, in(n, 1)), in(n, 0).shape()) : Tensor(),
          need[1] ? sum_to(mul(g, in(n, 0)), in(n, 1).shape()) : Tensor()};
}
Grads div_bw(const Node& n, const Tensor& g, const Needs& need) {
  const Tensor &a = in(n, 0), &b = in(n, 1);
  return {need[0] ? sum_to(div(g, b), a.shape()) : Tensor(),
          need[1] ? sum_to(neg(div(mul(g, a), mul(b, b))), b.shape()) : Tensor()};
}
// y = a^b: dy/da = b a^(b-1), dy/db = y log a (a > 0).
Grads pow_bw(const Node& n, const Tensor& g, const Needs& need) {
  const Tensor &a = in(n, 0), &b = in(n, 1);
  return {need[0] ? sum_to(mul(g, mul(b, pow(a, sub(b, 1.0)))), a.shape()) : Tensor(),
          need[1] ? sum_to(mul(g, mul(n.output(), log(a))), b.shape()) : Tensor()};
}
Grads neg_bw(const Node&, const Tensor& g, const Needs&) { return {neg(g)}; }
Grads exp_bw(const Node& n, const Tensor& g, const Needs&) { return {mul(g, n.output())}; }
Grads log_bw(const Node& n, const Tensor& g, const Needs&) { return {div(g, in(n, 0))}; }
Grads abs_bw(const Node& n, const Tensor& g, const Needs&) {
  return {mul(g, mask(UnaryOp::Sign, in(n, 0)))};
}
Grads sign_bw(const Node& n, const Tensor& g, const Needs&) {
  return {Tensor::zeros(g.shape(), g.dtype(), g.device())};
}
Grads sqrt_bw(const Node& n, const Tensor& g, const Needs&) {
  return {div(g, mul(n.output(), 2.0))};
}
Grads pow_scalar_bw(const Node& n, const Tensor& g, const Needs&) {
  const double p = n.attr<ScalarAttrs>().a;
  if (p == 0.0) return {Tensor::zeros(g.shape(), g.dtype(), g.device())};
  if (p == 1.0) return {g};
  return {mul(g, mul(pow(in(n, 0), p - 1.0), p))};
}
Grads clamp_bw(const Node& n, const Tensor& g, const Needs&) {
  const auto& a = n.attr<ScalarAttrs>();
  return {mul(g, mask(UnaryOp::ClampMask, in(n, 0), {a.a, a.b}))};
}
Grads where_bw(const Node& n, const Tensor& g, const Needs& need) {
  const Tensor& c = in(n, 0);
  Tensor zero = detail::scalar_like(g, 0.0);
  return {Tensor(),
          need[1] ? sum_to(where(c, g, zero), in(n, 1).shape()) : Tensor(),
          need[2] ? sum_to(where(c, zero, g), in(n, 2).shape()) : Tensor()};
}

// ---- activations ----------------------------------------------------------------------------
Grads relu_bw(const Node& n, const Tensor& g, const Needs&) {
  return {relu_backward(g, in(n, 0))};
}
// r = (x > 0 ? g : 0): linear in g with the same mask; piecewise constant in x, so no gradient
// for x (relu_backward records x detached).
Grads relu_backward_bw(const Node& n, const Tensor& u, const Needs& need) {
  return {need[0] ? relu_backward(u, in(n, 1)) : Tensor(), Tensor()};
}
// sigma' = sigma(x) sigma(-x), not y (1 - y): in float32, 1 - y has no significant digits left
// once x > ~16, while sigma(-x) keeps full relative precision.
Grads sigmoid_bw(const Node& n, const Tensor& g, const Needs&) {
  return {mul(g, mul(n.output(), sigmoid(neg(in(n, 0)))))};
}
Grads tanh_bw(const Node& n, const Tensor& g, const Needs&) {
  Tensor y = n.output();
  return {mul(g, rsub(1.0, mul(y, y)))};
}
Grads softplus_bw(const Node& n, const Tensor& g, const Needs&) {
  return {softplus_backward(g, in(n, 0), n.attr<ScalarAttrs>().a)};
}
// y = g * s(beta x), s = sigmoid:  dy/dg = s(beta x),  dy/dx = g * beta * s * (1 - s).
Grads softplus_backward_bw(const Node& n, const Tensor& u, const Needs& need) {
  const double beta = n.attr<ScalarAttrs>().a;
  const Tensor &g = in(n, 0), &x = in(n, 1);
  Grads out(2);
  if (need[0]) out[0] = softplus_backward(u, x, beta);
  if (need[1]) {
    // s (1 - s) written as s(bx) s(-bx): keeps float32 precision for large |beta x|.
    Tensor bx = mul(x, beta);
    out[1] = mul(mul(u, g), mul(mul(sigmoid(bx), sigmoid(neg(bx))), beta));
  }
  return out;
}

// ---- softmax (core/ops/softmax.cpp): rules in terms of the output y ---------------------------
Grads softmax_bw(const Node& n, const Tensor& g, const Needs&) {
  return {softmax_backward(g, n.output(), n.attr<DimAttrs>().dim)};
}
Grads log_softmax_bw(const Node& n, const Tensor& g, const Needs&) {
  return {log_softmax_backward(g, n.output(), n.attr<DimAttrs>().dim)};
}
// r = y (g - s), s = sum_d g y, for inputs (g, y); upstream u:
//   dr/dg = y (u - sum_d u y)          (the same map: diag(y) - y y^T is symmetric)
//   dr/dy = u (g - s) - g sum_d u y
Grads softmax_backward_bw(const Node& n, const Tensor& u, const Needs& need) {
  const int64_t dim = n.attr<DimAttrs>().dim;
  const Tensor &g = in(n, 0), &y = in(n, 1);
  Grads out(2);
  if (need[0]) out[0] = softmax_backward(u, y, dim);
  if (need[1]) {
    const Tensor s = sum(mul(g, y), {dim}, true);
    const Tensor uy = sum(mul(u, y), {dim}, true);
    out[1] = sub(mul(u, sub(g, s)), mul(g, uy));
  }
  return out;
}
// r = g - exp(y) s, s = sum_d g, for inputs (g, y); upstream u:
//   dr/dg = u - sum_d u exp(y),   dr/dy = -u exp(y) s
Grads log_softmax_backward_bw(const Node& n, const Tensor& u, const Needs& need) {
  const int64_t dim = n.attr<DimAttrs>().dim;
  const Tensor &g = in(n, 0), &y = in(n, 1);
  const Tensor p = exp(y);
  Grads out(2);
  if (need[0]) out[0] = sub(u, sum(mul(u, p), {dim}, true));
  if (need[1]) out[1] = neg(mul(mul(u, p), sum(g, {dim}, true)));
  return out;
}

// ---- fused saliency moments (core/ops/saliency.cpp) ------------------------------------------
// out = [m_1..m_K, T] per image with T = sum |A|, m_k = sum_hw a w_k / T. The weights are
// constants (recorded detached).
Grads saliency_moments_bw(const Node& n, const Tensor& g, const Needs& need) {
  if (!need[0]) return {Tensor(), Tensor()};
  return {saliency_moments_backward(g, in(n, 0), in(n, 1), n.output()), Tensor()};
}
// y = sign(A) (sum_k g_k (w_k - m_k) / T + g_T) for inputs (g, A, w, M = [m, T]); upstream U.
// With v = sum_c U sign(A) [N, H, W], V = sum_hw v and P_k = sum_hw v w_k:
//   dy/dg_k = (P_k - m_k V) / T,  dy/dg_T = V,  dy/dm_k = -g_k V / T,
//   dy/dT = -sum_k g_k (P_k - m_k V) / T^2,  dy/dA = 0 (sign is piecewise constant).
// Images with T = 0 have no moment terms, so their moment derivatives are 0.
Grads saliency_moments_backward_bw(const Node& n, const Tensor& u, const Needs& need) {
  const Tensor &g = in(n, 0), &a = in(n, 1), &w = in(n, 2), &moments = in(n, 3);
  const int64_t k = w.size(1);
  const Tensor v = sum(mul(u, mask(UnaryOp::Sign, a)), {1});         // [N, H, W]
  const Tensor v_total = reshape(sum(v, {1, 2}), {a.size(0), 1});    // [N, 1]
  const Tensor p = sum(mul(unsqueeze(v, 1), w), {2, 3});              // [N, K]
  const Tensor m = slice(moments, 1, 0, k), total = slice(moments, 1, k, k + 1);
  const Tensor gk = slice(g, 1, 0, k);
  const Tensor zero = Tensor::zeros({}, a.dtype(), a.device());
  const Tensor live = gt(total.detach(), zero);                       // [N, 1], constant
  const Tensor safe_total = where(live, total, Tensor::ones({}, a.dtype(), a.device()));
  const Tensor centred = sub(p, mul(m, v_total));                     // P_k - m_k V
  Grads out(4);
  if (need[0]) out[0] = concat({mul(div(centred, safe_total), live), v_total}, 1);
  if (need[1]) out[1] = Tensor::zeros(a.shape(), a.dtype(), a.device());
  if (need[3]) {
    const Tensor d_m = neg(mul(div(mul(gk, v_total), safe_total), live));
    const Tensor d_t = neg(mul(div(sum(mul(gk, centred), {1}, true),
                                   mul(safe_total, safe_total)), live));
    out[3] = concat({d_m, d_t}, 1);
  }
  return out;
}

// ---- reductions -----------------------------------------------------------------------------
Shape keepdim_shape(const Shape& x, const std::vector<int64_t>& dims) {
  Shape s = x;
  for (int64_t d : dims) s[d] = 1;
  return s;
}
Grads sum_bw(const Node& n, const Tensor& g, const Needs&) {
  const auto& a = n.attr<ReduceAttrs>();
  const Shape& xs = in(n, 0).shape();
  return {expand(reshape(g, keepdim_shape(xs, a.dims)), xs)};
}
// The gradient is split equally among tied maxima; the tie mask is locally constant.
Grads amax_bw(const Node& n, const Tensor& g, const Needs&) {
  const auto& a = n.attr<ReduceAttrs>();
  const Tensor& x = in(n, 0);
  Shape ks = keepdim_shape(x.shape(), a.dims);
  Tensor y = reshape(n.output().detach(), ks);
  Tensor ties = eq(x.detach(), y);
  Tensor count = sum(ties, a.dims, true).detach();
  return {mul(expand(reshape(g, ks), x.shape()), div(ties, count))};
}

// ---- shape and layout -----------------------------------------------------------------------
Grads reshape_bw(const Node& n, const Tensor& g, const Needs&) {
  return {reshape(g, n.attr<ShapeAttrs>().shape)};
}
Grads expand_bw(const Node& n, const Tensor& g, const Needs&) {
  return {sum_to(g, n.attr<ShapeAttrs>().shape)};
}
Grads permute_bw(const Node& n, const Tensor& g, const Needs&) {
  const auto& d = n.attr<PermuteAttrs>().dims;
  std::vector<int64_t> inverse(d.size());
  for (size_t i = 0; i < d.size(); ++i) inverse[d[i]] = static_cast<int64_t>(i);
  return {permute(g, inverse)};
}
Grads identity_bw(const Node&, const Tensor& g, const Needs&) { return {g}; }
Grads slice_bw(const Node& n, const Tensor& g, const Needs&) {
  const auto& a = n.attr<SliceAttrs>();
  return {slice_backward(g, a.input_shape, a.dim, a.start, a.end, a.step)};
}
Grads slice_backward_bw(const Node& n, const Tensor& u, const Needs&) {
  const auto& a = n.attr<SliceAttrs>();
  return {slice(u, a.dim, a.start, a.end, a.step)};
}
Grads pad_bw(const Node& n, const Tensor& g, const Needs&) {
  const auto& a = n.attr<PadAttrs>();
  const Shape& xs = in(n, 0).shape();
  Tensor r = g;
  for (size_t d = 0; d < xs.size(); ++d)
    if (a.before[d] || a.after[d]) r = slice(r, d, a.before[d], a.before[d] + xs[d]);
  return {r};
}
Grads concat_bw(const Node& n, const Tensor& g, const Needs& need) {
  const int64_t dim = n.attr<ConcatAttrs>().dim;
  Grads out(n.inputs.size());
  int64_t at = 0;
  for (size_t i = 0; i < n.inputs.size(); ++i) {
    const int64_t len = in(n, i).shape()[dim];
    if (need[i]) out[i] = slice(g, dim, at, at + len);
    at += len;
  }
  return out;
}
Grads to_dtype_bw(const Node& n, const Tensor& g, const Needs&) {
  return {to_dtype(g, n.attr<DTypeAttrs>().dtype)};
}

// ---- linear algebra -------------------------------------------------------------------------
// y = a b (batched):  da = g b^T,  db = a^T g.
Grads matmul_bw(const Node& n, const Tensor& g, const Needs& need) {
  const Tensor &a = in(n, 0), &b = in(n, 1);
  return {need[0] ? matmul(g, transpose(b, 1, 2)) : Tensor(),
          need[1] ? matmul(transpose(a, 1, 2), g) : Tensor()};
}

// ---- convolution: the three ops form a closed set under differentiation ------------------
// y = conv(x, w):  dx = Bi(g, w),  dw = Bw(x, g).
Grads conv2d_bw(const Node& n, const Tensor& g, const Needs& need) {
  const auto& p = n.attr<ConvAttrs>().p;
  const Tensor &x = in(n, 0), &w = in(n, 1);
  return {need[0] ? conv2d_backward_input(g, w, x.shape(), p) : Tensor(),
          need[1] ? conv2d_backward_weight(x, g, w.shape(), p) : Tensor()};
}
// dx = Bi(g, w) is bilinear: <u, Bi(g, w)> = <conv(u, w), g>, so
//   d/dg = conv(u, w),  d/dw = Bw(u, g).
Grads conv2d_backward_input_bw(const Node& n, const Tensor& u, const Needs& need) {
  const auto& p = n.attr<ConvAttrs>().p;
  const Tensor &g = in(n, 0), &w = in(n, 1);
  return {need[0] ? conv2d(u, w, Tensor(), p) : Tensor(),
          need[1] ? conv2d_backward_weight(u, g, w.shape(), p) : Tensor()};
}
// dw = Bw(x, g): <u, Bw(x, g)> = <conv(x, u), g>, so  d/dx = Bi(g, u),  d/dg = conv(x, u).
Grads conv2d_backward_weight_bw(const Node& n, const Tensor& u, const Needs& need) {
  const auto& p = n.attr<ConvAttrs>().p;
  const Tensor &x = in(n, 0), &g = in(n, 1);
  return {need[0] ? conv2d_backward_input(g, u, x.shape(), p) : Tensor(),
          need[1] ? conv2d(x, u, Tensor(), p) : Tensor()};
}

// ---- pooling: forward/backward pairs are adjoint linear maps (indices are constants) -------
Grads max_pool2d_bw(const Node& n, const Tensor& g, const Needs&) {
  const auto& a = n.attr<PoolAttrs>();
  return {max_pool2d_backward(g, in(n, 1), a.input_shape, a.p), Tensor()};
}
Grads max_pool2d_backward_bw(const Node& n, const Tensor& u, const Needs&) {
  return {max_pool2d_gather(u, in(n, 1), n.attr<PoolAttrs>().p), Tensor()};
}
Grads max_pool2d_gather_bw(const Node& n, const Tensor& u, const Needs&) {
  const auto& a = n.attr<PoolAttrs>();
  return {max_pool2d_backward(u, in(n, 1), a.input_shape, a.p), Tensor()};
}
Grads avg_pool2d_bw(const Node& n, const Tensor& g, const Needs&) {
  const auto& a = n.attr<PoolAttrs>();
  return {avg_pool2d_backward(g, a.input_shape, a.p)};
}
Grads avg_pool2d_backward_bw(const Node& n, const Tensor& u, const Needs&) {
  return {avg_pool2d(u, n.attr<PoolAttrs>().p)};
}

// clang-format off
const std::vector<OpDef> kTable = {
  // name                      backward                    saves_output
  {"add",                      add_bw,                     false},
  {"sub",                      sub_bw,                     false},
  {"mul",                      mul_bw,                     false},
  {"div",                      div_bw,                     false},
  {"pow",                      pow_bw,                     true},
  {"neg",                      neg_bw,                     false},
  {"exp",                      exp_bw,                     true},
  {"log",                      log_bw,                     false},
  {"abs",                      abs_bw,                     false},
  {"sign",                     sign_bw,                    false},
  {"sqrt",                     sqrt_bw,                    true},
  {"pow_scalar",               pow_scalar_bw,              false},
  {"clamp",                    clamp_bw,                   false},
  {"where",                    where_bw,                   false},
  // Comparisons are piecewise constant: their outputs never carry history (no rule needed).
  {"eq",                       nullptr,                    false},
  {"ne",                       nullptr,                    false},
  {"lt",                       nullptr,                    false},
  {"le",                       nullptr,                    false},
  {"gt",                       nullptr,                    false},
  {"ge",                       nullptr,                    false},
  {"relu",                     relu_bw,                    false},
  {"relu_backward",            relu_backward_bw,           false},
  {"sigmoid",                  sigmoid_bw,                 true},
  {"tanh",                     tanh_bw,                    true},
  {"softplus",                 softplus_bw,                false},
  {"softplus_backward",        softplus_backward_bw,       false},
  {"softmax",                  softmax_bw,                 true},
  {"log_softmax",              log_softmax_bw,             true},
  {"softmax_backward",         softmax_backward_bw,        false},
  {"log_softmax_backward",     log_softmax_backward_bw,    false},
  {"saliency_moments",         saliency_moments_bw,        true},
  {"saliency_moments_backward", saliency_moments_backward_bw, false},
  {"sum",                      sum_bw,                     false},
  {"amax",                     amax_bw,                    true},
  {"reshape",                  reshape_bw,                 false},
  {"expand",                   expand_bw,                  false},
  {"permute",                  permute_bw,                 false},
  {"contiguous",               identity_bw,                false},
  {"slice",                    slice_bw,                   false},
  {"slice_backward",           slice_backward_bw,          false},
  {"pad",                      pad_bw,                     false},
  {"concat",                   concat_bw,                  false},
  {"to_dtype",                 to_dtype_bw,                false},
  {"matmul",                   matmul_bw,                  false},
  {"conv2d",                   conv2d_bw,                  false},
  {"conv2d_backward_input",    conv2d_backward_input_bw,   false},
  {"conv2d_backward_weight",   conv2d_backward_weight_bw,  false},
  {"max_pool2d",               max_pool2d_bw,              false},
  {"max_pool2d_backward",      max_pool2d_backward_bw,     false},
  {"max_pool2d_gather",        max_pool2d_gather_bw,       false},
  {"avg_pool2d",               avg_pool2d_bw,              false},
  {"avg_pool2d_backward",      avg_pool2d_backward_bw,     false},
};
// clang-format on

}  // namespace

const std::vector<OpDef>& derivative_table() { return kTable; }

const OpDef& op_def(const std::string& name) {
  static const std::unordered_map<std::string, const OpDef*> index = [] {
    std::unordered_map<std::string, const OpDef*> m;
    for (const OpDef& d : kTable) m[d.name] = &d;
    return m;
  }();
  auto it = index.find(name);
  FRAGILE_CHECK(it != index.end(), "no derivative registered for op '", name, "'");
  return *it->second;
}

}  // namespace fragile
