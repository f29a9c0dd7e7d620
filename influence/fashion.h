// The binary Fashion-MNIST setting of the influence experiments: idx files (Debian's
// dataset-fashion-mnist, gzipped), features from a frozen network (the input of its last Gemm),
// and a logistic last layer trained with L2 to machine precision by Newton's method.
//
// Shapes: images [N, 1, 28, 28] float64 preprocessed as the model's metadata says (the shipped
// model: pixel / 255); features [N, D] (D = 64 for tools/models/fashion_cnn.onnx); labels y in {-1, +1}
// (+1 for the second class). Last-layer parameters theta = {w [D, 1], b [1]}, P = D + 1.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "influence/objective.h"
#include "nn/session.h"

namespace fragile::influence {

constexpr const char* kFashionDir = "/usr/share/datasets/fashion-mnist";

struct IdxImages {
  int64_t count = 0, rows = 0, cols = 0;
  std::vector<uint8_t> pixels;  // count * rows * cols
  std::vector<uint8_t> labels;  // count
};
// split "train" or "test": <dir>/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz].
IdxImages load_fashion_mnist(const std::filesystem::path& dir, const std::string& split);
// The labels of a split alone (the small file, no image decoding): lets a caller check class
// choices and index ranges before the expensive work.
std::vector<uint8_t> load_fashion_labels(const std::filesystem::path& dir,
                                         const std::string& split);

struct BinarySet {
  std::vector<int64_t> source_index;  // index in the idx file
  std::vector<double> y;              // -1 (class_neg) or +1 (class_pos)
  Tensor images;                      // [N, 1, 28, 28] float64, (pixel - mean) * scale
};
// The first `limit` examples (file order; 0 = all) whose label is class_neg or class_pos,
// preprocessed as x = (pixel - pixel_mean) * pixel_scale (the shipped model: 0 and 1/255).
// Throws unless both classes occur among them (one class alone is no binary problem).
BinarySet binary_subset(const IdxImages& data, int64_t class_neg, int64_t class_pos,
                        int64_t limit, double pixel_mean = 0.0, double pixel_scale = 1.0 / 255);

// The value feeding the model's final Gemm (or MatMul) on the path to its score output: the
// penultimate activation. Throws when the score is not produced by such a layer.
std::string penultimate_value(const nn::Model& model);
// Runs the frozen network without recording ([N, D], batches of `batch`).
Tensor extract_features(const nn::Session& session, const std::string& value,
                        const Tensor& images, int64_t batch = 256);

// Rows `rows` of a [N, D] tensor, copied (no autograd: features are constants of the last layer).
Tensor gather_rows(const Tensor& x, const std::vector<int64_t>& rows);

// Logistic loss of the last layer: log(1 + exp(-y (f w + b))) per row, [B]. f [B, D] may carry
// history (the attack differentiates it w.r.t. the image); y is [B] of +-1.
Tensor logistic_losses(const Tensor& features, const std::vector<double>& y,
                       const std::vector<Tensor>& params);
// Scores f w + b, [B].
Tensor logistic_scores(const Tensor& features, const std::vector<Tensor>& params);

// The last layer trained on features (J = mean logistic loss + l2/2 |theta|^2, objective.h).
struct LogisticLastLayer {
  Tensor features;        // [n, D] training features
  std::vector<double> y;  // [n] +-1
  double l2 = 0.01;

  Objective objective() const;
  ParamLayout layout() const;  // {w [D, 1], b [1]}
};

}  // namespace fragile::influence
