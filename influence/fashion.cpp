#include "influence/fashion.h"

#include <algorithm>
#include <memory>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "influence/gzip.h"
#include "nn/transforms.h"

namespace fragile::influence {

namespace {

uint32_t be32(const std::vector<uint8_t>& b, size_t at) {
  return uint32_t{b[at]} << 24 | uint32_t{b[at + 1]} << 16 | uint32_t{b[at + 2]} << 8 |
         uint32_t{b[at + 3]};
}

std::filesystem::path idx_path(const std::filesystem::path& dir, const std::string& stem) {
  for (const char* ext : {".gz", ""}) {
    std::filesystem::path p = dir / (stem + ext);
    if (std::filesystem::exists(p)) return p;
  }
  FRAGILE_FAIL("Fashion-MNIST file ", (dir / (stem + ".gz")).string(),
               " not found (Debian package dataset-fashion-mnist, or pass --data DIR)");
}

std::string split_prefix(const std::string& split) {
  FRAGILE_CHECK(split == "train" || split == "test", "split must be train or test, got '", split,
                "'");
  return split == "train" ? "train" : "t10k";
}

}  // namespace

std::vector<uint8_t> load_fashion_labels(const std::filesystem::path& dir,
                                         const std::string& split) {
  const auto lpath = idx_path(dir, split_prefix(split) + "-labels-idx1-ubyte");
  std::vector<uint8_t> lab = read_maybe_gzip(lpath);
  FRAGILE_CHECK(lab.size() >= 8 && be32(lab, 0) == 0x801, lpath.string(),
                ": not an idx1 ubyte file");
  FRAGILE_CHECK(lab.size() == 8 + static_cast<size_t>(be32(lab, 4)), lpath.string(),
                ": size does not match its header");
  return std::vector<uint8_t>(lab.begin() + 8, lab.end());
}

IdxImages load_fashion_mnist(const std::filesystem::path& dir, const std::string& split) {
  const std::string prefix = split_prefix(split);
  const auto ipath = idx_path(dir, prefix + "-images-idx3-ubyte");
  const auto lpath = idx_path(dir, prefix + "-labels-idx1-ubyte");
  std::vector<uint8_t> img = read_maybe_gzip(ipath);
  std::vector<uint8_t> lab = read_maybe_gzip(lpath);
  FRAGILE_CHECK(img.size() >= 16 && be32(img, 0) == 0x803, ipath.string(),
                ": not an idx3 ubyte file");
  FRAGILE_CHECK(lab.size() >= 8 && be32(lab, 0) == 0x801, lpath.string(),
                ": not an idx1 ubyte file");
  IdxImages d;
  d.count = be32(img, 4);
  d.rows = be32(img, 8);
  d.cols = be32(img, 12);
  FRAGILE_CHECK(img.size() == 16 + static_cast<size_t>(d.count * d.rows * d.cols),
                ipath.string(), ": size does not match its header");
  FRAGILE_CHECK(be32(lab, 4) == d.count && lab.size() == 8 + static_cast<size_t>(d.count),
                lpath.string(), ": label count does not match the images");
  d.pixels.assign(img.begin() + 16, img.end());
  d.labels.assign(lab.begin() + 8, lab.end());
  return d;
}

BinarySet binary_subset(const IdxImages& data, int64_t class_neg, int64_t class_pos,
                        int64_t limit, double pixel_mean, double pixel_scale) {
  FRAGILE_CHECK(class_neg != class_pos, "binary_subset: the two classes must differ");
  BinarySet s;
  const int64_t hw = data.rows * data.cols;
  std::vector<double> px;
  for (int64_t i = 0; i < data.count; ++i) {
    if (limit > 0 && static_cast<int64_t>(s.y.size()) >= limit) break;
    const int64_t c = data.labels[i];
    if (c != class_neg && c != class_pos) continue;
    s.source_index.push_back(i);
    s.y.push_back(c == class_pos ? 1.0 : -1.0);
    for (int64_t k = 0; k < hw; ++k) px.push_back((data.pixels[i * hw + k] - pixel_mean) * pixel_scale);
  }
  const int64_t n = static_cast<int64_t>(s.y.size());
  FRAGILE_CHECK(n > 0, "binary_subset: no examples of classes ", class_neg, " and ", class_pos);
  const auto pos = std::count(s.y.begin(), s.y.end(), 1.0);
  FRAGILE_CHECK(pos > 0 && pos < n, "binary_subset: the ", n, " examples taken hold only class ",
                pos > 0 ? class_pos : class_neg, " (no examples of class ",
                pos > 0 ? class_neg : class_pos, ")");
  s.images = Tensor::from_vector(px, {n, 1, data.rows, data.cols}, DType::Float64);
  return s;
}

std::string penultimate_value(const nn::Model& model) {
  const nn::Graph& g = model.graph;
  std::string v = nn::score_output(model);
  for (int guard = 0; guard < 16; ++guard) {
    const int64_t p = g.producer(v);
    FRAGILE_CHECK(p >= 0, "penultimate_value: the score '", v, "' is not computed by a layer");
    const nn::Node& n = g.nodes[p];
    if (n.op_type == "Gemm" || n.op_type == "MatMul") return n.inputs.at(0);
    if (n.op_type == "Add") {  // MatMul + bias: follow the non-constant operand
      v = g.initializers.count(n.inputs.at(0)) ? n.inputs.at(1) : n.inputs.at(0);
      continue;
    }
    if (n.op_type == "Identity" || n.op_type == "Flatten" || n.op_type == "Reshape") {
      v = n.inputs.at(0);
      continue;
    }
    FRAGILE_FAIL("penultimate_value: the score comes from ", n.describe(),
                 ", not from a final Gemm/MatMul layer");
  }
  FRAGILE_FAIL("penultimate_value: no final Gemm/MatMul found");
}

Tensor extract_features(const nn::Session& session, const std::string& value,
                        const Tensor& images, int64_t batch) {
  NoGradGuard no_grad;
  const std::string input = session.input().name;
  std::vector<Tensor> parts;
  const int64_t n = images.size(0);
  for (int64_t i = 0; i < n; i += batch) {
    Tensor x = contiguous(slice(images, 0, i, std::min(n, i + batch)));
    Tensor f = session.run({{input, x}}, {value})[0];
    parts.push_back(to_dtype(reshape(f, {f.size(0), -1}), DType::Float64));
  }
  return contiguous(concat(parts, 0));
}

Tensor gather_rows(const Tensor& x, const std::vector<int64_t>& rows) {
  FRAGILE_CHECK(x.dim() == 2, "gather_rows: expected [N, D], got ", shape_str(x.shape()));
  const int64_t d = x.size(1);
  const std::vector<double> all = x.to_vector();
  std::vector<double> out;
  out.reserve(rows.size() * static_cast<size_t>(d));
  for (int64_t r : rows) {
    FRAGILE_CHECK(r >= 0 && r < x.size(0), "gather_rows: row ", r, " out of range");
    out.insert(out.end(), all.begin() + r * d, all.begin() + (r + 1) * d);
  }
  return Tensor::from_vector(out, {static_cast<int64_t>(rows.size()), d}, x.dtype());
}

Tensor logistic_scores(const Tensor& features, const std::vector<Tensor>& params) {
  FRAGILE_CHECK(params.size() == 2, "logistic layer: expected {w, b}");
  return reshape(add(matmul(features, params[0]), params[1]), {-1});
}

Tensor logistic_losses(const Tensor& features, const std::vector<double>& y,
                       const std::vector<Tensor>& params) {
  const int64_t b = features.size(0);
  FRAGILE_CHECK(static_cast<int64_t>(y.size()) == b, "logistic layer: ", y.size(),
                " labels for ", b, " rows");
  Tensor yt = Tensor::from_vector(y, {b}, features.dtype());
  // log(1 + exp(-y z)) = softplus(-y z), stable for every margin.
  return softplus(neg(mul(yt, logistic_scores(features, params))));
}

ParamLayout LogisticLastLayer::layout() const {
  ParamLayout l;
  l.shapes = {{features.size(1), 1}, {1}};
  l.dtype = DType::Float64;
  return l;
}

Objective LogisticLastLayer::objective() const {
  Objective obj;
  obj.layout = layout();
  obj.num_examples = features.size(0);
  obj.l2 = l2;
  // Captured by value (the objective owns its data); rows are copied out of a host copy.
  const Tensor f = features;
  const auto host = std::make_shared<const std::vector<double>>(features.to_vector());
  const std::vector<double> labels = y;
  obj.loss = [f, host, labels](const std::vector<Tensor>& params,
                               const std::vector<int64_t>& ex) {
    const int64_t n = f.size(0), d = f.size(1);
    std::vector<double> ys;
    ys.reserve(ex.size());
    bool whole = static_cast<int64_t>(ex.size()) == n;
    for (size_t k = 0; k < ex.size(); ++k) {
      FRAGILE_CHECK(ex[k] >= 0 && ex[k] < n, "logistic layer: example ", ex[k], " out of range");
      ys.push_back(labels[static_cast<size_t>(ex[k])]);
      whole = whole && ex[k] == static_cast<int64_t>(k);
    }
    if (whole) return logistic_losses(f, ys, params);
    std::vector<double> rows;
    rows.reserve(ex.size() * static_cast<size_t>(d));
    for (int64_t i : ex) rows.insert(rows.end(), host->begin() + i * d, host->begin() + (i + 1) * d);
    Tensor fx = Tensor::from_vector(rows, {static_cast<int64_t>(ex.size()), d}, DType::Float64);
    return logistic_losses(fx, ys, params);
  };
  return obj;
}

}  // namespace fragile::influence
