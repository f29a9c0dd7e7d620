// fragile import MODEL.onnx [--fold-bn] [--activation softplus:BETA] [-o OUT.onnx]
#include <filesystem>
#include <iostream>

#include "nn/model_info.h"
#include "nn/onnx_io.h"
#include "tools/cli_common.h"

namespace fragile::cli {

namespace fs = std::filesystem;

// The written model keeps the metadata key `labels` (a file name relative to the model), so
// the class names go with it when it lands in another folder.
void copy_labels_file(const nn::Model& model, const fs::path& out) {
  const auto name = model.meta("labels");
  if (!name || model.source.empty() || load_labels(model).empty()) return;
  const fs::path from = model.source.parent_path() / *name;
  const fs::path to = out.parent_path() / *name;
  std::error_code ec;
  if (fs::exists(to, ec) && fs::equivalent(from, to, ec)) return;  // same folder
  if (fs::exists(to, ec)) {
    std::cerr << "note: " << to.string() << " exists; the labels file was not copied over it\n";
    return;
  }
  fs::create_directories(to.parent_path(), ec);
  fs::copy_file(from, to, ec);
  if (ec) {
    std::cerr << "note: could not copy the labels file to " << to.string() << ": " << ec.message()
              << "\n";
    return;
  }
  std::cout << "copied the class names " << *name << " next to it\n";
}

int run_import(const ModelOptions& m, const std::string& out) {
  std::vector<std::string> log;
  nn::Model model = m.load(&log);
  const nn::ModelSummary s = nn::summarize(model);
  std::cout << nn::format_summary(model, s);
  for (const auto& line : log) std::cout << line << "\n";
  if (!out.empty()) {
    nn::save_onnx(model, out);
    std::cout << "wrote " << out << "\n";
    copy_labels_file(model, out);
  }
  return 0;
}

}  // namespace fragile::cli
