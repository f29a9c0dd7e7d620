// Dombrowski et al.'s manipulation, batched:
//   L(x) = scale * sum_n [ mean_hw (h_beta(x)_n - h_target_n)^2
//                          + gamma * mean_k (softmax(z_beta(x))_n - softmax(z(x0))_n)^2 ]
// minimised with Adam (per-coordinate steps of about lr, in pixel units), each iterate clamped
// to the valid box (and to the epsilon ball when one is given; their code has none). beta is
// fixed (the surrogate beta) or grows geometrically from beta_start to beta_end.
// Their code returns the last iterate; here, as in Algorithm 1, each iterate is judged on the
// original network and the label-keeping one closest to the target map (MSE) is returned.
#include <cmath>

#include "attacks/attack.h"
#include "attacks/batch_rows.h"
#include "attribution/metrics.h"
#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "nn/session.h"

namespace fragile::attacks {

using detail::copy_image;
using detail::row;

Result run_manipulation(const nn::Session& model, Surrogate& surrogate, const Tensor& x0,
                        const PixelSpace& space, const Config& cfg) {
  const DType dt = x0.dtype();
  const int64_t n = x0.size(0);
  FRAGILE_CHECK(cfg.lr > 0, "the Adam step (--lr) must be positive, got ", cfg.lr);
  FRAGILE_CHECK(!cfg.beta_growth || (cfg.beta_start > 0 && cfg.beta_end > 0),
                "beta growth needs positive start and end betas");

  Tensor z0;
  {
    NoGradGuard no_grad;
    z0 = model.scores(x0);
  }
  const std::vector<int64_t> labels = predicted_labels(z0);
  const Tensor g0 = softmax(z0, 1).detach();
  Result r;
  r.map_before = saliency(model, x0, labels, cfg);
  const int64_t h = r.map_before.size(1), w = r.map_before.size(2), hw = h * w;

  FRAGILE_CHECK(cfg.target_map.defined(), "the manipulation attack needs a target map");
  const Device dev = x0.device();
  Tensor target = cfg.target_map.detach().to(dev).to(dt);
  FRAGILE_CHECK(target.dim() == 3 && (target.size(0) == 1 || target.size(0) == n) &&
                    target.size(1) == h && target.size(2) == w,
                "target map must be [1 or ", n, ", ", h, ", ", w, "], got ",
                shape_str(target.shape()));
  target = contiguous(expand(target, {n, h, w}));
  const std::vector<double> tv = target.to_vector();

  const Tensor lr = space.pixels(cfg.lr, dt, dev);
  const Tensor lo = space.lo_tensor(dt, dev), hi = space.hi_tensor(dt, dev);
  const Tensor eps = space.pixels(cfg.epsilon, dt, dev);
  const double b1 = 0.9, b2 = 0.999, adam_eps = 1e-8;

  std::vector<BestIterate> best(n);
  std::vector<int64_t> kept_count(n, 0);
  r.perturbed = x0.clone_data();
  r.map_after = r.map_before.clone_data();

  Tensor x = x0;
  Tensor m = Tensor::zeros(x0.shape(), dt, dev), v = Tensor::zeros(x0.shape(), dt, dev);
  for (int64_t p = 1; p <= cfg.iters; ++p) {
    const double t = static_cast<double>(p - 1) / cfg.iters;
    const double beta = cfg.beta_growth
                            ? cfg.beta_start * std::pow(cfg.beta_end / cfg.beta_start, t)
                            : cfg.surrogate_beta;
    const nn::Session& net = surrogate.at(beta);
    Tensor g;
    {
      // The map term through the attribution (memory bounded for IG and SmoothGrad, see
      // attr::gradient_of_attribution_loss), the output term directly; their gradients add.
      const attr::AttributionLoss map_term = [&](const Tensor& a) {
        const Tensor ds = sub(attr::saliency_map(a), target);
        return mul(sum(mul(ds, ds)), cfg.loss_scale / static_cast<double>(hw));
      };
      g = attr::gradient_of_attribution_loss(net, x, labels, cfg.method, cfg.attribution,
                                             map_term)
              .grad;
      EnableGradGuard grad_on;
      Tensor xin = x.detach();
      xin.set_requires_grad(true);
      const Tensor dg = sub(softmax(net.scores(xin), 1), g0);
      const Tensor output_term = mul(sum(mul(dg, dg)),
                                     cfg.loss_scale * cfg.gamma / static_cast<double>(g0.size(1)));
      g = add(g, grad({output_term}, {xin}, {}, false, true)[0]);
    }
    {
      NoGradGuard no_grad;
      m = add(mul(m, b1), mul(g, 1.0 - b1));
      v = add(mul(v, b2), mul(mul(g, g), 1.0 - b2));
      const Tensor mhat = div(m, 1.0 - std::pow(b1, static_cast<double>(p)));
      const Tensor vhat = div(v, 1.0 - std::pow(b2, static_cast<double>(p)));
      Tensor next = sub(x, mul(lr, div(mhat, add(sqrt(vhat), adam_eps))));
      if (cfg.epsilon > 0) next = project_linf(next, x0, eps);
      x = contiguous(clip_box(next, lo, hi));
    }

    // Judge the iterate on the original network.
    std::vector<int64_t> now;
    {
      NoGradGuard no_grad;
      now = predicted_labels(model.scores(x));
    }
    const std::vector<bool> kept = labels_kept(labels, now);
    bool any = false;
    for (int64_t i = 0; i < n; ++i) any = any || kept[i];
    if (any) {
      const Tensor map = saliency(model, x, labels, cfg);
      const std::vector<double> s = map.to_vector();
      for (int64_t i = 0; i < n; ++i) {
        if (!kept[i]) continue;
        ++kept_count[i];
        const double value =
            selection_value(Kind::Manipulate, row(tv, i, hw), row(s, i, hw), h, w, cfg.k, {});
        if (best[i].offer(p, value, true)) {
          copy_image(r.perturbed, x, i);
          copy_image(r.map_after, map, i);
        }
      }
    }
    if (cfg.progress) cfg.progress(p, cfg.iters);
  }

  finish_result(model, r, x0, space, cfg);
  const std::vector<double> s0 = r.map_before.to_vector(), s1 = r.map_after.to_vector();
  for (int64_t i = 0; i < n; ++i) {
    ImageResult& ir = r.images[i];
    detail::record_outcome(ir, best[i], kept_count[i]);
    ir.target_mse_before = attr::mse(row(s0, i, hw), row(tv, i, hw));
    ir.target_mse_after = attr::mse(row(s1, i, hw), row(tv, i, hw));
  }
  return r;
}

}  // namespace fragile::attacks
