#include "tests/support/emulated_cuda.h"

#include <limits>

#include "core/error.h"
#include "kernels/cpu/cpu_backend.h"

namespace fragile::testing {
namespace {

// A real GPU would fault (or the CUDA backend refuse) on a host pointer in a kernel.
void on_device(const Tensor& t, const char* method, const char* argument) {
  FRAGILE_CHECK(t.defined(), "emulated cuda: ", method, ": ", argument, " is undefined");
  FRAGILE_CHECK(t.device() == Device::CUDA, "emulated cuda: ", method, " was given ", argument,
                " on ", device_name(t.device()), "; a CUDA kernel needs it on the device");
}

Backend& host() { return cpu_backend(); }

}  // namespace

void EmulatedCuda::unary(UnaryOp op, const Tensor& x, Tensor& out, ScalarArgs args) {
  on_device(x, "unary", "x");
  on_device(out, "unary", "out");
  host().unary(op, x, out, args);
}

void EmulatedCuda::binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out,
                          ScalarArgs args) {
  on_device(a, "binary", "a");
  on_device(b, "binary", "b");
  on_device(out, "binary", "out");
  host().binary(op, a, b, out, args);
}

void EmulatedCuda::where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) {
  on_device(cond, "where", "cond");
  on_device(a, "where", "a");
  on_device(b, "where", "b");
  on_device(out, "where", "out");
  host().where(cond, a, b, out);
}

void EmulatedCuda::copy(const Tensor& src, Tensor& dst) {
  FRAGILE_CHECK(src.defined() && dst.defined(), "emulated cuda: copy of an undefined tensor");
  const bool from_device = src.device() == Device::CUDA, to_device = dst.device() == Device::CUDA;
  FRAGILE_CHECK(!recording || from_device == to_device,
                "emulated cuda: a ", to_device ? "host-to-device" : "device-to-host",
                " transfer inside a recorded computation (a CUDA Graph cannot hold one)");
  if (from_device && to_device) {
    ++counts_.device_copies;
  } else if (to_device) {
    ++counts_.uploads;
  } else if (from_device) {
    ++counts_.downloads;
  }
  cpu::copy_host_memory(src, dst);  // every "device" byte is host memory here
}

void EmulatedCuda::fill(Tensor& dst, double value) {
  on_device(dst, "fill", "dst");
  host().fill(dst, value);
}

void EmulatedCuda::reduce(ReduceOp op, const Tensor& x, const std::vector<int64_t>& dims,
                          Tensor& out) {
  on_device(x, "reduce", "x");
  on_device(out, "reduce", "out");
  host().reduce(op, x, dims, out);
}

void EmulatedCuda::count_product(const Tensor& out) {
  (out.dtype() == DType::Float64 ? products_.float64 : products_.float32) += 1;
}

void EmulatedCuda::matmul(const Tensor& a, const Tensor& b, Tensor& out) {
  on_device(a, "matmul", "a");
  on_device(b, "matmul", "b");
  on_device(out, "matmul", "out");
  count_product(out);
  host().matmul(a, b, out);
}

void EmulatedCuda::conv2d(const Tensor& x, const Tensor& w, Tensor& out, const Conv2dParams& p) {
  on_device(x, "conv2d", "x");
  on_device(w, "conv2d", "w");
  on_device(out, "conv2d", "out");
  count_product(out);
  host().conv2d(x, w, out, p);
}

void EmulatedCuda::conv2d_backward_input(const Tensor& grad, const Tensor& w, Tensor& out,
                                         const Conv2dParams& p) {
  on_device(grad, "conv2d_backward_input", "grad");
  on_device(w, "conv2d_backward_input", "w");
  on_device(out, "conv2d_backward_input", "out");
  count_product(out);
  host().conv2d_backward_input(grad, w, out, p);
}

void EmulatedCuda::conv2d_backward_weight(const Tensor& x, const Tensor& grad, Tensor& out,
                                          const Conv2dParams& p) {
  on_device(x, "conv2d_backward_weight", "x");
  on_device(grad, "conv2d_backward_weight", "grad");
  on_device(out, "conv2d_backward_weight", "out");
  count_product(out);
  host().conv2d_backward_weight(x, grad, out, p);
}

void EmulatedCuda::max_pool2d(const Tensor& x, Tensor& out, Tensor& indices,
                              const Pool2dParams& p) {
  on_device(x, "max_pool2d", "x");
  on_device(out, "max_pool2d", "out");
  on_device(indices, "max_pool2d", "indices");
  host().max_pool2d(x, out, indices, p);
}

void EmulatedCuda::max_pool2d_scatter(const Tensor& grad, const Tensor& indices,
                                      const Pool2dParams& p, Tensor& out) {
  on_device(grad, "max_pool2d_scatter", "grad");
  on_device(indices, "max_pool2d_scatter", "indices");
  on_device(out, "max_pool2d_scatter", "out");
  host().max_pool2d_scatter(grad, indices, p, out);
}

void EmulatedCuda::max_pool2d_gather(const Tensor& x, const Tensor& indices, Tensor& out) {
  on_device(x, "max_pool2d_gather", "x");
  on_device(indices, "max_pool2d_gather", "indices");
  on_device(out, "max_pool2d_gather", "out");
  host().max_pool2d_gather(x, indices, out);
}

void EmulatedCuda::avg_pool2d(const Tensor& x, Tensor& out, const Pool2dParams& p) {
  on_device(x, "avg_pool2d", "x");
  on_device(out, "avg_pool2d", "out");
  host().avg_pool2d(x, out, p);
}

void EmulatedCuda::avg_pool2d_backward(const Tensor& grad, Tensor& out, const Pool2dParams& p) {
  on_device(grad, "avg_pool2d_backward", "grad");
  on_device(out, "avg_pool2d_backward", "out");
  host().avg_pool2d_backward(grad, out, p);
}

void EmulatedCuda::softmax(const Tensor& x, int64_t dim, bool log, Tensor& out) {
  on_device(x, "softmax", "x");
  on_device(out, "softmax", "out");
  host().softmax(x, dim, log, out);
}

void EmulatedCuda::softmax_backward(const Tensor& grad, const Tensor& y, int64_t dim, bool log,
                                    Tensor& out) {
  on_device(grad, "softmax_backward", "grad");
  on_device(y, "softmax_backward", "y");
  on_device(out, "softmax_backward", "out");
  host().softmax_backward(grad, y, dim, log, out);
}

void EmulatedCuda::attack_step(const Tensor& x, const Tensor& d, const Tensor& x0,
                               const AttackStepParams& p, Tensor& out) {
  on_device(x, "attack_step", "x");
  on_device(d, "attack_step", "direction");
  on_device(x0, "attack_step", "x0");
  on_device(out, "attack_step", "out");
  host().attack_step(x, d, x0, p, out);
}

void EmulatedCuda::saliency_moments(const Tensor& attribution, const Tensor& weights,
                                    Tensor& out) {
  on_device(attribution, "saliency_moments", "attribution");
  on_device(weights, "saliency_moments", "weights");
  on_device(out, "saliency_moments", "out");
  host().saliency_moments(attribution, weights, out);
}

void EmulatedCuda::saliency_moments_backward(const Tensor& grad, const Tensor& attribution,
                                             const Tensor& weights, const Tensor& moments,
                                             Tensor& out) {
  on_device(grad, "saliency_moments_backward", "grad");
  on_device(attribution, "saliency_moments_backward", "attribution");
  on_device(weights, "saliency_moments_backward", "weights");
  on_device(moments, "saliency_moments_backward", "moments");
  on_device(out, "saliency_moments_backward", "out");
  host().saliency_moments_backward(grad, attribution, weights, moments, out);
}

class EmulatedRecording final : public CapturedComputation {
 public:
  EmulatedRecording(EmulatedCuda& device, DeviceComputation fn, std::vector<Tensor> inputs,
                    std::vector<Tensor> outputs)
      : device_(device), fn_(std::move(fn)), inputs_(std::move(inputs)),
        outputs_(std::move(outputs)) {}

  std::vector<Tensor> run(const std::vector<Tensor>& inputs) override {
    FRAGILE_CHECK(inputs.size() == inputs_.size(), "recorded computation: wrong input count");
    for (size_t i = 0; i < inputs.size(); ++i) {
      on_device(inputs[i], "recorded computation", "an input");
      FRAGILE_CHECK(inputs[i].shape() == inputs_[i].shape(),
                    "recorded computation: input shape changed");
      device_.copy(inputs[i], inputs_[i]);
    }
    device_.recording = true;
    std::vector<Tensor> results;
    try {
      results = fn_(inputs_);
    } catch (...) {
      device_.recording = false;
      throw;
    }
    device_.recording = false;
    FRAGILE_CHECK(results.size() == outputs_.size(), "recorded computation: output count changed");
    for (size_t i = 0; i < results.size(); ++i) device_.copy(results[i], outputs_[i]);
    ++device_.replays_;
    return outputs_;
  }

 private:
  EmulatedCuda& device_;
  DeviceComputation fn_;
  std::vector<Tensor> inputs_, outputs_;
};

std::unique_ptr<CapturedComputation> EmulatedCuda::capture(const DeviceComputation& fn,
                                                           const std::vector<Tensor>& inputs,
                                                           std::string* why_not) {
  std::vector<Tensor> recorded_inputs, outputs;
  for (const Tensor& t : inputs) {
    on_device(t, "capture", "an input");
    recorded_inputs.push_back(t.clone_data());
  }
  recording = true;
  try {
    for (const Tensor& t : fn(recorded_inputs)) {
      // A real recording computes nothing: its outputs hold garbage until the first run().
      outputs.push_back(Tensor::empty(t.shape(), t.dtype(), Device::CUDA));
      host().fill(outputs.back(), std::numeric_limits<double>::quiet_NaN());
    }
  } catch (const std::exception& e) {
    recording = false;
    if (why_not) *why_not = std::string("CUDA Graph capture failed: ") + e.what();
    return nullptr;
  }
  recording = false;
  ++captures_;
  return std::make_unique<EmulatedRecording>(*this, fn, std::move(recorded_inputs),
                                             std::move(outputs));
}

EmulatedCudaScope::EmulatedCudaScope() {
  FRAGILE_CHECK(cuda_stand_in() == nullptr, "a CUDA stand-in is already installed");
  previous_backend_ = set_cuda_stand_in(&device_);
  previous_allocator_ = set_allocator(Device::CUDA, &cpu_allocator());
}

EmulatedCudaScope::~EmulatedCudaScope() {
  set_allocator(Device::CUDA, previous_allocator_);
  set_cuda_stand_in(previous_backend_);
}

}  // namespace fragile::testing
