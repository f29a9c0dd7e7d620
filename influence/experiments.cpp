#include "influence/experiments.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <random>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "influence/stats.h"
#include "nn/image.h"

namespace fragile::influence {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

Tensor image_of(const BinarySet& s, int64_t t) {
  FRAGILE_CHECK(t >= 0 && t < s.images.size(0), "test index ", t, " out of range [0, ",
                s.images.size(0), ")");
  return contiguous(slice(s.images, 0, t, t + 1));
}

Vec to_vec(const Tensor& t) {
  const std::vector<double> v = t.to_vector();
  return Eigen::Map<const Vec>(v.data(), static_cast<int64_t>(v.size()));
}

std::vector<double> to_std(const Vec& v) { return std::vector<double>(v.data(), v.data() + v.size()); }

}  // namespace

// ---- FashionInfluence ---------------------------------------------------------------------------

Tensor FashionInfluence::test_features(const std::vector<int64_t>& test_indices) const {
  std::vector<Tensor> xs;
  for (int64_t t : test_indices) xs.push_back(image_of(test, t));
  return extract_features(*session, feature_value, contiguous(concat(xs, 0)));
}

Vec FashionInfluence::test_gradient(int64_t t, const Tensor& image) const {
  const Tensor x = image.defined() ? image : image_of(test, t);
  const Tensor f = extract_features(*session, feature_value, x);
  const std::vector<double> y = {test.y.at(static_cast<size_t>(t))};
  const ExampleLossFn loss = [&](const std::vector<Tensor>& params, const std::vector<int64_t>&) {
    return logistic_losses(f, y, params);
  };
  return per_example_gradients(loss, objective.layout, fit.theta, {0}).row(0).transpose();
}

double FashionInfluence::test_loss(int64_t t, const Vec& theta) const {
  NoGradGuard no_grad;
  const Tensor f = extract_features(*session, feature_value, image_of(test, t));
  return logistic_losses(f, {test.y.at(static_cast<size_t>(t))},
                         objective.layout.unflatten(theta, false))
      .item();
}

std::vector<double> FashionInfluence::scores(const Tensor& images) const {
  NoGradGuard no_grad;
  const Tensor f = extract_features(*session, feature_value, images);
  return logistic_scores(f, objective.layout.unflatten(fit.theta, false)).to_vector();
}

FashionInfluence prepare_fashion_influence(nn::Model model, const FashionSetup& setup) {
  const auto t0 = Clock::now();
  FashionInfluence fi;
  fi.setup = setup;
  FRAGILE_CHECK(setup.dtype == DType::Float64 || setup.dtype == DType::Float32,
                "the network's dtype must be float32 or float64");
  fi.session = std::make_unique<nn::Session>(std::move(model), setup.dtype);
  fi.feature_value = penultimate_value(fi.session->model());
  const nn::Preprocess pre = nn::preprocess_from_metadata(fi.session->model());
  FRAGILE_CHECK(pre.mean.size() >= 1 && pre.scale.size() >= 1 && pre.scale[0] != 0,
                "the model's preprocess metadata gives no mean/scale");
  fi.pixel_mean = pre.mean[0];
  fi.pixel_scale = pre.scale[0];
  fi.train = binary_subset(load_fashion_mnist(setup.data_dir, "train"), setup.class_neg,
                           setup.class_pos, setup.num_train, fi.pixel_mean, fi.pixel_scale);
  fi.test = binary_subset(load_fashion_mnist(setup.data_dir, "test"), setup.class_neg,
                          setup.class_pos, 0, fi.pixel_mean, fi.pixel_scale);
  fi.layer.features = extract_features(*fi.session, fi.feature_value, fi.train.images);
  fi.layer.y = fi.train.y;
  fi.layer.l2 = setup.l2;
  fi.objective = fi.layer.objective();

  NewtonOptions newton;
  newton.max_iter = 100;
  newton.grad_tol = 1e-13;
  fi.fit = newton_minimize(fi.objective, fi.objective.all(),
                           Vec::Zero(fi.objective.layout.size()), newton);
  FRAGILE_CHECK(fi.fit.grad_norm < 1e-9, "last-layer training did not converge: |grad| = ",
                fi.fit.grad_norm);

  fi.train_grads =
      per_example_gradients(fi.objective.loss, fi.objective.layout, fi.fit.theta,
                            fi.objective.all().examples);
  fi.hessian = fi.objective.hessian(fi.fit.theta, fi.objective.all());
  fi.hessian_llt.compute(fi.hessian);
  FRAGILE_CHECK(fi.hessian_llt.info() == Eigen::Success, "the Hessian is not positive definite");

  auto accuracy = [](const std::vector<double>& s, const std::vector<double>& y) {
    double ok = 0;
    for (size_t i = 0; i < s.size(); ++i) ok += (s[i] > 0) == (y[i] > 0);
    return ok / static_cast<double>(s.size());
  };
  {
    NoGradGuard no_grad;
    const auto params = fi.objective.layout.unflatten(fi.fit.theta, false);
    fi.train_accuracy =
        accuracy(logistic_scores(fi.layer.features, params).to_vector(), fi.train.y);
  }
  fi.test_accuracy = accuracy(fi.scores(fi.test.images), fi.test.y);
  fi.seconds = seconds_since(t0);
  return fi;
}

// ---- 1. leave-one-out ----------------------------------------------------------------------------

LooResult run_loo_validation(const FashionInfluence& fi, const LooOptions& opts) {
  const auto t0 = Clock::now();
  const Objective& obj = fi.objective;
  const int64_t n = obj.num_examples;
  FRAGILE_CHECK(opts.top >= 2, "leave-one-out: top must be at least 2 (a Pearson correlation "
                "needs two points), got ", opts.top);
  std::vector<int64_t> tests = opts.test_points;
  if (tests.empty()) {
    // The highest-loss test point and those at the 90th and 50th loss percentiles.
    std::vector<double> losses;
    {
      NoGradGuard no_grad;
      const Tensor f = extract_features(*fi.session, fi.feature_value, fi.test.images);
      losses = logistic_losses(f, fi.test.y, obj.layout.unflatten(fi.fit.theta, false))
                   .to_vector();
    }
    std::vector<int64_t> order(losses.size());
    std::iota(order.begin(), order.end(), int64_t{0});
    std::sort(order.begin(), order.end(),
              [&](int64_t a, int64_t b) { return losses[a] > losses[b]; });
    for (double q : {0.0, 0.1, 0.5}) {
      tests.push_back(order[static_cast<size_t>(q * static_cast<double>(order.size() - 1))]);
    }
  }

  NewtonOptions newton;
  newton.grad_tol = 1e-13;
  std::map<int64_t, std::pair<Vec, int>> retrained;  // train index -> theta_{-i}, iterations
  LooResult res;
  std::vector<double> all_pred, all_act;
  for (int64_t t : tests) {
    LooTest lt;
    lt.test_index = t;
    lt.test_loss = fi.test_loss(t, fi.fit.theta);
    const Vec gt = fi.test_gradient(t);
    lt.ihvp = inverse_hvp(obj, fi.fit.theta, gt, opts.ihvp);
    const Vec exact = fi.hessian_llt.solve(gt);
    lt.s_test_error_vs_exact = (lt.ihvp.x - exact).norm() / std::max(exact.norm(), 1e-300);
    const Vec infl = influence_from_s_test(fi.train_grads, lt.ihvp.x);
    const Vec pred = -infl / static_cast<double>(n);
    const std::vector<int64_t> top = top_k(pred.cwiseAbs(), opts.top);
    std::vector<double> p, a;
    for (int64_t i : top) {
      auto it = retrained.find(i);
      if (it == retrained.end()) {
        const NewtonResult r = newton_minimize(obj, obj.leave_out(i), fi.fit.theta, newton);
        FRAGILE_CHECK(r.grad_norm < 1e-9, "leave-one-out retraining without example ", i,
                      " did not converge: |grad| = ", r.grad_norm);
        it = retrained.emplace(i, std::make_pair(r.theta, r.iterations)).first;
      }
      LooPoint pt;
      pt.train_index = i;
      pt.influence = infl[i];
      pt.predicted = pred[i];
      pt.actual = fi.test_loss(t, it->second.first) - lt.test_loss;
      pt.newton_iterations = it->second.second;
      p.push_back(pt.predicted);
      a.push_back(pt.actual);
      lt.points.push_back(pt);
    }
    lt.pearson = pearson(p, a);
    lt.spearman = spearman(p, a);
    all_pred.insert(all_pred.end(), p.begin(), p.end());
    all_act.insert(all_act.end(), a.begin(), a.end());
    res.tests.push_back(std::move(lt));
  }
  res.pearson_pooled = pearson(all_pred, all_act);
  res.min_pearson = 1.0;
  for (const LooTest& lt : res.tests) res.min_pearson = std::min(res.min_pearson, lt.pearson);
  res.seconds = seconds_since(t0);
  return res;
}

// ---- 2. the influence attack ------------------------------------------------------------------------

Tensor influence_input_gradient(const FashionInfluence& fi, int64_t t, const Tensor& image,
                                const std::vector<int64_t>& top) {
  // u = H^{-1} sum_{i in top} grad L(z_i): independent of the test image.
  Vec gsum = Vec::Zero(fi.num_params());
  for (int64_t i : top) gsum += fi.train_grads.row(i).transpose();
  const Vec u = fi.hessian_llt.solve(gsum);
  const std::vector<double> y = {fi.test.y.at(static_cast<size_t>(t))};
  const std::string input = fi.session->input().name;
  const InputLossFn loss = [&](const Tensor& x, const std::vector<Tensor>& params) {
    // The last layer is float64 whatever the network computes in (to_dtype is differentiable).
    const Tensor f =
        to_dtype(fi.session->run({{input, x}}, {fi.feature_value})[0], DType::Float64);
    return logistic_losses(reshape(f, {f.size(0), -1}), y, params);
  };
  return influence_input_gradient(loss, image.to(fi.session->dtype()), fi.objective.layout,
                                  fi.fit.theta, u);
}

AttackResult run_influence_attack(const FashionInfluence& fi, const AttackOptions& opts) {
  const auto t0 = Clock::now();
  FRAGILE_CHECK(opts.num_images >= 1 && opts.num_images <= fi.test.images.size(0),
                "attack: --images must be in [1, ", fi.test.images.size(0), "]");
  FRAGILE_CHECK(!opts.epsilons.empty(), "attack: no epsilon given");
  for (double e : opts.epsilons) {
    FRAGILE_CHECK(std::isfinite(e) && e > 0 && e <= 255,
                  "attack: epsilon must be in (0, 255] pixel units, got ", e);
  }
  AttackResult res;
  const size_t ne = opts.epsilons.size();
  std::vector<AttackRow> rows(ne);
  for (size_t e = 0; e < ne; ++e) rows[e].epsilon = opts.epsilons[e];
  auto influences_at = [&](int64_t t, const Tensor& x) {
    return influence_from_s_test(fi.train_grads, fi.hessian_llt.solve(fi.test_gradient(t, x)));
  };
  for (int64_t t = 0; t < opts.num_images; ++t) {
    AttackImage img;
    img.test_index = t;
    const Tensor x0 = image_of(fi.test, t);
    const Vec before = influences_at(t, x0);
    const std::vector<double> before_std = to_std(before);
    const std::vector<int64_t> top = top_k(before, opts.attack_top);
    const Tensor gx = influence_input_gradient(fi, t, x0, top);
    // -sign(grad_x sum_top I) lowers the top influences; in the image's dtype (the network may
    // compute in float32 while the test images are float64).
    const Tensor dir = to_dtype(neg(sign(gx)), x0.dtype());
    std::mt19937_64 rng(opts.seed * 1000003u + static_cast<uint64_t>(t));
    Tensor rnd = sign(Tensor::uniform(x0.shape(), -1.0, 1.0, rng, DType::Float64));
    const bool label0 = fi.scores(x0)[0] > 0;
    // Valid inputs: pixels 0..255 mapped by the preprocessing (scale may be negative).
    const double lo = std::min(-fi.pixel_mean * fi.pixel_scale, (255 - fi.pixel_mean) * fi.pixel_scale);
    const double hi = std::max(-fi.pixel_mean * fi.pixel_scale, (255 - fi.pixel_mean) * fi.pixel_scale);
    for (size_t e = 0; e < ne; ++e) {
      const double eps = opts.epsilons[e] * std::abs(fi.pixel_scale);
      for (int kind = 0; kind < 2; ++kind) {
        const Tensor x1 = clamp(add(x0, mul(kind == 0 ? dir : rnd, eps)), lo, hi);
        const Vec after = influences_at(t, x1);
        AttackOutcome o;
        o.spearman = spearman(before_std, to_std(after));
        o.overlap = top_k_overlap(before_std, to_std(after), opts.overlap_k);
        o.label_kept = (fi.scores(x1)[0] > 0) == label0;
        for (int64_t i : top) o.top_influence_change += after[i] - before[i];
        AttackRow& r = rows[e];
        if (kind == 0) {
          r.targeted_spearman += o.spearman;
          r.targeted_overlap += static_cast<double>(o.overlap);
          r.targeted_label_kept += o.label_kept;
          img.targeted.push_back(o);
        } else {
          r.random_spearman += o.spearman;
          r.random_overlap += static_cast<double>(o.overlap);
          r.random_label_kept += o.label_kept;
          img.random.push_back(o);
        }
        if (t == 0 && e + 1 == ne) {
          res.example_before = before_std;
          res.example_top = top;
          (kind == 0 ? res.example_targeted : res.example_random) = to_std(after);
        }
      }
    }
    res.images.push_back(std::move(img));
  }
  const double m = static_cast<double>(opts.num_images);
  for (AttackRow& r : rows) {
    r.targeted_spearman /= m;
    r.random_spearman /= m;
    r.targeted_overlap /= m;
    r.random_overlap /= m;
    r.targeted_label_kept /= m;
    r.random_label_kept /= m;
  }
  res.rows = rows;
  res.seconds = seconds_since(t0);
  return res;
}

// ---- 3. input Hessian ----------------------------------------------------------------------------------

InputHessianResult analyse_input_hessian(const nn::Session& session, const Tensor& x,
                                         const HessianOptions& opts) {
  InputHessianResult r;
  EnableGradGuard enable;
  Tensor leaf = x.to(session.dtype()).detach();
  leaf.set_requires_grad(true);
  FRAGILE_CHECK(leaf.dim() >= 1 && leaf.size(0) == 1, "input Hessian: one image at a time, got ",
                shape_str(leaf.shape()));
  const Tensor z = session.scores(leaf);
  const std::vector<double> zv = z.to_vector();
  const int64_t c = z.size(1);
  r.cls = opts.cls >= 0 ? opts.cls : std::max_element(zv.begin(), zv.end()) - zv.begin();
  FRAGILE_CHECK(r.cls < c, "input Hessian: class ", r.cls, " out of range (", c, " classes)");
  r.score = zv[static_cast<size_t>(r.cls)];
  const Tensor s = sum(mul(z, one_hot(Tensor::from_int64({r.cls}, {1}), c, z.dtype())));
  const Tensor g = grad({s}, {leaf}, {}, /*create_graph=*/true)[0];
  const Vec gv = to_vec(g);
  r.grad_norm = gv.norm();
  const int64_t dim = leaf.numel();
  // One recorded gradient graph, differentiated again per direction: H v = d<g, v>/dx.
  const LinearOperator h = [&](const Vec& v) -> Vec {
    ++r.hvps;
    if (!g.requires_grad()) return Vec::Zero(dim);
    Tensor vt = Tensor::from_vector(std::vector<double>(v.data(), v.data() + v.size()),
                                    leaf.shape(), leaf.dtype());
    return to_vec(grad({g}, {leaf}, {vt}, false, /*allow_unused=*/true)[0]);
  };
  EigenPair top;
  if (opts.method == "lanczos") {
    const LanczosResult lr = lanczos(h, dim, opts.steps, opts.seed);
    top = dominant_pair(lr);
    r.lambda_max = lr.values.maxCoeff();
    r.lambda_min = lr.values.minCoeff();
  } else if (opts.method == "power") {
    top = power_iteration(h, dim, opts.steps, opts.tol, opts.seed);
    r.lambda_max = r.lambda_min = top.value;
  } else {
    FRAGILE_FAIL("unknown eigen method '", opts.method, "' (expected lanczos or power)");
  }
  r.eigenvalue = top.value;
  r.eigenvector = top.vector;
  r.residual = (h(top.vector) - top.value * top.vector).norm();  // measured, not estimated
  r.hessian_zero = r.lambda_max == 0.0 && r.lambda_min == 0.0;
  if (r.hessian_zero) {
    r.angle_deg = std::numeric_limits<double>::quiet_NaN();
    return r;
  }
  const double denom = r.grad_norm * top.vector.norm();
  const double cosine = denom > 0 ? std::min(1.0, std::abs(gv.dot(top.vector)) / denom) : 0.0;
  r.angle_deg = std::acos(cosine) * 180.0 / M_PI;
  return r;
}

}  // namespace fragile::influence
