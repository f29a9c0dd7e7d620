// fragile predict --model M --image I [--top K] [--json]
//
// Probabilities are the softmax of the score output (pre-softmax logits), computed in float64.
// JSON: {"top":[{"class":i,"label":"...","prob":p,"logit":z},...]} for one image; a batch .npy
// [N,3,H,W] with N > 1 gives {"batch":[{"top":[...]}, ...]}.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <numeric>

#include "core/autograd.h"
#include "core/error.h"
#include "nn/session.h"
#include "tools/cli_common.h"

namespace fragile::cli {

int run_predict(const ModelOptions& m, const PreprocessOptions& p, const PredictOptions& o) {
  FRAGILE_CHECK(o.top >= 1, "--top must be at least 1");
  nn::Model model = m.load();
  const nn::Preprocess pre = p.resolve(model);
  const std::vector<std::string> labels = load_labels(model);
  // The input is copied to the session's device by run(): it needs no gradient here.
  nn::Session session(std::move(model), m.engine_dtype(), m.engine_device());
  Tensor x = nn::load_input(o.image, pre);
  session.check_input(session.input().name, x);

  NoGradGuard no_grad;
  const Tensor z = session.scores(x);
  require_finite(z, "the model's class scores for " + o.image);
  const int64_t n = z.size(0), classes = z.size(1);
  const std::vector<double> logits = z.to_vector();

  nlohmann::json batch = nlohmann::json::array();
  for (int64_t i = 0; i < n; ++i) {
    const double* row = logits.data() + i * classes;
    const double mx = *std::max_element(row, row + classes);
    double total = 0;
    for (int64_t c = 0; c < classes; ++c) total += std::exp(row[c] - mx);
    std::vector<int64_t> order(classes);
    std::iota(order.begin(), order.end(), 0);
    const int64_t k = std::min<int64_t>(o.top, classes);
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [&](int64_t a, int64_t b) { return row[a] > row[b]; });
    nlohmann::json top = nlohmann::json::array();
    for (int64_t j = 0; j < k; ++j) {
      const int64_t c = order[j];
      top.push_back({{"class", c},
                     {"label", label_of(labels, c)},
                     {"prob", std::exp(row[c] - mx) / total},
                     {"logit", row[c]}});
    }
    batch.push_back({{"top", top}});
  }

  if (o.json) {
    std::cout << (n == 1 ? nlohmann::json{{"top", batch[0]["top"]}}
                         : nlohmann::json{{"batch", batch}})
                     .dump()
              << "\n";
    return 0;
  }
  for (int64_t i = 0; i < n; ++i) {
    if (n > 1) std::cout << "image " << i << ":\n";
    for (const auto& e : batch[i]["top"]) {
      char buf[128];
      std::snprintf(buf, sizeof buf, "%5lld  prob %.4f  logit %9.4f  ",
                    static_cast<long long>(e["class"].get<int64_t>()), e["prob"].get<double>(),
                    e["logit"].get<double>());
      std::cout << buf << e["label"].get<std::string>() << "\n";
    }
  }
  return 0;
}

}  // namespace fragile::cli
