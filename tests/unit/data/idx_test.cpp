// Tests of the IDX reader: exact round trips (plain and gzip), every kind of corrupt input, and
// the conversion of image/label arrays into a Dataset.
#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "fedpp/core/rng.hpp"
#include "fedpp/data/idx.hpp"
#include "support/data_idx_files.hpp"
#include "support/temp_dir.hpp"

using namespace fedpp;
using namespace fedpp_test;
namespace fs = std::filesystem;

namespace {

std::vector<std::uint8_t> read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<std::uint8_t> random_bytes(std::size_t n, std::uint64_t seed) {
  auto rng = make_rng(seed, 0, 0, Purpose::user);
  std::vector<std::uint8_t> v(n);
  for (auto& x : v) x = static_cast<std::uint8_t>(rng.uniform_index(256));
  return v;
}

// Runs f, which must throw DataError whose message names `path` and contains every piece of `parts`.
template <typename F>
void check_data_error(F&& f, const std::string& path, std::initializer_list<std::string> parts) {
  try {
    f();
    FAIL("no DataError thrown");
  } catch (const DataError& e) {
    const std::string msg = e.what();
    INFO(msg);
    CHECK(msg.find("'" + path + "'") != std::string::npos);
    for (const auto& p : parts) CHECK(msg.find(p) != std::string::npos);
  }
}

}  // namespace

TEST_CASE("read_idx round-trips plain and gzip files exactly", "[data][idx]") {
  TempDir dir("fedpp_idx_test");
  const bool gz = GENERATE(false, true);
  const auto write = gz ? write_gzip : write_plain;
  const std::string ext = gz ? ".gz" : "";

  // 3-d images (magic 0x00000803) with every byte value, including odd sizes.
  const std::vector<std::uint32_t> dims = {7, 5, 3};
  const auto data = random_bytes(7 * 5 * 3, 11);
  const std::string img = dir.file("img" + ext);
  write(img, idx_bytes(dims, data));
  const IdxArray a = read_idx(img);
  CHECK(a.dims == dims);
  CHECK(a.data == data);
  CHECK(a.items() == 7);
  CHECK(a.item_size() == 15);
  CHECK(read_idx_images(img).data == data);
  CHECK(read_idx(img, 3).dims == dims);

  // 1-d labels (magic 0x00000801).
  const std::vector<std::uint8_t> labels = {0, 9, 3, 3, 1, 7, 2};
  const std::string lbl = dir.file("lbl" + ext);
  write(lbl, idx_bytes({7}, labels));
  const IdxArray l = read_idx_labels(lbl, 10);
  CHECK(l.dims == std::vector<std::uint32_t>{7});
  CHECK(l.data == labels);
  CHECK(l.item_size() == 1);

  // A large file crosses the reader's internal chunk boundaries (1 MiB and up).
  const auto big = random_bytes(3 * 1000 * 1000 + 17, 12);
  const std::string bigf = dir.file("big" + ext);
  write(bigf, idx_bytes({static_cast<std::uint32_t>(big.size())}, big));
  CHECK(read_idx(bigf).data == big);

  // An empty array is valid.
  const std::string empty = dir.file("empty" + ext);
  write(empty, idx_bytes({0, 28, 28}, {}));
  const IdxArray e = read_idx(empty);
  CHECK(e.items() == 0);
  CHECK(e.item_size() == 784);
  CHECK(e.data.empty());
}

TEST_CASE("read_idx reports a missing file or a folder with the path", "[data][idx]") {
  TempDir dir("fedpp_idx_test");
  const std::string missing = dir.file("nope-idx3-ubyte.gz");
  check_data_error([&] { read_idx(missing); }, missing, {"fedpp::read_idx", "not found"});
  check_data_error([&] { read_idx(dir.path.string()); }, dir.path.string(), {"directory"});
}

TEST_CASE("read_idx rejects a bad magic number, element type or number of dimensions", "[data][idx]") {
  TempDir dir("fedpp_idx_test");
  const bool gz = GENERATE(false, true);
  const auto write = gz ? write_gzip : write_plain;
  const std::string p = dir.file(gz ? "x.gz" : "x");

  SECTION("not an IDX file") {
    auto b = idx_bytes({2, 2}, {1, 2, 3, 4});
    b[0] = 0x12;
    write(p, b);
    check_data_error([&] { read_idx(p); }, p, {"magic", "0x12000802"});
  }
  SECTION("a float32 IDX file") {
    write(p, idx_bytes({1}, {0, 0, 0, 0}, 0x0D));
    check_data_error([&] { read_idx(p); }, p, {"unsigned byte", "float32", "0x00000d01"});
  }
  SECTION("zero dimensions") {
    write(p, {0, 0, 8, 0});
    check_data_error([&] { read_idx(p); }, p, {"dimensions"});
  }
  SECTION("a label file read as images, an image file read as labels") {
    write(p, idx_bytes({3}, {1, 2, 3}));
    check_data_error([&] { read_idx_images(p); }, p, {"expected 3 dimension", "0x00000801"});
    write(p, idx_bytes({1, 2, 2}, {1, 2, 3, 4}));
    check_data_error([&] { read_idx_labels(p, 10); }, p, {"expected 1 dimension", "0x00000803"});
  }
  SECTION("shorter than the magic number, or an empty file") {
    write(p, {0, 0});
    check_data_error([&] { read_idx(p); }, p, {"shorter than the 4-byte"});
    write(p, {});
    check_data_error([&] { read_idx(p); }, p, {"shorter than the 4-byte"});
  }
  SECTION("truncated header") {
    write(p, {0, 0, 8, 3, 0, 0, 0, 5, 0, 0});
    check_data_error([&] { read_idx(p); }, p, {"truncated header"});
  }
}

TEST_CASE("read_idx rejects truncated data and trailing bytes", "[data][idx]") {
  TempDir dir("fedpp_idx_test");
  const bool gz = GENERATE(false, true);
  const auto write = gz ? write_gzip : write_plain;
  const std::string p = dir.file(gz ? "x.gz" : "x");
  const auto data = random_bytes(4 * 6 * 6, 3);

  SECTION("one byte missing") {
    auto b = idx_bytes({4, 6, 6}, data);
    b.pop_back();
    write(p, b);
    check_data_error([&] { read_idx(p); }, p, {"truncated data", "4 x 6 x 6", "144 bytes", "got 143"});
  }
  SECTION("header only") {
    write(p, idx_bytes({4, 6, 6}, {}));
    check_data_error([&] { read_idx(p); }, p, {"truncated data", "got 0"});
  }
  SECTION("one trailing byte") {
    auto b = idx_bytes({4, 6, 6}, data);
    b.push_back(0);
    write(p, b);
    check_data_error([&] { read_idx(p); }, p, {"trailing bytes"});
  }
  SECTION("many trailing bytes") {
    auto b = idx_bytes({4, 6, 6}, data);
    b.insert(b.end(), data.begin(), data.end());
    write(p, b);
    check_data_error([&] { read_idx(p); }, p, {"trailing bytes"});
  }
}

TEST_CASE("read_idx rejects implausible headers without allocating for them", "[data][idx]") {
  TempDir dir("fedpp_idx_test");
  const std::string p = dir.file("x");
  // 2^20 x 2^20 x 2^20 elements: beyond the 2^34 cap.
  write_plain(p, idx_bytes({1u << 20, 1u << 20, 1u << 20}, {1, 2, 3}));
  check_data_error([&] { read_idx(p); }, p, {"implausible header"});
  // 2^16 x 2^16 = 4 GiB declared by a 23-byte gzip file: more than deflate can expand to.
  const std::string g = dir.file("x.gz");
  write_gzip(g, idx_bytes({1u << 16, 1u << 16}, {1, 2, 3}));
  check_data_error([&] { read_idx(g); }, g, {"more than a gzip file"});
  // Same for a plain file: caught from the file size before reading the body.
  write_plain(p, idx_bytes({1u << 16, 1u << 16}, {1, 2, 3}));
  check_data_error([&] { read_idx(p); }, p, {"truncated data", "got 3"});
}

TEST_CASE("read_idx rejects corrupt and truncated gzip streams", "[data][idx]") {
  TempDir dir("fedpp_idx_test");
  const std::string src = dir.file("ok.gz");
  const auto data = random_bytes(50000, 5);  // incompressible: the deflate stream is long
  write_gzip(src, idx_bytes({50000}, data));
  const auto gz = read_all(src);
  REQUIRE(gz.size() > 1000);

  SECTION("cut in the middle of the deflate stream") {
    const std::string p = dir.file("cut.gz");
    write_plain(p, std::vector<std::uint8_t>(gz.begin(), gz.begin() + static_cast<std::ptrdiff_t>(gz.size() / 2)));
    check_data_error([&] { read_idx(p); }, p, {"gzip"});
  }
  SECTION("CRC trailer missing") {
    const std::string p = dir.file("nocrc.gz");
    write_plain(p, std::vector<std::uint8_t>(gz.begin(), gz.end() - 8));
    check_data_error([&] { read_idx(p); }, p, {"gzip", "unexpected end of file"});
  }
  SECTION("a flipped byte in the CRC") {
    auto b = gz;
    b[b.size() - 6] ^= 0xFF;
    const std::string p = dir.file("crc.gz");
    write_plain(p, b);
    check_data_error([&] { read_idx(p); }, p, {"gzip"});
  }
}

TEST_CASE("read_idx_labels checks the label range", "[data][idx]") {
  TempDir dir("fedpp_idx_test");
  const std::string p = dir.file("labels.gz");
  write_gzip(p, idx_bytes({5}, {0, 9, 4, 12, 3}));
  check_data_error([&] { read_idx_labels(p, 10); }, p, {"fedpp::read_idx_labels", "label 3", "[0, 10)", "got 12"});
  // The bound itself is out of range: 12 classes are 0..11.
  check_data_error([&] { read_idx_labels(p, 12); }, p, {"label 3", "[0, 12)", "got 12"});
  CHECK(read_idx_labels(p, 13).data[3] == 12);
  CHECK(read_idx_labels(p).data[3] == 12);  // no range check without num_classes
}

TEST_CASE("idx_to_dataset puts one image per column, scaled to [0, 1] by default", "[data][idx]") {
  IdxArray images{{3, 2, 2}, {0, 255, 51, 102, 1, 2, 3, 4, 10, 20, 30, 40}};
  IdxArray labels{{3}, {2, 0, 1}};
  const Dataset<double> ds = idx_to_dataset<double>(images, labels, 3);
  REQUIRE(ds.dim() == 4);
  REQUIRE(ds.size() == 3);
  CHECK(ds.num_classes == 3);
  CHECK(ds.labels == std::vector<Label>{2, 0, 1});
  for (Index j = 0; j < 3; ++j)
    for (Index r = 0; r < 4; ++r)
      CHECK(ds.features(r, j) == images.data[static_cast<std::size_t>(j * 4 + r)] / 255.0);
  CHECK(ds.features(1, 0) == 1.0);
  CHECK(ds.features(0, 0) == 0.0);
  CHECK_NOTHROW(ds.validate());

  // A limit keeps the first samples; a transform maps p to (p - offset) / scale.
  const Dataset<float> two = idx_to_dataset<float>(images, labels, 3, 2, PixelTransform{10.0, 2.0});
  REQUIRE(two.size() == 2);
  CHECK(two.labels == std::vector<Label>{2, 0});
  CHECK(two.features(2, 1) == Approx((3 - 10.0) / 2.0));
  CHECK(two.features(1, 0) == Approx((255 - 10.0) / 2.0));

  // Errors.
  IdxArray short_labels{{2}, {0, 1}};
  CHECK_THROWS_AS(idx_to_dataset<float>(images, short_labels, 3), DataError);
  CHECK_THROWS_WITH(idx_to_dataset<float>(images, labels, 2), Catch::Contains("label 0") && Catch::Contains("got 2"));
  CHECK_THROWS_AS(idx_to_dataset<float>(images, labels, 0), InvalidArgument);
  CHECK_THROWS_AS(idx_to_dataset<float>(images, labels, 3, all_samples, PixelTransform{0.0, 0.0}), InvalidArgument);
  CHECK_THROWS_AS(idx_to_dataset<float>(images, images, 3), DataError);  // labels must be 1-d
}

TEST_CASE("standardizing_transform matches a brute-force mean and standard deviation", "[data][idx]") {
  const auto data = random_bytes(20 * 9, 8);
  IdxArray images{{20, 3, 3}, data};
  for (std::size_t limit : {std::size_t{20}, std::size_t{7}}) {
    double s = 0.0, s2 = 0.0;
    const std::size_t n = limit * 9;
    for (std::size_t i = 0; i < n; ++i) s += data[i];
    const double mean = s / static_cast<double>(n);
    for (std::size_t i = 0; i < n; ++i) s2 += (data[i] - mean) * (data[i] - mean);
    const PixelTransform t = standardizing_transform(images, limit);
    CHECK(t.offset == Approx(mean).epsilon(1e-12));
    CHECK(t.scale == Approx(std::sqrt(s2 / static_cast<double>(n))).epsilon(1e-12));
  }
  IdxArray constant{{2, 2}, {7, 7, 7, 7}};
  CHECK(standardizing_transform(constant).scale == 1.0);
  CHECK(standardizing_transform(constant).offset == 7.0);
}

TEST_CASE("load_idx_dataset streams files into features computed from the raw pixels", "[data][idx]") {
  TempDir dir("fedpp_idx_test");
  const auto pixels = random_bytes(30 * 4 * 5, 21);
  std::vector<std::uint8_t> labels(30);
  for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<std::uint8_t>((i * 7) % 4);
  const std::string img = dir.file("img.gz"), lbl = dir.file("lbl");
  write_gzip(img, idx_bytes({30, 4, 5}, pixels));
  write_plain(lbl, idx_bytes({30}, labels));

  for (std::size_t limit : {all_samples, std::size_t{11}, std::size_t{0}}) {
    const std::size_t n = std::min<std::size_t>(limit, 30);
    CAPTURE(n);
    // Brute-force statistics of the kept pixels (two passes, in double).
    double mean = 0.0, var = 0.0;
    for (std::size_t i = 0; i < n * 20; ++i) mean += pixels[i];
    mean = n ? mean / static_cast<double>(n * 20) : 0.0;
    for (std::size_t i = 0; i < n * 20; ++i) var += (pixels[i] - mean) * (pixels[i] - mean);
    const double sd = n ? std::sqrt(var / static_cast<double>(n * 20)) : 1.0;

    const auto ds = load_idx_dataset<float>(img, lbl, 4, limit);
    const auto st = load_idx_dataset<double>(img, lbl, 4, limit, Normalization::standardize);
    const auto raw = load_idx_dataset<double>(img, lbl, 4, limit, Normalization::raw);
    REQUIRE(ds->size() == static_cast<Index>(n));
    REQUIRE(ds->dim() == 20);
    REQUIRE(st->size() == static_cast<Index>(n));
    REQUIRE(raw->size() == static_cast<Index>(n));
    CHECK(ds->num_classes == 4);
    CHECK(ds->labels == std::vector<Label>(labels.begin(), labels.begin() + static_cast<std::ptrdiff_t>(n)));
    Index bad_unit = 0, bad_raw = 0, bad_st = 0;
    for (std::size_t j = 0; j < n; ++j)
      for (std::size_t r = 0; r < 20; ++r) {
        const double px = pixels[j * 20 + r];
        const auto R = static_cast<Index>(r), J = static_cast<Index>(j);
        bad_unit += ds->features(R, J) != static_cast<float>(px / 255.0);
        bad_raw += raw->features(R, J) != px;
        bad_st += std::abs(st->features(R, J) - (px - mean) / sd) > 1e-12;
      }
    CHECK(bad_unit == 0);
    CHECK(bad_raw == 0);
    CHECK(bad_st == 0);
  }
  const auto st = load_idx_dataset<double>(img, lbl, 4, all_samples, Normalization::standardize);
  CHECK(std::abs(st->features.mean()) < 1e-12);
  CHECK(std::sqrt((st->features.array() - st->features.mean()).square().mean()) == Approx(1.0).epsilon(1e-12));

  // num_classes outside [1, 256] is an argument error naming the function.
  CHECK_THROWS_AS(load_idx_dataset<float>(img, lbl, 0), InvalidArgument);
  CHECK_THROWS_WITH(load_idx_dataset<float>(img, lbl, 257),
                    "fedpp::load_idx_dataset: num_classes must be in [1, 256], got 257");

  // Count mismatch names both files; a bad label names the label file; a truncated image file is caught.
  const std::string lbl29 = dir.file("lbl29");
  write_plain(lbl29, idx_bytes({29}, std::vector<std::uint8_t>(labels.begin(), labels.end() - 1)));
  check_data_error([&] { load_idx_dataset<float>(img, lbl29, 4); }, lbl29, {"'" + img + "' holds 30 images", "got 29"});
  check_data_error([&] { load_idx_dataset<float>(img, lbl, 3); }, lbl, {"label 1", "[0, 3)", "got 3"});
  const std::string cut = dir.file("cut.gz");
  write_gzip(cut, idx_bytes({30, 4, 5}, std::vector<std::uint8_t>(pixels.begin(), pixels.end() - 1)));
  check_data_error([&] { load_idx_dataset<float>(cut, lbl, 4, 5); }, cut, {"truncated data"});
  const std::string trail = dir.file("trail.gz");
  auto tb = idx_bytes({30, 4, 5}, pixels);
  tb.push_back(1);
  write_gzip(trail, tb);
  check_data_error([&] { load_idx_dataset<float>(trail, lbl, 4, 5); }, trail, {"trailing bytes"});
}

TEST_CASE("read_idx reports a file that exists but cannot be opened", "[data][idx]") {
  // A Unix socket exists and is not a folder, but open() refuses it (ENXIO), even for root.
  TempDir dir("fedpp_idx_test");
  const std::string p = dir.file("sock");
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  REQUIRE(p.size() < sizeof(addr.sun_path));
  std::memcpy(addr.sun_path, p.c_str(), p.size() + 1);
  const int bound = ::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
  ::close(fd);
  REQUIRE(bound == 0);
  check_data_error([&] { read_idx(p); }, p, {"fedpp::read_idx", "cannot open ("});
}

TEST_CASE("read_idx rejects an outer size that makes the header implausible", "[data][idx]") {
  TempDir dir("fedpp_idx_test");
  const std::string p = dir.file("x");
  // Inner sizes 2^10 are fine; 2^30 items of them exceed 2^34 elements.
  write_plain(p, idx_bytes({1u << 30, 1u << 10}, {1, 2, 3}));
  check_data_error([&] { read_idx(p); }, p, {"implausible header", "got 1073741824 x 1024"});
  // Just at the cap (2^24 x 2^10 = 2^34): not implausible, only truncated.
  write_plain(p, idx_bytes({1u << 24, 1u << 10}, {1, 2, 3}));
  check_data_error([&] { read_idx(p); }, p, {"truncated data", "got 3"});
}

TEST_CASE("IdxFile refuses to read past the body its header declares", "[data][idx]") {
  TempDir dir("fedpp_idx_test");
  const std::string p = dir.file("x");
  write_plain(p, idx_bytes({2, 3}, {1, 2, 3, 4, 5, 6, 7}));  // one trailing byte
  detail::IdxFile f(p, "fedpp::Test", 2);
  CHECK(f.body_size() == 6);
  CHECK(f.item_size() == 3);
  CHECK(f.items() == 2);
  std::uint8_t buf[8] = {};
  f.read_body(buf, 4);
  CHECK(buf[3] == 4);
  CHECK_THROWS_WITH(f.read_body(buf, 3), "fedpp::Test: internal: read past the declared IDX body, got 3");
  f.read_body(buf, 2);
  CHECK(buf[1] == 6);
}

TEST_CASE("idx_to_dataset errors name the function, the rule and the value", "[data][idx]") {
  const IdxArray images{{3, 2, 2}, std::vector<std::uint8_t>(12, 1)};
  const IdxArray labels{{3}, {2, 0, 1}};
  CHECK_THROWS_WITH(idx_to_dataset<float>(images, labels, 257),
                    "fedpp::idx_to_dataset: num_classes must be in [1, 256], got 257");
  CHECK_THROWS_WITH(idx_to_dataset<float>(images, labels, 0),
                    "fedpp::idx_to_dataset: num_classes must be in [1, 256], got 0");
  CHECK_THROWS_WITH(idx_to_dataset<float>(images, labels, 3, all_samples, PixelTransform{0.0, 0.0}),
                    Catch::StartsWith("fedpp::idx_to_dataset: PixelTransform scale") && Catch::EndsWith("got 0"));
  CHECK_THROWS_AS(idx_to_dataset<float>(images, labels, 3, all_samples,
                                        PixelTransform{std::numeric_limits<double>::infinity(), 1.0}),
                  InvalidArgument);
  CHECK_THROWS_WITH(idx_to_dataset<float>(images, images, 3),
                    "fedpp::idx_to_dataset: labels must be a 1-d IDX array; number of dimensions, got 3");
  CHECK_THROWS_AS(idx_to_dataset<float>(IdxArray{}, IdxArray{{0}, {}}, 3), DataError);
  CHECK_THROWS_WITH(idx_to_dataset<float>(IdxArray{}, IdxArray{{0}, {}}, 3),
                    "fedpp::idx_to_dataset: images must have at least one dimension");
  CHECK_THROWS_WITH(idx_to_dataset<float>(images, IdxArray{{2}, {0, 1}}, 3),
                    "fedpp::idx_to_dataset: images (3) and labels must have the same count, got 2");
  // Arrays whose data is shorter than their dims (built by hand, not read from a file).
  const IdxArray short_images{{3, 2, 2}, std::vector<std::uint8_t>(11, 1)};
  CHECK_THROWS_WITH(idx_to_dataset<float>(short_images, labels, 3),
                    "fedpp::idx_to_dataset: array data is shorter than its dims declare");
  CHECK_NOTHROW(idx_to_dataset<float>(short_images, labels, 3, 2));  // the first two images are complete
  const IdxArray short_labels{{3}, {2, 0}};
  CHECK_THROWS_AS(idx_to_dataset<float>(images, short_labels, 3), DataError);
  CHECK_THROWS_WITH(idx_to_dataset<float>(images, IdxArray{{3}, {2, 0, 3}}, 3),
                    "fedpp::idx_to_dataset: label 2 must be in [0, 3), got 3");
  // The label check covers only the kept samples; a limit beyond the count keeps all.
  CHECK(idx_to_dataset<float>(images, IdxArray{{3}, {2, 0, 3}}, 3, 2).labels == std::vector<Label>{2, 0});
  CHECK(idx_to_dataset<float>(images, labels, 3, 99).size() == 3);
}

TEST_CASE("load_idx_dataset streams bodies larger than its 1 MiB chunk", "[data][idx]") {
  // 2500 images of 1000 pixels: 2.5 MB, read in chunks of 1048 images, so column j of every chunk
  // after the first must land at j * 1000 in the matrix. With a limit of 2100, the last chunk is
  // partial and the rest of the body is read and discarded.
  TempDir dir("fedpp_idx_test");
  const auto pixels = random_bytes(2500 * 1000, 31);
  std::vector<std::uint8_t> labels(2500);
  for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<std::uint8_t>(i % 3);
  const std::string img = dir.file("big-img"), lbl = dir.file("big-lbl");
  write_plain(img, idx_bytes({2500, 40, 25}, pixels));
  write_plain(lbl, idx_bytes({2500}, labels));
  for (std::size_t limit : {all_samples, std::size_t{2100}}) {
    const auto raw = load_idx_dataset<float>(img, lbl, 3, limit, Normalization::raw);
    const std::size_t n = std::min<std::size_t>(limit, 2500);
    REQUIRE(raw->size() == static_cast<Index>(n));
    REQUIRE(raw->dim() == 1000);
    Index bad = 0;
    for (std::size_t j = 0; j < n; ++j)
      for (std::size_t r = 0; r < 1000; ++r)
        bad += raw->features(static_cast<Index>(r), static_cast<Index>(j)) != static_cast<float>(pixels[j * 1000 + r]);
    CHECK(bad == 0);
    CHECK(raw->labels[n - 1] == static_cast<Label>((n - 1) % 3));
  }
}
