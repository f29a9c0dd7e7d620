// How float32 matrix products and convolutions sum their terms.
//
// A float32 GEMM or convolution adds its K products in float32. Where the terms are large and
// cancel, that costs digits: in the real SqueezeNet the first convolution sums 147 products of
// pixels in the hundreds, and the softplus(10) input HVP (whose own terms cancel again) ends
// 1.25e-3 of its maximum away from float64, against 2.0e-4 when the float32 products are
// summed in float64 (tests/nn/test_models.cpp). Float64 sums are that setting: the inputs of
// matmul, conv2d, conv2d_backward_input and conv2d_backward_weight are widened to float64
// (exactly), the backend computes in float64, and the result is rounded to float32 once.
// Everything else (storage, element-wise math, reductions) stays float32.
//
// The price is the float64 product: on the 2-core development machine SqueezeNet's input HVP
// takes 1.3x (batch 8) to 1.5x (batch 1) as long (docs/performance.md). The default is float32
// sums, the fast path; choose float64 sums when float32 derivatives must be accurate (HVPs,
// Hessian spectra) and float64 throughout is too slow or too large. On the GPU as well: the
// widened tensors go through cuBLAS/cuDNN in float64 (cost not measured yet; a GPU's float64
// throughput is a fraction of its float32 one). The widening is redone at every call, weights
// included, and a float64 product needs twice the temporary memory (im2col on the CPU).
//
// The setting is per thread (like NoGradGuard): it is read where an op is dispatched, on the
// calling thread; the backend's own threads only see the widened tensors.
#pragma once

namespace fragile {

enum class Float32Sums {
  Float32,  // the backend's native float32 accumulation (default)
  Float64,  // products computed in float64, rounded to float32 once
};

Float32Sums float32_sums();              // this thread's setting
void set_float32_sums(Float32Sums sums);  // for this thread, until changed
const char* float32_sums_name(Float32Sums sums);  // "float32" / "float64"

// Sets the setting for this thread while alive, then restores the previous one.
class Float32SumsScope {
 public:
  explicit Float32SumsScope(Float32Sums sums);
  ~Float32SumsScope();
  Float32SumsScope(const Float32SumsScope&) = delete;
  Float32SumsScope& operator=(const Float32SumsScope&) = delete;

 private:
  Float32Sums prev_;
};

}  // namespace fragile
