// Matrix products, convolution and pooling: shape checks, allocation, recording. The kernels
// are in the backend (kernels/cpu/{gemm,conv2d,pool2d}.cpp and their CUDA counterparts).
#include "core/accumulation.h"
#include "core/op_attrs.h"
#include "core/pool_decisions.h"
#include "core/ops/op_util.h"

namespace fragile {
using namespace detail;

namespace {
// Runs the backend product kernel(a, b, out). When this thread sums float32 products in
// float64 (core/accumulation.h), a float32 product runs in float64 instead: widening the
// inputs is exact, and the result is rounded to float32 once.
template <typename Kernel>
void run_product(const Tensor& a, const Tensor& b, Tensor& out, Kernel&& kernel) {
  if (out.dtype() != DType::Float32 || float32_sums() == Float32Sums::Float32) {
    kernel(a, b, out);
    return;
  }
  Tensor wide = Tensor::empty(out.shape(), DType::Float64, out.device());
  kernel(a.to(DType::Float64), b.to(DType::Float64), wide);
  backend_for(out.device()).copy(wide, out);
}

// The primitive: a [B,M,K] @ b [B,K,N].
Tensor bmm(const Tensor& a, const Tensor& b) {
  check_same(a, b, "matmul");
  check_float(a, "matmul");
  FRAGILE_CHECK(a.dim() == 3 && b.dim() == 3 && a.shape()[0] == b.shape()[0] &&
                    a.shape()[2] == b.shape()[1],
                "matmul: cannot multiply ", shape_str(a.shape()), " by ", shape_str(b.shape()));
  Tensor out = Tensor::empty({a.shape()[0], a.shape()[1], b.shape()[2]}, a.dtype(), a.device());
  run_product(a, b, out, [](const Tensor& a2, const Tensor& b2, Tensor& o) {
    backend_for(a2.device()).matmul(a2, b2, o);
  });
  return record(op_def("matmul"), {a, b}, out);
}
}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  FRAGILE_CHECK(a.defined() && b.defined(), "matmul: undefined input");
  FRAGILE_CHECK(a.dim() >= 2 && b.dim() >= 2, "matmul: inputs must have rank >= 2, got ",
                shape_str(a.shape()), " and ", shape_str(b.shape()));
  if (b.dim() == 2) {
    // Fold every leading dim of a into M: one GEMM.
    const int64_t K = a.shape().back();
    FRAGILE_CHECK(b.shape()[0] == K, "matmul: cannot multiply ", shape_str(a.shape()), " by ",
                  shape_str(b.shape()));
    Shape out_shape(a.shape().begin(), a.shape().end() - 1);
    out_shape.push_back(b.shape()[1]);
    Tensor y = bmm(reshape(a, {1, a.numel() / std::max<int64_t>(K, 1), K}), unsqueeze(b, 0));
    return reshape(y, out_shape);
  }
  FRAGILE_CHECK(a.dim() == 3 && b.dim() == 3, "matmul: batched inputs must both be rank 3, got ",
                shape_str(a.shape()), " and ", shape_str(b.shape()));
  return bmm(a, b);
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias) {
  FRAGILE_CHECK(w.defined() && w.dim() == 2, "linear: weight must be [out, in]");
  FRAGILE_CHECK(x.defined() && x.dim() >= 1 && x.shape().back() == w.shape()[1],
                "linear: input ", shape_str(x.shape()), " does not match weight ",
                shape_str(w.shape()));
  Tensor y = matmul(x.dim() == 1 ? unsqueeze(x, 0) : x, transpose(w, 0, 1));
  if (x.dim() == 1) y = squeeze(y, 0);
  if (bias.defined()) {
    FRAGILE_CHECK(bias.dim() == 1 && bias.shape()[0] == w.shape()[0], "linear: bias ",
                  shape_str(bias.shape()), " does not match weight ", shape_str(w.shape()));
    y = add(y, bias);
  }
  return y;
}

namespace {
Shape conv_output_shape(const Shape& x, const Shape& w, const Conv2dParams& p) {
  return {x[0], w[0], conv_out_size(x[2], w[2], p.stride[0], p.padding[0], p.dilation[0]),
          conv_out_size(x[3], w[3], p.stride[1], p.padding[1], p.dilation[1])};
}

void check_conv(const Shape& x, const Shape& w, const Conv2dParams& p, const char* what) {
  FRAGILE_CHECK(x.size() == 4, what, ": input must be [N,C,H,W], got ", shape_str(x));
  FRAGILE_CHECK(w.size() == 4, what, ": weight must be [C_out,C_in/groups,KH,KW], got ",
                shape_str(w));
  FRAGILE_CHECK(p.groups >= 1 && x[1] % p.groups == 0 && w[0] % p.groups == 0, what,
                ": channels (in ", x[1], ", out ", w[0], ") not divisible by groups ", p.groups);
  FRAGILE_CHECK(w[1] * p.groups == x[1], what, ": weight ", shape_str(w), " expects ",
                w[1] * p.groups, " input channels, input ", shape_str(x), " has ", x[1]);
  for (int i = 0; i < 2; ++i)
    FRAGILE_CHECK(p.stride[i] >= 1 && p.dilation[i] >= 1 && p.padding[i] >= 0, what,
                  ": invalid stride/dilation/padding");
}
}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dParams& p) {
  check_same(x, w, "conv2d");
  check_float(x, "conv2d");
  check_conv(x.shape(), w.shape(), p, "conv2d");
  Tensor out = Tensor::empty(conv_output_shape(x.shape(), w.shape(), p), x.dtype(), x.device());
  run_product(x, w, out, [&p](const Tensor& x2, const Tensor& w2, Tensor& o) {
    backend_for(x2.device()).conv2d(x2, w2, o, p);
  });
  out = record(op_def("conv2d"), {x, w}, out, ConvAttrs{{}, p});
  if (bias.defined()) {
    FRAGILE_CHECK(bias.dim() == 1 && bias.shape()[0] == w.shape()[0], "conv2d: bias ",
                  shape_str(bias.shape()), " for ", w.shape()[0], " output channels");
    out = add(out, reshape(bias, {1, bias.shape()[0], 1, 1}));
  }
  return out;
}

Tensor conv2d_backward_input(const Tensor& grad, const Tensor& w, const Shape& input_shape,
                             const Conv2dParams& p) {
  check_same(grad, w, "conv2d_backward_input");
  check_conv(input_shape, w.shape(), p, "conv2d_backward_input");
  FRAGILE_CHECK(grad.shape() == conv_output_shape(input_shape, w.shape(), p),
                "conv2d_backward_input: grad ", shape_str(grad.shape()),
                " does not match the convolution's output");
  Tensor out = Tensor::empty(input_shape, grad.dtype(), grad.device());
  run_product(grad, w, out, [&p](const Tensor& g2, const Tensor& w2, Tensor& o) {
    backend_for(g2.device()).conv2d_backward_input(g2, w2, o, p);
  });
  return record(op_def("conv2d_backward_input"), {grad, w}, out, ConvAttrs{input_shape, p});
}

Tensor conv2d_backward_weight(const Tensor& x, const Tensor& grad, const Shape& weight_shape,
                              const Conv2dParams& p) {
  check_same(x, grad, "conv2d_backward_weight");
  check_conv(x.shape(), weight_shape, p, "conv2d_backward_weight");
  FRAGILE_CHECK(grad.shape() == conv_output_shape(x.shape(), weight_shape, p),
                "conv2d_backward_weight: grad ", shape_str(grad.shape()),
                " does not match the convolution's output");
  Tensor out = Tensor::empty(weight_shape, x.dtype(), x.device());
  run_product(x, grad, out, [&p](const Tensor& x2, const Tensor& g2, Tensor& o) {
    backend_for(x2.device()).conv2d_backward_weight(x2, g2, o, p);
  });
  return record(op_def("conv2d_backward_weight"), {x, grad}, out, ConvAttrs{weight_shape, p});
}

namespace {
Shape pool_output_shape(const Tensor& x, const Pool2dParams& p, const char* what) {
  FRAGILE_CHECK(x.dim() == 4, what, ": input must be [N,C,H,W], got ", shape_str(x.shape()));
  for (int i = 0; i < 2; ++i) {
    FRAGILE_CHECK(p.kernel[i] >= 1 && p.stride[i] >= 1 && p.padding[i] >= 0, what,
                  ": invalid kernel/stride/padding");
    FRAGILE_CHECK(p.padding[i] * 2 <= p.kernel[i], what, ": padding ", p.padding[i],
                  " exceeds half the kernel ", p.kernel[i]);
  }
  return {x.shape()[0], x.shape()[1],
          pool_out_size(x.shape()[2], p.kernel[0], p.stride[0], p.padding[0], p.ceil_mode),
          pool_out_size(x.shape()[3], p.kernel[1], p.stride[1], p.padding[1], p.ceil_mode)};
}
}  // namespace

PoolResult max_pool2d_with_indices(const Tensor& x, const Pool2dParams& p) {
  check_float(x, "max_pool2d");
  Shape s = pool_output_shape(x, p, "max_pool2d");
  if (ReplayMaxPoolDecisions* replay = active_max_pool_replayer()) {
    // The recorded winners instead of a comparison (core/pool_decisions.h); gather has the
    // same derivatives as max_pool2d with those indices.
    Tensor idx = replay->next(x, p, s);
    if (RecordMaxPoolDecisions* recorder = active_max_pool_recorder()) recorder->add(x, idx, p);
    return {max_pool2d_gather(x, idx, p), idx};
  }
  Tensor out = Tensor::empty(s, x.dtype(), x.device());
  Tensor idx = Tensor::empty(s, DType::Int64, x.device());
  backend_for(x.device()).max_pool2d(x, out, idx, p);
  out = record(op_def("max_pool2d"), {x, idx}, out, PoolAttrs{x.shape(), p});
  if (RecordMaxPoolDecisions* recorder = active_max_pool_recorder()) recorder->add(x, idx, p);
  return {out, idx};
}

Tensor max_pool2d(const Tensor& x, const Pool2dParams& p) {
  return max_pool2d_with_indices(x, p).values;
}

Tensor max_pool2d_backward(const Tensor& grad, const Tensor& indices, const Shape& input_shape,
                           const Pool2dParams& p) {
  check_float(grad, "max_pool2d_backward");
  FRAGILE_CHECK(indices.dtype() == DType::Int64 && indices.shape() == grad.shape(),
                "max_pool2d_backward: indices must be int64 shaped like grad");
  FRAGILE_CHECK(input_shape.size() == 4 && input_shape[0] == grad.shape()[0] &&
                    input_shape[1] == grad.shape()[1],
                "max_pool2d_backward: input shape ", shape_str(input_shape), " vs grad ",
                shape_str(grad.shape()));
  Tensor out = Tensor::empty(input_shape, grad.dtype(), grad.device());
  backend_for(grad.device()).max_pool2d_scatter(grad, indices, p, out);
  return record(op_def("max_pool2d_backward"), {grad, indices}, out, PoolAttrs{input_shape, p});
}

Tensor max_pool2d_gather(const Tensor& x, const Tensor& indices, const Pool2dParams& p) {
  check_float(x, "max_pool2d_gather");
  FRAGILE_CHECK(indices.dtype() == DType::Int64 && indices.dim() == 4 && x.dim() == 4 &&
                    indices.shape()[0] == x.shape()[0] && indices.shape()[1] == x.shape()[1],
                "max_pool2d_gather: indices ", shape_str(indices.shape()), " do not fit input ",
                shape_str(x.shape()));
  Tensor out = Tensor::empty(indices.shape(), x.dtype(), x.device());
  backend_for(x.device()).max_pool2d_gather(x, indices, out);
  return record(op_def("max_pool2d_gather"), {x, indices}, out, PoolAttrs{x.shape(), p});
}

Tensor avg_pool2d(const Tensor& x, const Pool2dParams& p) {
  check_float(x, "avg_pool2d");
  Tensor out = Tensor::empty(pool_output_shape(x, p, "avg_pool2d"), x.dtype(), x.device());
  backend_for(x.device()).avg_pool2d(x, out, p);
  return record(op_def("avg_pool2d"), {x}, out, PoolAttrs{x.shape(), p});
}

Tensor avg_pool2d_backward(const Tensor& grad, const Shape& input_shape, const Pool2dParams& p) {
  check_float(grad, "avg_pool2d_backward");
  FRAGILE_CHECK(input_shape.size() == 4, "avg_pool2d_backward: input shape must be rank 4");
  Shape expected = {input_shape[0], input_shape[1],
                    pool_out_size(input_shape[2], p.kernel[0], p.stride[0], p.padding[0], p.ceil_mode),
                    pool_out_size(input_shape[3], p.kernel[1], p.stride[1], p.padding[1], p.ceil_mode)};
  FRAGILE_CHECK(grad.shape() == expected, "avg_pool2d_backward: grad ", shape_str(grad.shape()),
                ", expected ", shape_str(expected));
  Tensor out = Tensor::empty(input_shape, grad.dtype(), grad.device());
  backend_for(grad.device()).avg_pool2d_backward(grad, out, p);
  return record(op_def("avg_pool2d_backward"), {grad}, out, PoolAttrs{input_shape, p});
}

Tensor global_avg_pool2d(const Tensor& x) {
  FRAGILE_CHECK(x.defined() && x.dim() == 4, "global_avg_pool2d: input must be [N,C,H,W]");
  return mean(x, {2, 3}, true);
}

}  // namespace fragile
