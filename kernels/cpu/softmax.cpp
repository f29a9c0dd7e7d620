// CPU softmax / log_softmax and their backwards (element math: kernels/functors/softmax.h).
//
// A contiguous tensor is viewed as [outer, len, inner] around the softmax dim. Each outer slice
// is one task: its `inner` rows are processed side by side (the innermost loop walks contiguous
// memory and vectorises, also for a softmax over channels of an NCHW tensor), with the row
// statistics kept in per-thread buffers. Sums are accumulated in double, as the reductions do.
#include <omp.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "core/error.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/loops.h"
#include "kernels/functors/softmax.h"

namespace fragile::cpu {
namespace {

struct RowGeometry : RowsAround {
  RowGeometry(const Shape& shape, int64_t dim) : RowsAround(rows_around(shape, dim)) {}
  bool parallel() const { return outer > 1 && outer * len * inner >= kParallelGrain; }
};

template <typename T>
void softmax_typed(const Tensor& x, const RowGeometry& g, bool log, Tensor& out) {
  const T* xp = x.data<T>();
  T* op = out.data<T>();
#pragma omp parallel if (g.parallel())
  {
    std::vector<T> row_max(g.inner);
    std::vector<double> sum_exp(g.inner);
#pragma omp for schedule(static)
    for (int64_t o = 0; o < g.outer; ++o) {
      const T* xo = xp + o * g.len * g.inner;
      T* yo = op + o * g.len * g.inner;
      std::fill(row_max.begin(), row_max.end(), -std::numeric_limits<T>::infinity());
      std::fill(sum_exp.begin(), sum_exp.end(), 0.0);
      for (int64_t j = 0; j < g.len; ++j)
        for (int64_t i = 0; i < g.inner; ++i)
          row_max[i] = std::max(row_max[i], xo[j * g.inner + i]);
      for (int64_t j = 0; j < g.len; ++j)
        for (int64_t i = 0; i < g.inner; ++i)
          sum_exp[i] += fn::softmax_exp_term(xo[j * g.inner + i], row_max[i]);
      if (log) {
        for (int64_t i = 0; i < g.inner; ++i) sum_exp[i] = std::log(sum_exp[i]);
        for (int64_t j = 0; j < g.len; ++j)
          for (int64_t i = 0; i < g.inner; ++i)
            yo[j * g.inner + i] = fn::LogSoftmaxOut{}(xo[j * g.inner + i], row_max[i],
                                                      static_cast<T>(sum_exp[i]));
      } else {
        for (int64_t j = 0; j < g.len; ++j)
          for (int64_t i = 0; i < g.inner; ++i)
            yo[j * g.inner + i] = fn::SoftmaxOut{}(xo[j * g.inner + i], row_max[i],
                                                   static_cast<T>(sum_exp[i]));
      }
    }
  }
}

template <typename T>
void softmax_backward_typed(const Tensor& grad, const Tensor& y, const RowGeometry& g, bool log,
                            Tensor& out) {
  const T *gp = grad.data<T>(), *yp = y.data<T>();
  T* op = out.data<T>();
#pragma omp parallel if (g.parallel())
  {
    std::vector<double> row_sum(g.inner);
#pragma omp for schedule(static)
    for (int64_t o = 0; o < g.outer; ++o) {
      const int64_t base = o * g.len * g.inner;
      const T *go = gp + base, *yo = yp + base;
      T* dx = op + base;
      std::fill(row_sum.begin(), row_sum.end(), 0.0);
      // softmax needs s = sum g y, log_softmax s = sum g.
      for (int64_t j = 0; j < g.len; ++j)
        for (int64_t i = 0; i < g.inner; ++i) {
          const int64_t k = j * g.inner + i;
          row_sum[i] += log ? static_cast<double>(go[k])
                            : static_cast<double>(go[k]) * static_cast<double>(yo[k]);
        }
      for (int64_t j = 0; j < g.len; ++j)
        for (int64_t i = 0; i < g.inner; ++i) {
          const int64_t k = j * g.inner + i;
          const T s = static_cast<T>(row_sum[i]);
          dx[k] = log ? fn::LogSoftmaxGrad{}(go[k], yo[k], s) : fn::SoftmaxGrad{}(go[k], yo[k], s);
        }
    }
  }
}

}  // namespace

void CpuBackend::softmax(const Tensor& x, int64_t dim, bool log, Tensor& out) {
  FRAGILE_CHECK(x.is_contiguous(), "cpu softmax: input must be contiguous");
  const RowGeometry g(x.shape(), dim);
  FRAGILE_DISPATCH_FLOAT(out.dtype(), "cpu softmax",
                         [&] { softmax_typed<scalar_t>(x, g, log, out); });
}

void CpuBackend::softmax_backward(const Tensor& grad, const Tensor& y, int64_t dim, bool log,
                                  Tensor& out) {
  FRAGILE_CHECK(grad.is_contiguous() && y.is_contiguous(),
                "cpu softmax_backward: inputs must be contiguous");
  const RowGeometry g(y.shape(), dim);
  FRAGILE_DISPATCH_FLOAT(out.dtype(), "cpu softmax_backward",
                         [&] { softmax_backward_typed<scalar_t>(grad, y, g, log, out); });
}

}  // namespace fragile::cpu
