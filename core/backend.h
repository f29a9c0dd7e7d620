// The kernel interface a device implements. Ops in core/ops/*.cpp do shape checking, allocate
// outputs and record autograd; a Backend only computes. Core has no #ifdef CUDA: the CPU backend
// lives in kernels/cpu, the CUDA one in kernels/cuda (or kernels/no_cuda.cpp in CPU-only builds).
//
// Contract for every method: outputs are freshly allocated, contiguous, of the right shape and
// dtype, on the backend's device; inputs may be arbitrary strided views (stride 0 = broadcast)
// unless a method says otherwise. Float ops support float32 and float64.
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace fragile {

// Element-wise maps. `a`/`b` are the scalar parameters listed beside each op.
enum class UnaryOp {
  Neg, Exp, Log, Abs, Sign, Sqrt,
  Relu,          // max(x, 0)
  Sigmoid, Tanh,
  Softplus,      // a = beta: log(1 + exp(beta x)) / beta, stable for all x
  PowScalar,     // a = exponent
  Clamp,         // a = lo, b = hi (either may be +-inf)
  ClampMask,     // 1 where lo < x < hi (a = lo, b = hi), 0 elsewhere: clamp's derivative
};

enum class BinaryOp {
  Add, Sub, Mul, Div, Pow,
  Eq, Ne, Lt, Le, Gt, Ge,   // 1.0 / 0.0 in the input dtype
  SoftplusBackward,         // (grad, x), a = beta: grad * sigmoid(beta x)
  ReluBackward,             // (grad, x): x > 0 ? grad : 0 (relu'(0) = 0)
};

enum class ReduceOp { Sum, Max };

struct ScalarArgs {
  double a = 0.0;
  double b = 0.0;
};

// NCHW convolution geometry. Weight is [C_out, C_in / groups, KH, KW].
struct Conv2dParams {
  std::array<int64_t, 2> stride{1, 1};
  std::array<int64_t, 2> padding{0, 0};
  std::array<int64_t, 2> dilation{1, 1};
  int64_t groups = 1;
};

struct Pool2dParams {
  std::array<int64_t, 2> kernel{2, 2};
  std::array<int64_t, 2> stride{2, 2};
  std::array<int64_t, 2> padding{0, 0};
  bool ceil_mode = false;
  bool count_include_pad = true;  // average pooling only
};

// Per-channel parameters of the fused attack step: one value per channel (dim 1), in the
// preprocessed units of the input.
struct AttackStepParams {
  std::vector<double> alpha, eps, lo, hi;
};

// A device computation recorded once and replayed (CUDA Graphs): one launch instead of the
// hundreds of kernel launches, and none of the host work (autograd tape, shape checks) that
// queued them. Made by Backend::capture.
class CapturedComputation {
 public:
  virtual ~CapturedComputation() = default;
  // Copies `inputs` (same shapes and dtypes as at capture, on the device) into the recorded
  // input buffers and replays. Returns the recorded output buffers: the *same* tensors every
  // run, overwritten by the next one, so clone what must outlive it.
  virtual std::vector<Tensor> run(const std::vector<Tensor>& inputs) = 0;
};

// What is captured: device work only. It may allocate (from the capture's private pool) and
// build autograd history, but must not move data between host and device or wait for the
// device; capture fails cleanly when it does.
using DeviceComputation = std::function<std::vector<Tensor>(const std::vector<Tensor>& inputs)>;

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;

  virtual void unary(UnaryOp op, const Tensor& x, Tensor& out, ScalarArgs args) = 0;
  // a and b are already broadcast to out's shape (stride-0 views).
  virtual void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out,
                      ScalarArgs args) = 0;
  // cond, a, b broadcast to out's shape; out = cond != 0 ? a : b.
  virtual void where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) = 0;
  // dst[i] = src[i] for same-shaped views; converts dtype; dst may be a strided view.
  // Host<->device copies are done by the CUDA backend.
  virtual void copy(const Tensor& src, Tensor& dst) = 0;
  virtual void fill(Tensor& dst, double value) = 0;
  // `out` has x's shape with every dim in `dims` (sorted, unique) set to 1.
  virtual void reduce(ReduceOp op, const Tensor& x, const std::vector<int64_t>& dims,
                      Tensor& out) = 0;

  // Batched GEMM: a [B, M, K], b [B, K, N] (any strides), out [B, M, N].
  virtual void matmul(const Tensor& a, const Tensor& b, Tensor& out) = 0;

  // x [N, C_in, H, W], w [C_out, C_in/g, KH, KW], out [N, C_out, Ho, Wo]. No bias.
  virtual void conv2d(const Tensor& x, const Tensor& w, Tensor& out, const Conv2dParams& p) = 0;
  // grad [N, C_out, Ho, Wo], w -> out = dL/dx [N, C_in, H, W].
  virtual void conv2d_backward_input(const Tensor& grad, const Tensor& w, Tensor& out,
                                     const Conv2dParams& p) = 0;
  // x, grad -> out = dL/dw [C_out, C_in/g, KH, KW].
  virtual void conv2d_backward_weight(const Tensor& x, const Tensor& grad, Tensor& out,
                                      const Conv2dParams& p) = 0;

  // out [N, C, Ho, Wo] and indices (int64, same shape): flat index h*W + w of each window's
  // maximum within its input plane (first maximum on ties; padding never wins).
  virtual void max_pool2d(const Tensor& x, Tensor& out, Tensor& indices,
                          const Pool2dParams& p) = 0;
  // out [N, C, H, W] = 0, then out.plane[indices[i]] += grad[i]   (the backward of max_pool2d),
  // adding in ascending i at each pixel. p is the pooling the indices came from: each index lies
  // in its window, so a device can sum each pixel over the windows covering it in that fixed
  // order (deterministic, no atomics) instead of scattering.
  virtual void max_pool2d_scatter(const Tensor& grad, const Tensor& indices, const Pool2dParams& p,
                                  Tensor& out) = 0;
  // out [N, C, Ho, Wo] = x.plane[indices[i]]                     (the adjoint of the scatter).
  virtual void max_pool2d_gather(const Tensor& x, const Tensor& indices, Tensor& out) = 0;
  virtual void avg_pool2d(const Tensor& x, Tensor& out, const Pool2dParams& p) = 0;
  // grad [N, C, Ho, Wo] -> out [N, C, H, W]: the adjoint of avg_pool2d.
  virtual void avg_pool2d_backward(const Tensor& grad, Tensor& out, const Pool2dParams& p) = 0;

  // ---- softmax (element math: kernels/functors/softmax.h) ----------------------------------
  // x contiguous; out (contiguous, x's shape) = softmax or, with `log`, log_softmax of x along
  // `dim` (already wrapped to 0 <= dim < x.dim()), computed with the row maximum subtracted.
  virtual void softmax(const Tensor& x, int64_t dim, bool log, Tensor& out) = 0;
  // grad, y contiguous, y = the forward's output; out = dL/dx (fn::SoftmaxGrad or, with `log`,
  // fn::LogSoftmaxGrad, with the row sums they need).
  virtual void softmax_backward(const Tensor& grad, const Tensor& y, int64_t dim, bool log,
                                Tensor& out) = 0;

  // ---- fused kernels of attacks and attributions (element math: kernels/functors/attack.h) --
  // x, d, x0 [N, C, ...] of one shape; out (contiguous, may be x itself) = fn::AttackStep with
  // channel c's alpha, eps, lo, hi from `p` (C values each).
  virtual void attack_step(const Tensor& x, const Tensor& d, const Tensor& x0,
                           const AttackStepParams& p, Tensor& out) = 0;
  // Saliency normalisation fused with weighted sums over the map. attribution A [N, C, H, W];
  // weights w [1 or N, K, H, W]; out [N, K + 1]:
  //   out[n, k] = sum_hw a w_k / T  (0 when T = 0),   out[n, K] = T,
  // with a = sum_c |A| the pixel saliency and T = sum_hw a (so a / T is saliency_map's map).
  virtual void saliency_moments(const Tensor& attribution, const Tensor& weights,
                                Tensor& out) = 0;
  // Its gradient: grad [N, K + 1], moments = the forward's out; out [N, C, H, W] =
  // fn::SaliencyMomentsGrad per element.
  virtual void saliency_moments_backward(const Tensor& grad, const Tensor& attribution,
                                         const Tensor& weights, const Tensor& moments,
                                         Tensor& out) = 0;

  // Records `fn` applied to copies of `inputs`, for replay. Nothing is computed until the
  // first run(). Returns nullptr, with the reason in *why_not, when this backend does not
  // record (the CPU: no launch overhead to save) or `fn` could not be recorded.
  virtual std::unique_ptr<CapturedComputation> capture(const DeviceComputation& fn,
                                                       const std::vector<Tensor>& inputs,
                                                       std::string* why_not) {
    (void)fn;
    (void)inputs;
    if (why_not) *why_not = std::string(device_name(device())) + " runs computations eagerly";
    return nullptr;
  }
};

Backend& cpu_backend();   // kernels/cpu
// kernels/cuda, or throws in a CPU-only build (kernels/no_cuda.cpp); the stand-in when one
// is installed.
Backend& cuda_backend();
bool cuda_available();    // built with CUDA and a device is present (ignores any stand-in)

// Tests only: a backend that answers for Device::CUDA instead of the real one (or of the
// CPU-only build's refusal). tests/support/emulated_cuda.h installs one that runs the CUDA
// code paths of sessions, attributions and attacks on the host, checking that every kernel
// argument is on the device and counting host<->device transfers. Returns the previous
// stand-in; nullptr uninstalls. Not thread-safe: install before any tensor work.
Backend* set_cuda_stand_in(Backend* backend);
Backend* cuda_stand_in();
inline Backend& backend_for(Device d) { return d == Device::CPU ? cpu_backend() : cuda_backend(); }

// Output extent of a convolution/pooling window along one axis (PyTorch's formulas, including
// its ceil_mode rule that the last window must start inside the input or the left padding).
// A contiguous tensor seen as [outer, len, inner] around dimension `dim`: the geometry of the
// softmax kernels (row r = (o, i) holds elements o*len*inner + j*inner + i, j < len).
struct RowsAround {
  int64_t outer = 1, len = 1, inner = 1;
};
RowsAround rows_around(const Shape& shape, int64_t dim);

int64_t conv_out_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation);
int64_t pool_out_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, bool ceil_mode);

}  // namespace fragile
