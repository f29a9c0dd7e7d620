#include "nn/jpeg_guard.h"

#include <cstddef>
#include <cstdint>

#include "core/error.h"

namespace fragile::nn {
namespace {

constexpr uint8_t kDht = 0xC4, kSos = 0xDA, kEoi = 0xD9, kSofProgressive = 0xC2;

// stb's reader: a byte past the end reads as 0.
uint8_t byte_at(const std::string& b, size_t i) {
  return i < b.size() ? static_cast<uint8_t>(b[i]) : 0;
}

size_t length_at(const std::string& b, size_t i) {
  return size_t{byte_at(b, i)} << 8 | byte_at(b, i + 1);
}

// The Huffman tables defined so far: [class: 0 DC, 1 AC][id 0..3].
using DefinedTables = bool[2][4];

// Reads the DHT segment whose length field starts at `at` as stb's stbi__process_marker does,
// table by table, marking each table it defines; returns the problem, if any. A header stb
// refuses itself (table class > 1 or id > 3) ends the check: stb stops there too.
std::string check_dht(const std::string& b, size_t at, DefinedTables& defined) {
  int64_t left = static_cast<int64_t>(length_at(b, at)) - 2;
  size_t i = at + 2;
  while (left > 0) {
    const uint8_t q = byte_at(b, i);
    if ((q >> 4) > 1 || (q & 15) > 3) return {};
    int codes = 0;
    for (int k = 0; k < 16; ++k) codes += byte_at(b, i + 1 + k);
    if (codes > 256)
      return detail::concat("a Huffman table of ", codes, " codes (at most 256) at byte ", i);
    defined[q >> 4][q & 15] = true;
    i += 17 + codes;
    left -= 17 + codes;
    if (i > b.size()) return {};  // truncated: stb reads zeros from here on
  }
  return {};
}

// Reads the SOS header whose length field starts at `at` as stbi__process_scan_header does and
// refuses a scan that decodes with a table no DHT defined before it: stb would decode with
// the uninitialised memory of that table. Which tables a scan decodes with: both for a
// baseline frame; for a progressive one, the DC table in a first DC scan (spectral start 0,
// no successive approximation high bit), none in a DC refinement, the AC table in an AC scan.
std::string check_sos(const std::string& b, size_t at, bool progressive,
                      const DefinedTables& defined) {
  const int components = byte_at(b, at + 2);
  const size_t after = at + 3 + 2 * size_t(components);
  const uint8_t spectral_start = byte_at(b, after), approx_high = byte_at(b, after + 1) >> 4;
  const bool uses_dc = !progressive || (spectral_start == 0 && approx_high == 0);
  const bool uses_ac = !progressive || spectral_start != 0;
  for (int c = 0; c < components; ++c) {
    const uint8_t q = byte_at(b, at + 4 + 2 * size_t(c));
    const int dc = q >> 4, ac = q & 15;
    if (dc > 3 || ac > 3) return {};  // stb refuses the scan itself
    const char* missing = uses_dc && !defined[0][dc] ? "DC" : uses_ac && !defined[1][ac] ? "AC"
                                                                                          : nullptr;
    if (missing != nullptr)
      return detail::concat("a scan at byte ", at - 2, " decodes with ", missing,
                            " Huffman table ", (*missing == 'D' ? dc : ac),
                            ", which no DHT segment defined");
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
  DefinedTables defined = {};
  bool progressive = false;
  // Walk the segments as stb does: junk between segments is skipped byte by byte, 0xFF fill
  // bytes before a marker too, and each segment's length skips its payload (so bytes inside an
  // EXIF thumbnail or ICC profile are not mistaken for markers). After a scan header comes
  // entropy-coded data, walked byte by byte: it ends at the first marker that is not a restart
  // (valid scan data escapes FF as FF 00), and stb, which may stop reading it earlier, takes the
  // next FF xx after its stop as a marker, so every FF C4 in it is checked as a table. Where
  // stb would fail instead (FF 00, a restart or FF FF where it wants a marker), this walk reads
  // on: it checks more than stb reads, never less. EOI ends it all: bytes after it are never
  // decoded, so trailing data there is left alone.
  while (i + 1 < b.size()) {
    if (byte_at(b, i) != 0xFF) {
      ++i;
      continue;
    }
    while (byte_at(b, i) == 0xFF && i < b.size()) ++i;
    const uint8_t marker = byte_at(b, i++);
    if (marker == kEoi) return {};
    if (marker == 0x00 || marker == 0x01 || marker == 0xD8 || (marker >= 0xD0 && marker <= 0xD7))
      continue;  // stuffed FF, TEM, SOI, restarts: no length follows
    if (marker == 0xC0 || marker == 0xC1 || marker == kSofProgressive)
      progressive = marker == kSofProgressive;
    if (marker == kDht)
      if (std::string p = check_dht(b, i, defined); !p.empty()) return p;
    if (marker == kSos)
      if (std::string p = check_sos(b, i, progressive, defined); !p.empty()) return p;
    i += length_at(b, i);  // after SOS: to its entropy-coded data, walked as junk is
  }
  return {};
}

}  // namespace fragile::nn
