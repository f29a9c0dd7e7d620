// Tensor: a cheap handle (shared_ptr) to a strided view of a Storage, plus autograd state.
//
// Vocabulary: shape[i] is an extent, strides[i] is in elements, offset is in elements from the
// storage start. A tensor with a grad_fn was produced by a recorded op; a leaf has none and
// may have requires_grad set by the user.
#pragma once
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "core/device.h"
#include "core/dtype.h"
#include "core/shape.h"
#include "core/storage.h"

namespace fragile {

struct Node;

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;
  Shape shape;
  Shape strides;
  DType dtype = DType::Float32;
  bool requires_grad = false;
  std::shared_ptr<Node> grad_fn;  // null for leaves and for tensors made without grad
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- factories -------------------------------------------------------------------------
  static Tensor empty(const Shape& shape, DType dtype = DType::Float32,
                      Device device = Device::CPU);
  static Tensor zeros(const Shape& shape, DType dtype = DType::Float32,
                      Device device = Device::CPU);
  static Tensor ones(const Shape& shape, DType dtype = DType::Float32,
                     Device device = Device::CPU);
  static Tensor full(const Shape& shape, double value, DType dtype = DType::Float32,
                     Device device = Device::CPU);
  static Tensor scalar(double value, DType dtype = DType::Float32);
  // Values are given as doubles and converted to `dtype`; size must equal numel(shape).
  static Tensor from_vector(const std::vector<double>& values, const Shape& shape,
                            DType dtype = DType::Float32);
  static Tensor from_int64(const std::vector<int64_t>& values, const Shape& shape);
  static Tensor randn(const Shape& shape, std::mt19937_64& rng, DType dtype = DType::Float32);
  static Tensor uniform(const Shape& shape, double lo, double hi, std::mt19937_64& rng,
                        DType dtype = DType::Float32);

  // ---- metadata --------------------------------------------------------------------------
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  const Shape& strides() const { return impl().strides; }
  int64_t offset() const { return impl().offset; }
  int64_t dim() const { return static_cast<int64_t>(impl().shape.size()); }
  int64_t size(int64_t d) const;
  int64_t numel() const { return numel_of(impl().shape); }
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().storage->device(); }
  bool is_contiguous() const;
  const std::shared_ptr<Storage>& storage() const { return impl().storage; }

  // Raw element pointer at this view's offset (CPU or device memory). No autograd.
  void* raw_data() const;
  template <typename T>
  T* data() const {
    FRAGILE_CHECK(dtype_of<T>::value == dtype(), "data<", dtype_name(dtype_of<T>::value),
                  ">() on a ", dtype_name(dtype()), " tensor");
    return static_cast<T*>(raw_data());
  }

  // ---- values (copies to host; for tests, tools and scalars) ----------------------------
  std::vector<double> to_vector() const;
  std::vector<int64_t> to_int64_vector() const;
  double item() const;

  // ---- autograd --------------------------------------------------------------------------
  bool requires_grad() const { return impl().requires_grad; }
  // Only for leaves: marks the tensor as a differentiation variable. Returns *this.
  Tensor& set_requires_grad(bool flag);
  const std::shared_ptr<Node>& grad_fn() const { return impl().grad_fn; }
  bool is_leaf() const { return impl().grad_fn == nullptr; }
  // Same data, no history: gradients stop here.
  Tensor detach() const;

  // ---- conversions (differentiable through ops.h: see to_dtype) ------------------------
  Tensor to(DType dtype) const;
  Tensor to(Device device) const;
  // A new tensor with its own contiguous storage holding the same values. No autograd.
  Tensor clone_data() const;

  TensorImpl& impl() const {
    FRAGILE_CHECK(impl_ != nullptr, "use of an undefined tensor");
    return *impl_;
  }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool same(const Tensor& other) const { return impl_ == other.impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

// A view of `base`'s storage with a new geometry. No autograd (ops.h records it).
Tensor make_view(const Tensor& base, const Shape& shape, const Shape& strides, int64_t offset);

// While one is alive on a thread, every storage whose raw_data() is taken on that thread
// (every buffer handed to a kernel) is noted, weakly, in `seen`. CUDA Graph capture uses it
// to keep alive, for the graph's lifetime, every buffer the recorded kernels read or write.
// Not nestable.
class StorageObserver {
 public:
  explicit StorageObserver(std::vector<std::weak_ptr<Storage>>* seen);
  ~StorageObserver();
  StorageObserver(const StorageObserver&) = delete;
  StorageObserver& operator=(const StorageObserver&) = delete;
};

}  // namespace fragile
