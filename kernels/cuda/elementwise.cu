// CUDA element-wise ops: unary, binary, where, fill. Each instantiates the shared map
// machinery (elementwise.cuh) with a functor from kernels/functors, the same structs the CPU
// backend calls, so the math exists once.
//
// Shapes: x, a, b, cond are views already broadcast to out's shape (stride 0 = broadcast);
// out is freshly allocated and contiguous (fill's dst may be any view).
// Bandwidth: 1 load per input and 1 store per element; see elementwise.cuh.
#include "core/error.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/elementwise.cuh"
#include "kernels/cuda/tensor_util.h"
#include "kernels/functors/binary.h"
#include "kernels/functors/unary.h"

namespace fragile::cuda {
namespace {

void check_same(const Tensor& in, const Tensor& out, const char* what, const char* name) {
  check_on_device(in, what, name);
  FRAGILE_CHECK(in.dtype() == out.dtype(), what, ": ", name, " is ", dtype_name(in.dtype()),
                " but out is ", dtype_name(out.dtype()));
  FRAGILE_CHECK(in.shape() == out.shape(), what, ": ", name, " has shape ",
                shape_str(in.shape()), ", out has ", shape_str(out.shape()),
                " (inputs must be broadcast to out's shape)");
}

template <typename T, class F>
void map1(const F& f, const Tensor& x, Tensor& out) {
  map(f, out.shape(), arg<T>(out), arg<const T>(x));
}

template <typename T, class F>
void map2(const F& f, const Tensor& a, const Tensor& b, Tensor& out) {
  map(f, out.shape(), arg<T>(out), arg<const T>(a), arg<const T>(b));
}

template <typename T>
void run_unary(UnaryOp op, const Tensor& x, Tensor& out, ScalarArgs s) {
  switch (op) {
    case UnaryOp::Neg: return map1<T>(fn::Neg{}, x, out);
    case UnaryOp::Exp: return map1<T>(fn::Exp{}, x, out);
    case UnaryOp::Log: return map1<T>(fn::Log{}, x, out);
    case UnaryOp::Abs: return map1<T>(fn::Abs{}, x, out);
    case UnaryOp::Sign: return map1<T>(fn::Sign{}, x, out);
    case UnaryOp::Sqrt: return map1<T>(fn::Sqrt{}, x, out);
    case UnaryOp::Relu: return map1<T>(fn::Relu{}, x, out);
    case UnaryOp::Sigmoid: return map1<T>(fn::Sigmoid{}, x, out);
    case UnaryOp::Tanh: return map1<T>(fn::Tanh{}, x, out);
    case UnaryOp::Softplus: return map1<T>(fn::Softplus{s.a}, x, out);
    case UnaryOp::PowScalar: return map1<T>(fn::PowScalar{s.a}, x, out);
    case UnaryOp::Clamp: return map1<T>(fn::Clamp{s.a, s.b}, x, out);
    case UnaryOp::ClampMask: return map1<T>(fn::ClampMask{s.a, s.b}, x, out);
  }
  FRAGILE_FAIL("cuda unary: unknown op ", static_cast<int>(op));
}

template <typename T>
void run_binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out, ScalarArgs s) {
  switch (op) {
    case BinaryOp::Add: return map2<T>(fn::Add{}, a, b, out);
    case BinaryOp::Sub: return map2<T>(fn::Sub{}, a, b, out);
    case BinaryOp::Mul: return map2<T>(fn::Mul{}, a, b, out);
    case BinaryOp::Div: return map2<T>(fn::Div{}, a, b, out);
    case BinaryOp::Pow: return map2<T>(fn::Pow{}, a, b, out);
    case BinaryOp::Eq: return map2<T>(fn::Eq{}, a, b, out);
    case BinaryOp::Ne: return map2<T>(fn::Ne{}, a, b, out);
    case BinaryOp::Lt: return map2<T>(fn::Lt{}, a, b, out);
    case BinaryOp::Le: return map2<T>(fn::Le{}, a, b, out);
    case BinaryOp::Gt: return map2<T>(fn::Gt{}, a, b, out);
    case BinaryOp::Ge: return map2<T>(fn::Ge{}, a, b, out);
    case BinaryOp::SoftplusBackward: return map2<T>(fn::SoftplusBackward{s.a}, a, b, out);
    case BinaryOp::ReluBackward: return map2<T>(fn::ReluBackward{}, a, b, out);
  }
  FRAGILE_FAIL("cuda binary: unknown op ", static_cast<int>(op));
}

// out = cond != 0 ? a : b. cond may be any dtype (the CPU backend takes a's dtype; int64
// masks are accepted too).
struct WhereFn {
  template <class C, class T>
  __device__ __forceinline__ T operator()(C c, T a, T b) const {
    return c != C(0) ? a : b;
  }
};

template <typename T>
struct FillFn {
  T value;
  __device__ __forceinline__ T operator()() const { return value; }
};

template <typename T>
void fill_typed(Tensor& dst, double value) {
  const T v = static_cast<T>(value);
  // All-zero bit patterns (0.0, +0.0, integer 0) of a contiguous tensor: one memset.
  if (dst.is_contiguous() && v == T(0) && !std::signbit(static_cast<double>(v))) {
    FRAGILE_CUDA_CHECK(
        cudaMemsetAsync(dst.raw_data(), 0, dst.numel() * sizeof(T), stream()));
    return;
  }
  map(FillFn<T>{v}, dst.shape(), arg<T>(dst));
}

}  // namespace

void CudaBackend::unary(UnaryOp op, const Tensor& x, Tensor& out, ScalarArgs args) {
  check_same(x, out, "cuda unary", "x");
  check_on_device(out, "cuda unary", "out");
  FRAGILE_DISPATCH_FLOAT(x.dtype(), "cuda unary", [&] { run_unary<scalar_t>(op, x, out, args); });
}

void CudaBackend::binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out,
                         ScalarArgs args) {
  check_same(a, out, "cuda binary", "a");
  check_same(b, out, "cuda binary", "b");
  check_on_device(out, "cuda binary", "out");
  FRAGILE_DISPATCH_FLOAT(a.dtype(), "cuda binary",
                         [&] { run_binary<scalar_t>(op, a, b, out, args); });
}

void CudaBackend::where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) {
  check_same(a, out, "cuda where", "a");
  check_same(b, out, "cuda where", "b");
  check_on_device(cond, "cuda where", "cond");
  check_on_device(out, "cuda where", "out");
  FRAGILE_CHECK(cond.shape() == out.shape(), "cuda where: cond has shape ",
                shape_str(cond.shape()), ", out has ", shape_str(out.shape()));
  FRAGILE_DISPATCH_FLOAT(a.dtype(), "cuda where", [&] {
    using T = scalar_t;
    auto run = [&](auto cond_zero) {
      using C = decltype(cond_zero);
      map(WhereFn{}, out.shape(), arg<T>(out), arg<const C>(cond), arg<const T>(a),
          arg<const T>(b));
    };
    switch (cond.dtype()) {
      case DType::Float32: return run(0.0f);
      case DType::Float64: return run(0.0);
      case DType::Int64: return run(int64_t{0});
    }
  });
}

void CudaBackend::fill(Tensor& dst, double value) {
  check_on_device(dst, "cuda fill", "dst");
  switch (dst.dtype()) {
    case DType::Float32: return fill_typed<float>(dst, value);
    case DType::Float64: return fill_typed<double>(dst, value);
    case DType::Int64: return fill_typed<int64_t>(dst, value);
  }
}

}  // namespace fragile::cuda
