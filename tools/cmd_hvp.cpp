// fragile hvp --model M --image I --vector V.npy [--class K] [--activation softplus:BETA]
//             --out HV.npy [--grad-out G.npy]
//
// S(x) = sum_n z_n[K_n]: the logit (score output) of class K of each image, K_n defaulting to
// image n's top-1 under the model being differentiated. Images are independent, so each image's
// slice of grad S and H_S v is that image's own gradient and HVP. Both have the input's shape
// and are written in the compute dtype.
#include <algorithm>
#include <cmath>
#include <iostream>

#include "core/error.h"
#include "core/functional.h"
#include "core/ops.h"
#include "nn/npy.h"
#include "nn/session.h"
#include "tools/cli_common.h"

namespace fragile::cli {

int run_hvp(const ModelOptions& m, const PreprocessOptions& p, const HvpOptions& o) {
  check_output_path("--out", o.out, /*allow_stdout=*/false);
  check_output_path("--grad-out", o.grad_out, false);
  const DType dtype = m.engine_dtype();
  nn::Model model = m.load();
  const nn::Preprocess pre = p.resolve(model);
  const std::vector<std::string> labels = load_labels(model);
  const Device device = m.engine_device();
  nn::Session session(std::move(model), dtype, device);
  Tensor x = nn::load_input(o.image, pre);
  session.check_input(session.input().name, x);
  Tensor v = nn::read_npy(o.vector);
  FRAGILE_CHECK(v.shape() == x.shape(), "--vector '", o.vector, "' has shape ",
                shape_str(v.shape()), " but the input has shape ", shape_str(x.shape()));
  // Differentiated with respect to x: it must be made on the session's device.
  x = x.to(dtype).to(device);
  v = v.to(dtype).to(device);

  std::vector<int64_t> classes;
  std::vector<double> picked;
  const ScalarFn score = [&](const Tensor& xi) {
    Tensor z = session.scores(xi);
    const int64_t n = z.size(0), c = z.size(1);
    if (classes.empty()) {
      const std::vector<double> vals = z.to_vector();
      for (int64_t i = 0; i < n; ++i) {
        const double* row = vals.data() + i * c;
        const int64_t k = o.cls >= 0 ? o.cls : std::max_element(row, row + c) - row;
        FRAGILE_CHECK(k < c, "--class ", k, " is out of range: the model has ", c, " classes");
        classes.push_back(k);
        picked.push_back(row[k]);
      }
    }
    Tensor mask = one_hot(Tensor::from_int64(classes, {n}), c, z.dtype()).to(z.device());
    return sum(mul(z, mask));
  };
  const HvpResult r = hvp(score, x, v);
  require_finite(r.gradient, "the gradient");
  require_finite(r.hvp, "the Hessian-vector product");
  nn::write_npy(o.out, r.hvp);
  if (!o.grad_out.empty()) nn::write_npy(o.grad_out, r.gradient);

  auto norm = [](const Tensor& t) {
    double s = 0;
    for (double e : t.to_vector()) s += e * e;
    return std::sqrt(s);
  };
  for (size_t i = 0; i < classes.size(); ++i) {
    std::cout << (classes.size() > 1 ? "image " + std::to_string(i) + ": " : std::string())
              << "class " << classes[i];
    const std::string label = label_of(labels, classes[i]);
    if (!label.empty()) std::cout << " (" << label << ")";
    std::cout << ", score " << picked[i] << "\n";
  }
  std::cout << "|grad| = " << norm(r.gradient) << ", |Hv| = " << norm(r.hvp) << "\n";
  std::cout << "wrote " << o.out << (o.grad_out.empty() ? "" : " and " + o.grad_out) << "\n";
  return 0;
}

}  // namespace fragile::cli
