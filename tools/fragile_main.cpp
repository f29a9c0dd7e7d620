// The `fragile` command line: import, predict, hvp (nn layer), explain, attack (attribution and
// attacks), influence, hessian (influence layer). Any failure is one line on stderr and exit
// status 1 (2 for a command-line usage error); never a crash.
#include <CLI/CLI.hpp>

#include <iostream>
#include <string>

#include "core/error.h"
#include "tools/cli_common.h"
#include "tools/cli_explain.h"
#include "tools/cli_influence.h"

int main(int argc, char** argv) {
  using namespace fragile::cli;
  CLI::App app{"fragile: differentiable inference on ONNX models (gradients, HVPs, attacks on "
               "explanations)",
               "fragile"};
  app.require_subcommand(1);
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return "fragile: error: " + one_line(e.what()) + " (see --help)\n";
  });

  ModelOptions import_model;
  std::string import_out;
  CLI::App* imp = app.add_subcommand(
      "import", "Load an ONNX model, print its inputs, outputs, op counts, parameter count and "
                "FLOPs per image, optionally transform it and write it back as ONNX");
  import_model.add_to(*imp, /*with_model_flag=*/false);
  imp->add_option("-o,--out", import_out, "write the (transformed) model to this ONNX file");

  ModelOptions predict_model;
  PreprocessOptions predict_pre;
  PredictOptions predict_opts;
  CLI::App* pred = app.add_subcommand(
      "predict", "Classify an image (PNG/JPEG, preprocessed as the model's metadata says) or a "
                 "preprocessed .npy tensor [C,H,W] / [N,C,H,W]");
  predict_model.add_to(*pred, /*with_model_flag=*/true);
  pred->add_option("-i,--image", predict_opts.image, "PNG/JPEG image or .npy tensor")->required();
  pred->add_option("-k,--top", predict_opts.top, "number of classes to list")->capture_default_str();
  pred->add_flag("--json", predict_opts.json,
                 "print {\"top\":[{\"class\":i,\"label\":...,\"prob\":p,\"logit\":z},...]}");
  predict_pre.add_to(*pred);

  ModelOptions hvp_model;
  PreprocessOptions hvp_pre;
  HvpOptions hvp_opts;
  CLI::App* hv = app.add_subcommand(
      "hvp", "Gradient and Hessian-vector product of a class score (the logit of class K) with "
             "respect to the preprocessed input; results have the input's shape");
  hvp_model.add_to(*hv, /*with_model_flag=*/true);
  hv->add_option("-i,--image", hvp_opts.image, "PNG/JPEG image or .npy tensor")->required();
  hv->add_option("--vector", hvp_opts.vector, ".npy direction v, shaped like the input")
      ->required();
  hv->add_option("--class", hvp_opts.cls, "class K whose logit is differentiated (default: top-1)")
      ->check(class_index_check());
  hv->add_option("-o,--out", hvp_opts.out, "write H v here (.npy)")->required();
  hv->add_option("--grad-out", hvp_opts.grad_out, "also write the gradient here (.npy)");
  hvp_pre.add_to(*hv);

  // Every command runs from its CLI11 callback inside app.parse(), through run_guarded.
  imp->callback([&] { run_guarded([&] { return run_import(import_model, import_out); }); });
  pred->callback(
      [&] { run_guarded([&] { return run_predict(predict_model, predict_pre, predict_opts); }); });
  hv->callback([&] { run_guarded([&] { return run_hvp(hvp_model, hvp_pre, hvp_opts); }); });
  add_explain_commands(app);
  add_influence_commands(app);  // `influence` and `hessian`

  // CLI11 reports an unknown first word as "A subcommand is required" (and `fragile foo --help`
  // prints the main help with status 0): name the word instead.
  if (argc > 1 && argv[1][0] != '-') {
    std::string names;
    bool known = false;
    for (const CLI::App* sub : app.get_subcommands({})) {
      names += (names.empty() ? "" : ", ") + sub->get_name();
      known = known || sub->check_name(argv[1]);
    }
    if (!known) {
      std::cerr << "fragile: error: unknown command '" << argv[1] << "' (commands: " << names
                << "; see --help)\n";
      return 2;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // RuntimeError: a command failed and already said why (status 1). --help: status 0.
    // Anything else is a usage error: CLI11's message (failure_message above), status 2.
    const int rc = app.exit(e);
    if (dynamic_cast<const CLI::RuntimeError*>(&e) != nullptr || rc == 0) return rc;
    return 2;
  }
  return 0;
}
