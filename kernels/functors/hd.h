// FRAGILE_HD marks element math shared by the CPU backend and CUDA kernels: __host__ __device__
// under nvcc, plain inline elsewhere. Functor headers include nothing but standard headers
// (<cmath>; <bit> and <cstdint> for host-only code), so they compile in both worlds and are
// tested on the host (tests/kernels/test_functors.cpp).
#pragma once
#include <cmath>
#if !defined(__CUDA_ARCH__)
#include <bit>
#include <cstdint>
#endif

#if defined(__CUDACC__)
#define FRAGILE_HD __host__ __device__ __forceinline__
#else
#define FRAGILE_HD inline
#endif

namespace fragile::fn {

#if !defined(__CUDA_ARCH__)
// e^y for float y in [-87, 88], branch-free and call-free so that loops over it vectorise (the
// host compilers cannot vectorise a call to expf without -ffast-math). Cephes' expf: y = n ln2
// + r with |r| <= ln2 / 2 (ln2 split in two so n ln2 is exact), e^r by a degree-7 polynomial,
// 2^n written into the exponent bits. Relative error at most 8.2e-8 (0.7 ulp) on a dense sweep
// of the range (tests/kernels/test_functors.cpp); the range keeps 2^n normal. Round-to-nearest
// by adding 1.5 * 2^23, which needs no SSE4.1. y must lie in [-87, 88] (exp_nonpositive clamps).
inline float exp_range_f32(float y) {
  const float n = (y * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const float r = (y - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float e_r = p * r * r + r + 1.0f;
  return e_r * std::bit_cast<float>((static_cast<int32_t>(n) + 127) << 23);
}

// log(1 + e) for float e in [0, 1], branch-free and call-free like exp_range_f32. u = 1 + e is
// split as m 2^k with m in [sqrt(1/2), sqrt(2)) (k is 0 or 1 here), log m by Cephes' logf
// polynomial in m - 1; then Goldberg's correction log(u) e / (u - 1) restores the digits of e
// that rounding 1 + e dropped, so tiny e keep full relative precision (log1p(e) ~ e).
inline float log1p_unit_f32(float e) {
  const float u = 1.0f + e;
  const bool high = u > 1.41421356f;
  const float k = high ? 1.0f : 0.0f;
  const float x = (high ? 0.5f * u : u) - 1.0f;
  const float z = x * x;
  float p = 7.0376836292e-2f;
  p = p * x - 1.1514610310e-1f;
  p = p * x + 1.1676998740e-1f;
  p = p * x - 1.2420140846e-1f;
  p = p * x + 1.4249322787e-1f;
  p = p * x - 1.6668057665e-1f;
  p = p * x + 2.0000714765e-1f;
  p = p * x - 2.4999993993e-1f;
  p = p * x + 3.3333331174e-1f;
  const float log_u = x + (x * z * p - 2.12194440e-4f * k - 0.5f * z) + 0.693359375f * k;
  const float d = u - 1.0f;
  return d == 0.0f ? e : log_u * (e / d);
}
#endif

// log(1 + e) for e in [0, 1] (softplus' tail term): vectorisable on the host for float, the
// library log1p elsewhere.
template <class T>
FRAGILE_HD T log1p_unit(T e) {
#if !defined(__CUDA_ARCH__)
  if constexpr (sizeof(T) == sizeof(float)) return log1p_unit_f32(e);
#endif
  return std::log1p(e);
}

// e^y for y <= 0, returning 0 once the result would fall below the normal range (y < -87 in
// float, -708 in double) instead of calling exp there. glibc's exp takes a slow error-handling
// path (setting errno) for every underflowing argument, and the saturated tails of sigmoid and
// softplus produce such arguments by the million: that path was over a quarter of a SqueezeNet
// HVP's time. The flushed values are below 1e-37 (float) and 1e-307 (double).
// Host float uses exp_range_f32 (vectorisable; sigmoid and softplus' backward run ~10x faster);
// the GPU and double keep the library exp.
template <class T>
FRAGILE_HD T exp_nonpositive(T y) {
  const T floor = sizeof(T) == sizeof(float) ? T(-87) : T(-708);
#if !defined(__CUDA_ARCH__)
  if constexpr (sizeof(T) == sizeof(float)) {
    // The polynomial runs on a copy clamped to [-87, 88], so NaN and +-inf never reach the int
    // conversion; the selects restore the flush, overflow and NaN. (Positive y is outside
    // this function's use, -|x| or x - max, but stays right up to 88; above, +inf.)
    const float ceiling = 88.0f;
    const float clamped = y > floor ? (y < ceiling ? float(y) : ceiling) : float(floor);
    const float e = exp_range_f32(clamped);
    return y != y ? y : (y < floor ? T(0) : (y > ceiling ? T(HUGE_VALF) : T(e)));
  }
#endif
  return y < floor ? T(0) : std::exp(y);
}

}  // namespace fragile::fn
