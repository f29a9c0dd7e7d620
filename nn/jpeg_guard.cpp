#include "nn/jpeg_guard.h"

#include <cstddef>
#include <cstdint>

#include "core/error.h"

namespace fragile::nn {
namespace {

constexpr uint8_t kDht = 0xC4, kSos = 0xDA, kEoi = 0xD9;

// stb's reader: a byte past the end reads as 0.
uint8_t byte_at(const std::string& b, size_t i) {
  return i < b.size() ? static_cast<uint8_t>(b[i]) : 0;
}

// Reads the DHT segment whose length field starts at `at` as stb's stbi__process_marker does,
// table by table; returns the problem, if any. A header stb refuses itself (table class > 1 or
// id > 3) ends the check: stb stops there too.
std::string check_dht(const std::string& b, size_t at) {
  int64_t left = (int64_t{byte_at(b, at)} << 8 | byte_at(b, at + 1)) - 2;
  size_t i = at + 2;
  while (left > 0) {
    const uint8_t q = byte_at(b, i);
    if ((q >> 4) > 1 || (q & 15) > 3) return {};
    int codes = 0;
    for (int k = 0; k < 16; ++k) codes += byte_at(b, i + 1 + k);
    if (codes > 256)
      return detail::concat("a Huffman table of ", codes, " codes (at most 256) at byte ", i);
    i += 17 + codes;
    left -= 17 + codes;
    if (i > b.size()) return {};  // truncated: stb reads zeros from here on
  }
  return {};
}

}  // namespace

std::string jpeg_huffman_problem(const std::string& b) {
  // stb takes any run of 0xFF bytes before the start-of-image marker D8.
  size_t i = 0;
  while (i < b.size() && byte_at(b, i) == 0xFF) ++i;
  if (i == 0 || byte_at(b, i) != 0xD8) return {};
  ++i;
  // Up to the first scan, walk the segments as stb does: junk between segments is skipped
  // byte by byte, 0xFF fill bytes before a marker too, and each segment's length skips its
  // payload (so bytes inside an EXIF thumbnail or ICC profile are not mistaken for markers).
  while (i + 1 < b.size()) {
    if (byte_at(b, i) != 0xFF) {
      ++i;
      continue;
    }
    while (byte_at(b, i) == 0xFF && i < b.size()) ++i;
    const uint8_t marker = byte_at(b, i++);
    if (marker == kEoi) return {};
    if (marker == kSos) break;
    if (marker == 0x01 || marker == 0xD8 || (marker >= 0xD0 && marker <= 0xD7)) continue;
    if (marker == kDht)
      if (std::string p = check_dht(b, i); !p.empty()) return p;
    i += (size_t{byte_at(b, i)} << 8 | byte_at(b, i + 1));
  }
  // From the first scan on, entropy-coded data ends wherever stb's decoder decides; every
  // FF C4 there is checked as a DHT (valid scan data escapes FF as FF 00, so in a valid file
  // each is a real table).
  for (; i + 1 < b.size(); ++i)
    if (byte_at(b, i) == 0xFF && byte_at(b, i + 1) == kDht)
      if (std::string p = check_dht(b, i + 2); !p.empty()) return p;
  return {};
}

}  // namespace fragile::nn
