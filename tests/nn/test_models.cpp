// Whole models against PyTorch (tools/gen_onnx_models.py): the real SqueezeNet, torchvision
// GoogLeNet and Inception v3 exports, and an Inception v1 in the ONNX zoo's layout (LRN).
//   - logits of the model as exported: within 1e-4 (relative to max |logit|) in float32;
//   - with every ReLU swapped for softplus(10): the input gradient of the top-1 logit and the
//     HVP with a random direction, against PyTorch's float64 values. In float64 to 1e-9 (less
//     where the exported weights were rounded, see below): the correctness check. In float32
//     on the same max-pool winners as float64, within 1e-3, or where float32 arithmetic itself
//     cannot get that close, within 3x of PyTorch's own float32 distance from float64 on the
//     same winners (measured by the generator in the same run). That floor is SqueezeNet's
//     HVP: 1.25e-3 here, PyTorch 0.8e-3 on 2 threads and 1.9e-3 on 1 (its first convolution
//     sums products of pixels in the hundreds in float32; float32 storage alone, in float64
//     arithmetic, gives 1.4e-4). With those sums in float64 (core/accumulation.h) it is 2.0e-4,
//     checked against 1e-3 with no widening.
// Why the same winners: max pooling is not differentiable where two inputs of a window tie,
// and a softplus network still max-pools. Seeded GoogLeNet has a few windows whose top two
// inputs differ by 1e-6 relative; float32 rounding decides those, so a float32 run (fragile's
// or PyTorch's) takes other winners than float64 and lands on another piece of the function:
// its gradient 6e-3 of max |g| from float64's, its HVP 1.4e-2, while on float64's winners it
// is within 1e-5 and 1e-4 (PyTorch's float32 likewise: 7.5e-6 and 6.5e-5). PyTorch float32
// on 1 and on 2 threads differs from itself by as much. So the float32 run replays the
// float64 run's winners (core/pool_decisions.h), and a free float32 run must take other
// winners only at ties float32 cannot resolve (a wrong activation or pooling upstream would
// move winners by far more); its errors are printed.
#include <algorithm>
#include <iostream>
#include <sstream>

#include "core/accumulation.h"
#include "core/autograd.h"
#include "core/functional.h"
#include "core/ops.h"
#include "core/pool_decisions.h"
#include "nn/onnx_io.h"
#include "nn/session.h"
#include "nn/transforms.h"
#include "tests/nn/nn_test_util.h"

namespace fragile::nntest {
namespace {

struct Tolerances {
  double logits, grad, hvp;
};

// The float32 bar: `tol`, widened to 3x PyTorch's own float32 error on float64's max-pool
// winners when that is larger (measured by the generator in the same run).
double float32_bar(const nlohmann::json& e, const char* key, double tol, DType dtype) {
  if (dtype != DType::Float32 || !e.contains(key)) return tol;
  return std::max(tol, 3.0 * e[key].get<double>());
}

// The softplus-swapped model's logits, input gradient of logit `cls`, and H v (when v is
// defined), in `dtype`.
struct Derivatives {
  Tensor logits, grad, hvp;
};

Derivatives softplus_derivatives(const nn::Model& sp, DType dtype, const Tensor& x,
                                 const Tensor& v, int64_t cls) {
  nn::Session s(sp, dtype);
  Derivatives d;
  const ScalarFn score = [&](const Tensor& xi) {
    Tensor z = s.scores(xi);
    d.logits = z.detach();
    return sum(slice(z, 1, cls, cls + 1));
  };
  if (v.defined()) {
    HvpResult r = hvp(score, x.to(dtype), v.to(dtype));
    d.grad = r.gradient;
    d.hvp = r.hvp;
  } else {
    Tensor xl = x.to(dtype).detach().clone_data().set_requires_grad(true);
    d.grad = grad({score(xl)}, {xl})[0];
  }
  return d;
}

// The winners a float32 run took differently from the float64 run must all be ties float32
// cannot resolve (float64 values of the two inputs): both below float32's normal range (1e-37;
// float32 flushes them to 0), within 1e-6 of the largest input of their plane (float32
// rounding of an accumulated activation), or within 1e-4 of each other relative to their
// size. A wrong activation or pooling upstream would move winners by far more; a non-finite
// winner (a -inf pad) fails. Returns how many windows took another winner among inputs that
// are not negligible (above 1e-12 of the pooling's largest input): the ones that can move a
// derivative.
int64_t expect_only_ties_differ(const std::vector<MaxPoolDecision>& f32,
                                const std::vector<MaxPoolDecision>& f64,
                                const std::string& name) {
  EXPECT_EQ(f32.size(), f64.size()) << name << ": max-pool calls";
  int64_t relevant = 0, reported = 0;
  for (size_t layer = 0; layer < std::min(f32.size(), f64.size()); ++layer) {
    const Shape& in = f64[layer].input.shape();
    const Shape& out = f64[layer].indices.shape();
    if (f32[layer].input.shape() != in || f32[layer].indices.shape() != out) {
      ADD_FAILURE() << name << ": max-pool call " << layer + 1 << " pools "
                    << shape_str(f32[layer].input.shape()) << " in float32, "
                    << shape_str(in) << " in float64";
      continue;
    }
    const std::vector<double> x = f64[layer].input.to_vector();
    const std::vector<double> i32 = f32[layer].indices.to_vector();
    const std::vector<double> i64 = f64[layer].indices.to_vector();
    const int64_t out_plane = out[2] * out[3], in_plane = in[2] * in[3];
    // The largest finite |input| of each plane and of the pooling (pads of -inf excluded).
    std::vector<double> largest(static_cast<size_t>(in[0] * in[1]), 0.0);
    for (size_t i = 0; i < x.size(); ++i) {
      double& l = largest[i / static_cast<size_t>(in_plane)];
      if (std::isfinite(x[i])) l = std::max(l, std::abs(x[i]));
    }
    const double overall = *std::max_element(largest.begin(), largest.end());
    for (size_t e = 0; e < i64.size(); ++e) {
      if (i32[e] == i64[e]) continue;
      const int64_t plane = static_cast<int64_t>(e) / out_plane;
      const double a = x[plane * in_plane + static_cast<int64_t>(i32[e])];
      const double b = x[plane * in_plane + static_cast<int64_t>(i64[e])];
      const double gap = std::abs(a - b), size = std::max(std::abs(a), std::abs(b));
      const bool finite = std::isfinite(a) && std::isfinite(b);
      if (finite && size > 1e-12 * overall) ++relevant;
      const bool tie = finite && (size < 1e-37 || gap <= 1e-6 * largest[plane] ||
                                  gap <= 1e-4 * size);
      if (!tie && reported++ < 5) {
        ADD_FAILURE() << name << ": max-pool call " << layer + 1 << ", output " << e
                      << ": float32 took the input worth " << a << " (in float64), float64 the"
                      << " one worth " << b << ": not a tie";
      }
    }
  }
  return relevant;
}

int64_t count_nodes(const nn::Model& m, const std::string& op_type) {
  return std::count_if(m.graph.nodes.begin(), m.graph.nodes.end(),
                       [&](const auto& n) { return n.op_type == op_type; });
}

// sums: how float32 products are summed (core/accumulation.h). With float64 sums the float32
// bar is `tol` itself, never widened to PyTorch's float32 spread.
void check_model(const std::string& name, DType dtype, Tolerances tol,
                 Float32Sums sums = Float32Sums::Float32) {
  Float32SumsScope sums_scope(sums);
  const bool strict = sums == Float32Sums::Float64;
  const auto& e = model_entry(name);
  auto bar = [&](const char* key, double t) {
    return strict ? t : float32_bar(e, key, t, dtype);
  };
  nn::Model model = nn::load_onnx(data_path(e["model"]));
  const Tensor x = npy(e["input"]).to(dtype);
  const char* dt = dtype_name(dtype);

  {
    nn::Session s(model, dtype);
    NoGradGuard ng;
    const double err = rel_err(s.scores(x), npy(e["logits"]));
    std::cout << "[" << name << " " << dt << "] logits rel err " << err << "\n";
    EXPECT_LT(err, tol.logits);
  }

  nn::Model sp = model;
  EXPECT_GT(nn::swap_relu_for_softplus(sp, e["beta"].get<double>()), 0);
  const int64_t cls = e["cls"];
  const bool with_hvp = e.contains("hvp");
  const Tensor v = with_hvp ? npy(e["vector"]) : Tensor();

  Derivatives d;
  std::ostringstream free_run;
  if (dtype == DType::Float64) {
    d = softplus_derivatives(sp, dtype, x, v, cls);
  } else {
    std::vector<MaxPoolDecision> f64_winners, f32_winners;
    {
      RecordMaxPoolDecisions rec;
      (void)softplus_derivatives(sp, DType::Float64, x, v, cls);
      f64_winners = rec.decisions();
    }
    // Every MaxPool node went through the recording (else "same winners" would be a free run).
    EXPECT_EQ(static_cast<int64_t>(f64_winners.size()), count_nodes(sp, "MaxPool"));
    Derivatives free;
    {
      RecordMaxPoolDecisions rec;
      free = softplus_derivatives(sp, dtype, x, v, cls);
      f32_winners = rec.decisions();
    }
    const int64_t other = expect_only_ties_differ(f32_winners, f64_winners, name);
    EXPECT_LT(rel_err(free.logits, npy(e["sp_logits"])), tol.logits);  // continuous at ties
    free_run << "; float32 on its own winners (" << other
             << " windows tie-broken the other way): grad rel err "
             << rel_err(free.grad, npy(e["grad"]));
    if (with_hvp) free_run << ", hvp rel err " << rel_err(free.hvp, npy(e["hvp"]));
    ReplayMaxPoolDecisions replay(f64_winners);
    d = softplus_derivatives(sp, dtype, x, v, cls);
    EXPECT_EQ(replay.replayed(), replay.recorded());
  }

  const double eg = rel_err(d.grad, npy(e["grad"]));
  std::cout << "[" << name << " " << dt << (strict ? ", float64 sums" : "")
            << "] softplus(10): grad rel err " << eg;
  EXPECT_LT(eg, bar("torch_f32_same_winners_grad_err", tol.grad));
  if (with_hvp) {
    const double eh = rel_err(d.hvp, npy(e["hvp"]));
    std::cout << ", hvp rel err " << eh;
    EXPECT_LT(eh, bar("torch_f32_same_winners_hvp_err", tol.hvp));
  }
  if (dtype == DType::Float32) {
    std::cout << free_run.str() << ". PyTorch float32 on float64's winners: grad "
              << e.value("torch_f32_same_winners_grad_err", -1.0) << ", hvp "
              << e.value("torch_f32_same_winners_hvp_err", -1.0) << "; on its own: grad "
              << e.value("torch_f32_grad_err", -1.0) << ", hvp "
              << e.value("torch_f32_hvp_err", -1.0) << " (-1: not computed)";
  }
  std::cout << "\n";
  EXPECT_LT(rel_err(d.logits, npy(e["sp_logits"])), tol.logits);
}

TEST(Models, SqueezeNetFloat32) { check_model("squeezenet", DType::Float32, {1e-4, 1e-3, 1e-3}); }
// Summing float32 products in float64 (core/accumulation.h) brings the float32 HVP within the
// issue's 1e-3 of float64 without widening (measured: grad 1.3e-5, HVP 2.0e-4). The bars sit
// below float32 sums' figures (grad 8.2e-5, HVP 1.25e-3), so the sums must be in effect.
TEST(Models, SqueezeNetFloat32WithFloat64Sums) {
  check_model("squeezenet", DType::Float32, {1e-4, 3e-5, 5e-4}, Float32Sums::Float64);
}
TEST(Models, SqueezeNetFloat64) { check_model("squeezenet", DType::Float64, {1e-10, 1e-9, 1e-9}); }
TEST(Models, InceptionV1ZooLayoutFloat32) {
  check_model("inception_v1_zoo", DType::Float32, {1e-4, 1e-3, 1e-3});
}
TEST(Models, InceptionV1ZooLayoutFloat64) {
  check_model("inception_v1_zoo", DType::Float64, {1e-10, 1e-9, 1e-9});
}
TEST(Models, GoogLeNetFloat32) { check_model("googlenet", DType::Float32, {1e-4, 1e-3, 1e-3}); }
// The torchvision references come from the PyTorch module itself, while the ONNX file holds
// the exporter's float32 weights (BatchNorm folded into Conv in float32 for Inception v3), so
// in float64 the two agree only to that rounding (measured: logits 5e-10 and 1.4e-7, Inception
// v3 HVP 1.3e-5).
TEST(Models, GoogLeNetFloat64) { check_model("googlenet", DType::Float64, {1e-8, 1e-7, 1e-7}); }
TEST(Models, InceptionV3Float32) {
  check_model("inception_v3", DType::Float32, {1e-4, 1e-3, 1e-3});
}
TEST(Models, InceptionV3Float64) {
  check_model("inception_v3", DType::Float64, {1e-6, 1e-5, 1e-4});
}

}  // namespace
}  // namespace fragile::nntest
