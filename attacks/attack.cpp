// Ghorbani et al.'s Algorithm 1, batched. One iteration:
//   d   = grad_x sum_n D_n(S_beta(x))          (softplus(beta) surrogate, double backward)
//   x  <- x0 + clip(x + alpha sign(d) - x0, -eps, eps), clipped to the valid box
//   judge x on the original network: label kept? dissimilarity of its map vs the original map
// and keep, per image, the most dissimilar label-keeping iterate.
#include "attacks/attack.h"
#include "attacks/batch_rows.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "attacks/dissimilarity.h"
#include "attribution/metrics.h"
#include "core/autograd.h"
#include "core/error.h"
#include "core/image_streams.h"
#include "core/ops.h"
#include "nn/session.h"
#include "nn/transforms.h"

namespace fragile::attacks {

using detail::copy_image;
using detail::row;

namespace {

struct NamedKind {
  const char* name;
  Kind kind;
};
constexpr NamedKind kKinds[] = {{"random", Kind::RandomSign},
                                {"topk", Kind::TopK},
                                {"center", Kind::MassCenter},
                                {"target", Kind::Targeted},
                                {"manipulate", Kind::Manipulate}};

// The region mask broadcast to N images, host-side (empty when undefined).
std::vector<double> region_values(const Tensor& region, int64_t n, int64_t h, int64_t w) {
  if (!region.defined()) return {};
  FRAGILE_CHECK(region.dim() == 3 && (region.size(0) == 1 || region.size(0) == n) &&
                    region.size(1) == h && region.size(2) == w,
                "target region must be [1 or ", n, ", ", h, ", ", w, "], got ",
                shape_str(region.shape()));
  std::vector<double> v = region.to_vector();  // host copy, from either device
  if (region.size(0) == 1 && n > 1) {
    std::vector<double> out;
    for (int64_t i = 0; i < n; ++i) out.insert(out.end(), v.begin(), v.end());
    return out;
  }
  return v;
}

}  // namespace

Kind kind_from_name(const std::string& name) {
  for (const NamedKind& k : kKinds) {
    if (name == k.name) return k.kind;
  }
  std::string valid;
  for (const NamedKind& k : kKinds) valid += std::string(valid.empty() ? "" : ", ") + k.name;
  FRAGILE_FAIL("unknown attack '", name, "'; valid attacks: ", valid);
}

const char* kind_name(Kind kind) {
  for (const NamedKind& k : kKinds) {
    if (k.kind == kind) return k.name;
  }
  return "?";
}

std::vector<std::string> kind_names() {
  std::vector<std::string> out;
  for (const NamedKind& k : kKinds) out.emplace_back(k.name);
  return out;
}

Surrogate::Surrogate(const nn::Session& original) : original_(original) {
  for (const nn::Node& node : original.model().graph.nodes) {
    if (node.op_type == "Relu") ++relu_count_;
  }
}

Surrogate::~Surrogate() = default;

const nn::Session& Surrogate::at(double beta) {
  if (is_original(beta)) return original_;
  if (session_ && beta == beta_) return *session_;
  nn::Model copy = original_.model();
  nn::swap_relu_for_softplus(copy, beta);
  session_ =
      std::make_unique<nn::Session>(std::move(copy), original_.dtype(), original_.device());
  beta_ = beta;
  return *session_;
}

double selection_value(Kind kind, const std::vector<double>& s0, const std::vector<double>& s,
                       int64_t h, int64_t w, int64_t k, const std::vector<double>& region) {
  switch (kind) {
    case Kind::RandomSign:
    case Kind::TopK: return 1.0 - attr::topk_intersection(s0, s, k);
    case Kind::MassCenter: return attr::center_shift(s0, s, h, w);
    case Kind::Targeted: {
      FRAGILE_CHECK(region.size() == s.size(), "targeted attack without a region mask");
      double m = 0;
      for (size_t i = 0; i < s.size(); ++i) m += s[i] * region[i];
      return m;
    }
    case Kind::Manipulate: return -attr::mse(s, s0);  // s0 is the target map here
  }
  return 0;
}

Tensor saliency(const nn::Session& model, const Tensor& x, const std::vector<int64_t>& classes,
                const Config& config) {
  EnableGradGuard grad_on;  // methods differentiate the network even when no history is kept
  return attr::saliency_map(
             attr::attribute(model, x.detach(), classes, config.method, config.attribution, false))
      .detach();
}

namespace {

// The differentiable map of the surrogate at x (a fresh leaf) and the dissimilarity sum.
struct Direction {
  Tensor direction;  // grad_x sum_n D_n, or a random sign field
  Tensor map;        // the surrogate's map at x (no history), when computed
};

class Algorithm1 {
 public:
  Algorithm1(const nn::Session& model, Surrogate& surrogate, const Tensor& x0,
             const PixelSpace& space, const Config& config)
      : model_(model), surrogate_(surrogate), x0_(x0), space_(space), cfg_(config),
        random_signs_(config.seed, config.attribution.first_image, x0.size(0)) {}

  Result run() {
    const DType dt = x0_.dtype();
    const Device dev = x0_.device();
    const AttackStepParams step = space_.step_params(cfg_.step, cfg_.epsilon);
    n_ = x0_.size(0);

    // The original network's prediction and map at x0: the labels to keep, the reference map.
    Tensor z0;
    {
      NoGradGuard no_grad;
      z0 = model_.scores(x0_);
    }
    labels_ = predicted_labels(z0);
    Result r;
    r.map_before = saliency(model_, x0_, labels_, cfg_);
    h_ = r.map_before.size(1);
    w_ = r.map_before.size(2);
    s0_ = r.map_before.to_vector();
    region_ = region_values(cfg_.region, n_, h_, w_);
    FRAGILE_CHECK(cfg_.kind != Kind::Targeted || !region_.empty(),
                  "the targeted attack needs a region mask");
    if (cfg_.kind == Kind::TopK) topk_ = topk_mask(r.map_before, cfg_.k);
    if (cfg_.kind == Kind::MassCenter) {
      c0_ = center_target(r.map_before);
      center_weights_ = center_weights(h_, w_, dt, dev);
    }
    if (cfg_.kind == Kind::Targeted) {
      mask_ = Tensor::from_vector(region_, {n_, h_, w_}, dt).to(dev);
    }

    // With no distinct surrogate the map computed for the direction at x_p is the original
    // network's map at x_p: iterate p is judged from it, saving one map per iteration.
    const bool shared = surrogate_.is_original(cfg_.surrogate_beta) && cfg_.kind != Kind::RandomSign;
    share_map_ = shared;
    best_.assign(n_, BestIterate{});
    kept_.assign(n_, 0);
    r.perturbed = x0_.clone_data();
    r.map_after = r.map_before.clone_data();

    step_ = step;
    r.iteration_mode = "eager";
    Tensor x = x0_;
    for (int64_t p = 1; p <= cfg_.iters; ++p) {
      if (p == 2) try_to_record(x, r);
      const Advance a = advance(x);
      if (shared && p > 1) judge(p - 1, x, a.map, r);
      x = a.next;
      if (!shared || p == cfg_.iters) judge(p, x, Tensor(), r);
      if (cfg_.progress) cfg_.progress(p, cfg_.iters);
    }
    recorded_.reset();
    finish_result(model_, r, x0_, space_, cfg_);
    for (int64_t i = 0; i < n_; ++i) {
      detail::record_outcome(r.images[i], best_[i], kept_[i]);
    }
    return r;
  }

 private:
  // One iteration's device work: the next iterate, and the direction's map at x when the
  // map is shared with the judge.
  struct Advance {
    Tensor next, map;
  };

  Advance advance_eagerly(const Tensor& x) {
    const Direction d = direction(x);
    return {sign_step(x, x0_, d.direction, step_), share_map_ ? d.map : Tensor()};
  }

  Advance advance(const Tensor& x) {
    if (!recorded_) return advance_eagerly(x);
    // A replay overwrites its output buffers: the iterate is cloned because the next
    // iteration judges it (shared map) while the replay writes the iterate after it.
    const std::vector<Tensor> out = recorded_->run({x});
    return {out.at(0).clone_data(), out.size() > 1 ? out[1].clone_data() : Tensor()};
  }

  // After the eager first iteration (which made the cached masks and library state the
  // recording must not create): records the direction and the step for replay.
  void try_to_record(const Tensor& x, Result& r) {
    if (!cfg_.cuda_graph || cfg_.kind == Kind::RandomSign) return;
    std::string why_not;
    const DeviceComputation iteration = [this](const std::vector<Tensor>& in) {
      const Advance a = advance_eagerly(in.at(0));
      return a.map.defined() ? std::vector<Tensor>{a.next, a.map} : std::vector<Tensor>{a.next};
    };
    recorded_ = backend_for(x.device()).capture(iteration, {x}, &why_not);
    r.graph_replayed = recorded_ != nullptr;
    if (recorded_) r.iteration_mode = "cuda graph";
    if (!recorded_ && x.device() != Device::CPU) r.graph_failure = why_not;
  }

  Direction direction(const Tensor& x) {
    Direction d;
    if (cfg_.kind == Kind::RandomSign) {
      d.direction = random_signs_.randn(x.shape(), x.dtype()).to(x.device());
      return d;
    }
    const nn::Session& net = surrogate_.at(cfg_.surrogate_beta);
    // The loss comes straight from the attribution through the fused saliency op: the map's
    // normalisation, the loss and their backward are two kernels instead of a dozen.
    FRAGILE_CHECK(cfg_.kind == Kind::TopK || cfg_.kind == Kind::MassCenter ||
                      cfg_.kind == Kind::Targeted,
                  "attack '", kind_name(cfg_.kind), "' has no Algorithm 1 direction");
    const attr::AttributionLoss dissimilarity = [this](const Tensor& a) -> Tensor {
      if (cfg_.kind == Kind::TopK) return neg(masked_mass_fused(a, topk_));
      if (cfg_.kind == Kind::MassCenter) return center_loss_fused(a, c0_, center_weights_);
      return masked_mass_fused(a, mask_);
    };
    const attr::AttributionLossGradient g = attr::gradient_of_attribution_loss(
        net, x, labels_, cfg_.method, cfg_.attribution, dissimilarity);
    d.direction = g.grad;
    if (share_map_) {
      NoGradGuard no_grad;
      d.map = attr::saliency_map(g.attribution);
    }
    return d;
  }

  // Judges iterate p (input x) on the original network; `map` is its map when already known.
  void judge(int64_t p, const Tensor& x, Tensor map, Result& r) {
    std::vector<int64_t> now;
    {
      NoGradGuard no_grad;
      now = predicted_labels(model_.scores(x));
    }
    const std::vector<bool> kept = labels_kept(labels_, now);
    bool any = false;
    for (int64_t i = 0; i < n_; ++i) {
      if (kept[i]) {
        ++kept_[i];
        any = true;
      }
    }
    if (!any) return;  // no image can improve: skip the map
    if (!map.defined()) map = saliency(model_, x, labels_, cfg_);
    const std::vector<double> s = map.to_vector();
    const int64_t hw = h_ * w_;
    for (int64_t i = 0; i < n_; ++i) {
      if (!kept[i]) continue;
      const std::vector<double> si = row(s, i, hw);
      const double v = selection_value(cfg_.kind, row(s0_, i, hw), si, h_, w_, cfg_.k,
                                       region_.empty() ? region_ : row(region_, i, hw));
      if (best_[i].offer(p, v, true)) {
        copy_image(r.perturbed, x, i);
        copy_image(r.map_after, map, i);
      }
    }
  }

  const nn::Session& model_;
  Surrogate& surrogate_;
  const Tensor x0_;
  const PixelSpace& space_;
  const Config& cfg_;
  ImageStreams random_signs_;

  int64_t n_ = 0, h_ = 0, w_ = 0;
  std::vector<int64_t> labels_;
  std::vector<double> s0_, region_;
  Tensor topk_, c0_, mask_, center_weights_;
  bool share_map_ = false;  // the direction's map is the original network's (no surrogate)
  AttackStepParams step_;
  std::unique_ptr<CapturedComputation> recorded_;  // iterations 2..P, when recorded
  std::vector<BestIterate> best_;
  std::vector<int64_t> kept_;
};

}  // namespace

void finish_result(const nn::Session& model, Result& r, const Tensor& x0, const PixelSpace& space,
                   const Config& config) {
  const int64_t n = x0.size(0), h = r.map_before.size(1), w = r.map_before.size(2), hw = h * w;
  Tensor zb, za;
  {
    NoGradGuard no_grad;
    zb = model.scores(x0);
    za = model.scores(r.perturbed);
  }
  const std::vector<int64_t> before = predicted_labels(zb), after = predicted_labels(za);
  const std::vector<double> pb = probabilities(zb, before), pa = probabilities(za, after);
  const std::vector<double> s0 = r.map_before.to_vector(), s1 = r.map_after.to_vector();
  const std::vector<double> linf = space.linf_pixels(r.perturbed, x0);
  r.images.resize(n);
  for (int64_t i = 0; i < n; ++i) {
    const std::vector<double> a = row(s0, i, hw), b = row(s1, i, hw);
    ImageResult& ir = r.images[i];
    ir.label_before = before[i];
    ir.label_after = after[i];
    ir.prob_before = pb[i];
    ir.prob_after = pa[i];
    ir.topk_intersection = attr::topk_intersection(a, b, config.k);
    ir.spearman = attr::spearman(a, b);
    ir.kendall = attr::kendall_tau_b(a, b);
    ir.center_shift = attr::center_shift(a, b, h, w);
    ir.linf = linf[i];
  }
}

Result run_attack(const nn::Session& model, Surrogate& surrogate, const Tensor& x0,
                  const PixelSpace& space, const Config& config) {
  FRAGILE_CHECK(x0.dim() == 4 && x0.size(1) == space.channels(), "attack input must be [N, ",
                space.channels(), ", H, W], got ", shape_str(x0.shape()));
  FRAGILE_CHECK(config.iters >= 1, "the number of iterations must be at least 1, got ",
                config.iters);
  FRAGILE_CHECK(config.kind == Kind::Manipulate || config.epsilon > 0,
                "epsilon must be positive, got ", config.epsilon);
  FRAGILE_CHECK(config.kind == Kind::Manipulate || config.step > 0,
                "the step size must be positive, got ", config.step);
  const int64_t pixels = x0.size(2) * x0.size(3);
  // Checked here, not after P iterations: the final metrics need k below the map's size.
  FRAGILE_CHECK(config.k >= 1 && config.k < pixels, "k = ", config.k,
                " must be at least 1 and smaller than the map's ", pixels, " pixels");
  const Tensor x = contiguous(x0.detach());
  if (config.kind == Kind::Manipulate) {
    Result r = run_manipulation(model, surrogate, x, space, config);
    r.iteration_mode = "eager";  // Adam's state and beta growth change every iteration
    return r;
  }
  return Algorithm1(model, surrogate, x, space, config).run();
}

}  // namespace fragile::attacks
