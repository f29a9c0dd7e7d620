#include "core/tensor.h"

#include <cstring>
#include <limits>

#include "core/autograd.h"
#include "core/backend.h"

namespace fragile {

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t s : shape) FRAGILE_CHECK(s >= 0, "negative extent in shape ", shape_str(shape));
  const int64_t n = numel_of(shape);
  FRAGILE_CHECK(n <= std::numeric_limits<int64_t>::max() / int64_t(dtype_size(dtype)), "shape ",
                shape_str(shape), " is too large: ", n, " elements of ", dtype_size(dtype),
                " bytes");
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(size_t(n) * dtype_size(dtype), device);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  backend_for(device).fill(t, value);
  return t;
}
Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  return full(shape, 0.0, dtype, device);
}
Tensor Tensor::ones(const Shape& shape, DType dtype, Device device) {
  return full(shape, 1.0, dtype, device);
}
Tensor Tensor::scalar(double value, DType dtype) { return full({}, value, dtype); }

Tensor Tensor::from_vector(const std::vector<double>& values, const Shape& shape, DType dtype) {
  FRAGILE_CHECK(static_cast<int64_t>(values.size()) == numel_of(shape), "from_vector: ",
                values.size(), " values for shape ", shape_str(shape));
  Tensor t = empty(shape, dtype);
  if (dtype == DType::Int64) {
    auto* p = t.data<int64_t>();
    for (size_t i = 0; i < values.size(); ++i) p[i] = static_cast<int64_t>(values[i]);
    return t;
  }
  FRAGILE_DISPATCH_FLOAT(dtype, "from_vector", [&] {
    auto* p = t.data<scalar_t>();
    for (size_t i = 0; i < values.size(); ++i) p[i] = static_cast<scalar_t>(values[i]);
  });
  return t;
}

Tensor Tensor::from_int64(const std::vector<int64_t>& values, const Shape& shape) {
  FRAGILE_CHECK(static_cast<int64_t>(values.size()) == numel_of(shape), "from_int64: ",
                values.size(), " values for shape ", shape_str(shape));
  Tensor t = empty(shape, DType::Int64);
  if (!values.empty()) std::memcpy(t.raw_data(), values.data(), values.size() * sizeof(int64_t));
  return t;
}

Tensor Tensor::randn(const Shape& shape, std::mt19937_64& rng, DType dtype) {
  std::normal_distribution<double> dist(0.0, 1.0);
  std::vector<double> v(numel_of(shape));
  for (auto& x : v) x = dist(rng);
  return from_vector(v, shape, dtype);
}

Tensor Tensor::uniform(const Shape& shape, double lo, double hi, std::mt19937_64& rng,
                       DType dtype) {
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<double> v(numel_of(shape));
  for (auto& x : v) x = dist(rng);
  return from_vector(v, shape, dtype);
}

int64_t Tensor::size(int64_t d) const { return shape()[wrap_dim(d, dim(), "size")]; }

bool Tensor::is_contiguous() const {
  // Without elements there is nothing to lay out (and the extents' product may be past 2^63).
  if (numel() == 0) return true;
  int64_t expected = 1;
  for (int64_t i = dim() - 1; i >= 0; --i) {
    if (shape()[i] == 1) continue;  // the stride of an extent-1 dim never matters
    if (strides()[i] != expected) return false;
    expected *= shape()[i];
  }
  return true;
}

namespace {
thread_local std::vector<std::weak_ptr<Storage>>* t_storage_observer = nullptr;
}  // namespace

StorageObserver::StorageObserver(std::vector<std::weak_ptr<Storage>>* seen) {
  FRAGILE_CHECK(t_storage_observer == nullptr, "storage observers do not nest");
  t_storage_observer = seen;
}
StorageObserver::~StorageObserver() { t_storage_observer = nullptr; }

void* Tensor::raw_data() const {
  if (t_storage_observer != nullptr) t_storage_observer->push_back(impl().storage);
  char* base = static_cast<char*>(impl().storage->data());
  // An empty storage has no data (null); a view of it (an empty window, say) keeps an offset
  // that must not be added to null.
  if (base == nullptr) return nullptr;
  return base + offset() * dtype_size(dtype());
}

Tensor Tensor::clone_data() const {
  Tensor out = empty(shape(), dtype(), device());
  backend_for(device()).copy(*this, out);
  return out;
}

std::vector<double> Tensor::to_vector() const {
  Tensor host = device() == Device::CPU ? *this : to(Device::CPU);
  Tensor c = host.is_contiguous() ? host : host.clone_data();
  std::vector<double> v(c.numel());
  if (c.dtype() == DType::Int64) {
    const auto* p = c.data<int64_t>();
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(p[i]);
    return v;
  }
  FRAGILE_DISPATCH_FLOAT(c.dtype(), "to_vector", [&] {
    const auto* p = c.data<scalar_t>();
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(p[i]);
  });
  return v;
}

std::vector<int64_t> Tensor::to_int64_vector() const {
  FRAGILE_CHECK(dtype() == DType::Int64, "to_int64_vector on a ", dtype_name(dtype()), " tensor");
  Tensor host = device() == Device::CPU ? *this : to(Device::CPU);
  Tensor c = host.is_contiguous() ? host : host.clone_data();
  const auto* p = c.data<int64_t>();
  return std::vector<int64_t>(p, p + c.numel());
}

double Tensor::item() const {
  FRAGILE_CHECK(numel() == 1, "item() on a tensor of shape ", shape_str(shape()));
  return to_vector()[0];
}

Tensor& Tensor::set_requires_grad(bool flag) {
  FRAGILE_CHECK(is_leaf(), "set_requires_grad on a non-leaf tensor (use detach() first)");
  FRAGILE_CHECK(!flag || is_floating(dtype()), "only float tensors can require grad, got ",
                dtype_name(dtype()));
  impl().requires_grad = flag;
  return *this;
}

Tensor Tensor::detach() const {
  auto impl2 = std::make_shared<TensorImpl>(impl());
  impl2->grad_fn = nullptr;
  impl2->requires_grad = false;
  return Tensor(std::move(impl2));
}

Tensor Tensor::to(DType dt) const {
  if (dt == dtype()) return *this;
  Tensor out = empty(shape(), dt, device());
  backend_for(device()).copy(*this, out);
  return out;
}

Tensor Tensor::to(Device dev) const {
  if (dev == device()) return *this;
  Tensor out = empty(shape(), dtype(), dev);
  // The CUDA backend owns host<->device transfers in both directions.
  cuda_backend().copy(*this, out);
  return out;
}

namespace {
// Whether every element of the geometry lies inside `nbytes` of storage. Views are made by
// the library's own ops, never from user input: this turns a wrong view computation into an
// error instead of a read or write past the buffer (a kernel would not check).
bool view_within(const Shape& shape, const Shape& strides, int64_t offset, DType dtype,
                 std::size_t nbytes) {
  if (shape.size() != strides.size() || offset < 0) return false;
  int64_t lo = offset, hi = offset;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] < 0) return false;
    if (shape[d] == 0) return true;  // no elements: nothing to reach
    int64_t span = 0;
    if (__builtin_mul_overflow(shape[d] - 1, strides[d], &span)) return false;
    if (__builtin_add_overflow(span < 0 ? lo : hi, span, span < 0 ? &lo : &hi)) return false;
  }
  const auto items = static_cast<uint64_t>(nbytes / dtype_size(dtype));
  return lo >= 0 && static_cast<uint64_t>(hi) < items;
}
}  // namespace

Tensor make_view(const Tensor& base, const Shape& shape, const Shape& strides, int64_t offset) {
  const std::size_t nbytes = base.storage() ? base.storage()->nbytes() : 0;
  FRAGILE_CHECK(view_within(shape, strides, offset, base.dtype(), nbytes),
                "internal error: a view ", shape_str(shape), " with strides ", shape_str(strides),
                " at offset ", offset, " reaches outside its tensor's storage");
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.storage();
  impl->shape = shape;
  impl->strides = strides;
  impl->offset = offset;
  impl->dtype = base.dtype();
  return Tensor(std::move(impl));
}

}  // namespace fragile
