// DeepLIFT (Rescale), guided backprop and LRP as explicit backward walks over a traced graph.
//
// Why explicit walks and not a "gradient override" inside autograd: with y = f(x).detach() +
// m(x) * (x - x.detach()) the first derivative is m, but autograd also follows the zero-valued
// path through m(x), and differentiating the result again counts m'(x) twice (once through m,
// once through x - x.detach()). Here the attribution is an ordinary expression of traced values
// (multipliers, relevances, transposed convolutions), so its derivative, taken by autograd when
// create_graph is on, is exactly the derivative of the method's definition.
//
// Shapes: x [N, C, H, W]; activations as the model makes them; classes[n] for image n.
#include "attribution/propagation.h"

#include <cmath>
#include <limits>
#include <optional>
#include <unordered_map>

#include "attribution/graph_walk.h"
#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "nn/image.h"

namespace fragile::attr::detail {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Grad mode for a whole method: recorded when create_graph, not at all otherwise.
struct Mode {
  std::optional<EnableGradGuard> with;
  std::optional<NoGradGuard> without;
  explicit Mode(bool create_graph) {
    if (create_graph) with.emplace(); else without.emplace();
  }
};

// The input as traced: x itself when its history matters, otherwise a detached handle.
Tensor traced_input(const Tensor& x, bool create_graph) {
  return create_graph ? x : x.detach();
}

// The class mask [N, K] for a trace's scores.
Tensor trace_mask(const Trace& t, const std::vector<int64_t>& classes) {
  return class_mask(classes, scores_2d(t.score, t.input.size(0)).size(1), t.score);
}
// The cotangent of the score value for S = sum_n scores[n, c_n]: the mask, in the score's shape.
Tensor score_seed(const Trace& t, const std::vector<int64_t>& classes) {
  return reshape(trace_mask(t, classes), t.score.shape());
}

double beta_of(const nn::Node& n) { return n.get_float("beta", 1.0); }

// f'(x) of an activation node.
Tensor activation_derivative(const nn::Node& n, const Tensor& x) {
  if (n.op_type == "Relu") return gt(x.detach(), Tensor::zeros({}, x.dtype(), x.device()));
  const double beta = beta_of(n);
  return sigmoid(mul(x, beta));
}

Tensor zeros_like_scalar(const Tensor& t) { return Tensor::zeros({}, t.dtype(), t.device()); }
Tensor ones_like_scalar(const Tensor& t) { return Tensor::ones({}, t.dtype(), t.device()); }

void check_nodes(const Trace& t, const char* method, bool (*ok)(const std::string&),
                 const std::string& supported) {
  for (const Step& s : t.steps) require_supported(ok(s.node->op_type), method, *s.node, supported);
}

}  // namespace

// ---- DeepLIFT, Rescale rule ---------------------------------------------------------------

namespace {

bool deeplift_ok(const std::string& op) { return is_activation(op) || is_linear(op); }
const char* kGradientLikeOps =
    "Relu, Softplus, Conv, Gemm, MatMul, MaxPool, GlobalMaxPool, AveragePool, GlobalAveragePool, "
    "Concat, Flatten, Reshape, Squeeze, Unsqueeze, Transpose, Add, Sub, Sum, Dropout, Identity";

// m = (f(x) - f(r)) / (x - r), or f'(x) where |x - r| <= tol (1 + |x| + |r|): below that the
// secant is rounding noise and f'(x) is within f'' * tol of it. tol = sqrt(machine epsilon).
// The denominator is made safe before dividing, so the branch `where` discards never produces
// NaN in a backward pass. For ReLU the secant is exact: 1 or 0 when x and r lie on the same side,
// x / (x - r) (or -r / ... ) when they straddle 0.
Tensor rescale_multiplier(const nn::Node& n, const Tensor& x, const Tensor& y, const Tensor& r,
                          const Tensor& yr) {
  const double tol = std::sqrt(x.dtype() == DType::Float64
                                   ? std::numeric_limits<double>::epsilon()
                                   : static_cast<double>(std::numeric_limits<float>::epsilon()));
  Tensor dx = sub(x, r);
  Tensor dy = sub(y, yr);
  Tensor far;
  {
    NoGradGuard ng;
    Tensor xd = x.detach(), rd = r.detach();
    Tensor scale = add(add(abs(xd), abs(rd)), 1.0);
    far = gt(abs(sub(xd, rd)), mul(scale, tol));
  }
  Tensor safe_dx = where(far, dx, ones_like_scalar(dx));
  return where(far, div(dy, safe_dx), activation_derivative(n, x));
}

}  // namespace

Tensor deeplift(const nn::Session& s, const Tensor& x, const Tensor& ref, const std::vector<int64_t>& classes,
                bool create_graph) {
  Mode mode(create_graph);
  Trace tx = run_traced(s, traced_input(x, create_graph));
  check_nodes(tx, "deeplift", deeplift_ok, kGradientLikeOps);
  Trace tr = run_traced(s, traced_input(ref, create_graph));
  FRAGILE_CHECK(tr.steps.size() == tx.steps.size(), "deeplift: the reference trace differs");
  std::unordered_map<const nn::Node*, const Step*> ref_step;
  for (const Step& st : tr.steps) ref_step[st.node] = &st;

  auto rule = [&](const Step& st, const std::vector<Tensor>& g) -> std::vector<Tensor> {
    const nn::Node& n = *st.node;
    if (is_activation(n.op_type)) {
      const Step& rs = *ref_step.at(&n);
      Tensor m = rescale_multiplier(n, st.inputs[0], st.outputs[0], rs.inputs[0], rs.outputs[0]);
      return {mul(g[0], m)};
    }
    return linear_vjp(s, st, g, create_graph);
  };
  Tensor mult = propagate(tx, score_seed(tx, classes), rule);
  Tensor diff = sub(tx.input, tr.input);
  return mul(diff, mult);
}

// ---- guided backprop -------------------------------------------------------------------------

Tensor guided_backprop(const nn::Session& s, const Tensor& x, const std::vector<int64_t>& classes,
                       bool create_graph) {
  Mode mode(create_graph);
  Trace tx = run_traced(s, traced_input(x, create_graph));
  check_nodes(tx, "guided_backprop", deeplift_ok, kGradientLikeOps);
  auto rule = [&](const Step& st, const std::vector<Tensor>& g) -> std::vector<Tensor> {
    const nn::Node& n = *st.node;
    if (n.op_type == "Relu") {
      return {mul(relu(g[0]), activation_derivative(n, st.inputs[0]))};
    }
    if (n.op_type == "Softplus") {
      return {softplus_backward(relu(g[0]), st.inputs[0], beta_of(n))};
    }
    return linear_vjp(s, st, g, create_graph);
  };
  return propagate(tx, score_seed(tx, classes), rule);
}

// ---- LRP -------------------------------------------------------------------------------------

namespace {

const char* kLrpOps =
    "Conv, Gemm, MatMul (epsilon / alpha-beta / z^B); AveragePool, GlobalAveragePool, Add, Sub, "
    "Sum (z-rule); MaxPool, GlobalMaxPool (winner-take-all); Relu, Softplus, Concat, Flatten, "
    "Reshape, Squeeze, Unsqueeze, Transpose, Dropout, Identity (pass-through)";

bool is_zrule(const std::string& op) {
  return op == "AveragePool" || op == "GlobalAveragePool" || op == "Add" || op == "Sub" ||
         op == "Sum";
}
bool is_reshaping(const std::string& op) {
  return op == "Flatten" || op == "Reshape" || op == "Squeeze" || op == "Unsqueeze" ||
         op == "Transpose" || op == "Dropout" || op == "Identity";
}
bool lrp_ok(const std::string& op) { return is_activation(op) || is_linear(op); }

// z + eps * sign(z), sign(0) = +1: keeps |denominator| >= eps with the sign of z.
Tensor stabilize(const Tensor& z, double eps) {
  Tensor nonneg = ge(z.detach(), zeros_like_scalar(z));
  return where(nonneg, add(z, eps), sub(z, eps));
}

// The valid input box [low, high] per channel, [1, C, 1, 1] each, for the z^B rule.
std::pair<Tensor, Tensor> input_box(const nn::Session& s, const Tensor& x, const Options& o) {
  const int64_t c = x.size(1);
  std::vector<double> lo(c), hi(c);
  if (!o.lrp_low.empty() || !o.lrp_high.empty()) {
    auto given = [&](const std::vector<double>& v, const char* what) {
      FRAGILE_CHECK(v.size() == 1 || static_cast<int64_t>(v.size()) == c, "lrp: Options::", what,
                    " has ", v.size(), " values for an input with ", c, " channels");
      std::vector<double> out(c);
      for (int64_t i = 0; i < c; ++i) out[i] = v.size() == 1 ? v[0] : v[i];
      return out;
    };
    lo = given(o.lrp_low, "lrp_low");
    hi = given(o.lrp_high, "lrp_high");
    for (int64_t i = 0; i < c; ++i) {
      FRAGILE_CHECK(lo[i] < hi[i], "lrp: Options::lrp_low must be below lrp_high (channel ", i,
                    ": ", lo[i], " vs ", hi[i], ")");
    }
  } else {
    const nn::Model& m = s.model();
    FRAGILE_CHECK(m.meta("preprocess.mean") || m.meta("preprocess.scale"),
                  "lrp: the z^B rule of the first layer needs the valid input box; set "
                  "Options::lrp_low and lrp_high, or give the model preprocess.mean / "
                  "preprocess.scale metadata (pixels 0..255 map to (p - mean) * scale)");
    nn::Preprocess p = nn::preprocess_from_metadata(m);
    auto per_channel = [&](const std::vector<double>& v, const char* what) {
      FRAGILE_CHECK(v.size() == 1 || static_cast<int64_t>(v.size()) == c, "lrp: preprocess.",
                    what, " has ", v.size(), " values for an input with ", c, " channels");
      std::vector<double> out(c);
      for (int64_t i = 0; i < c; ++i) out[i] = v.size() == 1 ? v[0] : v[i];
      return out;
    };
    auto mean = per_channel(p.mean, "mean"), scale = per_channel(p.scale, "scale");
    for (int64_t i = 0; i < c; ++i) {
      const double a = (0.0 - mean[i]) * scale[i], b = (255.0 - mean[i]) * scale[i];
      lo[i] = std::min(a, b);
      hi[i] = std::max(a, b);
    }
  }
  auto make = [&](const std::vector<double>& v) {
    Tensor t = Tensor::from_vector(v, {1, c, 1, 1}, x.dtype());
    return x.device() == Device::CPU ? t : t.to(x.device());
  };
  return {make(lo), make(hi)};
}

}  // namespace

Tensor lrp(const nn::Session& s, const Tensor& x, const std::vector<int64_t>& classes, const Options& o,
           bool alpha_beta, bool create_graph) {
  FRAGILE_CHECK(x.dim() == 4, "lrp: x must be [N, C, H, W], got ", shape_str(x.shape()));
  Mode mode(create_graph);
  Trace tx = run_traced(s, traced_input(x, create_graph));
  check_nodes(tx, alpha_beta ? "lrp_alphabeta" : "lrp_epsilon", lrp_ok, kLrpOps);
  const double eps = o.lrp_epsilon;

  // Box bounds of the input, carried through reshaping nodes: a weighted layer whose data
  // input has bounds is a "first layer" and uses z^B.
  std::unordered_map<std::string, std::pair<Tensor, Tensor>> bounds;
  {
    auto [lo, hi] = input_box(s, tx.input, o);
    bounds[tx.input_name] = {contiguous(expand(lo, tx.input.shape())),
                             contiguous(expand(hi, tx.input.shape()))};
    for (const Step& st : tx.steps) {
      const nn::Node& n = *st.node;
      auto b = bounds.find(n.inputs[0]);
      if (!is_reshaping(n.op_type) || b == bounds.end()) continue;
      std::vector<Tensor> li = st.inputs, hi2 = st.inputs;
      li[0] = b->second.first;
      hi2[0] = b->second.second;
      bounds[n.outputs[0]] = {run_node(s, n, li)[0], run_node(s, n, hi2)[0]};
    }
  }

  auto vjp = [&](const Step& st, const Tensor& g, const Tensor& w) {
    return linear_vjp(s, st, {g}, create_graph, w)[0];
  };
  auto rule = [&](const Step& st, const std::vector<Tensor>& R) -> std::vector<Tensor> {
    const nn::Node& n = *st.node;
    std::vector<Tensor> out(st.inputs.size());
    if (is_activation(n.op_type)) {
      out[0] = R[0];
      return out;
    }
    if (is_zrule(n.op_type)) {
      Tensor sdiv = div(R[0], stabilize(st.outputs[0], eps));
      std::vector<Tensor> c = linear_vjp(s, st, {sdiv}, create_graph);
      for (size_t i = 0; i < st.inputs.size(); ++i) {
        if (st.data_input[i] && c[i].defined()) out[i] = mul(st.inputs[i], c[i]);
      }
      return out;
    }
    if (!is_weighted(n.op_type)) return linear_vjp(s, st, R, create_graph);  // routing

    const Tensor& a = st.inputs[0];
    const Tensor& w = st.inputs[1];
    FRAGILE_CHECK(st.data_input[0] && !st.data_input[1], "lrp: ", n.describe(),
                  ": only a data input times a constant weight is supported");
    Tensor wp = clamp(w, 0.0, kInf), wn = clamp(w, -kInf, 0.0);
    if (auto b = bounds.find(n.inputs[0]); b != bounds.end()) {
      // z^B: R_i = sum_j (x_i w_ij - l_i w+_ij - h_i w-_ij) / z_j R_j.
      const Tensor& lo = b->second.first;
      const Tensor& hi = b->second.second;
      Tensor z = sub(sub(weighted_forward(s, st, a, w), weighted_forward(s, st, lo, wp)),
                     weighted_forward(s, st, hi, wn));
      Tensor sd = div(R[0], stabilize(z, eps));
      out[0] = sub(sub(mul(a, vjp(st, sd, w)), mul(lo, vjp(st, sd, wp))),
                   mul(hi, vjp(st, sd, wn)));
      return out;
    }
    if (!alpha_beta) {
      // epsilon: R_i = a_i sum_j w_ij R_j / (z_j + eps sign z_j), z with the bias.
      Tensor sd = div(R[0], stabilize(st.outputs[0], eps));
      out[0] = mul(a, vjp(st, sd, w));
      return out;
    }
    // alpha-beta (biases ignored): positive and negative parts of a_i w_ij. For a >= 0 (after
    // ReLU/softplus, the usual case) the a- terms vanish and are skipped.
    bool has_negative;
    {
      NoGradGuard ng;
      has_negative = amax(neg(a.detach())).item() > 0.0;
    }
    Tensor ap = has_negative ? clamp(a, 0.0, kInf) : a;
    Tensor an = has_negative ? clamp(a, -kInf, 0.0) : Tensor();
    auto part = [&](const Tensor& w_for_ap, const Tensor& w_for_an, double stab) {
      // z = sum (ap w1 + an w2); contributions ap * vjp(R/z, w1) + an * vjp(R/z, w2).
      Tensor z = weighted_forward(s, st, ap, w_for_ap);
      if (has_negative) z = add(z, weighted_forward(s, st, an, w_for_an));
      Tensor sd = div(R[0], add(z, stab));
      Tensor r = mul(ap, vjp(st, sd, w_for_ap));
      if (has_negative) r = add(r, mul(an, vjp(st, sd, w_for_an)));
      return r;
    };
    Tensor r = mul(part(wp, wn, eps), o.lrp_alpha);
    if (o.lrp_beta != 0.0) r = sub(r, mul(part(wn, wp, -eps), o.lrp_beta));
    out[0] = r;
    return out;
  };

  Tensor seed = mul(scores_2d(tx.score, x.size(0)), trace_mask(tx, classes));
  return propagate(tx, reshape(seed, tx.score.shape()), rule);
}

}  // namespace fragile::attr::detail
