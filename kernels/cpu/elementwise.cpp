// CPU element-wise kernels: unary, binary, where, copy (with dtype conversion), fill.
// Every map is a functor from kernels/functors, the same ones the CUDA kernels instantiate.
#include <cstring>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/loops.h"
#include "kernels/functors/binary.h"
#include "kernels/functors/unary.h"

namespace fragile::cpu {
namespace {

template <typename T, typename F>
void map1(const Tensor& x, Tensor& out, F f) {
  const T* xp = static_cast<const T*>(x.raw_data());
  T* op = static_cast<T*>(out.raw_data());
  for_each_run<2>(out.shape(), {out.strides(), x.strides()},
                  [&](const std::array<int64_t, 2>& off, int64_t n,
                      const std::array<int64_t, 2>& st) {
                    T* o = op + off[0];
                    const T* a = xp + off[1];
                    if (st[0] == 1 && st[1] == 1) {
                      for (int64_t i = 0; i < n; ++i) o[i] = f(a[i]);
                    } else {
                      for (int64_t i = 0; i < n; ++i) o[i * st[0]] = f(a[i * st[1]]);
                    }
                  });
}

template <typename T, typename F>
void map2(const Tensor& a, const Tensor& b, Tensor& out, F f) {
  const T* ap = static_cast<const T*>(a.raw_data());
  const T* bp = static_cast<const T*>(b.raw_data());
  T* op = static_cast<T*>(out.raw_data());
  for_each_run<3>(out.shape(), {out.strides(), a.strides(), b.strides()},
                  [&](const std::array<int64_t, 3>& off, int64_t n,
                      const std::array<int64_t, 3>& st) {
                    T* o = op + off[0];
                    const T* x = ap + off[1];
                    const T* y = bp + off[2];
                    if (st[0] == 1 && st[1] == 1 && st[2] == 1) {
                      for (int64_t i = 0; i < n; ++i) o[i] = f(x[i], y[i]);
                    } else if (st[0] == 1 && st[1] == 1 && st[2] == 0) {
                      const T s = y[0];  // tensor-scalar: the common broadcast
                      for (int64_t i = 0; i < n; ++i) o[i] = f(x[i], s);
                    } else {
                      for (int64_t i = 0; i < n; ++i) o[i * st[0]] = f(x[i * st[1]], y[i * st[2]]);
                    }
                  });
}

template <typename T>
void run_unary(UnaryOp op, const Tensor& x, Tensor& out, ScalarArgs s) {
  switch (op) {
    case UnaryOp::Neg: return map1<T>(x, out, fn::Neg{});
    case UnaryOp::Exp: return map1<T>(x, out, fn::Exp{});
    case UnaryOp::Log: return map1<T>(x, out, fn::Log{});
    case UnaryOp::Abs: return map1<T>(x, out, fn::Abs{});
    case UnaryOp::Sign: return map1<T>(x, out, fn::Sign{});
    case UnaryOp::Sqrt: return map1<T>(x, out, fn::Sqrt{});
    case UnaryOp::Relu: return map1<T>(x, out, fn::Relu{});
    case UnaryOp::Sigmoid: return map1<T>(x, out, fn::Sigmoid{});
    case UnaryOp::Tanh: return map1<T>(x, out, fn::Tanh{});
    case UnaryOp::Softplus: return map1<T>(x, out, fn::Softplus{s.a});
    case UnaryOp::PowScalar: return map1<T>(x, out, fn::PowScalar{s.a});
    case UnaryOp::Clamp: return map1<T>(x, out, fn::Clamp{s.a, s.b});
    case UnaryOp::ClampMask: return map1<T>(x, out, fn::ClampMask{s.a, s.b});
  }
  FRAGILE_FAIL("unknown unary op");
}

template <typename T>
void run_binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out, ScalarArgs s) {
  switch (op) {
    case BinaryOp::Add: return map2<T>(a, b, out, fn::Add{});
    case BinaryOp::Sub: return map2<T>(a, b, out, fn::Sub{});
    case BinaryOp::Mul: return map2<T>(a, b, out, fn::Mul{});
    case BinaryOp::Div: return map2<T>(a, b, out, fn::Div{});
    case BinaryOp::Pow: return map2<T>(a, b, out, fn::Pow{});
    case BinaryOp::Eq: return map2<T>(a, b, out, fn::Eq{});
    case BinaryOp::Ne: return map2<T>(a, b, out, fn::Ne{});
    case BinaryOp::Lt: return map2<T>(a, b, out, fn::Lt{});
    case BinaryOp::Le: return map2<T>(a, b, out, fn::Le{});
    case BinaryOp::Gt: return map2<T>(a, b, out, fn::Gt{});
    case BinaryOp::Ge: return map2<T>(a, b, out, fn::Ge{});
    case BinaryOp::SoftplusBackward: return map2<T>(a, b, out, fn::SoftplusBackward{s.a});
    case BinaryOp::ReluBackward: return map2<T>(a, b, out, fn::ReluBackward{});
  }
  FRAGILE_FAIL("unknown binary op");
}

template <typename S, typename D>
void copy_typed(const Tensor& src, Tensor& dst) {
  const S* sp = static_cast<const S*>(src.raw_data());
  D* dp = static_cast<D*>(dst.raw_data());
  for_each_run<2>(dst.shape(), {dst.strides(), src.strides()},
                  [&](const std::array<int64_t, 2>& off, int64_t n,
                      const std::array<int64_t, 2>& st) {
                    D* o = dp + off[0];
                    const S* a = sp + off[1];
                    if constexpr (std::is_same_v<S, D>) {
                      if (st[0] == 1 && st[1] == 1) {
                        std::memcpy(o, a, n * sizeof(D));
                        return;
                      }
                    }
                    for (int64_t i = 0; i < n; ++i) o[i * st[0]] = static_cast<D>(a[i * st[1]]);
                  });
}

template <typename S>
void copy_from(const Tensor& src, Tensor& dst) {
  switch (dst.dtype()) {
    case DType::Float32: return copy_typed<S, float>(src, dst);
    case DType::Float64: return copy_typed<S, double>(src, dst);
    case DType::Int64: return copy_typed<S, int64_t>(src, dst);
  }
}

}  // namespace

void CpuBackend::unary(UnaryOp op, const Tensor& x, Tensor& out, ScalarArgs args) {
  FRAGILE_DISPATCH_FLOAT(x.dtype(), "unary", [&] { run_unary<scalar_t>(op, x, out, args); });
}

void CpuBackend::binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out,
                        ScalarArgs args) {
  FRAGILE_DISPATCH_FLOAT(a.dtype(), "binary", [&] { run_binary<scalar_t>(op, a, b, out, args); });
}

void CpuBackend::where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) {
  FRAGILE_DISPATCH_FLOAT(a.dtype(), "where", [&] {
    using T = scalar_t;
    const T* cp = static_cast<const T*>(cond.raw_data());
    const T* ap = static_cast<const T*>(a.raw_data());
    const T* bp = static_cast<const T*>(b.raw_data());
    T* op = static_cast<T*>(out.raw_data());
    for_each_run<4>(out.shape(), {out.strides(), cond.strides(), a.strides(), b.strides()},
                    [&](const std::array<int64_t, 4>& off, int64_t n,
                        const std::array<int64_t, 4>& st) {
                      for (int64_t i = 0; i < n; ++i) {
                        T c = cp[off[1] + i * st[1]];
                        op[off[0] + i * st[0]] =
                            c != T(0) ? ap[off[2] + i * st[2]] : bp[off[3] + i * st[3]];
                      }
                    });
  });
}

void CpuBackend::copy(const Tensor& src, Tensor& dst) {
  FRAGILE_CHECK(src.device() == Device::CPU && dst.device() == Device::CPU,
                "cpu copy between devices");
  copy_host_memory(src, dst);
}

void copy_host_memory(const Tensor& src, Tensor& dst) {
  FRAGILE_CHECK(src.shape() == dst.shape(), "copy: shape ", shape_str(src.shape()), " into ",
                shape_str(dst.shape()));
  switch (src.dtype()) {
    case DType::Float32: return copy_from<float>(src, dst);
    case DType::Float64: return copy_from<double>(src, dst);
    case DType::Int64: return copy_from<int64_t>(src, dst);
  }
}

void CpuBackend::fill(Tensor& dst, double value) {
  auto fill_typed = [&](auto zero) {
    using T = decltype(zero);
    T* p = static_cast<T*>(dst.raw_data());
    T v = static_cast<T>(value);
    for_each_run<1>(dst.shape(), {dst.strides()},
                    [&](const std::array<int64_t, 1>& off, int64_t n,
                        const std::array<int64_t, 1>& st) {
                      for (int64_t i = 0; i < n; ++i) p[off[0] + i * st[0]] = v;
                    });
  };
  switch (dst.dtype()) {
    case DType::Float32: return fill_typed(0.0f);
    case DType::Float64: return fill_typed(0.0);
    case DType::Int64: return fill_typed(int64_t{0});
  }
}

Backend& cpu_backend_instance() {
  static CpuBackend backend;
  return backend;
}

}  // namespace fragile::cpu

namespace fragile {
Backend& cpu_backend() { return cpu::cpu_backend_instance(); }
}  // namespace fragile
