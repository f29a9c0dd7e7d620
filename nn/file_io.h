// Whole-file reads and writes for the loaders (ONNX, images, .npy), each failure one clear
// message naming the file.
#pragma once
#include <filesystem>
#include <string>

namespace fragile::nn {

// The file's bytes. Throws "cannot open <what> '<path>': no such file" (or: not a regular
// file, the OS error) and "error reading <what> '<path>'".
std::string read_file(const std::filesystem::path& path, const std::string& what);
// Replaces the file with `bytes`. Throws "cannot write '<path>': <OS error>" / "error writing".
void write_file(const std::filesystem::path& path, const std::string& bytes);

}  // namespace fragile::nn
