// libFuzzer target: arbitrary bytes as an ONNX model. Import, then (when the graph is small
// enough to run in a fuzzer's time) execute it on a random input of the declared shape and
// differentiate the sum of its outputs with respect to that input. Malformed or unsupported
// models must end in fragile::Error, never a crash, a sanitizer report, a hang or another
// exception type (which the CLI would print without saying what is wrong where). std::bad_alloc
// is accepted: the CLI reports it as "out of memory".
//
// Build and run: tools/fuzz.sh (clang, -DFRAGILE_FUZZ=ON).
#include <cstddef>
#include <cstdint>
#include <new>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "nn/onnx_io.h"
#include "nn/session.h"

namespace {

// Inputs above this many elements are not run: the fuzzer looks for crashes, not for large
// convolutions.
constexpr int64_t kMaxFeedElements = 1 << 14;

void exercise(const std::string& bytes) {
  using namespace fragile;
  nn::Model model = nn::parse_onnx(bytes, "/nonexistent-fuzz-dir", "fuzz input");
  std::vector<std::pair<std::string, Tensor>> feeds;
  std::vector<Tensor> leaves;
  std::mt19937_64 rng(1);
  for (const nn::ValueInfo* in : model.graph.data_inputs()) {
    if (!in->has_shape || in->elem_type != nn::kOnnxFloat) return;
    Shape shape;
    int64_t n = 1;
    for (const nn::Dim& d : in->dims) {
      const int64_t e = d.value < 0 ? 1 : d.value;  // symbolic dims: batch of one
      if (e > kMaxFeedElements) return;
      n *= e;
      if (n > kMaxFeedElements) return;
      shape.push_back(e);
    }
    Tensor x = Tensor::randn(shape, rng, DType::Float64);
    x.set_requires_grad(true);
    leaves.push_back(x);
    feeds.emplace_back(in->name, x);
  }
  std::vector<std::string> names;
  for (const nn::ValueInfo& out : model.graph.outputs) names.push_back(out.name);
  const nn::Session session(std::move(model), DType::Float64);
  const std::vector<Tensor> outs = session.run(feeds, names);
  if (leaves.empty()) return;
  std::vector<Tensor> sums;
  for (const Tensor& o : outs)
    if (o.defined() && is_floating(o.dtype()) && o.numel() > 0) sums.push_back(sum(o));
  if (sums.empty()) return;
  Tensor total = sums[0];
  for (size_t i = 1; i < sums.size(); ++i) total = add(total, sums[i]);
  (void)grad({total}, leaves, {}, /*create_graph=*/false, /*allow_unused=*/true);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    exercise(std::string(reinterpret_cast<const char*>(data), size));
  } catch (const fragile::Error&) {
    // The expected outcome for most inputs: a clear error.
  } catch (const std::bad_alloc&) {
    // A model whose tensors do not fit: the CLI says "out of memory".
  }
  return 0;
}
