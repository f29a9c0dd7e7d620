#include "tests/support/reference.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

namespace fragile::test {

std::string reference_dir() {
  if (const char* env = std::getenv("FRAGILE_REFERENCE_DIR"); env && *env) return env;
  return FRAGILE_REFERENCE_DIR;
}
std::string shared_dir() { return FRAGILE_SHARED_DIR; }
std::string source_dir() { return FRAGILE_SOURCE_DIR; }

const json& reference_json(const std::string& name) {
  static std::mutex mu;
  static std::map<std::string, json> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(name);
  if (it != cache.end()) return it->second;
  std::string path = reference_dir() + "/" + name;
  std::ifstream in(path);
  if (!in) {
    throw ReferenceMissing("reference file " + path +
                           " is missing. Generate it with:\n  /usr/bin/python3 " + source_dir() +
                           "/tools/gen_reference.py --out " + reference_dir() +
                           "\n(ctest runs this as the `generate_reference` fixture; run ctest, "
                           "or set FRAGILE_REFERENCE_DIR to a folder holding the files)");
  }
  json j;
  try {
    in >> j;
  } catch (const std::exception& e) {
    throw std::runtime_error("reference file " + path + " is not valid JSON (" + e.what() +
                             "); regenerate it with tools/gen_reference.py");
  }
  return cache.emplace(name, std::move(j)).first->second;
}

Tensor RefTensor::tensor(DType float_dtype) const {
  if (is_int()) return Tensor::from_int64(ints, shape);
  return Tensor::from_vector(values, shape, float_dtype);
}

RefTensor ref_tensor(const json& j) {
  RefTensor r;
  r.shape = j.at("shape").get<Shape>();
  const std::string dt = j.at("dtype").get<std::string>();
  const json& data = j.at("data");
  if (dt == "int64") {
    r.dtype = DType::Int64;
    r.ints = data.get<std::vector<int64_t>>();
  } else {
    r.dtype = dt == "float32" ? DType::Float32 : DType::Float64;
    r.values = data.get<std::vector<double>>();
  }
  int64_t n = numel_of(r.shape);
  int64_t have = static_cast<int64_t>(r.is_int() ? r.ints.size() : r.values.size());
  if (n != have) {
    throw std::runtime_error("reference tensor of shape " + shape_str(r.shape) + " holds " +
                             std::to_string(have) + " values");
  }
  return r;
}

Tensor tensor_from_json(const json& j, DType float_dtype) {
  return ref_tensor(j).tensor(float_dtype);
}

std::vector<Tensor> OpCase::input_tensors(DType float_dtype, bool with_grad) const {
  std::vector<Tensor> out;
  for (size_t i = 0; i < inputs.size(); ++i) {
    Tensor t = inputs[i].tensor(float_dtype);
    if (with_grad && requires_grad[i] && !inputs[i].is_int()) t.set_requires_grad(true);
    out.push_back(t);
  }
  return out;
}

const std::vector<OpCase>& op_cases() {
  static std::once_flag once;
  static std::vector<OpCase> cases;
  std::call_once(once, [] {
    const json& doc = reference_json("ops.json");
    for (const json& c : doc.at("cases")) {
      OpCase oc;
      oc.name = c.at("name").get<std::string>();
      oc.op = c.at("op").get<std::string>();
      oc.attrs = c.at("attrs");
      for (const json& in : c.at("inputs")) {
        oc.inputs.push_back(ref_tensor(in));
        oc.requires_grad.push_back(in.value("requires_grad", false));
      }
      for (const json& o : c.at("outputs")) oc.outputs.push_back(ref_tensor(o));
      oc.differentiable = c.value("differentiable", true);
      oc.gradcheck = c.value("gradcheck", oc.differentiable);
      oc.gradgradcheck = c.value("gradgradcheck", oc.gradcheck);
      if (oc.differentiable) {
        oc.grad_output = ref_tensor(c.at("grad_output"));
        for (const json& g : c.at("grads")) {
          oc.has_grad.push_back(!g.is_null());
          oc.grads.push_back(g.is_null() ? RefTensor{} : ref_tensor(g));
        }
      }
      cases.push_back(std::move(oc));
    }
  });
  return cases;
}

std::vector<const OpCase*> op_cases_for(const std::string& op) {
  std::vector<const OpCase*> out;
  for (const OpCase& c : op_cases())
    if (c.op == op) out.push_back(&c);
  return out;
}

std::string index_str(const Shape& shape, int64_t flat) {
  std::vector<int64_t> idx(shape.size());
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    int64_t e = shape[d] > 0 ? shape[d] : 1;
    idx[d] = flat % e;
    flat /= e;
  }
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < idx.size(); ++i) os << (i ? ", " : "") << idx[i];
  os << "]";
  return os.str();
}

double max_relative_error(const Tensor& got, const Tensor& ref) {
  std::vector<double> g = got.to_vector(), r = ref.to_vector();
  double err = 0, scale = 0;
  for (size_t i = 0; i < r.size() && i < g.size(); ++i) {
    err = std::max(err, std::fabs(g[i] - r[i]));
    scale = std::max(scale, std::fabs(r[i]));
  }
  if (std::isnan(err) || g.size() != r.size()) return INFINITY;
  return err / std::max(scale, 1e-300);
}

namespace {
::testing::AssertionResult close_values(const std::vector<double>& g, const Shape& gshape,
                                        const std::vector<double>& r, const Shape& rshape,
                                        double tol, const std::string& what) {
  if (gshape != rshape) {
    return ::testing::AssertionFailure()
           << what << ": shape " << shape_str(gshape) << ", expected " << shape_str(rshape);
  }
  double scale = 0, max_err = 0;
  for (double v : r) scale = std::max(scale, std::fabs(v));
  int64_t worst = -1;
  double worst_ratio = 0;
  for (size_t i = 0; i < r.size(); ++i) {
    double err = std::fabs(g[i] - r[i]);
    if (std::isnan(g[i])) err = INFINITY;
    max_err = std::max(max_err, err);
    double ratio = err / (std::fabs(r[i]) + 0.01 * scale + 1e-300);
    if (ratio > worst_ratio || std::isnan(ratio)) {
      worst_ratio = ratio;
      worst = static_cast<int64_t>(i);
    }
  }
  if (worst_ratio <= tol) return ::testing::AssertionSuccess();
  ::testing::AssertionResult res = ::testing::AssertionFailure();
  res << what << ": element " << index_str(rshape, worst) << " got "
      << ::testing::PrintToString(g[worst]) << ", expected " << ::testing::PrintToString(r[worst])
      << " (element error ratio " << worst_ratio << " > tol " << tol
      << "; max abs err " << max_err << ", max |ref| " << scale << ")";
  return res;
}
}  // namespace

::testing::AssertionResult all_close(const Tensor& got, const Tensor& ref, double tol,
                                     const std::string& what) {
  if (!got.defined()) return ::testing::AssertionFailure() << what << ": undefined tensor";
  return close_values(got.to_vector(), got.shape(), ref.to_vector(), ref.shape(), tol, what);
}

::testing::AssertionResult all_close(const Tensor& got, const RefTensor& ref, double tol,
                                     const std::string& what) {
  if (!got.defined()) return ::testing::AssertionFailure() << what << ": undefined tensor";
  std::vector<double> r = ref.values;
  if (ref.is_int()) r.assign(ref.ints.begin(), ref.ints.end());
  return close_values(got.to_vector(), got.shape(), r, ref.shape, tol, what);
}

}  // namespace fragile::test
