// 2-D convolution forward, backward-data and backward-filter through cuDNN 9's legacy API.
//
// Shapes (NCHW): x [N, C_in, H, W], w [C_out, C_in/G, KH, KW], y / grad [N, C_out, Ho, Wo],
// G = groups (cudnnSetConvolutionGroupCount), Ho/Wo from conv_out_size. No bias (the op
// layer adds it). Inputs that are strided views are copied to contiguous first: cuDNN's
// fast kernels want fully packed NCHW and the copy is cheap next to the convolution.
//
// Algorithm choice: cudnnGet*Algorithm_v7 heuristics (no benchmarking runs, so no warm-up
// cost and no memory spikes), filtered to: supported (status success), no tensor-op math
// for float32 (the descriptor also asks for CUDNN_FMA_MATH: TF32 would break CPU parity and
// blur second-order results), deterministic when any such algorithm exists (reproducible
// attacks), workspace <= kMaxWorkspace. The choice is cached per geometry. Workspace comes
// from the caching allocator, so repeated calls cost no cudaMalloc.
//
// Too large for one call: a tensor with more elements than a cuDNN descriptor holds (2^31 - 1)
// is split along the batch into calls that fit; backward-filter sums the pieces' gradients.
//
// Fallback: when cuDNN has no usable algorithm for a configuration (or reports
// NOT_SUPPORTED when run, or one image or the filter alone is too large to describe), the
// direct kernels of conv2d_direct.cu compute the same result.
#include <algorithm>
#include <map>
#include <mutex>
#include <string>

#include "core/error.h"
#include "kernels/cuda/allocator.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/context.h"
#include "kernels/cuda/conv2d_direct.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/tensor_util.h"

namespace fragile::cuda {
namespace {

constexpr size_t kMaxWorkspace = size_t{2} << 30;  // 2 GiB

// ---- RAII for descriptors and workspace --------------------------------------------------

struct TensorDesc {
  cudnnTensorDescriptor_t d = nullptr;
  TensorDesc(const Shape& s, cudnnDataType_t dt) {
    FRAGILE_CUDNN_CHECK(cudnnCreateTensorDescriptor(&d));
    FRAGILE_CUDNN_CHECK(cudnnSetTensor4dDescriptor(d, CUDNN_TENSOR_NCHW, dt, int(s[0]), int(s[1]),
                                                   int(s[2]), int(s[3])));
  }
  ~TensorDesc() { cudnnDestroyTensorDescriptor(d); }
  TensorDesc(const TensorDesc&) = delete;
  TensorDesc& operator=(const TensorDesc&) = delete;
};

struct FilterDesc {
  cudnnFilterDescriptor_t d = nullptr;
  FilterDesc(const Shape& s, cudnnDataType_t dt) {
    FRAGILE_CUDNN_CHECK(cudnnCreateFilterDescriptor(&d));
    FRAGILE_CUDNN_CHECK(cudnnSetFilter4dDescriptor(d, dt, CUDNN_TENSOR_NCHW, int(s[0]), int(s[1]),
                                                   int(s[2]), int(s[3])));
  }
  ~FilterDesc() { cudnnDestroyFilterDescriptor(d); }
  FilterDesc(const FilterDesc&) = delete;
  FilterDesc& operator=(const FilterDesc&) = delete;
};

struct ConvDesc {
  cudnnConvolutionDescriptor_t d = nullptr;
  ConvDesc(const Conv2dParams& p, DType dtype) {
    FRAGILE_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&d));
    const cudnnDataType_t compute =
        dtype == DType::Float64 ? CUDNN_DATA_DOUBLE : CUDNN_DATA_FLOAT;
    FRAGILE_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(
        d, int(p.padding[0]), int(p.padding[1]), int(p.stride[0]), int(p.stride[1]),
        int(p.dilation[0]), int(p.dilation[1]), CUDNN_CROSS_CORRELATION, compute));
    FRAGILE_CUDNN_CHECK(cudnnSetConvolutionGroupCount(d, int(p.groups)));
    FRAGILE_CUDNN_CHECK(cudnnSetConvolutionMathType(
        d, dtype == DType::Float32 ? CUDNN_FMA_MATH : CUDNN_DEFAULT_MATH));
  }
  ~ConvDesc() { cudnnDestroyConvolutionDescriptor(d); }
  ConvDesc(const ConvDesc&) = delete;
  ConvDesc& operator=(const ConvDesc&) = delete;
};

// Freed as soon as the cuDNN call is queued: the caching allocator only hands it out again
// to work queued later on the same stream (see allocator.cu).
struct Workspace {
  void* p = nullptr;
  size_t n = 0;
  explicit Workspace(size_t bytes) : n(bytes) {
    if (n) p = caching_allocator().allocate(n);
  }
  ~Workspace() { caching_allocator().deallocate(p, n); }
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
};

// ---- geometry and algorithm cache --------------------------------------------------------

enum class Kind { Forward, BackwardData, BackwardFilter };

struct Descs {
  TensorDesc x, y;
  FilterDesc w;
  ConvDesc conv;
  Descs(const Shape& xs, const Shape& ws, const Shape& ys, const Conv2dParams& p, DType dt)
      : x(xs, cudnn_type(dt)), y(ys, cudnn_type(dt)), w(ws, cudnn_type(dt)), conv(p, dt) {}
  static cudnnDataType_t cudnn_type(DType dt) {
    return dt == DType::Float64 ? CUDNN_DATA_DOUBLE : CUDNN_DATA_FLOAT;
  }
};

struct Choice {
  int algo = -1;  // -1: no usable cuDNN algorithm, use the direct kernels
  size_t workspace = 0;
};

std::mutex g_cache_mu;
std::map<std::string, Choice> g_cache;

std::string cache_key(Kind k, DType dt, const Shape& x, const Shape& w, const Shape& y,
                      const Conv2dParams& p) {
  return ::fragile::detail::concat(int(k), '/', int(dt), '/', shape_str(x), shape_str(w),
                                   shape_str(y), '/', p.stride[0], ',', p.stride[1], ',',
                                   p.padding[0], ',', p.padding[1], ',', p.dilation[0], ',',
                                   p.dilation[1], ',', p.groups);
}

bool is_tensor_op(cudnnMathType_t m) {
  return m == CUDNN_TENSOR_OP_MATH || m == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
}

// Checks a cuDNN status; false when cuDNN rejects the configuration (any NOT_SUPPORTED
// code), so the caller can take the direct path. Every other failure throws.
bool ran(cudnnStatus_t st, const char* call) {
  if (st == CUDNN_STATUS_SUCCESS) return true;
  if (CUDNN_STATUS_CATEGORY(st) == CUDNN_STATUS_NOT_SUPPORTED) return false;
  detail::throw_cudnn_error(st, call, __FILE__, __LINE__);
}

// First acceptable entry of a heuristic list; `workspace_of(algo, &bytes)` asks cuDNN for
// the exact workspace and may refuse the algorithm.
template <class Perf, class WorkspaceOf>
Choice pick(const Perf* perf, int count, DType dt, WorkspaceOf&& workspace_of) {
  for (int pass = 0; pass < 2; ++pass) {  // pass 0: deterministic only
    for (int i = 0; i < count; ++i) {
      const Perf& r = perf[i];
      if (r.status != CUDNN_STATUS_SUCCESS) continue;
      if (dt == DType::Float32 && is_tensor_op(r.mathType)) continue;
      if (pass == 0 && r.determinism != CUDNN_DETERMINISTIC) continue;
      size_t bytes = 0;
      if (workspace_of(r.algo, &bytes) != CUDNN_STATUS_SUCCESS) continue;
      if (bytes > kMaxWorkspace) continue;
      return {static_cast<int>(r.algo), bytes};
    }
  }
  return {};
}

Choice choose(Kind k, DType dt, const Shape& xs, const Shape& ws, const Shape& ys,
              const Conv2dParams& p, const Descs& d) {
  const std::string key = cache_key(k, dt, xs, ws, ys, p);
  {
    std::lock_guard<std::mutex> lock(g_cache_mu);
    auto it = g_cache.find(key);
    if (it != g_cache.end()) return it->second;
  }
  cudnnHandle_t h = cudnn_handle();
  Choice c;
  int n = 0;
  if (k == Kind::Forward) {
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    if (ran(cudnnGetConvolutionForwardAlgorithm_v7(h, d.x.d, d.w.d, d.conv.d, d.y.d,
                                                   CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n, perf),
            "cudnnGetConvolutionForwardAlgorithm_v7"))
      c = pick(perf, n, dt, [&](cudnnConvolutionFwdAlgo_t a, size_t* b) {
        return cudnnGetConvolutionForwardWorkspaceSize(h, d.x.d, d.w.d, d.conv.d, d.y.d, a, b);
      });
  } else if (k == Kind::BackwardData) {
    cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    if (ran(cudnnGetConvolutionBackwardDataAlgorithm_v7(
                h, d.w.d, d.y.d, d.conv.d, d.x.d, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &n, perf),
            "cudnnGetConvolutionBackwardDataAlgorithm_v7"))
      c = pick(perf, n, dt, [&](cudnnConvolutionBwdDataAlgo_t a, size_t* b) {
        return cudnnGetConvolutionBackwardDataWorkspaceSize(h, d.w.d, d.y.d, d.conv.d, d.x.d, a,
                                                            b);
      });
  } else {
    cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    if (ran(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
                h, d.x.d, d.y.d, d.conv.d, d.w.d, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &n,
                perf),
            "cudnnGetConvolutionBackwardFilterAlgorithm_v7"))
      c = pick(perf, n, dt, [&](cudnnConvolutionBwdFilterAlgo_t a, size_t* b) {
        return cudnnGetConvolutionBackwardFilterWorkspaceSize(h, d.x.d, d.y.d, d.conv.d, d.w.d,
                                                              a, b);
      });
  }
  std::lock_guard<std::mutex> lock(g_cache_mu);
  g_cache[key] = c;
  return c;
}

void remember_unsupported(Kind k, DType dt, const Shape& xs, const Shape& ws, const Shape& ys,
                          const Conv2dParams& p) {
  // A refusal while recording a graph may be about the recording, not the geometry: do not
  // send eager calls of this geometry to the slow direct kernels for the rest of the process.
  if (capturing()) return;
  std::lock_guard<std::mutex> lock(g_cache_mu);
  g_cache[cache_key(k, dt, xs, ws, ys, p)] = Choice{};
}

// ---- checks ------------------------------------------------------------------------------

bool fits_int(int64_t v) { return v >= 0 && v <= 0x7fffffff; }

// x [N, C_in, H, W], w [C_out, C_in/G, KH, KW], y [N, C_out, Ho, Wo].
void check_geometry(const Tensor& x, const Tensor& w, const Tensor& y, const Conv2dParams& p,
                    const char* what) {
  check_on_device(x, what, "input");
  check_on_device(w, what, "weight");
  check_on_device(y, what, "output");
  FRAGILE_CHECK(x.dtype() == w.dtype() && x.dtype() == y.dtype() && is_floating(x.dtype()),
                what, ": dtypes must be one float type, got ", dtype_name(x.dtype()), ", ",
                dtype_name(w.dtype()), ", ", dtype_name(y.dtype()));
  FRAGILE_CHECK(x.dim() == 4 && w.dim() == 4 && y.dim() == 4, what,
                ": expected 4-d x, w, out; got ", shape_str(x.shape()), ", ",
                shape_str(w.shape()), ", ", shape_str(y.shape()));
  const int64_t G = p.groups;
  FRAGILE_CHECK(G >= 1 && x.size(1) % G == 0 && w.size(0) % G == 0, what, ": groups (", G,
                ") must divide C_in (", x.size(1), ") and C_out (", w.size(0), ")");
  FRAGILE_CHECK(w.size(1) == x.size(1) / G, what, ": weight ", shape_str(w.shape()),
                " expects C_in/groups = ", w.size(1), ", input ", shape_str(x.shape()),
                " with groups ", G, " gives ", x.size(1) / G);
  const int64_t Ho = conv_out_size(x.size(2), w.size(2), p.stride[0], p.padding[0], p.dilation[0]);
  const int64_t Wo = conv_out_size(x.size(3), w.size(3), p.stride[1], p.padding[1], p.dilation[1]);
  FRAGILE_CHECK(y.size(0) == x.size(0) && y.size(1) == w.size(0) && y.size(2) == Ho &&
                    y.size(3) == Wo,
                what, ": output ", shape_str(y.shape()), " does not match [", x.size(0), ", ",
                w.size(0), ", ", Ho, ", ", Wo, "]");
  for (const Tensor* t : {&x, &w, &y})
    for (int64_t s : t->shape())
      FRAGILE_CHECK(fits_int(s), what, ": extent ", s, " exceeds cuDNN's 32-bit limit");
  for (int64_t v : {p.stride[0], p.stride[1], p.padding[0], p.padding[1], p.dilation[0],
                    p.dilation[1], p.groups})
    FRAGILE_CHECK(fits_int(v), what, ": parameter ", v, " out of range");
}

bool empty_problem(const Tensor& x, const Tensor& w, const Tensor& y) {
  return x.numel() == 0 || w.numel() == 0 || y.numel() == 0;
}

bool cudnn_can_describe_all(const Tensor& x, const Tensor& w, const Tensor& y) {
  return cudnn_can_describe(x.shape()) && cudnn_can_describe(w.shape()) &&
         cudnn_can_describe(y.shape());
}

// For a problem too large for one cuDNN call: how many images each call takes so that the
// image-side tensors (x and y, [N, ...]) fit a descriptor. 0 when even one image, or the
// filter, does not fit.
int64_t images_per_cudnn_call(const Tensor& x, const Tensor& w, const Tensor& y) {
  if (!cudnn_can_describe(w.shape())) return 0;
  const int64_t per_image = std::max(x.numel() / x.size(0), y.numel() / y.size(0));
  return cudnn_tensor_element_limit.load(std::memory_order_relaxed) / per_image;
}

// Images [begin, begin + count) of a [N, ...] tensor, as a view (contiguous if t is).
Tensor batch_slice(const Tensor& t, int64_t begin, int64_t count) {
  Shape shape = t.shape();
  shape[0] = count;
  return make_view(t, shape, t.strides(), t.offset() + begin * t.strides()[0]);
}

// alpha = 1, beta = 0 in the compute type: float for float32, double for float64.
struct Scale {
  float f1 = 1.0f, f0 = 0.0f;
  double d1 = 1.0, d0 = 0.0;
  DType dt;
  explicit Scale(DType t) : dt(t) {}
  const void* one() const { return dt == DType::Float64 ? static_cast<const void*>(&d1) : &f1; }
  const void* zero() const { return dt == DType::Float64 ? static_cast<const void*>(&d0) : &f0; }
};

}  // namespace

void CudaBackend::conv2d(const Tensor& x_in, const Tensor& w_in, Tensor& out,
                         const Conv2dParams& p) {
  check_geometry(x_in, w_in, out, p, "cuda conv2d");
  FRAGILE_CHECK(out.is_contiguous(), "cuda conv2d: out must be contiguous");
  if (out.numel() == 0) return;
  if (empty_problem(x_in, w_in, out)) return fill(out, 0.0);
  const Tensor x = contiguous(x_in), w = contiguous(w_in);
  if (!cudnn_can_describe_all(x, w, out)) {
    const int64_t step = images_per_cudnn_call(x, w, out);
    if (step == 0) return conv2d_direct_forward(x, w, out, p);
    for (int64_t i = 0; i < x.size(0); i += step) {
      const int64_t n = std::min(step, x.size(0) - i);
      Tensor out_i = batch_slice(out, i, n);
      conv2d(batch_slice(x, i, n), w, out_i, p);
    }
    return;
  }
  const DType dt = x.dtype();
  const Descs d(x.shape(), w.shape(), out.shape(), p, dt);
  const Choice c = choose(Kind::Forward, dt, x.shape(), w.shape(), out.shape(), p, d);
  if (c.algo >= 0) {
    Workspace ws(c.workspace);
    const Scale s(dt);
    if (ran(cudnnConvolutionForward(cudnn_handle(), s.one(), d.x.d, x.raw_data(), d.w.d,
                                    w.raw_data(), d.conv.d,
                                    static_cast<cudnnConvolutionFwdAlgo_t>(c.algo), ws.p, ws.n,
                                    s.zero(), d.y.d, out.raw_data()),
            "cudnnConvolutionForward"))
      return;
    remember_unsupported(Kind::Forward, dt, x.shape(), w.shape(), out.shape(), p);
  }
  conv2d_direct_forward(x, w, out, p);
}

void CudaBackend::conv2d_backward_input(const Tensor& grad_in, const Tensor& w_in, Tensor& out,
                                        const Conv2dParams& p) {
  check_geometry(out, w_in, grad_in, p, "cuda conv2d_backward_input");
  FRAGILE_CHECK(out.is_contiguous(), "cuda conv2d_backward_input: out must be contiguous");
  if (out.numel() == 0) return;
  if (empty_problem(out, w_in, grad_in)) return fill(out, 0.0);
  const Tensor grad = contiguous(grad_in), w = contiguous(w_in);
  if (!cudnn_can_describe_all(out, w, grad)) {
    const int64_t step = images_per_cudnn_call(out, w, grad);
    if (step == 0) return conv2d_direct_backward_input(grad, w, out, p);
    for (int64_t i = 0; i < out.size(0); i += step) {
      const int64_t n = std::min(step, out.size(0) - i);
      Tensor out_i = batch_slice(out, i, n);
      conv2d_backward_input(batch_slice(grad, i, n), w, out_i, p);
    }
    return;
  }
  const DType dt = out.dtype();
  const Descs d(out.shape(), w.shape(), grad.shape(), p, dt);
  const Choice c = choose(Kind::BackwardData, dt, out.shape(), w.shape(), grad.shape(), p, d);
  if (c.algo >= 0) {
    Workspace ws(c.workspace);
    const Scale s(dt);
    if (ran(cudnnConvolutionBackwardData(cudnn_handle(), s.one(), d.w.d, w.raw_data(), d.y.d,
                                         grad.raw_data(), d.conv.d,
                                         static_cast<cudnnConvolutionBwdDataAlgo_t>(c.algo),
                                         ws.p, ws.n, s.zero(), d.x.d, out.raw_data()),
            "cudnnConvolutionBackwardData"))
      return;
    remember_unsupported(Kind::BackwardData, dt, out.shape(), w.shape(), grad.shape(), p);
  }
  conv2d_direct_backward_input(grad, w, out, p);
}

void CudaBackend::conv2d_backward_weight(const Tensor& x_in, const Tensor& grad_in, Tensor& out,
                                         const Conv2dParams& p) {
  check_geometry(x_in, out, grad_in, p, "cuda conv2d_backward_weight");
  FRAGILE_CHECK(out.is_contiguous(), "cuda conv2d_backward_weight: out must be contiguous");
  if (out.numel() == 0) return;
  if (empty_problem(x_in, out, grad_in)) return fill(out, 0.0);
  const Tensor x = contiguous(x_in), grad = contiguous(grad_in);
  if (!cudnn_can_describe_all(x, out, grad)) {
    const int64_t step = images_per_cudnn_call(x, out, grad);
    if (step == 0) return conv2d_direct_backward_weight(x, grad, out, p);
    // The weight gradient sums over images: the first piece writes out, each later one is
    // computed aside and added, in batch order (deterministic).
    Tensor piece;
    for (int64_t i = 0; i < x.size(0); i += step) {
      const int64_t n = std::min(step, x.size(0) - i);
      if (i == 0) {
        conv2d_backward_weight(batch_slice(x, i, n), batch_slice(grad, i, n), out, p);
        continue;
      }
      if (!piece.defined()) piece = empty_device(out.shape(), out.dtype());
      conv2d_backward_weight(batch_slice(x, i, n), batch_slice(grad, i, n), piece, p);
      binary(BinaryOp::Add, out, piece, out, {});
    }
    return;
  }
  const DType dt = out.dtype();
  const Descs d(x.shape(), out.shape(), grad.shape(), p, dt);
  const Choice c = choose(Kind::BackwardFilter, dt, x.shape(), out.shape(), grad.shape(), p, d);
  if (c.algo >= 0) {
    Workspace ws(c.workspace);
    const Scale s(dt);
    if (ran(cudnnConvolutionBackwardFilter(cudnn_handle(), s.one(), d.x.d, x.raw_data(), d.y.d,
                                           grad.raw_data(), d.conv.d,
                                           static_cast<cudnnConvolutionBwdFilterAlgo_t>(c.algo),
                                           ws.p, ws.n, s.zero(), d.w.d, out.raw_data()),
            "cudnnConvolutionBackwardFilter"))
      return;
    remember_unsupported(Kind::BackwardFilter, dt, x.shape(), out.shape(), grad.shape(), p);
  }
  conv2d_direct_backward_weight(x, grad, out, p);
}

}  // namespace fragile::cuda
