// The CPU reduce kernel's contract (core/backend.h): `out` has x's shape with the reduced dims
// set to 1, the same dtype, contiguous. The CUDA backend refuses anything else, so the CPU
// backend must too: a caller that passed a same-sized but differently shaped `out` worked on
// the CPU and failed on a GPU (found by running tests/gpu on the CUDA simulator).
#include <gtest/gtest.h>

#include <vector>

#include "core/backend.h"
#include "core/error.h"
#include "core/tensor.h"

namespace fragile {
namespace {

TEST(ReduceKernel, SumsAndMaxesOverTheGivenDims) {
  const Tensor x = Tensor::from_vector({1, -2, 3, 4, 5, -6}, {2, 3}, DType::Float64);
  Tensor rows = Tensor::empty({2, 1}, DType::Float64, Device::CPU);
  cpu_backend().reduce(ReduceOp::Sum, x, {1}, rows);
  EXPECT_EQ(rows.to_vector(), (std::vector<double>{2, 3}));
  Tensor cols = Tensor::empty({1, 3}, DType::Float64, Device::CPU);
  cpu_backend().reduce(ReduceOp::Max, x, {0}, cols);
  EXPECT_EQ(cols.to_vector(), (std::vector<double>{4, 5, 3}));
  Tensor all = Tensor::empty({1, 1}, DType::Float64, Device::CPU);
  cpu_backend().reduce(ReduceOp::Sum, x, {0, 1}, all);
  EXPECT_EQ(all.to_vector(), (std::vector<double>{5}));
}

TEST(ReduceKernel, RefusesAnOutOutsideTheContract) {
  const Tensor x = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {2, 3}, DType::Float64);
  Tensor scalar = Tensor::empty({}, DType::Float64, Device::CPU);  // same size as [1, 1]
  EXPECT_THROW(cpu_backend().reduce(ReduceOp::Sum, x, {0, 1}, scalar), Error);
  Tensor flat = Tensor::empty({2}, DType::Float64, Device::CPU);  // same size as [2, 1]
  EXPECT_THROW(cpu_backend().reduce(ReduceOp::Sum, x, {1}, flat), Error);
  Tensor f32 = Tensor::empty({2, 1}, DType::Float32, Device::CPU);
  EXPECT_THROW(cpu_backend().reduce(ReduceOp::Sum, x, {1}, f32), Error);
  Tensor out = Tensor::empty({2, 1}, DType::Float64, Device::CPU);
  EXPECT_THROW(cpu_backend().reduce(ReduceOp::Sum, x, {2}, out), Error);
}

}  // namespace
}  // namespace fragile
