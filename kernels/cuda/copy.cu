// Copies: host->device, device->host, device->device, with dtype conversion and strided
// views on either side.
//
// Shapes: src and dst have the same shape; either may be any strided view; dtypes may differ
// (float32 / float64 / int64, converted with static_cast like the CPU backend).
//
// Bandwidth: PCIe/NVLink-C2C transfers want one large contiguous cudaMemcpy, never a
// strided walk over the bus. So a non-contiguous or converting transfer is staged: the host
// side is made contiguous by the CPU backend, the device side by one strided conversion
// kernel, and only a dense block crosses the bus. Device->device copies are one strided
// map kernel (or cudaMemcpyAsync when both sides are dense and the dtypes match).
//
// Host memory is pageable (the CPU allocator is aligned_alloc), so transfers are staged by
// the driver anyway; we synchronise the stream after every transfer so the host buffer may
// be freed or read as soon as copy() returns.
#include "core/error.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/elementwise.cuh"
#include "kernels/cuda/tensor_util.h"

namespace fragile::cuda {
namespace {

template <typename D>
struct CastTo {
  template <class S>
  __device__ __forceinline__ D operator()(S s) const {
    return static_cast<D>(s);
  }
};

template <typename S, typename D>
void copy_typed(const Tensor& src, Tensor& dst) {
  map(CastTo<D>{}, dst.shape(), arg<D>(dst), arg<const S>(src));
}

template <typename S>
void copy_from(const Tensor& src, Tensor& dst) {
  switch (dst.dtype()) {
    case DType::Float32: return copy_typed<S, float>(src, dst);
    case DType::Float64: return copy_typed<S, double>(src, dst);
    case DType::Int64: return copy_typed<S, int64_t>(src, dst);
  }
}

size_t nbytes(const Tensor& t) { return static_cast<size_t>(t.numel()) * dtype_size(t.dtype()); }

// Host tensor -> device tensor.
void upload(const Tensor& src, Tensor& dst) {
  // 1. a dense host block in src's dtype
  Tensor host = src;
  if (!src.is_contiguous()) {
    host = Tensor::empty(src.shape(), src.dtype(), Device::CPU);
    cpu_backend().copy(src, host);
  }
  // 2. over the bus, straight into dst when it can take the bytes as they are
  const bool direct = dst.is_contiguous() && dst.dtype() == src.dtype();
  Tensor landing = direct ? dst : empty_device(src.shape(), src.dtype());
  FRAGILE_CUDA_CHECK(cudaMemcpyAsync(landing.raw_data(), host.raw_data(), nbytes(host),
                                     cudaMemcpyHostToDevice, stream()));
  // 3. convert / scatter into dst's layout on the device
  if (!direct) copy_device(landing, dst);
  // `host` may be a temporary freed on return: wait until the driver has consumed it.
  synchronize();
}

// Device tensor -> host tensor.
void download(const Tensor& src, Tensor& dst) {
  // 1. a dense device block already in dst's dtype
  Tensor dense = src;
  if (!src.is_contiguous() || src.dtype() != dst.dtype()) {
    dense = empty_device(src.shape(), dst.dtype());
    copy_device(src, dense);
  }
  // 2. over the bus, straight into dst when it is dense
  Tensor host = dst.is_contiguous() ? dst : Tensor::empty(dst.shape(), dst.dtype(), Device::CPU);
  FRAGILE_CUDA_CHECK(cudaMemcpyAsync(host.raw_data(), dense.raw_data(), nbytes(dense),
                                     cudaMemcpyDeviceToHost, stream()));
  synchronize();
  // 3. scatter into a strided host view
  if (!dst.is_contiguous()) cpu_backend().copy(host, dst);
}

}  // namespace

Tensor empty_device(const Shape& shape, DType dtype) {
  return Tensor::empty(shape, dtype, Device::CUDA);
}

void check_on_device(const Tensor& t, const char* what, const char* name) {
  FRAGILE_CHECK(t.defined(), what, ": ", name, " is undefined");
  FRAGILE_CHECK(t.device() == Device::CUDA, what, ": ", name, " is on ",
                device_name(t.device()), ", expected cuda");
}

Tensor contiguous(const Tensor& t) {
  if (t.is_contiguous()) return t;
  Tensor out = empty_device(t.shape(), t.dtype());
  copy_device(t, out);
  return out;
}

void copy_device(const Tensor& src, Tensor& dst) {
  FRAGILE_CHECK(src.shape() == dst.shape(), "cuda copy: shape ", shape_str(src.shape()),
                " into ", shape_str(dst.shape()));
  if (src.numel() == 0) return;
  if (src.dtype() == dst.dtype() && src.is_contiguous() && dst.is_contiguous()) {
    if (src.raw_data() != dst.raw_data())
      FRAGILE_CUDA_CHECK(cudaMemcpyAsync(dst.raw_data(), src.raw_data(), nbytes(src),
                                         cudaMemcpyDeviceToDevice, stream()));
    return;
  }
  switch (src.dtype()) {
    case DType::Float32: return copy_from<float>(src, dst);
    case DType::Float64: return copy_from<double>(src, dst);
    case DType::Int64: return copy_from<int64_t>(src, dst);
  }
}

void CudaBackend::copy(const Tensor& src, Tensor& dst) {
  FRAGILE_CHECK(src.defined() && dst.defined(), "cuda copy: undefined tensor");
  FRAGILE_CHECK(src.shape() == dst.shape(), "cuda copy: shape ", shape_str(src.shape()),
                " into ", shape_str(dst.shape()));
  if (src.numel() == 0) return;
  const Device s = src.device(), d = dst.device();
  if (s == Device::CUDA && d == Device::CUDA) return copy_device(src, dst);
  if (s == Device::CPU && d == Device::CUDA) return upload(src, dst);
  if (s == Device::CUDA && d == Device::CPU) return download(src, dst);
  cpu_backend().copy(src, dst);  // host -> host: not our job, but harmless to forward
}

}  // namespace fragile::cuda
