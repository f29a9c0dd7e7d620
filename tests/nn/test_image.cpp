#include "nn/image.h"
#include "nn/onnx_io.h"
#include "tests/nn/nn_test_util.h"

namespace fragile::nntest {
namespace {

TEST(Image, DecodesPngAndJpeg) {
  nn::Image png = nn::load_image(shared_path("images/chelsea.png"));
  EXPECT_EQ(png.width, 451);
  EXPECT_EQ(png.height, 300);
  EXPECT_EQ(png.rgb.size(), 451u * 300u * 3u);
  nn::Image jpg = nn::load_image(shared_path("images/rocket.jpg"));
  EXPECT_EQ(jpg.width, 640);
  EXPECT_EQ(jpg.height, 427);
}

TEST(Image, BadFilesGiveOneClearError) {
  const fs::path d = temp_dir("image_bad");
  EXPECT_ERROR_WITH(nn::load_image(d / "nope.png"), "cannot open image", "no such file");
  write_bytes(d / "text.png", "this is not an image\n");
  EXPECT_ERROR_WITH(nn::load_image(d / "text.png"), "cannot decode image", "text.png",
                    "not a PNG or JPEG file");
  write_bytes(d / "empty.jpg", "");
  EXPECT_ERROR_WITH(nn::load_image(d / "empty.jpg"), "cannot decode image");
  // A PNG cut in half.
  const std::string png = read_bytes(shared_path("images/chelsea.png"));
  write_bytes(d / "half.png", png.substr(0, png.size() / 2));
  EXPECT_ERROR_WITH(nn::load_image(d / "half.png"), "cannot decode image",
                    "a corrupt, truncated or unsupported PNG file");
  // The PNG signature and nothing else; a JPEG's first 60 bytes.
  write_bytes(d / "sig.png", png.substr(0, 8));
  EXPECT_ERROR_WITH(nn::load_image(d / "sig.png"), "a corrupt, truncated or unsupported PNG file (8 bytes");
  const std::string jpg = read_bytes(shared_path("images/rocket.jpg"));
  write_bytes(d / "cut.jpg", jpg.substr(0, 60));
  EXPECT_ERROR_WITH(nn::load_image(d / "cut.jpg"), "a corrupt, truncated or unsupported JPEG file");
  // A well-formed PNG header declaring 40000 x 1 pixels: past the decoder's side limit, said so
  // (stb does not check chunk CRCs, so zeros do).
  std::string wide = png.substr(0, 8);
  wide += std::string("\0\0\0\x0dIHDR", 8);
  wide += std::string("\0\0\x9c\x40\0\0\0\x01\x08\x02\0\0\0", 13);  // 40000, 1, RGB8
  wide += std::string(4, '\0');                                            // CRC
  write_bytes(d / "wide.png", wide);
  EXPECT_ERROR_WITH(nn::load_image(d / "wide.png"), "a PNG too large to decode");
  EXPECT_ERROR_WITH(nn::load_image(d), "not a regular file");
}

// A DHT segment whose Huffman table counts more than 256 codes made Debian's stb_image (2.27)
// write past its arrays (tools/fuzz.sh found it); nn/jpeg_guard.cpp refuses such a table
// wherever stb could read it, and only there.
TEST(Image, HuffmanTableOfMoreThan256CodesIsRefused) {
  const std::string dht = std::string("\xFF\xC4\x00\x13\x00", 5) + std::string(16, '\xFF');
  const std::string soi("\xFF\xD8", 2);
  EXPECT_ERROR_WITH(nn::decode_image(soi + dht, "'a.jpg'"), "cannot decode image 'a.jpg'",
                    "a corrupt JPEG file (a Huffman table of 4080 codes (at most 256)");
  // stb also takes fill bytes before the start-of-image marker and junk between segments.
  EXPECT_ERROR_WITH(nn::decode_image("\xFF\xFF" + soi.substr(1) + "junk" + dht, "b"),
                    "Huffman table of 4080 codes");
  // After the first scan every FF C4 is a table for stb (the scan data's end is its call).
  const std::string jpg = read_bytes(shared_path("images/rocket.jpg"));
  EXPECT_ERROR_WITH(nn::decode_image(jpg.substr(0, jpg.size() - 2) + dht + "\xFF\xD9", "c"),
                    "Huffman table of 4080 codes");
  // The same bytes inside an APP1 payload (an EXIF block, say) are not a table: the photo
  // decodes exactly as without it.
  const std::string payload = "Exif" + dht;
  std::string app1("\xFF\xE1", 2);
  app1 += static_cast<char>((payload.size() + 2) >> 8);
  app1 += static_cast<char>((payload.size() + 2) & 0xFF);
  const nn::Image with_app1 = nn::decode_image(soi + app1 + payload + jpg.substr(2), "d");
  const nn::Image plain = nn::decode_image(jpg, "e");
  EXPECT_EQ(with_app1.width, plain.width);
  EXPECT_EQ(with_app1.rgb, plain.rgb);
}

// A scan decoding with a Huffman table that no DHT segment defined made stb decode with
// uninitialised memory; refused. Bytes after the end-of-image marker are never decoded, so a
// bad table there is left alone: such a file decodes.
TEST(Image, ScanWithAnUndefinedHuffmanTableIsRefusedAndTrailingDataIsNot) {
  const std::string jpg = read_bytes(shared_path("images/rocket.jpg"));
  // rocket.jpg defines DC and AC tables 0 and 1; its scan header (FF DA at byte 1027) gives
  // components 1, 2, 3 the tables 0/0, 1/1, 1/1. Give component 3 tables 3/3.
  ASSERT_EQ(jpg.substr(1027, 2), std::string("\xFF\xDA", 2));
  ASSERT_EQ(static_cast<uint8_t>(jpg[1027 + 10]), 0x11);
  std::string undefined = jpg;
  undefined[1027 + 10] = '\x33';
  EXPECT_ERROR_WITH(nn::decode_image(undefined, "u"), "cannot decode image u",
                    "a scan at byte 1027 decodes with DC Huffman table 3, which no DHT segment "
                    "defined");
  undefined[1027 + 10] = '\x13';
  EXPECT_ERROR_WITH(nn::decode_image(undefined, "u"), "AC Huffman table 3");
  // After EOI: a bad table, then more bytes. Decodes as the photo alone.
  const std::string dht = std::string("\xFF\xC4\x00\x13\x00", 5) + std::string(16, '\xFF');
  const nn::Image trailing = nn::decode_image(jpg + dht + "trailer", "t");
  const nn::Image plain = nn::decode_image(jpg, "p");
  EXPECT_EQ(trailing.width, plain.width);
  EXPECT_EQ(trailing.rgb, plain.rgb);
}

// Center crop + bilinear with half-pixel centers, BGR, mean: against the PyTorch pipeline
// (F.interpolate(align_corners=False, antialias=False)) in gen_onnx_models.py.
TEST(Image, PreprocessMatchesPyTorch) {
  nn::Model model = nn::load_onnx(shared_path("models/squeezenet1.0.onnx"));
  const nn::Preprocess p = nn::preprocess_from_metadata(model);
  EXPECT_EQ(p.channel_order, "BGR");
  EXPECT_EQ(p.size, 227);
  EXPECT_EQ(p.mean, (std::vector<double>{104, 117, 123}));
  Tensor x = nn::preprocess_image(nn::load_image(shared_path("images/chelsea.png")), p);
  Tensor ref = npy(manifest()["chelsea_preprocessed"]);
  ASSERT_EQ(x.shape(), (Shape{1, 3, 227, 227}));
  const auto a = x.to_vector(), b = ref.to_vector();
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
  EXPECT_LT(worst, 1e-3);
}

// GRAY models (the shipped Fashion-MNIST CNN) read one luma channel, as PIL's convert("L"):
// pure red, green and blue are 76, 150 and 29 there; a gray pixel keeps its value.
TEST(Image, GrayChannelOrderIsPilLuma) {
  nn::Image img;
  img.width = 4;
  img.height = 1;
  img.rgb = {255, 0, 0, 0, 255, 0, 0, 0, 255, 77, 77, 77};
  nn::Preprocess p;
  p.channel_order = "GRAY";
  p.resize = "none";
  p.scale = {0.5};
  p.mean = {10};
  const Tensor x = nn::preprocess_image(img, p);
  ASSERT_EQ(x.shape(), (Shape{1, 1, 1, 4}));
  EXPECT_EQ(x.to_vector(), (std::vector<double>{(76 - 10) * 0.5, (150 - 10) * 0.5,
                                                (29 - 10) * 0.5, (77 - 10) * 0.5}));
  p.mean = {1, 2, 3};  // three means for one channel
  EXPECT_ERROR_WITH(nn::preprocess_image(img, p),
                    "mean has 3 values; the model's 1-channel input takes 1 value");
  p.mean = {0};
  p.channel_order = "CMYK";
  EXPECT_ERROR_WITH(nn::preprocess_image(img, p), "RGB, BGR or GRAY", "CMYK");
}

// The shipped model's sample images are Fashion-MNIST test images written as gray PNGs: they
// come back as the data set's pixels / 255.
TEST(Image, FashionSampleMatchesItsPixels) {
  nn::Model model = nn::load_onnx(fs::path(FRAGILE_SOURCE_DIR) / "tools/models/fashion_cnn.onnx");
  const nn::Preprocess p = nn::preprocess_from_metadata(model);
  EXPECT_EQ(p.channel_order, "GRAY");
  EXPECT_EQ(p.size, 28);
  const fs::path png = fs::path(FRAGILE_SOURCE_DIR) / "tools/models/fashion_samples/test0_ankle_boot.png";
  const nn::Image img = nn::load_image(png);
  const Tensor x = nn::load_input(png, p);
  ASSERT_EQ(x.shape(), (Shape{1, 1, 28, 28}));
  const auto v = x.to_vector();
  for (size_t i = 0; i < v.size(); ++i) {
    ASSERT_NEAR(v[i], img.rgb[i * 3] / 255.0, 1e-6) << "pixel " << i;
  }
}

TEST(Image, ResizeModesAndChannelOrder) {
  // 4x2 image (w=4, h=2): pixel (y, x) has R = 10x + y, G = 100, B = 200 + y.
  nn::Image img;
  img.width = 4;
  img.height = 2;
  for (int y = 0; y < 2; ++y) {
    for (int x = 0; x < 4; ++x) {
      img.rgb.push_back(static_cast<uint8_t>(10 * x + y));
      img.rgb.push_back(100);
      img.rgb.push_back(static_cast<uint8_t>(200 + y));
    }
  }
  nn::Preprocess p;
  p.resize = "none";
  p.size = 0;
  Tensor t = nn::preprocess_image(img, p);
  EXPECT_EQ(t.shape(), (Shape{1, 3, 2, 4}));
  EXPECT_EQ(t.to_vector()[3], 30.0);  // R at (0, 3)

  // Center square crop keeps columns 1..2; upscaling 2 -> 4 with half-pixel centers gives
  // source x = (o + 0.5) / 2 - 0.5 = -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1).
  p.resize = "center-crop-square,bilinear";
  p.size = 4;
  p.channel_order = "BGR";
  p.mean = {200, 100, 0};
  p.scale = {1, 1, 0.5};
  t = nn::preprocess_image(img, p);
  const auto v = t.to_vector();
  // Channel 2 is R: columns map to 10 + 10 * {0, 0.25, 0.75, 1} at row y=0 (source y -0.25 -> 0).
  const double r_row0[] = {10, 12.5, 17.5, 20};
  for (int x = 0; x < 4; ++x) EXPECT_NEAR(v[2 * 16 + x], 0.5 * r_row0[x], 1e-6) << x;
  // Channel 0 is B - 200 = y, rows interpolate 0, 0.25, 0.75, 1.
  const double b_rows[] = {0, 0.25, 0.75, 1};
  for (int y = 0; y < 4; ++y) EXPECT_NEAR(v[y * 4], b_rows[y], 1e-6) << y;
  EXPECT_NEAR(v[16], 0.0, 1e-6);  // G - 100

  p.resize = "stretch,bilinear";
  p.size = 2;
  p.channel_order = "RGB";
  p.mean = {0};
  p.scale = {1};
  t = nn::preprocess_image(img, p);
  // 4 -> 2 columns: source x = 0.5, 2.5 -> R = 5, 25 at row 0.
  EXPECT_NEAR(t.to_vector()[0], 5.0, 1e-6);
  EXPECT_NEAR(t.to_vector()[1], 25.0, 1e-6);

  p.resize = "bogus";
  EXPECT_ERROR_WITH(nn::preprocess_image(img, p), "resize");
  p.resize = "none";
  p.channel_order = "GBR";
  EXPECT_ERROR_WITH(nn::preprocess_image(img, p), "channel order");
  EXPECT_ERROR_WITH(nn::parse_number_list("1,x,3", "--mean"), "--mean");
}

TEST(Image, LoadInputTakesNpyAsIs) {
  const fs::path d = temp_dir("load_input");
  Tensor chw = Tensor::from_vector(std::vector<double>(3 * 4 * 5, 0.5), {3, 4, 5});
  nn::write_npy(d / "x.npy", chw);
  Tensor x = nn::load_input(d / "x.npy", nn::Preprocess{});
  EXPECT_EQ(x.shape(), (Shape{1, 3, 4, 5}));
  nn::write_npy(d / "bad.npy", Tensor::zeros({2, 4, 5}));
  EXPECT_ERROR_WITH(nn::load_input(d / "bad.npy", nn::Preprocess{}), "[C,H,W] or [N,C,H,W]");
  // A gray [1,H,W] array is a valid single image.
  nn::write_npy(d / "g.npy", Tensor::zeros({1, 4, 5}));
  EXPECT_EQ(nn::load_input(d / "g.npy", nn::Preprocess{}).shape(), (Shape{1, 1, 4, 5}));
  EXPECT_ERROR_WITH(nn::load_input(d / "missing.png", nn::Preprocess{}), "no such file");
}

}  // namespace
}  // namespace fragile::nntest
