// THE public op API. Every function here records itself on the autograd tape when grad mode is
// on and an input requires grad; its backward is in core/derivatives.cpp (primitives) or follows
// from the ops it is composed of (composites, marked [composite]). All inputs of one call must
// share a dtype and a device; broadcasting follows NumPy.
#pragma once
#include <limits>
#include <utility>
#include <vector>

#include "core/backend.h"
#include "core/tensor.h"

namespace fragile {

// ---- element-wise, broadcasting -----------------------------------------------------------
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, const Tensor& b);  // a > 0 where b's gradient is needed
Tensor add(const Tensor& a, double b);         // [composite] scalar operand in a's dtype
Tensor sub(const Tensor& a, double b);
Tensor mul(const Tensor& a, double b);
Tensor div(const Tensor& a, double b);
Tensor rsub(double a, const Tensor& b);        // a - b

Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor abs(const Tensor& x);    // abs'(0) = 0
Tensor sign(const Tensor& x);   // derivative 0 everywhere (the subgradient chosen at 0 too)
Tensor sqrt(const Tensor& x);
Tensor pow(const Tensor& x, double exponent);
// lo/hi may be -inf/+inf. Gradient passes where lo < x < hi, 0 elsewhere (at the bounds too).
Tensor clamp(const Tensor& x, double lo, double hi);
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);  // no gradient to cond

// Comparisons give 1.0 / 0.0 in the input dtype and are not differentiable (no history).
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);

Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& x);
Tensor operator*(const Tensor& a, double b);
Tensor operator*(double a, const Tensor& b);

// ---- reductions ---------------------------------------------------------------------------
Tensor sum(const Tensor& x);  // all elements -> 0-d
Tensor sum(const Tensor& x, std::vector<int64_t> dims, bool keepdim = false);
Tensor mean(const Tensor& x);                                                   // [composite]
Tensor mean(const Tensor& x, std::vector<int64_t> dims, bool keepdim = false);  // [composite]
// Maximum over dims. The gradient is shared equally among tied maxima (like torch.amax).
Tensor amax(const Tensor& x, std::vector<int64_t> dims, bool keepdim = false);
Tensor amax(const Tensor& x);
// Sums `x` down to `shape` (the adjoint of broadcasting `shape` to x's shape). [composite]
Tensor sum_to(const Tensor& x, const Shape& shape);

// ---- shape and layout ---------------------------------------------------------------------
Tensor reshape(const Tensor& x, Shape shape);  // one extent may be -1; a view when possible
Tensor flatten(const Tensor& x, int64_t start_dim = 1, int64_t end_dim = -1);  // [composite]
Tensor permute(const Tensor& x, const std::vector<int64_t>& dims);  // a view
Tensor transpose(const Tensor& x, int64_t d0, int64_t d1);          // [composite] a view
Tensor unsqueeze(const Tensor& x, int64_t dim);                     // [composite]
Tensor squeeze(const Tensor& x, int64_t dim);                       // [composite]
// Elements start, start+step, ... < end along dim (negative start/end count from the end,
// clamped to the extent like Python slicing; step >= 1). A view.
Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step = 1);
Tensor concat(const std::vector<Tensor>& xs, int64_t dim);
// Constant padding: before[i] / after[i] elements on each side of dim i (rank entries each).
Tensor pad(const Tensor& x, const std::vector<int64_t>& before, const std::vector<int64_t>& after,
           double value = 0.0);
Tensor expand(const Tensor& x, const Shape& shape);  // broadcast view
Tensor contiguous(const Tensor& x);                  // x itself when already contiguous
Tensor to_dtype(const Tensor& x, DType dtype);       // differentiable cast

// Adjoint of slice: a zero tensor of `input_shape` with `grad` written at the slice. Exposed
// because it is an op in the derivative table (slice's backward).
Tensor slice_backward(const Tensor& grad, const Shape& input_shape, int64_t dim, int64_t start,
                      int64_t end, int64_t step);

// ---- linear algebra -----------------------------------------------------------------------
// a [M,K] @ b [K,N]; or a [..., M, K] @ b [K, N] (leading dims folded); or batched
// a [B,M,K] @ b [B,K,N].
Tensor matmul(const Tensor& a, const Tensor& b);
// x [N, in] @ w[out, in]^T + bias [out] (bias may be undefined). [composite]
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias = Tensor());

// ---- convolution and pooling (NCHW) -------------------------------------------------------
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias = Tensor(),
              const Conv2dParams& p = {});
// dL/dx given dL/dy: linear in grad and in w; differentiable in both (for double backward).
Tensor conv2d_backward_input(const Tensor& grad, const Tensor& w, const Shape& input_shape,
                             const Conv2dParams& p);
// dL/dw given x and dL/dy: linear in x and in grad; differentiable in both.
Tensor conv2d_backward_weight(const Tensor& x, const Tensor& grad, const Shape& weight_shape,
                              const Conv2dParams& p);

struct PoolResult {
  Tensor values;
  Tensor indices;  // int64, flat h*W+w in the input plane; never requires grad
};
PoolResult max_pool2d_with_indices(const Tensor& x, const Pool2dParams& p);
Tensor max_pool2d(const Tensor& x, const Pool2dParams& p);
// Scatter-add of grad into a zero [N,C,H,W] at `indices`: max_pool2d's backward. p is the
// pooling that made the indices (each must lie in its window).
Tensor max_pool2d_backward(const Tensor& grad, const Tensor& indices, const Shape& input_shape,
                           const Pool2dParams& p);
// Gather x at `indices`: the adjoint of max_pool2d_backward (its backward w.r.t. grad); p as
// there, kept for that backward.
Tensor max_pool2d_gather(const Tensor& x, const Tensor& indices, const Pool2dParams& p);
Tensor avg_pool2d(const Tensor& x, const Pool2dParams& p);
Tensor avg_pool2d_backward(const Tensor& grad, const Shape& input_shape, const Pool2dParams& p);
Tensor global_avg_pool2d(const Tensor& x);  // [N,C,H,W] -> [N,C,1,1] [composite]

// ---- activations --------------------------------------------------------------------------
Tensor relu(const Tensor& x);  // relu'(0) = 0
// relu's backward, x > 0 ? grad : 0, as one op (its own backward: relu_backward(u, x) for grad;
// x is taken without history, its derivative being zero almost everywhere).
Tensor relu_backward(const Tensor& grad, const Tensor& x);
// softplus_beta(x) = log(1 + exp(beta x)) / beta, computed stably for every x (no threshold).
Tensor softplus(const Tensor& x, double beta = 1.0);
// grad * sigmoid(beta x): softplus's backward as one fused op with its own derivative rule.
Tensor softplus_backward(const Tensor& grad, const Tensor& x, double beta);
Tensor sigmoid(const Tensor& x);
Tensor tanh(const Tensor& x);
// softmax / log_softmax along `dim` (negative counts from the end), with the row maximum
// subtracted (no overflow for any finite input). Fused kernels (Backend::softmax).
Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);
// Their backwards as ops of their own with their own rules; y = the forward's output:
//   softmax_backward:      y * (grad - sum(grad * y, dim))
//   log_softmax_backward:  grad - exp(y) * sum(grad, dim)
Tensor softmax_backward(const Tensor& grad, const Tensor& y, int64_t dim);
Tensor log_softmax_backward(const Tensor& grad, const Tensor& y, int64_t dim);

// ---- saliency (fused kernels of the attacks) ----------------------------------------------
// Ghorbani's saliency normalisation fused with weighted sums over the map, one pass over the
// attribution A [N, C, H, W] (Backend::saliency_moments). weights W [1 or N, K, H, W] (no
// gradient). Returns [N, K + 1]: column k < K is sum_hw S w_k with S = saliency_map(A) =
// sum_c |A| / total; column K is the total. E.g. a 0/1 top-k mask gives the mass inside the
// top-k set, the row and column index maps give the centre of mass. An all-zero image has
// moments 0 (saliency_map leaves its map zero). Differentiable in A to any order.
Tensor saliency_moments(const Tensor& attribution, const Tensor& weights);
// Its backward as an op of its own with its own rule: grad [N, K + 1], moments = the forward's
// output -> dL/dA [N, C, H, W] (fn::SaliencyMomentsGrad).
Tensor saliency_moments_backward(const Tensor& grad, const Tensor& attribution,
                                 const Tensor& weights, const Tensor& moments);

// ---- losses -------------------------------------------------------------------------------
// log_probs [N, C], targets int64 [N] -> mean over N of -log_probs[n, target[n]]. [composite]
Tensor nll_loss(const Tensor& log_probs, const Tensor& targets);
Tensor cross_entropy(const Tensor& logits, const Tensor& targets);  // [composite]
// int64 class indices [N] -> [N, C] one-hot in `dtype` (no gradient).
Tensor one_hot(const Tensor& targets, int64_t num_classes, DType dtype);

// ---- normalisation ------------------------------------------------------------------------
// Across-channel LRN as in AlexNet/Caffe/ONNX: x / (k + alpha/size * sum_{window} x^2)^beta,
// the window of `size` channels centred on c. [composite]
Tensor local_response_norm(const Tensor& x, int64_t size, double alpha, double beta, double k);
// Inference batch norm over channel dim 1 with running statistics. [composite]
Tensor batch_norm_inference(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                            const Tensor& gamma, const Tensor& beta, double eps);
Tensor dropout_inference(const Tensor& x);  // identity at inference [composite]

}  // namespace fragile
