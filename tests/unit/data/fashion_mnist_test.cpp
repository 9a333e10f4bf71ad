// Tests of the Fashion-MNIST loader: file lookup (env, .gz or plain), checks and limits on small
// fake files, and known properties of the real data set when it is installed.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "fedpp/core/rng.hpp"
#include "fedpp/data/fashion_mnist.hpp"
#include "fedpp/data/partition.hpp"
#include "support/data_idx_files.hpp"
#include "support/temp_dir.hpp"

using namespace fedpp;
using namespace fedpp_test;
namespace fs = std::filesystem;

namespace {

// Sets an environment variable for the scope, restoring the old value.
struct ScopedEnv {
  std::string name;
  std::optional<std::string> old;
  ScopedEnv(std::string n, const char* value) : name(std::move(n)) {
    if (const char* v = std::getenv(name.c_str())) old = v;
    if (value)
      ::setenv(name.c_str(), value, 1);
    else
      ::unsetenv(name.c_str());
  }
  ~ScopedEnv() {
    if (old)
      ::setenv(name.c_str(), old->c_str(), 1);
    else
      ::unsetenv(name.c_str());
  }
};

// Writes `bytes` to `path`, gzip-compressed when gz.
void write_file(const std::string& path, const std::vector<std::uint8_t>& bytes, bool gz) {
  if (gz)
    write_gzip(path, bytes);
  else
    write_plain(path, bytes);
}

// A fake Fashion-MNIST: n_train / n_test images of side x side pixels, pixel = f(seed), labels i % 10.
struct FakeSet {
  std::vector<std::uint8_t> train_px, test_px, train_y, test_y;
};

FakeSet write_fake(const TempDir& dir, std::size_t n_train, std::size_t n_test, bool gz, std::uint64_t seed,
                   std::uint32_t side = 28) {
  FakeSet s;
  auto rng = make_rng(seed, 0, 0, Purpose::user);
  const std::size_t d = std::size_t{side} * side;
  s.train_px.resize(n_train * d);
  s.test_px.resize(n_test * d);
  for (auto& p : s.train_px) p = static_cast<std::uint8_t>(rng.uniform_index(256));
  for (auto& p : s.test_px) p = static_cast<std::uint8_t>(rng.uniform_index(256));
  for (std::size_t i = 0; i < n_train; ++i) s.train_y.push_back(static_cast<std::uint8_t>((i * 3 + seed) % 10));
  for (std::size_t i = 0; i < n_test; ++i) s.test_y.push_back(static_cast<std::uint8_t>((i * 7 + seed) % 10));
  const std::string ext = gz ? ".gz" : "";
  write_file(dir.file("train-images-idx3-ubyte" + ext), idx_bytes({static_cast<std::uint32_t>(n_train), side, side}, s.train_px), gz);
  write_file(dir.file("train-labels-idx1-ubyte" + ext), idx_bytes({static_cast<std::uint32_t>(n_train)}, s.train_y), gz);
  write_file(dir.file("t10k-images-idx3-ubyte" + ext), idx_bytes({static_cast<std::uint32_t>(n_test), side, side}, s.test_px), gz);
  write_file(dir.file("t10k-labels-idx1-ubyte" + ext), idx_bytes({static_cast<std::uint32_t>(n_test)}, s.test_y), gz);
  return s;
}

// Checks that ds holds the fake images / labels (first n), features = (p - offset) / scale, exactly
// or, with tol > 0, within tol.
void check_matches(const Dataset<double>& ds, const std::vector<std::uint8_t>& px, const std::vector<std::uint8_t>& y,
                   std::size_t n, PixelTransform t = {}, double tol = 0.0) {
  REQUIRE(ds.size() == static_cast<Index>(n));
  REQUIRE(ds.dim() == 784);
  CHECK(ds.num_classes == 10);
  Index bad = 0;
  for (std::size_t j = 0; j < n; ++j) {
    REQUIRE(ds.labels[j] == y[j]);
    for (std::size_t r = 0; r < 784; ++r) {
      const double want = (px[j * 784 + r] - t.offset) / t.scale;
      const double got = ds.features(static_cast<Index>(r), static_cast<Index>(j));
      bad += tol > 0.0 ? std::abs(got - want) > tol : got != want;
    }
  }
  CHECK(bad == 0);
}

// Mean and standard deviation of the first n * 784 pixels, by brute force (two passes, double).
PixelTransform fmnist_pixel_stats(const std::vector<std::uint8_t>& px, std::size_t n) {
  const std::size_t count = n * 784;
  double mean = 0.0, var = 0.0;
  for (std::size_t i = 0; i < count; ++i) mean += px[i];
  mean /= static_cast<double>(count);
  for (std::size_t i = 0; i < count; ++i) var += (px[i] - mean) * (px[i] - mean);
  return PixelTransform{mean, std::sqrt(var / static_cast<double>(count))};
}

}  // namespace

TEST_CASE("default_fashion_mnist_dir follows FEDPP_FASHION_MNIST_DIR", "[data][fashion_mnist]") {
  {
    ScopedEnv env("FEDPP_FASHION_MNIST_DIR", "/some/where");
    CHECK(default_fashion_mnist_dir() == "/some/where");
  }
  {
    ScopedEnv env("FEDPP_FASHION_MNIST_DIR", "");
    CHECK(default_fashion_mnist_dir() == "/usr/share/datasets/fashion-mnist");
  }
  {
    ScopedEnv env("FEDPP_FASHION_MNIST_DIR", nullptr);
    CHECK(default_fashion_mnist_dir() == "/usr/share/datasets/fashion-mnist");
  }
}

TEST_CASE("a missing Fashion-MNIST says where it looked and what to install", "[data][fashion_mnist]") {
  TempDir dir("fedpp_fmnist_test");
  CHECK_FALSE(fashion_mnist_available(dir.path.string()));
  const std::string expected_path = dir.file("train-images-idx3-ubyte.gz");
  CHECK_THROWS_AS(load_fashion_mnist<float>(dir.path.string()), DataError);
  CHECK_THROWS_WITH(load_fashion_mnist<float>(dir.path.string()),
                    Catch::Contains("fedpp::load_fashion_mnist") && Catch::Contains(expected_path) &&
                        Catch::Contains("apt-get install dataset-fashion-mnist") &&
                        Catch::Contains("scripts/setup.sh"));
  // With three of the four files present, the message names the missing one.
  write_fake(dir, 3, 2, true, 1);
  fs::remove(dir.file("t10k-labels-idx1-ubyte.gz"));
  CHECK_FALSE(fashion_mnist_available(dir.path.string()));
  CHECK_THROWS_WITH(load_fashion_mnist<float>(dir.path.string()),
                    Catch::Contains(dir.file("t10k-labels-idx1-ubyte")) && Catch::Contains("dataset-fashion-mnist"));
  // The environment variable is the default folder.
  ScopedEnv env("FEDPP_FASHION_MNIST_DIR", dir.path.c_str());
  CHECK_THROWS_WITH(load_fashion_mnist<float>(), Catch::Contains(dir.file("t10k-labels-idx1-ubyte")));
}

TEST_CASE("load_fashion_mnist reads gzip or plain files, with limits", "[data][fashion_mnist]") {
  TempDir dir("fedpp_fmnist_test");
  const bool gz = GENERATE(false, true);
  const FakeSet s = write_fake(dir, 13, 6, gz, 4);
  REQUIRE(fashion_mnist_available(dir.path.string()));

  const auto all = load_fashion_mnist<double>(dir.path.string());
  CHECK(all.dir == dir.path.string());
  CHECK(all.transform.offset == 0.0);
  CHECK(all.transform.scale == 255.0);
  check_matches(*all.train, s.train_px, s.train_y, 13);
  check_matches(*all.test, s.test_px, s.test_y, 6);

  const auto some = load_fashion_mnist<double>(dir.path.string(), 5, 2);
  check_matches(*some.train, s.train_px, s.train_y, 5);
  check_matches(*some.test, s.test_px, s.test_y, 2);

  const auto raw = load_fashion_mnist<double>(dir.path.string(), all_samples, all_samples, Normalization::raw);
  check_matches(*raw.train, s.train_px, s.train_y, 13, PixelTransform{0.0, 1.0});
  check_matches(*raw.test, s.test_px, s.test_y, 6, PixelTransform{0.0, 1.0});

  // Standardize: the statistics of the kept training pixels, applied to the test set too.
  const auto st = load_fashion_mnist<double>(dir.path.string(), 7, all_samples, Normalization::standardize);
  const PixelTransform t = fmnist_pixel_stats(s.train_px, 7);
  CHECK(st.transform.offset == Approx(t.offset).epsilon(1e-13));
  CHECK(st.transform.scale == Approx(t.scale).epsilon(1e-13));
  REQUIRE(std::abs(t.offset - 127.5) < 10.0);  // the fake pixels are uniform bytes, so the map is far from unit
  check_matches(*st.train, s.train_px, s.train_y, 7, t, 1e-12);
  check_matches(*st.test, s.test_px, s.test_y, 6, t, 1e-12);

  // float features equal the double ones rounded.
  const auto f = load_fashion_mnist<float>(dir.path.string());
  CHECK(f.train->features == all.train->features.cast<float>());
}

TEST_CASE("load_fashion_mnist prefers the .gz file when both names exist", "[data][fashion_mnist]") {
  TempDir dir("fedpp_fmnist_test");
  const FakeSet plain = write_fake(dir, 4, 3, false, 1);
  const FakeSet gz = write_fake(dir, 5, 2, true, 2);
  const auto d = load_fashion_mnist<double>(dir.path.string());
  check_matches(*d.train, gz.train_px, gz.train_y, 5);
  check_matches(*d.test, gz.test_px, gz.test_y, 2);
  // Remove one .gz: that file falls back to its plain name (and the counts then disagree).
  fs::remove(dir.file("t10k-labels-idx1-ubyte.gz"));
  CHECK_THROWS_WITH(load_fashion_mnist<double>(dir.path.string()),
                    Catch::Contains("holds 2 images") && Catch::Contains(dir.file("t10k-labels-idx1-ubyte") + "'") &&
                        Catch::Contains("got 3"));
  (void)plain;
}

TEST_CASE("load_fashion_mnist rejects wrong image sizes, bad labels and corrupt files", "[data][fashion_mnist]") {
  TempDir dir("fedpp_fmnist_test");
  SECTION("27 x 27 images") {
    write_fake(dir, 3, 2, true, 1, 27);
    CHECK_THROWS_WITH(load_fashion_mnist<float>(dir.path.string()),
                      Catch::Contains("28 x 28") && Catch::Contains("3 x 27 x 27") &&
                          Catch::Contains(dir.file("train-images-idx3-ubyte.gz")));
  }
  SECTION("a label outside 0..9") {
    write_fake(dir, 3, 2, true, 1);
    write_file(dir.file("t10k-labels-idx1-ubyte.gz"), idx_bytes({2}, {4, 10}), true);
    CHECK_THROWS_WITH(load_fashion_mnist<float>(dir.path.string()),
                      Catch::Contains("label 1") && Catch::Contains("got 10") &&
                          Catch::Contains(dir.file("t10k-labels-idx1-ubyte.gz")));
  }
  SECTION("a truncated training image file, even with a limit") {
    write_fake(dir, 3, 2, true, 1);
    std::vector<std::uint8_t> px(3 * 784 - 10, 7);
    write_file(dir.file("train-images-idx3-ubyte.gz"), idx_bytes({3, 28, 28}, px), true);
    CHECK_THROWS_WITH(load_fashion_mnist<float>(dir.path.string(), 1, 1),
                      Catch::Contains("truncated data") && Catch::Contains(dir.file("train-images-idx3-ubyte.gz")));
  }
}

TEST_CASE("the installed Fashion-MNIST has its known counts, balance and values", "[data][fashion_mnist]") {
  if (!fashion_mnist_available()) {
    WARN("Fashion-MNIST not found in " << default_fashion_mnist_dir()
                                       << " (apt-get install dataset-fashion-mnist); skipping the real-data checks");
    return;
  }
  const auto fm = load_fashion_mnist<float>();
  REQUIRE(fm.train->size() == 60000);
  REQUIRE(fm.test->size() == 10000);
  CHECK(fm.train->dim() == 784);
  CHECK(fm.test->dim() == 784);
  CHECK(fm.train->num_classes == 10);
  CHECK_NOTHROW(fm.train->validate());
  CHECK_NOTHROW(fm.test->validate());
  CHECK(label_histogram(*fm.train) == std::vector<Index>(10, 6000));
  CHECK(label_histogram(*fm.test) == std::vector<Index>(10, 1000));
  CHECK(fm.train->features.minCoeff() == 0.0f);
  CHECK(fm.train->features.maxCoeff() == 1.0f);
  CHECK(fm.test->features.minCoeff() == 0.0f);
  CHECK(fm.test->features.maxCoeff() == 1.0f);
  // First labels of the published files: the first image of each set is an ankle boot (9).
  CHECK(std::vector<Label>(fm.train->labels.begin(), fm.train->labels.begin() + 10) ==
        std::vector<Label>{9, 0, 0, 3, 0, 2, 7, 2, 5, 5});
  CHECK(std::vector<Label>(fm.test->labels.begin(), fm.test->labels.begin() + 10) ==
        std::vector<Label>{9, 2, 1, 1, 6, 1, 4, 6, 5, 7});
  CHECK(fashion_mnist_class_names[static_cast<std::size_t>(fm.test->labels[0])] == "Ankle boot");

  // Raw pixel sums of the first images and of the whole sets (exact in double).
  const auto raw = load_fashion_mnist<double>(default_fashion_mnist_dir(), 3, 3, Normalization::raw);
  CHECK(raw.train->features.col(0).sum() == 76247.0);
  CHECK(raw.train->features.col(1).sum() == 84598.0);
  CHECK(raw.test->features.col(0).sum() == 33456.0);
  CHECK(raw.test->features.col(2).sum() == 51520.0);
  // The limited load equals the first columns of the full one.
  CHECK((raw.train->features / 255.0).cast<float>() == fm.train->features.leftCols(3));

  // Standardize: the training mean and std of the pixels (0.2860 and 0.3530 after /255).
  const auto st = load_fashion_mnist<float>(default_fashion_mnist_dir(), all_samples, 10, Normalization::standardize);
  CHECK(st.transform.offset / 255.0 == Approx(0.2860).margin(5e-5));
  CHECK(st.transform.scale / 255.0 == Approx(0.3530).margin(5e-5));
  CHECK(st.test->size() == 10);
  CHECK(std::abs(st.train->features.cast<double>().mean()) < 1e-5);
}
