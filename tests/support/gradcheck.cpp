#include "tests/support/gradcheck.h"

#include <cmath>
#include <random>
#include <sstream>
#include <string>

#include "core/autograd.h"
#include "tests/support/reference.h"

namespace fragile::test {
namespace {

bool is_diff_input(const Tensor& t) { return t.defined() && t.requires_grad(); }

// A fresh float64 leaf holding `values`, requiring grad.
Tensor leaf_from(const std::vector<double>& values, const Shape& shape) {
  Tensor t = Tensor::from_vector(values, shape, DType::Float64);
  t.set_requires_grad(true);
  return t;
}

// Concatenated values of the float outputs.
std::vector<double> flat_outputs(const std::vector<Tensor>& outs) {
  std::vector<double> all;
  for (const Tensor& o : outs) {
    if (!o.defined() || !is_floating(o.dtype())) continue;
    std::vector<double> v = o.to_vector();
    all.insert(all.end(), v.begin(), v.end());
  }
  return all;
}

}  // namespace

::testing::AssertionResult gradcheck_multi(const MultiTensorFn& fn,
                                           const std::vector<Tensor>& inputs,
                                           const GradcheckOptions& opts) {
  EnableGradGuard enable;
  // Snapshot every differentiable input; the checked function always sees fresh leaves.
  std::vector<std::vector<double>> values(inputs.size());
  std::vector<size_t> diff;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!is_diff_input(inputs[i])) continue;
    if (inputs[i].dtype() != DType::Float64) {
      return ::testing::AssertionFailure()
             << "gradcheck: input " << i << " is " << dtype_name(inputs[i].dtype())
             << "; finite differences need float64";
    }
    values[i] = inputs[i].to_vector();
    diff.push_back(i);
  }
  if (diff.empty()) return ::testing::AssertionFailure() << "gradcheck: no input requires grad";

  auto make_inputs = [&](size_t perturbed, int64_t elem, double delta) {
    std::vector<Tensor> xs(inputs.size());
    for (size_t i = 0; i < inputs.size(); ++i) {
      if (!is_diff_input(inputs[i])) {
        xs[i] = inputs[i];
        continue;
      }
      std::vector<double> v = values[i];
      if (i == perturbed) v[elem] += delta;
      xs[i] = leaf_from(v, inputs[i].shape());
    }
    return xs;
  };

  // Output layout, from an unperturbed evaluation.
  std::vector<Tensor> base_in = make_inputs(SIZE_MAX, 0, 0);
  std::vector<Tensor> base_out = fn(base_in);
  std::vector<size_t> float_outs;
  size_t n_out = 0;
  for (size_t k = 0; k < base_out.size(); ++k) {
    if (!base_out[k].defined() || !is_floating(base_out[k].dtype())) continue;
    float_outs.push_back(k);
    n_out += static_cast<size_t>(base_out[k].numel());
  }
  if (float_outs.empty()) return ::testing::AssertionFailure() << "gradcheck: no float output";

  // Numeric Jacobian, one column per input element: jac[i][j] = d out / d x_i[j] (n_out values).
  std::vector<std::vector<std::vector<double>>> jac(inputs.size());
  for (size_t i : diff) {
    int64_t n = static_cast<int64_t>(values[i].size());
    jac[i].resize(n);
    for (int64_t j = 0; j < n; ++j) {
      std::vector<double> plus = flat_outputs(fn(make_inputs(i, j, opts.eps)));
      std::vector<double> minus = flat_outputs(fn(make_inputs(i, j, -opts.eps)));
      if (plus.size() != n_out || minus.size() != n_out) {
        return ::testing::AssertionFailure() << "gradcheck: output size changed under perturbation";
      }
      std::vector<double>& col = jac[i][j];
      col.resize(n_out);
      for (size_t o = 0; o < n_out; ++o) col[o] = (plus[o] - minus[o]) / (2 * opts.eps);
    }
  }

  std::mt19937_64 rng(opts.seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::ostringstream failures;
  int n_fail = 0;
  double worst = 0;
  for (int draw = 0; draw < opts.num_grad_outputs; ++draw) {
    // Random grad_outputs v for every float output.
    std::vector<double> v(n_out);
    for (double& e : v) e = normal(rng);

    std::vector<Tensor> xs = make_inputs(SIZE_MAX, 0, 0);
    std::vector<Tensor> outs = fn(xs);
    std::vector<Tensor> gouts, used_outs;
    size_t off = 0;
    for (size_t k : float_outs) {
      const Tensor& o = outs[k];
      size_t n = static_cast<size_t>(o.numel());
      if (o.requires_grad()) {  // an output without history contributes nothing analytically
        std::vector<double> part(v.begin() + off, v.begin() + off + n);
        gouts.push_back(Tensor::from_vector(part, o.shape(), o.dtype()));
        used_outs.push_back(o);
      }
      off += n;
    }
    std::vector<Tensor> wrt;
    for (size_t i : diff) wrt.push_back(xs[i]);
    std::vector<Tensor> analytic;
    if (!used_outs.empty()) {
      analytic = grad(used_outs, wrt, gouts, /*create_graph=*/false, /*allow_unused=*/true);
    } else {
      for (const Tensor& w : wrt) analytic.push_back(Tensor::zeros(w.shape(), DType::Float64));
    }

    for (size_t d = 0; d < diff.size(); ++d) {
      size_t i = diff[d];
      if (analytic[d].shape() != inputs[i].shape()) {
        return ::testing::AssertionFailure()
               << "gradcheck: gradient of input " << i << " has shape "
               << shape_str(analytic[d].shape()) << ", expected " << shape_str(inputs[i].shape());
      }
      std::vector<double> a = analytic[d].to_vector();
      for (size_t j = 0; j < a.size(); ++j) {
        double num = 0;
        for (size_t o = 0; o < n_out; ++o) num += jac[i][j][o] * v[o];
        double err = std::fabs(a[j] - num);
        if (!(err <= opts.atol + opts.rtol * std::fabs(num))) {
          worst = std::max(worst, err);
          if (n_fail++ < 5) {
            failures << "\n  input " << i << " element "
                     << index_str(inputs[i].shape(), static_cast<int64_t>(j)) << ": analytic "
                     << ::testing::PrintToString(a[j]) << " vs numeric "
                     << ::testing::PrintToString(num) << " (grad_output draw " << draw << ")";
          }
        }
      }
    }
  }
  if (n_fail == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "gradcheck: " << n_fail << " mismatching gradient element(s), worst abs error "
         << worst << " (eps " << opts.eps << ", atol " << opts.atol << ", rtol " << opts.rtol
         << "):" << failures.str();
}

::testing::AssertionResult gradgradcheck_multi(const MultiTensorFn& fn,
                                               const std::vector<Tensor>& inputs,
                                               const GradcheckOptions& opts) {
  EnableGradGuard enable;
  std::vector<size_t> diff;
  for (size_t i = 0; i < inputs.size(); ++i)
    if (is_diff_input(inputs[i])) diff.push_back(i);
  if (diff.empty()) return ::testing::AssertionFailure() << "gradgradcheck: no input requires grad";

  // Shapes of the float outputs, and one random grad_output per output (requiring grad).
  std::vector<Tensor> probe_in;
  for (const Tensor& t : inputs) {
    if (is_diff_input(t)) {
      probe_in.push_back(leaf_from(t.to_vector(), t.shape()));
    } else {
      probe_in.push_back(t);
    }
  }
  std::vector<Tensor> probe = fn(probe_in);
  std::mt19937_64 rng(opts.seed ^ 0x9e3779b97f4a7c15ULL);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<size_t> float_outs;
  std::vector<Tensor> all_inputs = inputs;
  for (size_t k = 0; k < probe.size(); ++k) {
    if (!probe[k].defined() || !is_floating(probe[k].dtype())) continue;
    float_outs.push_back(k);
    std::vector<double> v(static_cast<size_t>(probe[k].numel()));
    for (double& e : v) e = normal(rng);
    all_inputs.push_back(leaf_from(v, probe[k].shape()));
  }
  const size_t n_in = inputs.size();

  // G(inputs, v) = grad(f(inputs), diff inputs, v, create_graph=true).
  MultiTensorFn G = [&](const std::vector<Tensor>& args) {
    std::vector<Tensor> xs(args.begin(), args.begin() + static_cast<std::ptrdiff_t>(n_in));
    std::vector<Tensor> outs = fn(xs);
    std::vector<Tensor> used, gouts;
    for (size_t m = 0; m < float_outs.size(); ++m) {
      const Tensor& o = outs[float_outs[m]];
      if (!o.requires_grad()) continue;
      used.push_back(o);
      gouts.push_back(args[n_in + m]);
    }
    std::vector<Tensor> wrt;
    for (size_t i : diff) wrt.push_back(xs[i]);
    if (used.empty()) {
      std::vector<Tensor> zeros;
      for (const Tensor& w : wrt) zeros.push_back(Tensor::zeros(w.shape(), w.dtype()));
      return zeros;
    }
    return grad(used, wrt, gouts, /*create_graph=*/true, /*allow_unused=*/true);
  };
  ::testing::AssertionResult r = gradcheck_multi(G, all_inputs, opts);
  if (r) return r;
  return ::testing::AssertionFailure()
         << "gradgradcheck (inputs 0.." << n_in - 1 << " are the op's inputs, inputs " << n_in
         << ".. its grad_outputs): " << r.message();
}

::testing::AssertionResult gradcheck(const TensorFn& fn, const std::vector<Tensor>& inputs,
                                     double eps, double atol, double rtol) {
  GradcheckOptions o;
  o.eps = eps;
  o.atol = atol;
  o.rtol = rtol;
  return gradcheck_multi([&](const std::vector<Tensor>& xs) { return std::vector<Tensor>{fn(xs)}; },
                         inputs, o);
}

::testing::AssertionResult gradgradcheck(const TensorFn& fn, const std::vector<Tensor>& inputs,
                                         double eps, double atol, double rtol) {
  GradcheckOptions o;
  o.eps = eps;
  o.atol = atol;
  o.rtol = rtol;
  return gradgradcheck_multi(
      [&](const std::vector<Tensor>& xs) { return std::vector<Tensor>{fn(xs)}; }, inputs, o);
}

}  // namespace fragile::test
