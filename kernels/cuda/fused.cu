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
// the two-output ones (map2_contiguous) read contiguous inputs (strided ones are copied
// first) and write contiguous outputs, 16 bytes per access when aligned. Their functors
// compute one exponential per element, not two (the softplus pair is near compute-bound
// otherwise).
#include "core/error.h"
#include "kernels/cuda/elementwise.cuh"
#include "kernels/cuda/fused.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/tensor_util.h"
#include "kernels/functors/binary.h"
#include "kernels/functors/unary.h"

namespace fragile::cuda {
namespace {

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
    map2_contiguous(fn::SoftplusWithSlope{beta}, n, value.data<T>(), sig.data<T>(),
                    x.data<T>());
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
    const T *up = u.data<T>(), *gp = g.data<T>(), *xp = x.data<T>();
    map2_contiguous(fn::SoftplusDoubleBackward{beta}, n, grad_g.data<T>(), grad_x.data<T>(),
                    up, gp, xp);
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
