// Method names, the gradient family (gradient, gradient x input, integrated gradients,
// SmoothGrad, beta-smoothed gradient) and saliency normalisation. The modified-backward methods
// live in propagation.cpp.
//
// Shapes: x [N, C, H, W]; scores [N, K]; mask [N, K] one-hot of the explained classes, so that
// S = sum(scores * mask) = sum_n S_{c_n}(x_n) and dS/dx_n = dS_{c_n}/dx_n (images never mix).
#include "attribution/attribution.h"

#include <algorithm>
#include <limits>
#include <optional>
#include <random>

#include "attribution/graph_walk.h"
#include "attribution/propagation.h"
#include "core/image_streams.h"
#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "nn/session.h"

namespace fragile::attr {
namespace {

struct NameEntry {
  Method method;
  const char* name;
};
constexpr NameEntry kNames[] = {
    {Method::Gradient, "gradient"},
    {Method::GradientTimesInput, "grad_x_input"},
    {Method::IntegratedGradients, "ig"},
    {Method::SmoothGrad, "smoothgrad"},
    {Method::DeepLift, "deeplift"},
    {Method::GuidedBackprop, "guided_backprop"},
    {Method::LrpEpsilon, "lrp_epsilon"},
    {Method::LrpAlphaBeta, "lrp_alphabeta"},
    {Method::SmoothedGradient, "beta_smoothed"},
};

Tensor on_device(Tensor t, const Tensor& like) { return t.to(like.device()); }

// d/dxs sum(scores(xs) * mask) for a batch of points xs. When create_graph and xs carries
// history, the gradient is taken with respect to xs itself so that its dependence on the
// caller's x is kept; otherwise with respect to a fresh leaf.
Tensor input_gradient(const ScoreFn& scores, const Tensor& xs,
                      const std::vector<int64_t>& classes, bool create_graph) {
  Tensor in = xs;
  if (!(create_graph && xs.requires_grad())) {
    in = xs.detach();
    in.set_requires_grad(true);
  }
  EnableGradGuard with;
  Tensor z = scores(in);
  FRAGILE_CHECK(z.dim() == 2 && z.size(0) == static_cast<int64_t>(classes.size()),
                "attribute: scores ", shape_str(z.shape()), " for ", classes.size(), " images");
  Tensor total = sum(mul(z, detail::class_mask(classes, z.size(1), z)));
  return grad({total}, {in}, {}, create_graph)[0];
}

// The points of a sum-over-points method (IG, SmoothGrad) that one call adds up: [begin, end),
// clipped to the method's count. The whole range by default; one chunk of it when
// gradient_of_attribution_loss recomputes a chunk's share of the map.
struct PointRange {
  int64_t begin = 0;
  int64_t end = std::numeric_limits<int64_t>::max();
};

// Sum over points of input gradients, the points made `chunk` at a time by point(i) for
// i in range (within [0, count)): each chunk is one batch of chunk*N images.
Tensor summed_gradients(const ScoreFn& scores, int64_t count, int64_t chunk,
                        const std::vector<int64_t>& classes,
                        const std::function<Tensor(int64_t)>& point, bool create_graph,
                        PointRange range = {}) {
  FRAGILE_CHECK(count >= 1, "attribute: need at least one point, got ", count);
  FRAGILE_CHECK(chunk >= 1, "attribute: ig_batch must be >= 1, got ", chunk);
  const int64_t end = std::min(range.end, count);
  FRAGILE_CHECK(range.begin >= 0 && range.begin < end, "attribute: points [", range.begin, ", ",
                end, ") of ", count);
  std::optional<EnableGradGuard> with;
  std::optional<NoGradGuard> without;
  if (create_graph) with.emplace(); else without.emplace();
  Tensor total;
  for (int64_t i0 = range.begin; i0 < end; i0 += chunk) {
    const int64_t b = std::min(chunk, end - i0);
    std::vector<Tensor> pts;
    for (int64_t i = i0; i < i0 + b; ++i) pts.push_back(point(i));
    const Tensor& first = pts[0];
    Tensor xs = b == 1 ? first : concat(pts, 0);
    std::vector<int64_t> rep;
    for (int64_t j = 0; j < b; ++j) rep.insert(rep.end(), classes.begin(), classes.end());
    Tensor g = input_gradient(scores, xs, rep, create_graph);
    if (b > 1) {
      Shape s = first.shape();
      s.insert(s.begin(), b);
      g = sum(reshape(g, s), {0});
    }
    total = total.defined() ? add(total, g) : g;
  }
  return total;
}

Tensor resolve_reference(const Options& o, const Tensor& x, const char* what) {
  if (!o.reference.defined()) return Tensor();
  const Tensor& r = o.reference;
  FRAGILE_CHECK(r.dim() == x.dim() && (r.size(0) == 1 || r.size(0) == x.size(0)), what,
                ": reference ", shape_str(r.shape()), " for an input of shape ",
                shape_str(x.shape()), " (expected [1 or N, C, H, W])");
  for (int64_t d = 1; d < x.dim(); ++d) {
    FRAGILE_CHECK(r.size(d) == x.size(d), what, ": reference ", shape_str(r.shape()),
                  " for an input of shape ", shape_str(x.shape()));
  }
  // A reference given on another device (e.g. loaded from a file) is a constant: copy it over.
  const Tensor on_x_device = r.device() == x.device() ? r : r.detach().to(x.device());
  return on_x_device.dtype() == x.dtype() ? on_x_device : to_dtype(on_x_device, x.dtype());
}

// The reference IG starts from and DeepLIFT compares with: Options::reference when given,
// else the default. Built under the caller's grad mode: the image-mean default is a function
// of x and is differentiated as such when create_graph is set.
Tensor reference_for(const Options& o, const Tensor& x, const char* what) {
  Tensor ref = resolve_reference(o, x, what);
  if (ref.defined()) return ref;
  switch (o.default_reference) {
    case Options::DefaultReference::Zero:
      return Tensor::zeros(x.shape(), x.dtype(), x.device());
    case Options::DefaultReference::ImageChannelMean:
      return contiguous(expand(mean(x, {2, 3}, true), x.shape()));
  }
  FRAGILE_FAIL(what, ": unknown default reference");
}

Tensor finish(const Tensor& a, const Tensor& x, bool create_graph) {
  Tensor r = a.dtype() == x.dtype() ? a : to_dtype(a, x.dtype());
  return create_graph ? r : r.detach();
}

}  // namespace

Method method_from_name(const std::string& name) {
  for (const auto& e : kNames) {
    if (name == e.name) return e.method;
  }
  std::string valid;
  for (const auto& e : kNames) valid += std::string(valid.empty() ? "" : ", ") + e.name;
  FRAGILE_FAIL("unknown attribution method '", name, "' (valid: ", valid, ")");
}

const char* method_name(Method m) {
  for (const auto& e : kNames) {
    if (e.method == m) return e.name;
  }
  return "?";
}

std::vector<std::string> method_names() {
  std::vector<std::string> out;
  for (const auto& e : kNames) out.emplace_back(e.name);
  return out;
}

namespace {

// SmoothGrad's standard normal draws, one per sample, in order, image n's from its own stream
// (seed, first_image + n), on x's device: [k] tensors shaped like x.
std::vector<Tensor> smoothgrad_units(const Options& o, const Tensor& x) {
  ImageStreams streams(o.seed, o.first_image, x.size(0));
  std::vector<Tensor> units;
  for (int64_t i = 0; i < o.smoothgrad_samples; ++i) {
    units.push_back(on_device(streams.randn(x.shape(), x.dtype()), x));
  }
  return units;
}

// attribute(), restricted for IG and SmoothGrad to the points in `range` (the map's share
// from those points: the shares of disjoint ranges add up to the map). Other methods ignore it.
// `units`: SmoothGrad's draws (smoothgrad_units) when the caller already has them, so that the
// chunks of one map do not draw them again; null: drawn here.
Tensor attribute_points(const nn::Session& model, const Tensor& x,
                        const std::vector<int64_t>& classes, Method method, const Options& o,
                        bool create_graph, PointRange range,
                        const std::vector<Tensor>* units = nullptr) {
  FRAGILE_CHECK(x.defined() && x.dim() >= 2 && is_floating(x.dtype()),
                "attribute: x must be a float tensor [N, ...]");
  const int64_t n = x.size(0);
  FRAGILE_CHECK(static_cast<int64_t>(classes.size()) == n, "attribute: ", classes.size(),
                " classes for a batch of ", n, " images");
  const ScoreFn scores = [&model](const Tensor& t) { return model.scores(t); };
  const char* name = method_name(method);

  switch (method) {
    case Method::Gradient: {
      return finish(summed_gradients(scores, 1, 1, classes, [&](int64_t) { return x; }, create_graph),
                    x, create_graph);
    }
    case Method::GradientTimesInput: {
      Tensor g = summed_gradients(scores, 1, 1, classes, [&](int64_t) { return x; }, create_graph);
      std::optional<NoGradGuard> ng;
      if (!create_graph) ng.emplace();
      return finish(mul(x, g), x, create_graph);
    }
    case Method::IntegratedGradients: {
      // x_i = ref + (i/M)(x - ref), i = 1..M; IG = (x - ref) * mean_i dS/dx(x_i).
      const int64_t m = o.ig_steps;
      FRAGILE_CHECK(m >= 1, "ig: ig_steps must be >= 1, got ", m);
      std::optional<NoGradGuard> ng;
      if (!create_graph) ng.emplace();
      Tensor ref = reference_for(o, x, name);
      Tensor diff = sub(x, ref);
      Tensor total = summed_gradients(
          scores, m, o.ig_batch, classes,
          [&](int64_t i) { return add(ref, mul(diff, static_cast<double>(i + 1) / m)); },
          create_graph, range);
      return finish(mul(diff, div(total, static_cast<double>(m))), x, create_graph);
    }
    case Method::SmoothGrad: {
      // sigma_n = smoothgrad_sigma * (max x_n - min x_n); noise drawn per sample, in order,
      // image n's from its own stream (seed, first_image + n).
      const int64_t k = o.smoothgrad_samples;
      FRAGILE_CHECK(k >= 1, "smoothgrad: smoothgrad_samples must be >= 1, got ", k);
      std::optional<NoGradGuard> ng;
      if (!create_graph) ng.emplace();
      // sigma depends on x (through its max and min), so with create_graph the map's
      // derivative is the derivative of SmoothGrad as defined, noise scale included.
      std::vector<int64_t> rest;
      for (int64_t d = 1; d < x.dim(); ++d) rest.push_back(d);
      const Tensor spread = add(amax(x, rest, true), amax(neg(x), rest, true));
      const Tensor sigma = mul(spread, o.smoothgrad_sigma);
      std::vector<Tensor> drawn;
      if (!units) drawn = smoothgrad_units(o, x);
      const std::vector<Tensor>& unit = units ? *units : drawn;
      FRAGILE_CHECK(static_cast<int64_t>(unit.size()) == k, "smoothgrad: ", unit.size(),
                    " noise draws for ", k, " samples");
      std::vector<Tensor> noise(k);  // only the samples of `range` are used
      for (int64_t i = range.begin; i < std::min(k, range.end); ++i) {
        noise[i] = mul(unit[i], sigma);
      }
      Tensor total = summed_gradients(
          scores, k, o.ig_batch, classes, [&](int64_t i) { return add(x, noise[i]); }, create_graph,
          range);
      return finish(div(total, static_cast<double>(k)), x, create_graph);
    }
    case Method::SmoothedGradient: {
      FRAGILE_CHECK(o.smoothing_beta > 0, "beta_smoothed: smoothing_beta must be > 0, got ",
                    o.smoothing_beta);
      const double beta = o.smoothing_beta;
      const ScoreFn smooth = [&model, beta](const Tensor& t) {
        detail::Trace tr = detail::run_traced(
            model, t, [beta](const nn::Node& node, const std::vector<Tensor>& ins) {
              if (node.op_type != "Relu") return std::vector<Tensor>{};
              return std::vector<Tensor>{softplus(ins[0], beta)};
            });
        return detail::scores_2d(tr.score, t.size(0));
      };
      return finish(summed_gradients(smooth, 1, 1, classes, [&](int64_t) { return x; }, create_graph),
                    x, create_graph);
    }
    case Method::DeepLift: {
      FRAGILE_CHECK(x.dim() == 4, "deeplift: x must be [N, C, H, W], got ", shape_str(x.shape()));
      Tensor ref;
      {
        std::optional<NoGradGuard> ng;
        if (!create_graph) ng.emplace();
        ref = reference_for(o, x, name);
      }
      return finish(detail::deeplift(model, x, ref, classes, create_graph), x, create_graph);
    }
    case Method::GuidedBackprop:
      return finish(detail::guided_backprop(model, x, classes, create_graph), x, create_graph);
    case Method::LrpEpsilon:
      return finish(detail::lrp(model, x, classes, o, false, create_graph), x, create_graph);
    case Method::LrpAlphaBeta:
      return finish(detail::lrp(model, x, classes, o, true, create_graph), x, create_graph);
  }
  FRAGILE_FAIL("attribute: unknown method");
}

// How many points a method sums its map over (1 for the methods that are not sums).
int64_t point_count(Method method, const Options& o) {
  switch (method) {
    case Method::IntegratedGradients: return o.ig_steps;
    case Method::SmoothGrad: return o.smoothgrad_samples;
    default: return 1;
  }
}

}  // namespace

Tensor attribute(const nn::Session& model, const Tensor& x, const std::vector<int64_t>& classes,
                 Method method, const Options& o, bool create_graph) {
  return attribute_points(model, x, classes, method, o, create_graph, {});
}

AttributionLossGradient gradient_of_attribution_loss(const nn::Session& model, const Tensor& x,
                                                     const std::vector<int64_t>& classes,
                                                     Method method, const Options& o,
                                                     const AttributionLoss& loss) {
  FRAGILE_CHECK(o.ig_batch >= 1, "attribute: ig_batch must be >= 1, got ", o.ig_batch);
  EnableGradGuard grad_on;
  Tensor xin = x.detach();
  xin.set_requires_grad(true);
  AttributionLossGradient out;
  const int64_t count = point_count(method, o);
  // (grad with allow_unused gives zeros for an input the loss does not reach.)
  if (count <= o.ig_batch) {
    // One chunk: differentiate the map directly.
    const Tensor a = attribute(model, xin, classes, method, o, true);
    out.grad = grad({sum(loss(a))}, {xin}, {}, false, true)[0];
    out.attribution = a.detach();
    return out;
  }
  // Several chunks. Keeping every chunk's double-backward graph until the loss is known costs
  // memory in proportion to the points (about 120 MB per SqueezeNet point in float32: 12 GB
  // per image at M = 100). Instead: the map without history (one chunk's first-order graph
  // alive at a time); u = dloss/dmap at it; then each chunk's share of the map recomputed with
  // history and differentiated against u, sum_c d<u, share_c>/dx = d loss/dx, its graph freed
  // before the next chunk. The price is one extra first-order pass over the points.
  std::vector<Tensor> units;
  if (method == Method::SmoothGrad) units = smoothgrad_units(o, x);
  const std::vector<Tensor>* drawn = units.empty() ? nullptr : &units;
  out.attribution =
      attribute_points(model, xin.detach(), classes, method, o, false, {}, drawn).detach();
  Tensor leaf = out.attribution.detach();
  leaf.set_requires_grad(true);
  const Tensor u = grad({sum(loss(leaf))}, {leaf}, {}, false, true)[0];
  Tensor total;
  for (int64_t b = 0; b < count; b += o.ig_batch) {
    const Tensor share =
        attribute_points(model, xin, classes, method, o, true, {b, b + o.ig_batch}, drawn);
    const Tensor g = grad({sum(mul(share, u))}, {xin}, {}, false, true)[0];
    total = total.defined() ? add(total, g) : g;
  }
  out.grad = total;
  return out;
}

Tensor saliency_map(const Tensor& attribution) {
  FRAGILE_CHECK(attribution.defined() && attribution.dim() == 4,
                "saliency_map: attribution must be [N, C, H, W], got ",
                attribution.defined() ? shape_str(attribution.shape()) : std::string("undefined"));
  Tensor s = sum(abs(attribution), {1});           // [N, H, W]
  Tensor total = sum(s, {1, 2}, true);             // [N, 1, 1]
  // An all-zero map stays zero instead of 0/0.
  Tensor safe = where(gt(total.detach(), Tensor::zeros({}, total.dtype(), total.device())), total,
                      Tensor::ones({}, total.dtype(), total.device()));
  return div(s, safe);
}

}  // namespace fragile::attr
