// Fused element-wise kernels (declared in fused.h).
//
// Vocabulary: x the pre-activation input, beta the softplus sharpness, g the incoming
// gradient of softplus (grad_output of the first backward), u the upstream gradient of that
// backward (second order); for IG acc the running sum and g one path gradient.
// (The attack step and the saliency moments live in fused_attack.cu.)
//
// Bandwidth: each of these would otherwise be 2-6 separate element-wise kernels, each
// reading and writing whole tensors. Fused, every input is read once and every output
// written once: e.g. the softplus pair moves 3 tensors instead of 4 (value and sigmoid from
// one read of x). The math comes from the shared functors (kernels/functors), so CPU
// references agree bit for bit in the formulas.
//
// Single-output fusions use the map machinery (any strides, vectorised when contiguous);
// the two-output kernels read contiguous inputs (strided ones are copied first) and write
// contiguous outputs, 16 bytes per access when aligned. Their functors compute one
// exponential per element, not two (the softplus pair is near compute-bound otherwise).
#include "core/error.h"
#include "kernels/cuda/elementwise.cuh"
#include "kernels/cuda/fused.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/tensor_util.h"
#include "kernels/functors/binary.h"
#include "kernels/functors/unary.h"

namespace fragile::cuda {
namespace {

constexpr int kBlock = 256;

// The two-output kernels take V elements per thread per step: one 16-byte load of each input
// and one 16-byte store of each output when every pointer is aligned (V = 16 / sizeof(T)),
// V = 1 otherwise; the last n % V elements are a scalar tail. Same access pattern as the
// single-output map (elementwise.cuh), which reaches ~85% of copy bandwidth on an H200.
template <int V, typename T>
__global__ void softplus_fwd_bwd_kernel(int64_t n, double beta, const T* x, T* value, T* sig) {
  const fn::SoftplusWithSlope f{beta};
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t nvec = n / V;
  for (int64_t i = tid; i < nvec; i += stride) {
    const Vec<T, V> xv = *reinterpret_cast<const Vec<T, V>*>(x + i * V);
    Vec<T, V> v, s;
#pragma unroll
    for (int j = 0; j < V; ++j) f(xv.v[j], v.v[j], s.v[j]);
    *reinterpret_cast<Vec<T, V>*>(value + i * V) = v;
    *reinterpret_cast<Vec<T, V>*>(sig + i * V) = s;
  }
  for (int64_t i = nvec * V + tid; i < n; i += stride) f(x[i], value[i], sig[i]);
}

template <int V, typename T>
__global__ void softplus_double_backward_kernel(int64_t n, double beta, const T* u, const T* g,
                                                const T* x, T* grad_g, T* grad_x) {
  const fn::SoftplusDoubleBackward f{beta};
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t nvec = n / V;
  for (int64_t i = tid; i < nvec; i += stride) {
    const Vec<T, V> uv = *reinterpret_cast<const Vec<T, V>*>(u + i * V);
    const Vec<T, V> gv = *reinterpret_cast<const Vec<T, V>*>(g + i * V);
    const Vec<T, V> xv = *reinterpret_cast<const Vec<T, V>*>(x + i * V);
    Vec<T, V> gg, gx;
#pragma unroll
    for (int j = 0; j < V; ++j) f(uv.v[j], gv.v[j], xv.v[j], gg.v[j], gx.v[j]);
    *reinterpret_cast<Vec<T, V>*>(grad_g + i * V) = gg;
    *reinterpret_cast<Vec<T, V>*>(grad_x + i * V) = gx;
  }
  for (int64_t i = nvec * V + tid; i < n; i += stride) f(u[i], g[i], x[i], grad_g[i], grad_x[i]);
}

// V for pointers of type T: 16 bytes' worth when all are 16-byte aligned and n has a full
// vector, else 1.
template <typename T, typename... P>
bool vectorisable(int64_t n, const P*... p) {
  constexpr int64_t V = 16 / sizeof(T);
  return n >= V && (detail::aligned_to(p, 16) && ...);
}

// Launches kernel<V> or kernel<1>, one thread per vector.
template <typename T, typename KVec, typename KOne, typename... A>
void launch_vectorised(bool vec, KVec k_vec, KOne k_one, int64_t n, A... args) {
  constexpr int V = 16 / sizeof(T);
  if (vec)
    launch(k_vec, grid_for(n / V, kBlock), kBlock)(n, args...);
  else
    launch(k_one, grid_for(n, kBlock), kBlock)(n, args...);
}

struct ScaleAdd {  // acc + w g
  double w;
  template <class T>
  __device__ __forceinline__ T operator()(T acc, T g) const {
    return acc + static_cast<T>(w) * g;
  }
};

void check_operand(const Tensor& t, const Tensor& like, const char* what, const char* name) {
  check_on_device(t, what, name);
  FRAGILE_CHECK(t.dtype() == like.dtype(), what, ": ", name, " is ", dtype_name(t.dtype()),
                ", expected ", dtype_name(like.dtype()));
  FRAGILE_CHECK(t.shape() == like.shape(), what, ": ", name, " has shape ",
                shape_str(t.shape()), ", expected ", shape_str(like.shape()));
}

void check_output(const Tensor& t, const Tensor& like, const char* what, const char* name) {
  check_operand(t, like, what, name);
  FRAGILE_CHECK(t.is_contiguous(), what, ": ", name, " must be contiguous");
}

}  // namespace

void softplus_forward_backward(const Tensor& x_in, double beta, Tensor& value, Tensor& sig) {
  const char* what = "cuda softplus_forward_backward";
  check_on_device(x_in, what, "x");
  check_output(value, x_in, what, "value");
  check_output(sig, x_in, what, "sig");
  const int64_t n = x_in.numel();
  if (n == 0) return;
  const Tensor x = contiguous(x_in);
  FRAGILE_DISPATCH_FLOAT(x.dtype(), what, [&] {
    using T = scalar_t;
    constexpr int V = 16 / sizeof(T);
    const T* xp = x.data<T>();
    T *vp = value.data<T>(), *sp = sig.data<T>();
    launch_vectorised<T>(vectorisable<T>(n, xp, vp, sp), softplus_fwd_bwd_kernel<V, T>,
                         softplus_fwd_bwd_kernel<1, T>, n, beta, xp, vp, sp);
  });
}

void softplus_double_backward(const Tensor& u_in, const Tensor& g_in, const Tensor& x_in,
                              double beta, Tensor& grad_g, Tensor& grad_x) {
  const char* what = "cuda softplus_double_backward";
  check_on_device(x_in, what, "x");
  check_operand(u_in, x_in, what, "u");
  check_operand(g_in, x_in, what, "g");
  check_output(grad_g, x_in, what, "grad_g");
  check_output(grad_x, x_in, what, "grad_x");
  const int64_t n = x_in.numel();
  if (n == 0) return;
  const Tensor u = contiguous(u_in), g = contiguous(g_in), x = contiguous(x_in);
  FRAGILE_DISPATCH_FLOAT(x.dtype(), what, [&] {
    using T = scalar_t;
    constexpr int V = 16 / sizeof(T);
    const T *up = u.data<T>(), *gp = g.data<T>(), *xp = x.data<T>();
    T *ggp = grad_g.data<T>(), *gxp = grad_x.data<T>();
    launch_vectorised<T>(vectorisable<T>(n, up, gp, xp, ggp, gxp),
                         softplus_double_backward_kernel<V, T>,
                         softplus_double_backward_kernel<1, T>, n, beta, up, gp, xp, ggp, gxp);
  });
}

void ig_accumulate(Tensor& acc, const Tensor& g, double w) {
  const char* what = "cuda ig_accumulate";
  check_on_device(acc, what, "acc");
  FRAGILE_CHECK(is_floating(acc.dtype()), what, ": acc must be float");
  check_operand(g, acc, what, "g");
  FRAGILE_DISPATCH_FLOAT(acc.dtype(), what, [&] {
    using T = scalar_t;
    map(ScaleAdd{w}, acc.shape(), arg<T>(acc), arg<const T>(acc), arg<const T>(g));
  });
}

}  // namespace fragile::cuda
