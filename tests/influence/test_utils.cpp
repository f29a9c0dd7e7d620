// Small pieces of influence/: the gzip decoder on hand-made streams (fixed Huffman, stored
// block, corruption), rank statistics, histogram binning and the PNG plots.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "core/error.h"
#include "influence/gzip.h"
#include "influence/plot.h"
#include "influence/stats.h"

namespace fragile::influence {
namespace {

// Python: gzip.compress(b"fragile fragile fragile: influence functions\n" * 3, mtime=0)
const std::vector<uint8_t> kFixed = {
    31,  139, 8,   0,   0,   0,   0,   0,   2,   3,   75,  43,  74,  76,  207, 204, 73,  85,  72,
    67,  165, 173, 20,  50,  243, 210, 114, 74,  83,  243, 146, 129, 66,  165, 121, 201, 37,  153,
    249, 121, 197, 92,  105, 52,  83,  12,  0,   196, 90,  44,  110, 135, 0,   0,   0};
// Python: zlib.compressobj(0, DEFLATED, 31) of b"stored!" (one stored block)
const std::vector<uint8_t> kStored = {31,  139, 8,   0,   0,   0,   0,   0,   4,   3,
                                      1,   7,   0,   248, 255, 115, 116, 111, 114, 101,
                                      100, 33,  162, 101, 239, 9,   7,   0,   0,   0};

std::string str(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }

TEST(Gzip, FixedHuffmanAndStoredBlocks) {
  std::string expect;
  for (int i = 0; i < 3; ++i) expect += "fragile fragile fragile: influence functions\n";
  EXPECT_EQ(str(gunzip(kFixed)), expect);
  EXPECT_EQ(str(gunzip(kStored)), "stored!");
  // Two members back to back decode as their concatenation (gzip's rule).
  std::vector<uint8_t> both = kStored;
  both.insert(both.end(), kStored.begin(), kStored.end());
  EXPECT_EQ(str(gunzip(both)), "stored!stored!");
}

TEST(Gzip, CorruptOrTruncatedStreamsThrow) {
  std::vector<uint8_t> bad = kFixed;
  bad[30] ^= 0x40;  // flips a bit inside the compressed data: bad code or CRC mismatch
  EXPECT_THROW(gunzip(bad, "bad"), Error);
  std::vector<uint8_t> cut(kFixed.begin(), kFixed.begin() + 30);
  EXPECT_THROW(gunzip(cut, "cut"), Error);
  EXPECT_THROW(gunzip({1, 2, 3}, "junk"), Error);
}

TEST(Stats, PearsonSpearmanOverlap) {
  EXPECT_NEAR(pearson({1, 2, 3, 4}, {2, 4, 6, 8}), 1.0, 1e-15);
  EXPECT_NEAR(pearson({1, 2, 3, 4}, {8, 6, 4, 2}), -1.0, 1e-15);
  // scipy.stats.spearmanr([1, 2, 2, 3, 5], [2, 1, 4, 3, 9]).correlation
  EXPECT_NEAR(spearman({1, 2, 2, 3, 5}, {2, 1, 4, 3, 9}), 0.6668859288553503, 1e-12);
  const std::vector<double> r = average_ranks({10, 20, 20, 5});
  EXPECT_EQ(r, (std::vector<double>{2, 3.5, 3.5, 1}));
  EXPECT_EQ(top_k_overlap({9, 8, 7, 1, 0}, {9, 0, 7, 1, 8}, 3), 2);  // {0,1,2} vs {0,4,2}
  EXPECT_EQ(top_k_overlap({1, 2, 3}, {1, 2, 3}, 5), 3);
}

TEST(Plot, HistogramAndPngFiles) {
  EXPECT_EQ(histogram({0, 1, 44.9, 45, 89, 90, 100, -3}, 2, 0, 90),
            (std::vector<int64_t>{4, 4}));
  const auto dir = std::filesystem::temp_directory_path() / "fragile_influence_plot_test";
  std::filesystem::remove_all(dir);
  write_scatter_png(dir / "s.png", {{{0, 1, 2}, {0.5, 1, 3}, 0xd62728, 3, "targeted"}},
                    "Influence before vs after", "before", "after");
  write_histogram_png(dir / "h.png", {1, 5, 2}, 0, 90, "Angle", "degrees");
  for (const char* f : {"s.png", "h.png"}) {
    const std::vector<uint8_t> b = read_file_bytes(dir / f);
    ASSERT_GT(b.size(), 100u) << f;
    EXPECT_EQ(b[1], 'P');
    EXPECT_EQ(b[2], 'N');
    EXPECT_EQ(b[3], 'G');
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace fragile::influence
