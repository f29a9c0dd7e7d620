// ONNX ops on the engine. Shape vocabulary: N batch, C channels, H, W spatial; ONNX pads are
// [begin_0, begin_1, ..., end_0, end_1, ...], i.e. [top, left, bottom, right] for 2-D.
//
// Float values are in the session dtype. Integer (int64) values are small shape/index tensors
// (Reshape targets, Pad amounts, Shape -> Gather -> Concat chains); they are computed on the host
// and never carry gradients.
#include "nn/onnx_ops.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>

#include "core/error.h"
#include "core/ops.h"

namespace fragile::nn::detail {
namespace {

using Tensors = std::vector<Tensor>;
constexpr double kInf = std::numeric_limits<double>::infinity();

const Tensor& input(const OpContext& c, size_t i) {
  FRAGILE_CHECK(i < c.inputs.size() && c.inputs[i].defined(), "missing input ", i);
  return c.inputs[i];
}
bool has_input(const OpContext& c, size_t i) {
  return i < c.inputs.size() && c.inputs[i].defined();
}
bool is_int(const Tensor& t) { return t.dtype() == DType::Int64; }

std::vector<int64_t> int_values(const Tensor& t) {
  if (is_int(t)) return t.to_int64_vector();
  std::vector<int64_t> out;
  for (double v : t.to_vector()) {
    // llround of NaN or of a value past int64 is unspecified (glibc: INT64_MIN), which would
    // pass on a made-up extent, pad or index. [-2^63, 2^63) is exact in double.
    FRAGILE_CHECK(v >= -0x1p63 && v < 0x1p63, "value ", v, " does not fit in int64");
    out.push_back(static_cast<int64_t>(std::llround(v)));
  }
  return out;
}
double scalar_value(const Tensor& t, const char* what) {
  FRAGILE_CHECK(t.numel() == 1, what, " must have one element, got shape ", shape_str(t.shape()));
  return t.to_vector()[0];
}
Tensor float_input(const OpContext& c, size_t i) {
  const Tensor& t = input(c, i);
  // Every ONNX integer type (int8..uint64) loads as int64: name the kind, not the storage.
  FRAGILE_CHECK(is_floating(t.dtype()), "input ", i, " must be a float tensor, got ",
                t.dtype() == DType::Int64 ? "an integer tensor" : dtype_name(t.dtype()));
  return t;
}
// A float constant (Constant node, Cast) lands in the session dtype.
// A float value in the session's dtype on the session's device (constants are made on the host).
Tensor to_session(const Tensor& t, const OpContext& c) {
  if (!is_floating(t.dtype())) return t;
  const Tensor on_device = t.device() == c.device ? t : t.detach().to(c.device);
  return on_device.dtype() != c.dtype ? to_dtype(on_device, c.dtype) : on_device;
}
Tensor int_tensor(const std::vector<int64_t>& v, const Shape& shape) {
  return Tensor::from_int64(v, shape);
}
void check_rank(const Tensor& t, int64_t rank, const char* what) {
  FRAGILE_CHECK(t.dim() == rank, what, " must have rank ", rank, ", got shape ",
                shape_str(t.shape()));
}

// ---- convolution and pooling geometry --------------------------------------------------------

struct Window2d {
  std::array<int64_t, 2> kernel{1, 1}, stride{1, 1}, dilation{1, 1};
  std::array<int64_t, 2> begin{0, 0}, end{0, 0};  // padding
  bool symmetric() const { return begin == end; }
};

// Window attributes come from the model file. Each entry is bounded here, before any arithmetic
// on it, by 2^31 - 1 (the bound core's conv_out_size/pool_out_size and cuDNN use): with that,
// the SAME padding below and engine_padding_ok stay far from int64 overflow.
constexpr int64_t kMaxWindowAttribute = 0x7fffffff;
void check_window_attribute(const char* name, int64_t v, int64_t lowest) {
  FRAGILE_CHECK(v >= lowest && v <= kMaxWindowAttribute, "attribute '", name, "' has entry ", v,
                ", outside [", lowest, ", 2^31 - 1]");
}

Window2d window(const OpContext& c, const Tensor& x, std::vector<int64_t> kernel) {
  const Node& n = c.node;
  FRAGILE_CHECK(x.dim() == 4, "only 2-D (NCHW) inputs are supported, got shape ",
                shape_str(x.shape()));
  FRAGILE_CHECK(kernel.size() == 2, "kernel_shape must have 2 entries");
  Window2d w;
  auto strides = n.get_ints("strides", {1, 1});
  auto dil = n.get_ints("dilations", {1, 1});
  auto pads = n.get_ints("pads", {0, 0, 0, 0});
  FRAGILE_CHECK(strides.size() == 2 && dil.size() == 2 && pads.size() == 4,
                "strides/dilations need 2 entries and pads 4");
  for (int i = 0; i < 2; ++i) {
    w.kernel[i] = kernel[i];
    w.stride[i] = strides[i];
    w.dilation[i] = dil[i];
    w.begin[i] = pads[i];
    w.end[i] = pads[i + 2];
    check_window_attribute("kernel_shape", w.kernel[i], 1);
    check_window_attribute("strides", w.stride[i], 1);
    check_window_attribute("dilations", w.dilation[i], 1);
    check_window_attribute("pads", w.begin[i], 0);
    check_window_attribute("pads", w.end[i], 0);
  }
  const std::string auto_pad = n.get_string("auto_pad", "NOTSET");
  if (auto_pad == "VALID") {
    w.begin = w.end = {0, 0};
  } else if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
    for (int i = 0; i < 2; ++i) {
      // `in` is any extent up to 2^63 - 1 (a tensor without elements can have huge extents),
      // so neither `in + stride - 1` nor `(out - 1) * stride + span` may be formed: the ceiling
      // is taken without adding, and (out - 1) * stride - in, in [-stride, -1], is formed
      // before the span (under 2^62 with bounded attributes) is added.
      const int64_t in = x.size(2 + i);
      const int64_t out = in / w.stride[i] + (in % w.stride[i] != 0);
      const int64_t span = (w.kernel[i] - 1) * w.dilation[i] + 1;
      const int64_t total = std::max<int64_t>(((out - 1) * w.stride[i] - in) + span, 0);
      const int64_t small = total / 2, big = total - small;
      w.begin[i] = auto_pad == "SAME_UPPER" ? small : big;
      w.end[i] = auto_pad == "SAME_UPPER" ? big : small;
    }
  } else {
    FRAGILE_CHECK(auto_pad == "NOTSET", "unknown auto_pad '", auto_pad, "'");
  }
  return w;
}

// Pads H and W explicitly (for padding the engine's symmetric window cannot express).
Tensor pad_hw(const Tensor& x, const Window2d& w, double value) {
  return pad(x, {0, 0, w.begin[0], w.begin[1]}, {0, 0, w.end[0], w.end[1]}, value);
}

// The engine (like PyTorch) takes symmetric padding of at most half the kernel. `2 * begin`
// cannot overflow: window() bounds pads by 2^31 - 1, and SAME padding is under 2^61.
bool engine_padding_ok(const Window2d& w) {
  return w.symmetric() && 2 * w.begin[0] <= w.kernel[0] && 2 * w.begin[1] <= w.kernel[1];
}

Tensors op_conv(const OpContext& c) {
  const Tensor x = float_input(c, 0), wt = float_input(c, 1);
  check_rank(wt, 4, "Conv weight");
  Tensor b = has_input(c, 2) ? float_input(c, 2) : Tensor();
  auto ks = c.node.get_ints("kernel_shape", {wt.size(2), wt.size(3)});
  Window2d w = window(c, x, ks);
  FRAGILE_CHECK(ks[0] == wt.size(2) && ks[1] == wt.size(3), "kernel_shape ", shape_str(ks),
                " does not match the weight shape ", shape_str(wt.shape()));
  const int64_t groups = c.node.get_int("group", 1);
  FRAGILE_CHECK(groups >= 1 && x.size(1) == wt.size(1) * groups, "input has ", x.size(1),
                " channels; weight ", shape_str(wt.shape()), " with group=", groups, " expects ",
                wt.size(1) * groups);
  Conv2dParams p;
  p.stride = w.stride;
  p.dilation = w.dilation;
  p.groups = groups;
  if (w.symmetric()) {
    p.padding = w.begin;
    return {conv2d(x, wt, b, p)};
  }
  return {conv2d(pad_hw(x, w, 0.0), wt, b, p)};
}

Tensors op_max_pool(const OpContext& c) {
  const Tensor x = float_input(c, 0);
  FRAGILE_CHECK(!(c.node.outputs.size() > 1 && !c.node.outputs[1].empty()),
                "the Indices output of MaxPool is not supported");
  Window2d w = window(c, x, c.node.get("kernel_shape").ints);
  FRAGILE_CHECK(w.dilation[0] == 1 && w.dilation[1] == 1, "dilated MaxPool is not supported");
  Pool2dParams p;
  p.kernel = w.kernel;
  p.stride = w.stride;
  p.ceil_mode = c.node.get_int("ceil_mode", 0) != 0;
  if (engine_padding_ok(w)) {
    p.padding = w.begin;
    return {max_pool2d(x, p)};
  }
  // Padding never wins a max: pad with -inf.
  return {max_pool2d(pad_hw(x, w, -kInf), p)};
}

Tensors op_avg_pool(const OpContext& c) {
  const Tensor x = float_input(c, 0);
  Window2d w = window(c, x, c.node.get("kernel_shape").ints);
  FRAGILE_CHECK(w.dilation[0] == 1 && w.dilation[1] == 1, "dilated AveragePool is not supported");
  Pool2dParams p;
  p.kernel = w.kernel;
  p.stride = w.stride;
  p.ceil_mode = c.node.get_int("ceil_mode", 0) != 0;
  const bool include = c.node.get_int("count_include_pad", 0) != 0;
  if (engine_padding_ok(w)) {
    p.padding = w.begin;
    p.count_include_pad = include;
    return {avg_pool2d(x, p)};
  }
  p.count_include_pad = true;
  Tensor y = avg_pool2d(pad_hw(x, w, 0.0), p);
  if (include) return {y};
  // Excluding padding: divide by the fraction of each window inside the input.
  Tensor ones = Tensor::ones({1, 1, x.size(2), x.size(3)}, x.dtype(), x.device());
  Tensor frac = avg_pool2d(pad_hw(ones, w, 0.0), p);
  return {div(y, frac)};
}

Tensors op_global_avg_pool(const OpContext& c) {
  const Tensor x = float_input(c, 0);
  check_rank(x, 4, "GlobalAveragePool input");
  return {global_avg_pool2d(x)};
}

Tensors op_global_max_pool(const OpContext& c) {
  const Tensor x = float_input(c, 0);
  check_rank(x, 4, "GlobalMaxPool input");
  return {amax(x, {2, 3}, true)};
}

// ---- shape ops -------------------------------------------------------------------------------

// `shape` has no -1 (op_reshape resolves it); numel_of checks its product.
Tensor reshape_any(const Tensor& x, const Shape& shape) {
  if (is_int(x)) {
    FRAGILE_CHECK(numel_of(shape) == x.numel(), "cannot reshape ", shape_str(x.shape()), " to ",
                  shape_str(shape));
    return int_tensor(x.to_int64_vector(), shape);
  }
  return reshape(x, shape);
}

// The product of dims [begin, end) of `shape`, checked: a tensor without elements can have
// extents whose product is past 2^63 (with elements, every such product is at most numel).
int64_t dims_product(const Shape& shape, int64_t begin, int64_t end) {
  int64_t p = 1;
  for (int64_t i = begin; i < end; ++i) {
    FRAGILE_CHECK(!__builtin_mul_overflow(p, shape[i], &p), "dimensions ", begin, " to ", end - 1,
                  " of ", shape_str(shape), " multiply past 2^63");
  }
  return p;
}

Tensors op_reshape(const OpContext& c) {
  const Tensor& x = input(c, 0);
  // Opsets below 7 (Reshape's `shape` attribute, Concat's default axis, Dropout's is_test) are
  // refused at load (kMinOpset), so only the input forms are read here.
  std::vector<int64_t> target = int_values(input(c, 1));
  const bool allow_zero = c.node.get_int("allowzero", 0) != 0;
  int64_t negs = 0;
  for (size_t i = 0; i < target.size(); ++i) {
    if (target[i] == 0 && !allow_zero) {
      FRAGILE_CHECK(static_cast<int64_t>(i) < x.dim(), "shape entry 0 at ", i,
                    " copies a dimension the input ", shape_str(x.shape()), " lacks");
      target[i] = x.size(static_cast<int64_t>(i));
    }
    FRAGILE_CHECK(target[i] >= -1, "bad target shape ", shape_str(target));
    negs += target[i] == -1;
  }
  FRAGILE_CHECK(negs <= 1, "target shape ", shape_str(target), " has more than one -1");
  // The target comes from the model: a product wrapped past 2^63 could pass the test below and
  // infer a made-up extent for the -1.
  int64_t known = 1;
  for (int64_t d : target) {
    FRAGILE_CHECK(d == -1 || !__builtin_mul_overflow(known, d, &known), "target shape ",
                  shape_str(target), ": its extents multiply past 2^63");
  }
  FRAGILE_CHECK(negs ? (known != 0 && x.numel() % known == 0) : known == x.numel(),
                "cannot reshape ", shape_str(x.shape()), " (", x.numel(), " elements) to ",
                shape_str(target));
  if (negs) *std::find(target.begin(), target.end(), -1) = x.numel() / known;
  return {reshape_any(x, target)};
}

Tensors op_flatten(const OpContext& c) {
  const Tensor& x = input(c, 0);
  int64_t axis = c.node.get_int("axis", 1);
  if (axis < 0) axis += x.dim();
  FRAGILE_CHECK(axis >= 0 && axis <= x.dim(), "axis out of range for shape ",
                shape_str(x.shape()));
  // Both sides from the extents: inner as numel / outer made Flatten of [0, 5] [0, 0], not
  // ONNX's [0, 5].
  const int64_t outer = dims_product(x.shape(), 0, axis);
  const int64_t inner = dims_product(x.shape(), axis, x.dim());
  return {reshape_any(x, {outer, inner})};
}

Tensors op_concat(const OpContext& c) {
  FRAGILE_CHECK(!c.inputs.empty(), "no inputs");
  const Tensor& first = input(c, 0);
  const int64_t axis = wrap_dim(c.node.get_int("axis"), first.dim(), "Concat");
  std::vector<Tensor> xs;
  for (size_t i = 0; i < c.inputs.size(); ++i) xs.push_back(input(c, i));
  if (is_int(first)) {
    FRAGILE_CHECK(first.dim() == 1, "int64 Concat is supported for 1-D tensors only");
    std::vector<int64_t> all;
    for (const auto& t : xs) {
      FRAGILE_CHECK(is_int(t) && t.dim() == 1, "mixed int64/float Concat");
      auto v = t.to_int64_vector();
      all.insert(all.end(), v.begin(), v.end());
    }
    return {int_tensor(all, {static_cast<int64_t>(all.size())})};
  }
  return {concat(xs, axis)};
}

Tensors op_transpose(const OpContext& c) {
  const Tensor& x = input(c, 0);
  std::vector<int64_t> perm(x.dim());
  std::iota(perm.rbegin(), perm.rend(), 0);
  perm = c.node.get_ints("perm", perm);
  return {permute(x, perm)};
}

std::vector<int64_t> axes_of(const OpContext& c, size_t input_index, int64_t opset_as_input) {
  if (c.opset >= opset_as_input) {
    return has_input(c, input_index) ? int_values(input(c, input_index)) : std::vector<int64_t>{};
  }
  return c.node.get_ints("axes", {});
}

Tensors op_unsqueeze(const OpContext& c) {
  const Tensor& x = input(c, 0);
  std::vector<int64_t> axes = axes_of(c, 1, 13);
  FRAGILE_CHECK(!axes.empty(), "Unsqueeze needs axes");
  const int64_t out_rank = x.dim() + static_cast<int64_t>(axes.size());
  for (auto& a : axes) a = wrap_dim(a, out_rank, "Unsqueeze");
  std::sort(axes.begin(), axes.end());
  Shape shape = x.shape();
  for (int64_t a : axes) shape.insert(shape.begin() + a, 1);
  return {reshape_any(x, shape)};
}

Tensors op_squeeze(const OpContext& c) {
  const Tensor& x = input(c, 0);
  std::vector<int64_t> axes = axes_of(c, 1, 13);
  std::vector<bool> drop(x.dim(), false);
  if (axes.empty()) {
    for (int64_t i = 0; i < x.dim(); ++i) drop[i] = x.size(i) == 1;
  } else {
    for (int64_t a : axes) {
      a = wrap_dim(a, x.dim(), "Squeeze");
      FRAGILE_CHECK(x.size(a) == 1, "cannot squeeze axis ", a, " of shape ",
                    shape_str(x.shape()));
      drop[a] = true;
    }
  }
  Shape shape;
  for (int64_t i = 0; i < x.dim(); ++i) {
    if (!drop[i]) shape.push_back(x.size(i));
  }
  return {reshape_any(x, shape)};
}

Tensors op_shape(const OpContext& c) {
  const Tensor& x = input(c, 0);
  const int64_t r = x.dim();
  int64_t start = c.node.get_int("start", 0), end = c.node.get_int("end", r);
  if (start < 0) start += r;
  if (end < 0) end += r;
  start = std::clamp<int64_t>(start, 0, r);
  end = std::clamp<int64_t>(end, start, r);
  std::vector<int64_t> dims(x.shape().begin() + start, x.shape().begin() + end);
  return {int_tensor(dims, {static_cast<int64_t>(dims.size())})};
}

Tensors op_gather(const OpContext& c) {
  const Tensor& x = input(c, 0);
  const Tensor& idx = input(c, 1);
  FRAGILE_CHECK(is_int(idx), "Gather indices must be integers");
  FRAGILE_CHECK(idx.dim() <= 1, "Gather supports scalar or 1-D indices");
  const int64_t axis = wrap_dim(c.node.get_int("axis", 0), x.dim(), "Gather");
  std::vector<int64_t> ids = idx.to_int64_vector();
  for (auto& i : ids) {
    if (i < 0) i += x.size(axis);
    FRAGILE_CHECK(i >= 0 && i < x.size(axis), "Gather index out of range");
  }
  if (is_int(x)) {
    FRAGILE_CHECK(x.dim() == 1, "int64 Gather is supported for 1-D data only");
    auto v = x.to_int64_vector();
    std::vector<int64_t> out;
    for (int64_t i : ids) out.push_back(v[i]);
    return {int_tensor(out, idx.dim() == 0 ? Shape{} : Shape{static_cast<int64_t>(out.size())})};
  }
  std::vector<Tensor> parts;
  for (int64_t i : ids) parts.push_back(slice(x, axis, i, i + 1));
  Tensor y = parts.size() == 1 ? parts[0] : concat(parts, axis);
  return {idx.dim() == 0 ? squeeze(y, axis) : y};
}

// ---- linear algebra --------------------------------------------------------------------------

Tensors op_gemm(const OpContext& c) {
  Tensor a = float_input(c, 0), b = float_input(c, 1);
  check_rank(a, 2, "Gemm A");
  check_rank(b, 2, "Gemm B");
  if (c.node.get_int("transA", 0)) a = transpose(a, 0, 1);
  if (c.node.get_int("transB", 0)) b = transpose(b, 0, 1);
  FRAGILE_CHECK(a.size(1) == b.size(0), "A ", shape_str(a.shape()), " and B ",
                shape_str(b.shape()), " do not multiply");
  const double alpha = c.node.get_float("alpha", 1.0), beta = c.node.get_float("beta", 1.0);
  Tensor y = matmul(a, b);
  if (alpha != 1.0) y = mul(y, alpha);
  if (has_input(c, 2) && beta != 0.0) {
    Tensor cc = float_input(c, 2);
    y = add(y, beta == 1.0 ? cc : mul(cc, beta));
  }
  return {y};
}

Tensors op_matmul(const OpContext& c) {
  Tensor a = float_input(c, 0), b = float_input(c, 1);
  FRAGILE_CHECK(a.dim() >= 1 && b.dim() >= 1, "MatMul of a scalar");
  const bool a_vec = a.dim() == 1, b_vec = b.dim() == 1;
  if (a_vec) a = unsqueeze(a, 0);
  if (b_vec) b = unsqueeze(b, 1);
  FRAGILE_CHECK(a.size(-1 + a.dim()) == b.size(b.dim() - 2), "shapes ", shape_str(a.shape()),
                " and ", shape_str(b.shape()), " do not multiply");
  Tensor y;
  if (b.dim() == 2) {
    y = matmul(a, b);  // [..., M, K] @ [K, N]
  } else {
    // Broadcast the batch dims, fold them into one, multiply, unfold.
    Shape ab(a.shape().begin(), a.shape().end() - 2), bb(b.shape().begin(), b.shape().end() - 2);
    Shape batch = broadcast_shapes(ab, bb, "MatMul");
    Shape ae = batch, be = batch;
    ae.insert(ae.end(), a.shape().end() - 2, a.shape().end());
    be.insert(be.end(), b.shape().end() - 2, b.shape().end());
    const int64_t B = numel_of(batch), M = a.size(a.dim() - 2), K = a.size(a.dim() - 1),
                  N = b.size(b.dim() - 1);
    Tensor a3 = reshape(contiguous(expand(a, ae)), {B, M, K});
    Tensor b3 = reshape(contiguous(expand(b, be)), {B, K, N});
    Shape out = batch;
    out.push_back(M);
    out.push_back(N);
    y = reshape(matmul(a3, b3), out);
  }
  if (a_vec) y = squeeze(y, y.dim() - 2);
  if (b_vec) y = squeeze(y, y.dim() - 1);
  return {y};
}

// ---- element-wise ----------------------------------------------------------------------------

template <typename F>
Tensor int_binary(const Tensor& a, const Tensor& b, F f) {
  FRAGILE_CHECK(is_int(a) && is_int(b), "mixed int64/float operands");
  auto va = a.to_int64_vector(), vb = b.to_int64_vector();
  FRAGILE_CHECK(va.size() == vb.size() || va.size() == 1 || vb.size() == 1,
                "int64 broadcasting is supported against scalars only");
  const size_t n = std::max(va.size(), vb.size());
  std::vector<int64_t> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = f(va[va.size() == 1 ? 0 : i], vb[vb.size() == 1 ? 0 : i]);
  return int_tensor(out, va.size() >= vb.size() ? a.shape() : b.shape());
}

// int64 values are shapes and indices: a result past int64 is an error, not a wrapped-around
// extent (and not undefined behaviour; INT64_MIN / -1 traps on x86).
Tensors op_add(const OpContext& c) {
  const Tensor &a = input(c, 0), &b = input(c, 1);
  if (is_int(a) || is_int(b)) {
    return {int_binary(a, b, [](int64_t x, int64_t y) {
      int64_t r;
      FRAGILE_CHECK(!__builtin_add_overflow(x, y, &r), "int64 ", x, " + ", y, " overflows");
      return r;
    })};
  }
  return {add(a, b)};
}
Tensors op_sub(const OpContext& c) {
  const Tensor &a = input(c, 0), &b = input(c, 1);
  if (is_int(a) || is_int(b)) {
    return {int_binary(a, b, [](int64_t x, int64_t y) {
      int64_t r;
      FRAGILE_CHECK(!__builtin_sub_overflow(x, y, &r), "int64 ", x, " - ", y, " overflows");
      return r;
    })};
  }
  return {sub(a, b)};
}
Tensors op_mul(const OpContext& c) {
  const Tensor &a = input(c, 0), &b = input(c, 1);
  if (is_int(a) || is_int(b)) {
    return {int_binary(a, b, [](int64_t x, int64_t y) {
      int64_t r;
      FRAGILE_CHECK(!__builtin_mul_overflow(x, y, &r), "int64 ", x, " * ", y, " overflows");
      return r;
    })};
  }
  return {mul(a, b)};
}
Tensors op_div(const OpContext& c) {
  const Tensor &a = input(c, 0), &b = input(c, 1);
  if (is_int(a) || is_int(b)) {
    return {int_binary(a, b, [](int64_t x, int64_t y) {
      FRAGILE_CHECK(y != 0, "integer division by zero");
      FRAGILE_CHECK(!(x == std::numeric_limits<int64_t>::min() && y == -1), "int64 ", x, " / ",
                    y, " overflows");
      return x / y;
    })};
  }
  return {div(a, b)};
}
Tensors op_sum(const OpContext& c) {
  Tensor y = float_input(c, 0);
  for (size_t i = 1; i < c.inputs.size(); ++i) y = add(y, float_input(c, i));
  return {y};
}

Tensors op_relu(const OpContext& c) { return {relu(float_input(c, 0))}; }
Tensors op_sigmoid(const OpContext& c) { return {sigmoid(float_input(c, 0))}; }
Tensors op_tanh(const OpContext& c) { return {tanh(float_input(c, 0))}; }
Tensors op_exp(const OpContext& c) { return {exp(float_input(c, 0))}; }
Tensors op_log(const OpContext& c) { return {log(float_input(c, 0))}; }
Tensors op_sqrt(const OpContext& c) { return {sqrt(float_input(c, 0))}; }
Tensors op_neg(const OpContext& c) { return {neg(float_input(c, 0))}; }
Tensors op_abs(const OpContext& c) { return {abs(float_input(c, 0))}; }
// ONNX Softplus is beta = 1; a `beta` attribute comes from swap_relu_for_softplus.
Tensors op_softplus(const OpContext& c) {
  return {softplus(float_input(c, 0), c.node.get_float("beta", 1.0))};
}

Tensors op_clip(const OpContext& c) {
  double lo = -kInf, hi = kInf;
  if (c.opset < 11) {
    lo = c.node.get_float("min", -kInf);
    hi = c.node.get_float("max", kInf);
  } else {
    if (has_input(c, 1)) lo = scalar_value(input(c, 1), "Clip min");
    if (has_input(c, 2)) hi = scalar_value(input(c, 2), "Clip max");
  }
  return {clamp(float_input(c, 0), lo, hi)};
}

// Before opset 13 Softmax flattens to [prod(shape[:axis]), prod(shape[axis:])] (axis default 1);
// from 13 it normalises along one axis (default -1).
template <Tensor (*F)(const Tensor&, int64_t)>
Tensors softmax_like(const OpContext& c) {
  const Tensor x = float_input(c, 0);
  if (c.opset >= 13) return {F(x, wrap_dim(c.node.get_int("axis", -1), x.dim(), "Softmax"))};
  int64_t axis = c.node.get_int("axis", 1);
  if (axis < 0) axis += x.dim();
  FRAGILE_CHECK(axis >= 0 && axis <= x.dim(), "axis out of range for shape ",
                shape_str(x.shape()));
  // Without elements there is nothing to normalise; the flattened extents need not exist then
  // ([2^62, 8, 0] flattened at axis 2 would be [2^65, 0]).
  if (axis == x.dim() - 1 || x.numel() == 0) return {F(x, x.dim() - 1)};
  const int64_t outer = dims_product(x.shape(), 0, axis);  // at most numel: no overflow
  return {reshape(F(reshape(x, {outer, x.numel() / outer}), 1), x.shape())};
}

Tensors op_batch_norm(const OpContext& c) {
  FRAGILE_CHECK(c.node.get_int("training_mode", 0) == 0,
                "BatchNormalization in training mode is not supported");
  for (size_t o = 1; o < c.node.outputs.size(); ++o) {
    FRAGILE_CHECK(c.node.outputs[o].empty(),
                  "BatchNormalization's training outputs (mean/var) are not supported");
  }
  const Tensor x = float_input(c, 0);
  FRAGILE_CHECK(x.dim() >= 2, "input must have a channel dimension");
  return {batch_norm_inference(x, float_input(c, 3), float_input(c, 4), float_input(c, 1),
                               float_input(c, 2), c.node.get_float("epsilon", 1e-5))};
}

Tensors op_lrn(const OpContext& c) {
  const Tensor x = float_input(c, 0);
  check_rank(x, 4, "LRN input");
  const int64_t size = c.node.get("size").i;
  FRAGILE_CHECK(size >= 1, "LRN size must be positive");
  return {local_response_norm(x, size, c.node.get_float("alpha", 1e-4),
                              c.node.get_float("beta", 0.75), c.node.get_float("bias", 1.0))};
}

Tensors op_pad(const OpContext& c) {
  const Tensor x = float_input(c, 0);
  const std::string mode = c.node.get_string("mode", "constant");
  FRAGILE_CHECK(mode == "constant", "Pad mode '", mode, "' is not supported (only constant)");
  std::vector<int64_t> pads;
  double value = 0.0;
  if (c.opset < 11) {
    pads = c.node.has("pads") ? c.node.get("pads").ints : c.node.get("paddings").ints;
    value = c.node.get_float("value", 0.0);
  } else {
    pads = int_values(input(c, 1));
    if (has_input(c, 2)) value = scalar_value(input(c, 2), "Pad constant_value");
  }
  const int64_t r = x.dim();
  std::vector<int64_t> before(r, 0), after(r, 0);
  if (has_input(c, 3)) {  // opset 18 axes
    auto axes = int_values(input(c, 3));
    FRAGILE_CHECK(pads.size() == 2 * axes.size(), "pads must have 2 entries per axis");
    for (size_t i = 0; i < axes.size(); ++i) {
      const int64_t a = wrap_dim(axes[i], r, "Pad");
      before[a] = pads[i];
      after[a] = pads[i + axes.size()];
    }
  } else {
    FRAGILE_CHECK(static_cast<int64_t>(pads.size()) == 2 * r, "pads has ", pads.size(),
                  " entries for an input of rank ", r);
    for (int64_t i = 0; i < r; ++i) {
      before[i] = pads[i];
      after[i] = pads[i + r];
    }
  }
  // Negative pads crop. Each is compared with the extent before it is negated: -INT64_MIN
  // overflows (it came out as INT64_MIN, and that crop of 2^63 cropped nothing).
  Tensor y = x;
  for (int64_t i = 0; i < r; ++i) {
    if (before[i] < 0 || after[i] < 0) {
      const int64_t extent = y.size(i);
      const auto crop = [](int64_t amount) { return std::max<int64_t>(-amount, 0); };
      FRAGILE_CHECK(before[i] >= -extent && after[i] >= -extent &&
                        extent - crop(after[i]) >= crop(before[i]),
                    "negative pads ", before[i], " (begin) and ", after[i],
                    " (end) crop more than the extent ", extent, " of dimension ", i);
      y = slice(y, i, crop(before[i]), extent - crop(after[i]));
      before[i] = std::max<int64_t>(before[i], 0);
      after[i] = std::max<int64_t>(after[i], 0);
    }
  }
  bool any = false;
  for (int64_t i = 0; i < r; ++i) any |= before[i] > 0 || after[i] > 0;
  return {any ? pad(y, before, after, value) : y};
}

Tensors op_identity(const OpContext& c) { return {input(c, 0)}; }

Tensors op_dropout(const OpContext& c) {
  const Tensor& x = input(c, 0);
  if (has_input(c, 2)) {
    FRAGILE_CHECK(scalar_value(input(c, 2), "Dropout training_mode") == 0.0,
                  "Dropout in training mode is not supported");
  }
  Tensors out{x};
  if (c.node.outputs.size() > 1 && !c.node.outputs[1].empty()) {
    out.push_back(Tensor::ones(x.shape(), x.dtype(), x.device()));  // mask: all kept
  }
  return out;
}

Tensors op_constant(const OpContext& c) {
  const Node& n = c.node;
  if (n.has("value")) {
    const Attribute& a = n.get("value");
    FRAGILE_CHECK(a.kind == Attribute::Kind::Tensor, "attribute 'value' should be a tensor");
    return {to_session(a.t.value, c)};
  }
  if (n.has("value_float")) {
    return {to_session(Tensor::scalar(n.get_float("value_float", 0), c.dtype), c)};
  }
  if (n.has("value_floats")) {
    auto v = n.get_floats("value_floats", {});
    return {to_session(Tensor::from_vector(v, {static_cast<int64_t>(v.size())}, c.dtype), c)};
  }
  if (n.has("value_int")) return {int_tensor({n.get_int("value_int", 0)}, {})};
  if (n.has("value_ints")) {
    auto v = n.get_ints("value_ints", {});
    return {int_tensor(v, {static_cast<int64_t>(v.size())})};
  }
  FRAGILE_FAIL("Constant without a supported value attribute (sparse and string constants are "
               "not supported)");
}

Tensors op_cast(const OpContext& c) {
  const Tensor& x = input(c, 0);
  const int64_t to = c.node.get("to").i;
  switch (to) {
    case kOnnxFloat: case kOnnxDouble: case kOnnxFloat16: case kOnnxBfloat16:
      return {is_floating(x.dtype()) ? x : to_session(x.to(c.dtype), c)};
    case kOnnxInt64: case kOnnxInt32: case kOnnxInt16: case kOnnxInt8:
    case kOnnxUint8: case kOnnxUint16: case kOnnxUint32: case kOnnxUint64:
      return {is_int(x) ? x : int_tensor(int_values(x), x.shape())};
    default: FRAGILE_FAIL("Cast to ", onnx_type_name(static_cast<int32_t>(to)), " is not supported");
  }
}

template <bool kMean>
Tensors op_reduce(const OpContext& c) {
  const Tensor x = float_input(c, 0);
  const bool keep = c.node.get_int("keepdims", 1) != 0;
  std::vector<int64_t> axes = axes_of(c, 1, kMean ? 18 : 13);
  if (axes.empty()) {
    if (c.node.get_int("noop_with_empty_axes", 0)) return {x};
    axes.resize(x.dim());
    std::iota(axes.begin(), axes.end(), 0);
  }
  for (auto& a : axes) a = wrap_dim(a, x.dim(), "Reduce");
  std::sort(axes.begin(), axes.end());
  axes.erase(std::unique(axes.begin(), axes.end()), axes.end());
  return {kMean ? mean(x, axes, keep) : sum(x, axes, keep)};
}

const std::map<std::string, OpImpl>& registry() {
  static const std::map<std::string, OpImpl> table = {
      {"Abs", op_abs},
      {"Add", op_add},
      {"AveragePool", op_avg_pool},
      {"BatchNormalization", op_batch_norm},
      {"Cast", op_cast},
      {"Clip", op_clip},
      {"Concat", op_concat},
      {"Constant", op_constant},
      {"Conv", op_conv},
      {"Div", op_div},
      {"Dropout", op_dropout},
      {"Exp", op_exp},
      {"Flatten", op_flatten},
      {"Gather", op_gather},
      {"Gemm", op_gemm},
      {"GlobalAveragePool", op_global_avg_pool},
      {"GlobalMaxPool", op_global_max_pool},
      {"Identity", op_identity},
      {"LRN", op_lrn},
      {"Log", op_log},
      {"LogSoftmax", softmax_like<log_softmax>},
      {"MatMul", op_matmul},
      {"MaxPool", op_max_pool},
      {"Mul", op_mul},
      {"Neg", op_neg},
      {"Pad", op_pad},
      {"ReduceMean", op_reduce<true>},
      {"ReduceSum", op_reduce<false>},
      {"Relu", op_relu},
      {"Reshape", op_reshape},
      {"Shape", op_shape},
      {"Sigmoid", op_sigmoid},
      {"Softmax", softmax_like<softmax>},
      {"Softplus", op_softplus},
      {"Sqrt", op_sqrt},
      {"Squeeze", op_squeeze},
      {"Sub", op_sub},
      {"Sum", op_sum},
      {"Tanh", op_tanh},
      {"Transpose", op_transpose},
      {"Unsqueeze", op_unsqueeze},
  };
  return table;
}

}  // namespace

OpImpl find_op(const std::string& op_type) {
  auto it = registry().find(op_type);
  return it == registry().end() ? nullptr : it->second;
}

std::vector<std::string> op_names() {
  std::vector<std::string> out;
  for (const auto& [k, _] : registry()) out.push_back(k);
  return out;
}

}  // namespace fragile::nn::detail
