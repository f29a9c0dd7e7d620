// Finite-difference checks of fragile's derivatives, after PyTorch's gradcheck/gradgradcheck.
//
// gradcheck: for each input that requires grad (float64), the Jacobian is estimated column by
// column with central differences, J[:, j] ~ (f(x + eps e_j) - f(x - eps e_j)) / (2 eps), and
// J^T v is compared with the analytic VJP fragile::grad(f(x), x, v) for `num_grad_outputs`
// seeded random grad_outputs v. An element passes when |analytic - numeric| <= atol + rtol
// |numeric|.
//
// gradgradcheck (PyTorch's definition): with v a random grad_output, the map
//   (inputs, v) -> grad(f(inputs), inputs, v, create_graph=true)
// is gradchecked with respect to the inputs AND v. This exercises every backward rule's own
// backward, including the rules' derivatives with respect to grad_output.
//
// Inputs that do not require grad (int64 indices, a where-condition) are passed unchanged and
// not differentiated. Non-float outputs are ignored. Failures name the input index, the element
// (multi-index), the analytic and numeric values and which grad_output draw.
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "core/tensor.h"

namespace fragile::test {

using TensorFn = std::function<Tensor(const std::vector<Tensor>&)>;
using MultiTensorFn = std::function<std::vector<Tensor>(const std::vector<Tensor>&)>;

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-5;
  double rtol = 1e-3;
  int num_grad_outputs = 2;  // random grad_output draws compared
  uint64_t seed = 0x5eed;
};

::testing::AssertionResult gradcheck(const TensorFn& fn, const std::vector<Tensor>& inputs,
                                     double eps = 1e-6, double atol = 1e-5, double rtol = 1e-3);
::testing::AssertionResult gradgradcheck(const TensorFn& fn, const std::vector<Tensor>& inputs,
                                         double eps = 1e-6, double atol = 1e-5,
                                         double rtol = 1e-3);

// Several outputs: the checked quantity is sum_k <v_k, f_k(x)>.
::testing::AssertionResult gradcheck_multi(const MultiTensorFn& fn,
                                           const std::vector<Tensor>& inputs,
                                           const GradcheckOptions& opts = {});
::testing::AssertionResult gradgradcheck_multi(const MultiTensorFn& fn,
                                               const std::vector<Tensor>& inputs,
                                               const GradcheckOptions& opts = {});

}  // namespace fragile::test
