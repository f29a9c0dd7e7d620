// The element-wise launch machinery behind unary, binary, where, copy, fill and the fused
// two-output kernels (fused.cu).
//
// Vocabulary: an element-wise map has one output and K inputs (K = 0..3), all views of the
// output's shape with arbitrary strides (stride 0 = broadcast). map(f, out, in...) computes
// out[i] = f(in_0[i], ..., in_{K-1}[i]) for every index i.
//
// Bandwidth: these kernels do O(1) flops per element, so they are bound by DRAM traffic
// (H100: ~3.3 TB/s). What matters is (1) touching each byte once, (2) coalesced, wide
// accesses, (3) enough bytes in flight. Hence:
//   * dims are coalesced first (extent-1 dims dropped, adjacent dims merged where every
//     operand is contiguous across them), so any fully contiguous problem becomes one run;
//   * contiguous fast path: 16-byte vector loads/stores (float4 / double2 worth) when every
//     pointer is aligned, grid-stride loop with a scalar tail;
//   * general strided path: up to kMaxDims coalesced dims, shape and strides passed by value
//     in a struct (kernel parameter space, no device allocation), index decomposition in
//     32-bit when the element count allows (64-bit division is ~4x slower); more than
//     kMaxDims dims are split on the host over the outermost dim.
#pragma once
#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <utility>

#include "core/tensor.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/context.h"
#include "kernels/cuda/launch.cuh"

namespace fragile::cuda {

inline constexpr int kMaxDims = 8;
inline constexpr int kThreads = 256;

// ---- host-side geometry ------------------------------------------------------------------

template <int N>
struct Geometry {
  Shape sizes;                    // outermost first
  std::array<Shape, N> strides;   // per operand, elements
};

template <int N>
Geometry<N> coalesce(const Shape& shape, const std::array<Shape, N>& strides) {
  Geometry<N> g;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool merge = !g.sizes.empty();
    for (int k = 0; k < N && merge; ++k) merge = g.strides[k].back() == strides[k][d] * shape[d];
    if (merge) {
      g.sizes.back() *= shape[d];
      for (int k = 0; k < N; ++k) g.strides[k].back() = strides[k][d];
    } else {
      g.sizes.push_back(shape[d]);
      for (int k = 0; k < N; ++k) g.strides[k].push_back(strides[k][d]);
    }
  }
  if (g.sizes.empty()) {  // a single element
    g.sizes.push_back(1);
    for (int k = 0; k < N; ++k) g.strides[k].push_back(1);
  }
  return g;
}

// A typed operand: data pointer at the view's offset plus its strides.
template <typename T>
struct Arg {
  T* ptr;
  const Shape* strides;
};
template <typename T>
Arg<T> arg(const Tensor& t) {
  return {static_cast<T*>(t.raw_data()), &t.strides()};
}

// ---- device side -------------------------------------------------------------------------

template <int N, typename IndexT>
struct Indexer {
  int ndim;
  IndexT sizes[kMaxDims];          // innermost first
  int64_t strides[kMaxDims][N];    // innermost first; operand 0 is the output

  __device__ __forceinline__ void offsets(IndexT linear, int64_t (&off)[N]) const {
#pragma unroll
    for (int k = 0; k < N; ++k) off[k] = 0;
#pragma unroll
    for (int d = 0; d < kMaxDims; ++d) {
      if (d == ndim) break;
      const IndexT i = linear % sizes[d];
      linear /= sizes[d];
#pragma unroll
      for (int k = 0; k < N; ++k) off[k] += static_cast<int64_t>(i) * strides[d][k];
    }
  }
};

template <typename T, int V>
struct alignas(sizeof(T) * V) Vec {
  T v[V];
};

template <int V, class T>
__device__ __forceinline__ Vec<T, V> load_vec(const T* p) {
  return *reinterpret_cast<const Vec<T, V>*>(p);
}

// The one loop every contiguous kernel shares: a grid-stride walk over n elements in whole
// V-element vectors, vec(i) taking elements i .. i + V - 1, then the last n % V elements one
// at a time, one(i) taking element i.
template <int V, class VecStep, class OneStep>
__device__ __forceinline__ void for_each_contiguous(int64_t n, const VecStep& vec,
                                                    const OneStep& one) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t nvec = n / V;
  for (int64_t i = tid; i < nvec; i += stride) vec(i * V);
  for (int64_t i = nvec * V + tid; i < n; i += stride) one(i);
}

// The vectors come by value: that makes each one a single wide load (by reference, nvcc
// loads the fields one by one).
template <int V, class F, class O, class... In>
__device__ __forceinline__ void apply_vec(const F& f, O* out, Vec<In, V>... in) {
  Vec<O, V> o;
#pragma unroll
  for (int j = 0; j < V; ++j) o.v[j] = f(in.v[j]...);
  *reinterpret_cast<Vec<O, V>*>(out) = o;
}

// Contiguous: element i of every operand is ptr[i]. V elements per thread per step.
template <int V, class F, class O, class... In>
__global__ void map_contig_kernel(F f, O* out, int64_t n, const In*... in) {
  for_each_contiguous<V>(
      n, [&](int64_t i) { apply_vec<V>(f, out + i, load_vec<V>(in + i)...); },
      [&](int64_t i) { out[i] = f(in[i]...); });
}

// Two outputs from one evaluation: f(in_0, ..., in_{K-1}, out_0&, out_1&), e.g. softplus's
// value and slope from one exponential.
template <int V, class F, class O, class... In>
__device__ __forceinline__ void apply_vec2(const F& f, O* out0, O* out1, Vec<In, V>... in) {
  Vec<O, V> o0, o1;
#pragma unroll
  for (int j = 0; j < V; ++j) f(in.v[j]..., o0.v[j], o1.v[j]);
  *reinterpret_cast<Vec<O, V>*>(out0) = o0;
  *reinterpret_cast<Vec<O, V>*>(out1) = o1;
}

template <int V, class F, class O, class... In>
__global__ void map2_contig_kernel(F f, O* out0, O* out1, int64_t n, const In*... in) {
  for_each_contiguous<V>(
      n, [&](int64_t i) { apply_vec2<V>(f, out0 + i, out1 + i, load_vec<V>(in + i)...); },
      [&](int64_t i) { f(in[i]..., out0[i], out1[i]); });
}

template <class F, class O, size_t... K, class... In>
__device__ __forceinline__ void apply_strided(const F& f, O* out, const int64_t* off,
                                              std::index_sequence<K...>, const In*... in) {
  out[off[0]] = f(in[off[K + 1]]...);
}

template <class F, class IndexT, class O, class... In>
__global__ void map_strided_kernel(F f, Indexer<1 + sizeof...(In), IndexT> ix, IndexT n, O* out,
                                   const In*... in) {
  const IndexT stride = static_cast<IndexT>(gridDim.x) * blockDim.x;
  for (IndexT i = static_cast<IndexT>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    int64_t off[1 + sizeof...(In)];
    ix.offsets(i, off);
    apply_strided(f, out, off, std::index_sequence_for<In...>{}, in...);
  }
}

// ---- host launchers ----------------------------------------------------------------------

namespace detail {

template <typename T>
bool aligned_to(const T* p, size_t bytes) {
  return reinterpret_cast<uintptr_t>(p) % bytes == 0;
}

template <typename IndexT, int N, class F, class O, class... In>
void launch_strided_leaf(const F& f, const Shape& sizes, const std::array<Shape, N>& st,
                         int64_t n, O* out, const In*... in) {
  Indexer<N, IndexT> ix{};
  ix.ndim = static_cast<int>(sizes.size());
  for (int d = 0; d < ix.ndim; ++d) {
    const int src = ix.ndim - 1 - d;  // innermost first
    ix.sizes[d] = static_cast<IndexT>(sizes[src]);
    for (int k = 0; k < N; ++k) ix.strides[d][k] = st[k][src];
  }
  launch(map_strided_kernel<F, IndexT, O, In...>, grid_for(n, kThreads), kThreads)(
      f, ix, static_cast<IndexT>(n), out, in...);
}

template <int N, class F, class O, size_t... K, class... In>
void launch_strided(std::index_sequence<K...> seq, const F& f, const Shape& sizes,
                    const std::array<Shape, N>& st, O* out, const In*... in) {
  if (static_cast<int>(sizes.size()) > kMaxDims) {
    // Rare (> 8 non-mergeable dims): one launch per index of the outermost dim.
    Shape sub(sizes.begin() + 1, sizes.end());
    std::array<Shape, N> sub_st;
    for (int k = 0; k < N; ++k) sub_st[k] = Shape(st[k].begin() + 1, st[k].end());
    for (int64_t i = 0; i < sizes[0]; ++i)
      launch_strided<N>(seq, f, sub, sub_st, out + i * st[0][0], (in + i * st[K + 1][0])...);
    return;
  }
  const int64_t n = numel_of(sizes);
  // 32-bit indices while i + grid stride cannot wrap (n < 2^31, grid * block < 2^31).
  if (n <= static_cast<int64_t>(std::numeric_limits<int32_t>::max()))
    launch_strided_leaf<uint32_t, N>(f, sizes, st, n, out, in...);
  else
    launch_strided_leaf<uint64_t, N>(f, sizes, st, n, out, in...);
}

}  // namespace detail

// out[i] = f(in[i]...) over `shape` (the output's shape; inputs already broadcast to it).
template <class F, class O, class... In>
void map(const F& f, const Shape& shape, Arg<O> out, Arg<const In>... in) {
  constexpr int N = 1 + sizeof...(In);
  const int64_t n = numel_of(shape);
  if (n == 0) return;
  const Geometry<N> g = coalesce<N>(shape, {*out.strides, *in.strides...});
  bool contiguous = g.sizes.size() == 1;
  for (int k = 0; k < N && contiguous; ++k) contiguous = g.strides[k][0] == 1;
  if (contiguous) {
    constexpr size_t kMaxSize = std::max({sizeof(O), sizeof(In)...});
    constexpr int V = static_cast<int>(16 / kMaxSize);
    const bool vec = n >= V && detail::aligned_to(out.ptr, sizeof(O) * V) &&
                     (detail::aligned_to(in.ptr, sizeof(In) * V) && ...);
    if (vec) {
      launch(map_contig_kernel<V, F, O, In...>, grid_for(n / V, kThreads), kThreads)(
          f, out.ptr, n, in.ptr...);
    } else {
      launch(map_contig_kernel<1, F, O, In...>, grid_for(n, kThreads), kThreads)(
          f, out.ptr, n, in.ptr...);
    }
    return;
  }
  detail::launch_strided<N>(std::index_sequence_for<In...>{}, f, g.sizes, g.strides, out.ptr,
                            static_cast<const In*>(in.ptr)...);
}

// Two-output map over n contiguous elements of one type T: f(in[i]..., out0[i], out1[i]).
// 16-byte accesses when every pointer is aligned, like map's contiguous path.
template <class F, class T, class... In>
void map2_contiguous(const F& f, int64_t n, T* out0, T* out1, const In*... in) {
  static_assert((std::is_same_v<T, In> && ...), "map2_contiguous: one element type");
  if (n == 0) return;
  constexpr int V = static_cast<int>(16 / sizeof(T));
  const bool vec = n >= V && detail::aligned_to(out0, 16) && detail::aligned_to(out1, 16) &&
                   (detail::aligned_to(in, 16) && ...);
  if (vec) {
    launch(map2_contig_kernel<V, F, T, In...>, grid_for(n / V, kThreads), kThreads)(
        f, out0, out1, n, in...);
  } else {
    launch(map2_contig_kernel<1, F, T, In...>, grid_for(n, kThreads), kThreads)(
        f, out0, out1, n, in...);
  }
}

}  // namespace fragile::cuda
