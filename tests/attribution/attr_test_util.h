// Shared helpers of the attribution tests: where the generated references live, loading the
// models and options they describe, comparing maps.
//
// References are made by tools/gen_attribution_reference.py and tools/gen_metric_reference.py
// into <FRAGILE_REFERENCE_DIR>/attribution (the ctest fixture `attribution_reference`).
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "attribution/attribution.h"
#include "core/tensor.h"
#include "nn/session.h"
#include "tests/support/reference.h"

namespace fragile::test {

// <reference_dir()>/attribution/<name>; throws ReferenceMissing with the command that makes it.
std::string attribution_reference(const std::string& name);
const json& attribution_json(const std::string& name);

// A model file of the reference folder (tiny_relu.onnx, ...) as a Session.
nn::Session reference_session(const std::string& onnx_name, DType dtype);

// attr::Options from a reference case's "options" object; "reference": true means the IG
// reference tensor of the file (`reference`).
attr::Options options_from_json(const json& j, const Tensor& reference);

// Host values of a map / tensor as doubles (flattened).
std::vector<double> values(const Tensor& t);

// Spearman of two flattened tensors (attr::spearman).
double spearman_of(const Tensor& a, const Tensor& b);
// max |a - b| / max |b|.
double max_error_rel_to_max(const Tensor& got, const Tensor& ref);

}  // namespace fragile::test
