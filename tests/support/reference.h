// Reference data made by tools/gen_reference.py (PyTorch, float64), loaded into Tensors.
//
// Files live in FRAGILE_REFERENCE_DIR (the build tree's reference/ folder; the environment
// variable of the same name overrides it). ctest makes them with the `generate_reference`
// fixture; a missing file throws ReferenceMissing telling how to generate it.
#pragma once
#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace fragile::test {

using json = nlohmann::json;

class ReferenceMissing : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

std::string reference_dir();
std::string shared_dir();
std::string source_dir();

// The parsed file `name` (e.g. "ops.json") from reference_dir(), cached for the process.
// Throws ReferenceMissing (file absent) or std::runtime_error (unreadable JSON).
const json& reference_json(const std::string& name);

// One serialized tensor: {"shape": [...], "dtype": "float64"|"float32"|"int64", "data": [...]}.
struct RefTensor {
  Shape shape;
  DType dtype = DType::Float64;  // as stored; float32 marks values already rounded to float32
  std::vector<double> values;    // float data (empty for int64)
  std::vector<int64_t> ints;     // int64 data (empty for floats)

  bool is_int() const { return dtype == DType::Int64; }
  // Int64 data stays int64; float data becomes `float_dtype`.
  Tensor tensor(DType float_dtype = DType::Float64) const;
};
RefTensor ref_tensor(const json& j);
// Shorthand: ref_tensor(j).tensor(float_dtype).
Tensor tensor_from_json(const json& j, DType float_dtype = DType::Float64);

// One case of ops.json (see tools/gen_reference.py).
struct OpCase {
  std::string name;
  std::string op;
  json attrs;
  std::vector<RefTensor> inputs;
  std::vector<bool> requires_grad;  // per input
  std::vector<RefTensor> outputs;   // outputs[0] is the differentiated one
  bool differentiable = true;
  bool gradcheck = true;
  bool gradgradcheck = true;
  RefTensor grad_output;            // for outputs[0]; only when differentiable
  std::vector<bool> has_grad;       // per input
  std::vector<RefTensor> grads;     // VJP per input (valid where has_grad)

  // Inputs as tensors: floats in `float_dtype`, requires_grad set where the case says so and
  // `with_grad` is true.
  std::vector<Tensor> input_tensors(DType float_dtype, bool with_grad = true) const;
};

// All cases of ops.json (parsed once).
const std::vector<OpCase>& op_cases();
std::vector<const OpCase*> op_cases_for(const std::string& op);

// ---- comparisons -----------------------------------------------------------------------------
// max |got - ref| / max |ref| (max |ref| floored at 1e-300): the "relative error" quoted for whole
// tensors.
double max_relative_error(const Tensor& got, const Tensor& ref);

// Element-wise check |got - ref| <= tol * (|ref| + 0.01 * max|ref|) (relative per element, with a
// floor at 1% of the tensor's scale so values near zero are judged against the tensor's size).
// Also checks shapes. On failure names `what`, the worst element (multi-index), both values and
// the whole-tensor relative error.
::testing::AssertionResult all_close(const Tensor& got, const Tensor& ref, double tol,
                                     const std::string& what);
::testing::AssertionResult all_close(const Tensor& got, const RefTensor& ref, double tol,
                                     const std::string& what);

// "[2, 0, 1]" for flat index `flat` of `shape`.
std::string index_str(const Shape& shape, int64_t flat);

}  // namespace fragile::test
