// CPU reductions (sum, max) over any set of dims of a strided view.
//
// The kept dims index output elements; the reduced dims are walked per output with their own
// strides. Sums accumulate in double (float32 inputs included): more accurate than float and
// free next to the memory traffic. When there are fewer outputs than threads (e.g. a full sum),
// the reduction itself is split across threads instead.
#include <omp.h>

#include <limits>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/loops.h"

namespace fragile::cpu {
namespace {

struct Axes {
  Shape shape, strides;
};

template <typename T>
struct Reducer {
  ReduceOp op;
  double init() const {
    return op == ReduceOp::Sum ? 0.0 : -std::numeric_limits<double>::infinity();
  }
  double combine(double acc, double v) const {
    if (op == ReduceOp::Sum) return acc + v;
    return (v > acc || v != v) ? v : acc;  // NaN propagates, like torch.amax
  }
};

template <typename T>
void reduce_typed(ReduceOp op, const Tensor& x, const std::vector<int64_t>& dims, Tensor& out) {
  Axes kept, red;
  for (int64_t d = 0; d < x.dim(); ++d) {
    bool r = std::find(dims.begin(), dims.end(), d) != dims.end();
    Axes& a = r ? red : kept;
    a.shape.push_back(x.shape()[d]);
    a.strides.push_back(x.strides()[d]);
  }
  // Reduced dims become one run when they coalesce; otherwise a table of offsets.
  Coalesced<1> rc = coalesce<1>(red.shape, {red.strides});
  const int64_t R = numel_of(red.shape);
  std::vector<int64_t> offsets;
  const bool single_run = rc.shape.size() == 1;
  const int64_t rstride = rc.strides[0].back();
  if (!single_run) {
    offsets.resize(R);
    for (int64_t i = 0; i < R; ++i) {
      int64_t rem = i, o = 0;
      for (int64_t d = static_cast<int64_t>(rc.shape.size()) - 1; d >= 0; --d) {
        o += (rem % rc.shape[d]) * rc.strides[0][d];
        rem /= rc.shape[d];
      }
      offsets[i] = o;
    }
  }
  const T* xp = static_cast<const T*>(x.raw_data());
  T* op_ = static_cast<T*>(out.raw_data());
  const int64_t M = numel_of(kept.shape);
  const Reducer<T> red_op{op};
  const int threads = omp_get_max_threads();

  auto base_offset = [&](int64_t m) {
    int64_t o = 0;
    for (int64_t d = static_cast<int64_t>(kept.shape.size()) - 1; d >= 0; --d) {
      o += (m % kept.shape[d]) * kept.strides[d];
      m /= kept.shape[d];
    }
    return o;
  };
  auto element = [&](int64_t base, int64_t i) {
    return static_cast<double>(xp[base + (single_run ? i * rstride : offsets[i])]);
  };

  if (M < threads && R >= kParallelGrain) {
    // Few outputs, long reductions: split each reduction across threads.
    for (int64_t m = 0; m < M; ++m) {
      const int64_t base = base_offset(m);
      std::vector<double> partial(threads, red_op.init());
#pragma omp parallel
      {
        int t = omp_get_thread_num();
        int nt = omp_get_num_threads();
        double acc = red_op.init();
        const int64_t chunk = (R + nt - 1) / nt;  // contiguous blocks: cache-friendly
        const int64_t end = std::min(R, (t + 1) * chunk);
        for (int64_t i = t * chunk; i < end; ++i) acc = red_op.combine(acc, element(base, i));
        partial[t] = acc;
      }
      double acc = red_op.init();
      for (double p : partial) acc = red_op.combine(acc, p);
      op_[m] = static_cast<T>(acc);
    }
    return;
  }
#pragma omp parallel for schedule(static) if (M * R >= kParallelGrain)
  for (int64_t m = 0; m < M; ++m) {
    const int64_t base = base_offset(m);
    double acc = red_op.init();
    if (single_run && rstride == 1 && op == ReduceOp::Sum) {
      const T* p = xp + base;
      for (int64_t i = 0; i < R; ++i) acc += static_cast<double>(p[i]);
    } else {
      for (int64_t i = 0; i < R; ++i) acc = red_op.combine(acc, element(base, i));
    }
    op_[m] = static_cast<T>(acc);
  }
}

}  // namespace

void CpuBackend::reduce(ReduceOp op, const Tensor& x, const std::vector<int64_t>& dims,
                        Tensor& out) {
  // The backend contract (core/backend.h), checked as the CUDA backend checks it: a caller
  // passing another shape of the same size would otherwise work here and fail on a GPU.
  FRAGILE_CHECK(x.dtype() == out.dtype(), "reduce: x is ", dtype_name(x.dtype()), " but out is ",
                dtype_name(out.dtype()));
  FRAGILE_CHECK(out.is_contiguous(), "reduce: out must be contiguous");
  Shape expect = x.shape();
  for (int64_t d : dims) {
    FRAGILE_CHECK(d >= 0 && d < x.dim(), "reduce: dim ", d, " out of range for rank ", x.dim());
    expect[d] = 1;
  }
  FRAGILE_CHECK(out.shape() == expect, "reduce: out has shape ", shape_str(out.shape()),
                ", expected ", shape_str(expect));
  FRAGILE_DISPATCH_FLOAT(x.dtype(), "reduce", [&] { reduce_typed<scalar_t>(op, x, dims, out); });
}

}  // namespace fragile::cpu
