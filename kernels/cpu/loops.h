// Strided iteration for element-wise kernels.
//
// Operands are same-shaped views with arbitrary strides (stride 0 = broadcast). Dimensions are
// first coalesced (extent-1 dims dropped, adjacent dims merged when every operand is contiguous
// across them), so a contiguous tensor becomes a single run and the inner loop is a plain
// pointer walk the compiler vectorises. Runs are cut into chunks that OpenMP spreads over cores.
#pragma once
#include <omp.h>

#include <algorithm>
#include <array>
#include <cstdint>

#include "core/shape.h"

namespace fragile::cpu {

// Work below this many elements stays on one thread (thread start-up costs ~ a few µs).
inline constexpr int64_t kParallelGrain = 32768;
inline constexpr int64_t kChunk = 16384;

template <size_t N>
struct Coalesced {
  Shape shape;
  std::array<Shape, N> strides;
};

template <size_t N>
Coalesced<N> coalesce(const Shape& shape, const std::array<Shape, N>& strides) {
  Coalesced<N> c;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool merge = !c.shape.empty();
    for (size_t k = 0; k < N && merge; ++k)
      merge = c.strides[k].back() == strides[k][d] * shape[d];
    if (merge) {
      c.shape.back() *= shape[d];
      for (size_t k = 0; k < N; ++k) c.strides[k].back() = strides[k][d];
    } else {
      c.shape.push_back(shape[d]);
      for (size_t k = 0; k < N; ++k) c.strides[k].push_back(strides[k][d]);
    }
  }
  if (c.shape.empty()) {  // a single element
    c.shape.push_back(1);
    for (size_t k = 0; k < N; ++k) c.strides[k].push_back(1);
  }
  return c;
}

// body(offsets, n, inner_strides): process n elements starting at element offsets[k] of each
// operand, stepping inner_strides[k].
template <size_t N, class Body>
void for_each_run(const Shape& shape, const std::array<Shape, N>& strides, Body&& body) {
  int64_t total = numel_of(shape);
  if (total == 0) return;
  Coalesced<N> c = coalesce<N>(shape, strides);
  const int64_t rank = static_cast<int64_t>(c.shape.size());
  const int64_t inner = c.shape.back();
  const int64_t rows = total / inner;
  const int64_t chunks_per_row = (inner + kChunk - 1) / kChunk;
  const int64_t tasks = rows * chunks_per_row;
  std::array<int64_t, N> inner_strides;
  for (size_t k = 0; k < N; ++k) inner_strides[k] = c.strides[k].back();

#pragma omp parallel for schedule(static) if (total >= kParallelGrain && tasks > 1)
  for (int64_t t = 0; t < tasks; ++t) {
    int64_t row = t / chunks_per_row;
    int64_t start = (t % chunks_per_row) * kChunk;
    std::array<int64_t, N> off{};
    for (int64_t d = rank - 2; d >= 0; --d) {  // decompose the row index over outer dims
      int64_t i = row % c.shape[d];
      row /= c.shape[d];
      for (size_t k = 0; k < N; ++k) off[k] += i * c.strides[k][d];
    }
    for (size_t k = 0; k < N; ++k) off[k] += start * inner_strides[k];
    body(off, std::min(kChunk, inner - start), inner_strides);
  }
}

}  // namespace fragile::cpu
