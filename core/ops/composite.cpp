// Composite ops: built from primitives, so they need no derivative rule of their own and are
// differentiable to any order for free.
#include "core/op_attrs.h"
#include "core/ops/op_util.h"

namespace fragile {
using namespace detail;

Tensor one_hot(const Tensor& targets, int64_t num_classes, DType dtype) {
  FRAGILE_CHECK(targets.defined() && targets.dtype() == DType::Int64 && targets.dim() == 1,
                "one_hot: targets must be an int64 vector");
  std::vector<int64_t> t = targets.to_int64_vector();
  std::vector<double> v(t.size() * num_classes, 0.0);
  for (size_t n = 0; n < t.size(); ++n) {
    FRAGILE_CHECK(t[n] >= 0 && t[n] < num_classes, "one_hot: target ", t[n], " at position ", n,
                  " outside [0, ", num_classes, ")");
    v[n * num_classes + t[n]] = 1.0;
  }
  Tensor h = Tensor::from_vector(v, {static_cast<int64_t>(t.size()), num_classes}, dtype);
  return targets.device() == Device::CPU ? h : h.to(targets.device());
}

Tensor nll_loss(const Tensor& log_probs, const Tensor& targets) {
  FRAGILE_CHECK(log_probs.defined() && log_probs.dim() == 2, "nll_loss: log_probs must be [N, C]");
  FRAGILE_CHECK(targets.defined() && targets.dim() == 1 &&
                    targets.shape()[0] == log_probs.shape()[0],
                "nll_loss: targets must be int64 [N] with N = ", log_probs.shape()[0]);
  Tensor mask = one_hot(targets, log_probs.shape()[1], log_probs.dtype());
  return neg(div(sum(mul(log_probs, mask)), static_cast<double>(log_probs.shape()[0])));
}

Tensor cross_entropy(const Tensor& logits, const Tensor& targets) {
  return nll_loss(log_softmax(logits, 1), targets);
}

Tensor local_response_norm(const Tensor& x, int64_t size, double alpha, double beta, double k) {
  FRAGILE_CHECK(x.defined() && x.dim() == 4, "local_response_norm: input must be [N,C,H,W]");
  FRAGILE_CHECK(size >= 1, "local_response_norm: size must be >= 1");
  // Window of `size` channels around c: (size-1)/2 before, size/2 after (ONNX / Caffe / PyTorch).
  const int64_t before = (size - 1) / 2, after = size / 2, C = x.shape()[1];
  Tensor sq = pad(mul(x, x), {0, before, 0, 0}, {0, after, 0, 0});
  Tensor window_sum = slice(sq, 1, 0, C);
  for (int64_t i = 1; i < size; ++i) window_sum = add(window_sum, slice(sq, 1, i, i + C));
  Tensor denom = pow(add(mul(window_sum, alpha / static_cast<double>(size)), k), beta);
  return div(x, denom);
}

Tensor batch_norm_inference(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                            const Tensor& gamma, const Tensor& beta, double eps) {
  FRAGILE_CHECK(x.defined() && x.dim() >= 2, "batch_norm: input must be [N, C, ...]");
  const int64_t C = x.shape()[1];
  Shape bshape(x.dim(), 1);
  bshape[1] = C;
  auto per_channel = [&](const Tensor& t, const char* name) {
    FRAGILE_CHECK(t.defined() && t.numel() == C, "batch_norm: ", name, " must have ", C,
                  " elements, got ", t.defined() ? shape_str(t.shape()) : "none");
    return reshape(t, bshape);
  };
  Tensor inv_std = pow(add(per_channel(running_var, "var"), eps), -0.5);
  Tensor scale = mul(per_channel(gamma, "scale"), inv_std);
  Tensor shift = sub(per_channel(beta, "bias"), mul(per_channel(running_mean, "mean"), scale));
  return add(mul(x, scale), shift);
}

Tensor dropout_inference(const Tensor& x) { return x; }

}  // namespace fragile
