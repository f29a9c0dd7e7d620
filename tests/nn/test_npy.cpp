#include <cmath>
#include <limits>

#include "nn/image.h"
#include "nn/npy.h"
#include "tests/nn/nn_test_util.h"

namespace fragile::nntest {
namespace {

TEST(Npy, RoundTripFloat32AndFloat64) {
  const fs::path d = temp_dir("npy_rt");
  for (DType dt : {DType::Float32, DType::Float64}) {
    for (const Shape& shape : {Shape{}, Shape{5}, Shape{2, 3}, Shape{1, 3, 4, 2}, Shape{0, 3}}) {
      std::vector<double> vals(numel_of(shape));
      for (size_t i = 0; i < vals.size(); ++i) vals[i] = 0.25 * static_cast<double>(i) - 1.0;
      Tensor t = Tensor::from_vector(vals, shape, dt);
      nn::write_npy(d / "a.npy", t);
      Tensor r = nn::read_npy(d / "a.npy");
      EXPECT_EQ(r.dtype(), dt);
      EXPECT_EQ(r.shape(), shape);
      EXPECT_EQ(r.to_vector(), vals);
      // Data starts at a multiple of 64 bytes (format 1.0 alignment rule).
      const std::string bytes = read_bytes(d / "a.npy");
      const size_t header = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
      EXPECT_EQ((10 + header) % 64, 0u);
      EXPECT_EQ(bytes[10 + header - 1], '\n');
    }
  }
}

TEST(Npy, ReadsNumpyWrittenFileAndVersion2Header) {
  // np.save(np.arange(6, dtype='<f4').reshape(2, 3)) with a version 2.0 header.
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  header.append(64 - (12 + header.size() + 1) % 64, ' ');
  header += '\n';
  std::string bytes("\x93NUMPY\x02\x00", 8);
  const uint32_t len = static_cast<uint32_t>(header.size());
  bytes.append(reinterpret_cast<const char*>(&len), 4);
  bytes += header;
  for (int i = 0; i < 6; ++i) {
    const float f = static_cast<float>(i);
    bytes.append(reinterpret_cast<const char*>(&f), 4);
  }
  Tensor t = nn::parse_npy(bytes, "v2");
  EXPECT_EQ(t.shape(), (Shape{2, 3}));
  EXPECT_EQ(t.to_vector(), (std::vector<double>{0, 1, 2, 3, 4, 5}));
}

TEST(Npy, RejectsNonFiniteValues) {
  const fs::path d = temp_dir("npy_nan");
  nn::write_npy(d / "nan.npy",
                Tensor::from_vector({1.0, std::nan(""), 2.0}, {3}, DType::Float32));
  EXPECT_ERROR_WITH(nn::read_npy(d / "nan.npy"), "NaN", "index 1", "nan.npy");
  nn::write_npy(d / "inf.npy",
                Tensor::from_vector({std::numeric_limits<double>::infinity()}, {1}));
  EXPECT_ERROR_WITH(nn::read_npy(d / "inf.npy"), "inf");
  EXPECT_TRUE(std::isnan(nn::read_npy(d / "nan.npy", /*allow_non_finite=*/true).to_vector()[1]));
}

TEST(Npy, RejectsMalformedFiles) {
  const fs::path d = temp_dir("npy_bad");
  EXPECT_ERROR_WITH(nn::read_npy(d / "missing.npy"), "no such file");
  EXPECT_ERROR_WITH(nn::parse_npy("hello world", "x"), "not a .npy file");
  const std::string good = nn::serialize_npy(Tensor::ones({4, 4}, DType::Float64));
  EXPECT_ERROR_WITH(nn::parse_npy(good.substr(0, good.size() - 8), "x"), "truncated");
  EXPECT_ERROR_WITH(nn::parse_npy(good.substr(0, 20), "x"), "truncated");
  std::string ints = good;
  ints.replace(ints.find("<f8"), 3, "<i8");
  EXPECT_ERROR_WITH(nn::parse_npy(ints, "x"), "unsupported .npy dtype", "<i8");
  std::string fortran = good;
  fortran.replace(fortran.find("False"), 5, "True ");
  EXPECT_ERROR_WITH(nn::parse_npy(fortran, "x"), "Fortran");
  std::string big_endian = good;
  big_endian.replace(big_endian.find("<f8"), 3, ">f8");
  EXPECT_ERROR_WITH(nn::parse_npy(big_endian, "x"), "unsupported .npy dtype");
  EXPECT_ERROR_WITH(nn::parse_npy(good + "junk", "x"), "4 bytes after the data");
}

// As an input: a .npy name must hold a .npy array with at least one value.
TEST(Npy, InputFilesMustHoldAnArray) {
  const fs::path d = temp_dir("npy_input");
  nn::Preprocess p;
  write_bytes(d / "text.npy", "not numpy at all");
  EXPECT_ERROR_WITH(nn::load_input(d / "text.npy", p), "not a .npy file");
  nn::write_npy(d / "empty.npy", Tensor::zeros({0, 3, 8, 8}));
  EXPECT_ERROR_WITH(nn::load_input(d / "empty.npy", p), "holds no values");
  nn::write_npy(d / "ok.npy", Tensor::zeros({2, 3, 8, 8}));
  EXPECT_EQ(nn::load_input(d / "ok.npy", p).shape(), (Shape{2, 3, 8, 8}));
}

}  // namespace
}  // namespace fragile::nntest
