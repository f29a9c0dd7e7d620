// A small gzip (RFC 1952) / DEFLATE (RFC 1951) decoder, enough to read Debian's Fashion-MNIST
// idx files without a zlib dependency. Written after Mark Adler's puff.c: canonical Huffman
// decoding one bit at a time (about 50 MB/s; the 26 MB training images decode in about a second).
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace fragile::influence {

// Decompresses every gzip member of `bytes`; checks each member's CRC-32 and size. Throws naming
// `what` on a malformed or truncated stream.
std::vector<uint8_t> gunzip(const std::vector<uint8_t>& bytes, const std::string& what = "gzip");
// Raw DEFLATE data (no header): the decoded bytes; `consumed` gets the compressed length used.
std::vector<uint8_t> inflate(const uint8_t* data, size_t size, size_t* consumed = nullptr);

std::vector<uint8_t> read_file_bytes(const std::filesystem::path& path);
// Reads `path`, gunzipping it when it starts with the gzip magic bytes.
std::vector<uint8_t> read_maybe_gzip(const std::filesystem::path& path);

}  // namespace fragile::influence
