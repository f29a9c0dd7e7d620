#include "influence/gzip.h"

#include <array>
#include <cstring>
#include <fstream>

#include "core/error.h"

namespace fragile::influence {

namespace {

constexpr int kMaxBits = 15;   // longest DEFLATE code
constexpr int kFastBits = 10;  // codes up to this length decode with one table lookup

// Reads bits LSB-first. Past the end it feeds zeros, counting them, so a table lookup may peek
// beyond the last byte; consuming them is an error (truncated stream).
struct BitReader {
  const uint8_t* data;
  size_t size;
  size_t pos = 0;
  uint64_t buf = 0;
  int cnt = 0;
  size_t overrun = 0;  // zero bytes fed past the end

  void fill(int k) {
    while (cnt < k) {
      uint64_t byte = 0;
      if (pos < size) {
        byte = data[pos++];
      } else {
        ++overrun;
      }
      buf |= byte << cnt;
      cnt += 8;
    }
  }
  uint32_t peek(int k) {
    fill(k);
    return static_cast<uint32_t>(buf & ((uint64_t{1} << k) - 1));
  }
  void drop(int k) {
    buf >>= k;
    cnt -= k;
    // Bits still buffered that came from real bytes: (cnt - 8 * overrun) must stay >= 0.
    FRAGILE_CHECK(static_cast<int64_t>(cnt) >= 8 * static_cast<int64_t>(overrun),
                  "inflate: unexpected end of compressed data");
  }
  uint32_t bits(int k) {
    if (k == 0) return 0;
    uint32_t v = peek(k);
    drop(k);
    return v;
  }
  void align() { drop(cnt % 8); }
  // Bytes of real input consumed so far.
  size_t consumed() const { return pos - (cnt / 8 - overrun); }
};

// Canonical Huffman code (RFC 1951 3.2.2): count[len] codes of each length, symbols ordered by
// (length, value); fast[] maps the next kFastBits input bits (LSB first) to symbol << 4 | length.
struct Huffman {
  std::array<uint16_t, kMaxBits + 1> count{};
  std::array<uint16_t, 320> symbol{};
  std::array<uint16_t, 1 << kFastBits> fast{};

  void build(const uint8_t* lengths, int n) {
    count.fill(0);
    fast.fill(0);
    for (int s = 0; s < n; ++s) ++count[lengths[s]];
    int left = 1;
    for (int len = 1; len <= kMaxBits; ++len) {
      left = (left << 1) - count[len];
      FRAGILE_CHECK(left >= 0, "inflate: over-subscribed Huffman code");
    }
    std::array<uint16_t, kMaxBits + 2> offs{};
    for (int len = 1; len <= kMaxBits; ++len) offs[len + 1] = offs[len] + count[len];
    std::array<uint32_t, kMaxBits + 1> next{};
    uint32_t code = 0;
    count[0] = 0;
    for (int len = 1; len <= kMaxBits; ++len) {
      code = (code + count[len - 1]) << 1;
      next[len] = code;
    }
    for (int s = 0; s < n; ++s) {
      const int len = lengths[s];
      if (len == 0) continue;
      symbol[offs[len]++] = static_cast<uint16_t>(s);
      const uint32_t c = next[len]++;
      if (len > kFastBits) continue;
      uint32_t rev = 0;  // codes are sent MSB first; the reader is LSB first
      for (int b = 0; b < len; ++b) rev |= ((c >> b) & 1u) << (len - 1 - b);
      for (uint32_t k = rev; k < (1u << kFastBits); k += 1u << len) {
        fast[k] = static_cast<uint16_t>(s << 4 | len);
      }
    }
  }

  int decode(BitReader& in) const {
    const uint16_t e = fast[in.peek(kFastBits)];
    if (e != 0) {
      in.drop(e & 15);
      return e >> 4;
    }
    // Slow path (puff.c): walk the lengths one bit at a time.
    int code = 0, first = 0, index = 0;
    for (int len = 1; len <= kMaxBits; ++len) {
      code |= static_cast<int>(in.bits(1));
      const int c = count[len];
      if (code - c < first) return symbol[index + (code - first)];
      index += c;
      first = (first + c) << 1;
      code <<= 1;
    }
    FRAGILE_FAIL("inflate: invalid Huffman code");
  }
};

constexpr uint16_t kLenBase[29] = {3,  4,  5,  6,  7,  8,  9,  10, 11,  13,  15,  17,  19,  23, 27,
                                   31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
constexpr uint8_t kLenExtra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                   2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
constexpr uint16_t kDistBase[30] = {1,    2,    3,    4,    5,    7,     9,     13,    17,  25,
                                    33,   49,   65,   97,   129,  193,   257,   385,   513, 769,
                                    1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
constexpr uint8_t kDistExtra[30] = {0, 0, 0, 0, 1, 1, 2, 2,  3,  3,  4,  4,  5,  5,  6,
                                    6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

void inflate_codes(BitReader& in, const Huffman& lit, const Huffman& dist,
                   std::vector<uint8_t>& out) {
  for (;;) {
    int sym = lit.decode(in);
    if (sym < 256) {
      out.push_back(static_cast<uint8_t>(sym));
    } else if (sym == 256) {
      return;
    } else {
      sym -= 257;
      FRAGILE_CHECK(sym < 29, "inflate: invalid length symbol");
      const size_t len = kLenBase[sym] + in.bits(kLenExtra[sym]);
      const int ds = dist.decode(in);
      FRAGILE_CHECK(ds < 30, "inflate: invalid distance symbol");
      const size_t d = kDistBase[ds] + in.bits(kDistExtra[ds]);
      FRAGILE_CHECK(d <= out.size(), "inflate: distance too far back");
      const size_t from = out.size() - d;
      for (size_t k = 0; k < len; ++k) out.push_back(out[from + k]);  // may overlap
    }
  }
}

void fixed_tables(Huffman& lit, Huffman& dist) {
  uint8_t l[288];
  for (int s = 0; s < 144; ++s) l[s] = 8;
  for (int s = 144; s < 256; ++s) l[s] = 9;
  for (int s = 256; s < 280; ++s) l[s] = 7;
  for (int s = 280; s < 288; ++s) l[s] = 8;
  lit.build(l, 288);
  uint8_t d[30];
  std::memset(d, 5, sizeof d);
  dist.build(d, 30);
}

void dynamic_tables(BitReader& in, Huffman& lit, Huffman& dist) {
  static constexpr uint8_t kOrder[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5,
                                         11, 4,  12, 3, 13, 2, 14, 1, 15};
  const int nlen = static_cast<int>(in.bits(5)) + 257;
  const int ndist = static_cast<int>(in.bits(5)) + 1;
  const int ncode = static_cast<int>(in.bits(4)) + 4;
  FRAGILE_CHECK(nlen <= 286 && ndist <= 30, "inflate: bad dynamic block counts");
  uint8_t lengths[320] = {};
  for (int k = 0; k < ncode; ++k) lengths[kOrder[k]] = static_cast<uint8_t>(in.bits(3));
  Huffman lencode;
  lencode.build(lengths, 19);
  int idx = 0;
  while (idx < nlen + ndist) {
    const int sym = lencode.decode(in);
    if (sym < 16) {
      lengths[idx++] = static_cast<uint8_t>(sym);
      continue;
    }
    uint8_t value = 0;
    int rep = 0;
    if (sym == 16) {
      FRAGILE_CHECK(idx > 0, "inflate: repeat with no previous length");
      value = lengths[idx - 1];
      rep = 3 + static_cast<int>(in.bits(2));
    } else if (sym == 17) {
      rep = 3 + static_cast<int>(in.bits(3));
    } else {
      rep = 11 + static_cast<int>(in.bits(7));
    }
    FRAGILE_CHECK(idx + rep <= nlen + ndist, "inflate: too many code lengths");
    while (rep-- > 0) lengths[idx++] = value;
  }
  FRAGILE_CHECK(lengths[256] != 0, "inflate: no end-of-block code");
  lit.build(lengths, nlen);
  dist.build(lengths + nlen, ndist);
}

uint32_t crc32(const uint8_t* p, size_t n) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) c = table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

uint32_t le32(const uint8_t* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}

}  // namespace

std::vector<uint8_t> inflate(const uint8_t* data, size_t size, size_t* consumed) {
  BitReader in{data, size};
  std::vector<uint8_t> out;
  Huffman lit, dist;
  bool last = false;
  while (!last) {
    last = in.bits(1) != 0;
    const uint32_t type = in.bits(2);
    if (type == 0) {  // stored
      in.align();
      const uint32_t len = in.bits(16);
      const uint32_t nlen = in.bits(16);
      FRAGILE_CHECK((len ^ 0xFFFFu) == nlen, "inflate: stored block length mismatch");
      for (uint32_t k = 0; k < len; ++k) out.push_back(static_cast<uint8_t>(in.bits(8)));
    } else if (type == 1) {
      fixed_tables(lit, dist);
      inflate_codes(in, lit, dist, out);
    } else if (type == 2) {
      dynamic_tables(in, lit, dist);
      inflate_codes(in, lit, dist, out);
    } else {
      FRAGILE_FAIL("inflate: invalid block type 3");
    }
  }
  in.align();
  if (consumed) *consumed = in.consumed();
  return out;
}

std::vector<uint8_t> gunzip(const std::vector<uint8_t>& bytes, const std::string& what) {
  std::vector<uint8_t> out;
  size_t at = 0;
  try {
    while (at < bytes.size()) {
      const uint8_t* p = bytes.data() + at;
      const size_t left = bytes.size() - at;
      FRAGILE_CHECK(left >= 18 && p[0] == 0x1f && p[1] == 0x8b, "not a gzip stream");
      FRAGILE_CHECK(p[2] == 8, "unknown compression method ", int{p[2]});
      const uint8_t flags = p[3];
      size_t h = 10;
      auto need = [&](size_t k) { FRAGILE_CHECK(h + k <= left, "truncated gzip header"); };
      if (flags & 4) {  // FEXTRA
        need(2);
        h += 2 + (size_t{p[h]} | size_t{p[h + 1]} << 8);
      }
      for (int bit : {8, 16}) {  // FNAME, FCOMMENT: zero-terminated
        if (flags & bit) {
          while (need(1), p[h] != 0) ++h;
          ++h;
        }
      }
      if (flags & 2) h += 2;  // FHCRC
      need(0);
      size_t used = 0;
      std::vector<uint8_t> part = inflate(p + h, left - h, &used);
      FRAGILE_CHECK(h + used + 8 <= left, "truncated gzip trailer");
      const uint8_t* t = p + h + used;
      FRAGILE_CHECK(le32(t) == crc32(part.data(), part.size()), "CRC-32 mismatch");
      FRAGILE_CHECK(le32(t + 4) == static_cast<uint32_t>(part.size()), "size mismatch");
      out.insert(out.end(), part.begin(), part.end());
      at += h + used + 8;
    }
  } catch (const Error& e) {
    FRAGILE_FAIL("cannot decompress ", what, ": ", e.what());
  }
  return out;
}

std::vector<uint8_t> read_file_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  FRAGILE_CHECK(in, "cannot open ", path.string());
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return bytes;
}

std::vector<uint8_t> read_maybe_gzip(const std::filesystem::path& path) {
  std::vector<uint8_t> bytes = read_file_bytes(path);
  if (bytes.size() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b) {
    return gunzip(bytes, path.string());
  }
  return bytes;
}

}  // namespace fragile::influence
