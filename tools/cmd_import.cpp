// fragile import MODEL.onnx [--fold-bn] [--activation softplus:BETA] [-o OUT.onnx]
#include <iostream>

#include "nn/model_info.h"
#include "nn/onnx_io.h"
#include "tools/cli_common.h"

namespace fragile::cli {

int run_import(const ModelOptions& m, const std::string& out) {
  std::vector<std::string> log;
  nn::Model model = m.load(&log);
  const nn::ModelSummary s = nn::summarize(model);
  std::cout << nn::format_summary(model, s);
  for (const auto& line : log) std::cout << line << "\n";
  if (!out.empty()) {
    nn::save_onnx(model, out);
    std::cout << "wrote " << out << "\n";
  }
  return 0;
}

}  // namespace fragile::cli
