// Reductions. The primitive computes the keepdim result; without keepdim the output is a view
// of it with the reduced dims dropped.
#include <algorithm>

#include "core/op_attrs.h"
#include "core/ops/op_util.h"

namespace fragile {
using namespace detail;

namespace {

std::vector<int64_t> normalize_dims(std::vector<int64_t> dims, int64_t rank, const char* what) {
  for (auto& d : dims) d = wrap_dim(d, rank, what);
  std::sort(dims.begin(), dims.end());
  FRAGILE_CHECK(std::adjacent_find(dims.begin(), dims.end()) == dims.end(), what,
                ": repeated dimension");
  return dims;
}

Shape reduced_shape(const Shape& shape, const std::vector<int64_t>& dims, bool keepdim) {
  Shape out;
  for (int64_t d = 0; d < static_cast<int64_t>(shape.size()); ++d) {
    bool r = std::binary_search(dims.begin(), dims.end(), d);
    if (!r) out.push_back(shape[d]);
    else if (keepdim) out.push_back(1);
  }
  return out;
}

Tensor reduce(const char* name, ReduceOp op, const Tensor& x, std::vector<int64_t> dims,
              bool keepdim) {
  check_float(x, name);
  dims = normalize_dims(std::move(dims), x.dim(), name);
  if (op == ReduceOp::Max) {
    for (int64_t d : dims)
      FRAGILE_CHECK(x.shape()[d] > 0, name, ": reduction over an empty dimension ", d);
  }
  Tensor out = Tensor::empty(reduced_shape(x.shape(), dims, true), x.dtype(), x.device());
  backend_for(x.device()).reduce(op, x, dims, out);
  if (!keepdim) {
    Shape s = reduced_shape(x.shape(), dims, false);
    out = make_view(out, s, contiguous_strides(s), 0);
  }
  return record(op_def(name), {x}, out, ReduceAttrs{dims, keepdim});
}

std::vector<int64_t> all_dims(const Tensor& x) {
  std::vector<int64_t> d(x.dim());
  for (int64_t i = 0; i < x.dim(); ++i) d[i] = i;
  return d;
}

}  // namespace

Tensor sum(const Tensor& x, std::vector<int64_t> dims, bool keepdim) {
  return reduce("sum", ReduceOp::Sum, x, std::move(dims), keepdim);
}
Tensor sum(const Tensor& x) { return sum(x, all_dims(x), false); }

Tensor amax(const Tensor& x, std::vector<int64_t> dims, bool keepdim) {
  return reduce("amax", ReduceOp::Max, x, std::move(dims), keepdim);
}
Tensor amax(const Tensor& x) { return amax(x, all_dims(x), false); }

Tensor mean(const Tensor& x, std::vector<int64_t> dims, bool keepdim) {
  dims = normalize_dims(std::move(dims), x.dim(), "mean");
  int64_t count = 1;
  for (int64_t d : dims) count *= x.shape()[d];
  FRAGILE_CHECK(count > 0, "mean over an empty dimension");
  return div(sum(x, dims, keepdim), static_cast<double>(count));
}
Tensor mean(const Tensor& x) { return mean(x, all_dims(x), false); }

Tensor sum_to(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  const int64_t lead = x.dim() - static_cast<int64_t>(shape.size());
  FRAGILE_CHECK(lead >= 0, "sum_to: ", shape_str(x.shape()), " has fewer dims than ",
                shape_str(shape));
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (d < lead) dims.push_back(d);
    else if (shape[d - lead] == 1 && x.shape()[d] != 1) dims.push_back(d);
    else FRAGILE_CHECK(shape[d - lead] == x.shape()[d], "sum_to: ", shape_str(x.shape()),
                       " does not broadcast from ", shape_str(shape));
  }
  Tensor s = dims.empty() ? x : sum(x, dims, true);
  return reshape(s, shape);
}

}  // namespace fragile
