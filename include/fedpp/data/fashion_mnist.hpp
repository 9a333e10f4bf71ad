#pragma once
/// @file fashion_mnist.hpp
/// Loader for Fashion-MNIST (Xiao, Rasul, Vollgraf 2017, arXiv:1708.07747): 60,000 training and
/// 10,000 test images of 28x28 grey pixels in 10 balanced classes. Needs zlib (`fedpp::data`).
///
/// Where the files are looked for: the `dir` argument; by default the environment variable
/// FEDPP_FASHION_MNIST_DIR when set, else /usr/share/datasets/fashion-mnist, where Debian's package
/// dataset-fashion-mnist installs them. Each of the four files may be gzip-compressed
/// (`train-images-idx3-ubyte.gz`, the Debian layout) or plain (`train-images-idx3-ubyte`);
/// the .gz name is tried first.

#include <array>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>

#include "fedpp/core/dataset.hpp"
#include "fedpp/core/error.hpp"
#include "fedpp/data/idx.hpp"

namespace fedpp {

/// Number of Fashion-MNIST classes.
inline constexpr int fashion_mnist_classes = 10;
/// Side of a Fashion-MNIST image in pixels (784 features per image).
inline constexpr int fashion_mnist_side = 28;

/// Fashion-MNIST class names, indexed by label.
inline constexpr std::array<std::string_view, 10> fashion_mnist_class_names = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};

/// Where Debian's dataset-fashion-mnist installs the files.
inline constexpr std::string_view fashion_mnist_system_dir = "/usr/share/datasets/fashion-mnist";

/// What to do when the Fashion-MNIST files are missing (part of the error message).
inline constexpr std::string_view fashion_mnist_install_hint =
    "install Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist) or run scripts/setup.sh, "
    "or set FEDPP_FASHION_MNIST_DIR to a folder holding the four IDX files";

/// Fashion-MNIST as two shared data sets, with the feature transform that was applied.
template <typename S = float>
struct FashionMnist {
  std::shared_ptr<const Dataset<S>> train;  ///< 784 x 60000 (or the first train_limit samples), labels 0..9
  std::shared_ptr<const Dataset<S>> test;   ///< 784 x 10000 (or the first test_limit samples), labels 0..9
  PixelTransform transform;                 ///< features = (pixel - offset) / scale, pixel in [0, 255]
  std::string dir;                          ///< folder the files were read from
};

/// FEDPP_FASHION_MNIST_DIR when set and not empty, else /usr/share/datasets/fashion-mnist.
inline std::string default_fashion_mnist_dir() {
  if (const char* env = std::getenv("FEDPP_FASHION_MNIST_DIR"); env != nullptr && *env != '\0') return env;
  return std::string(fashion_mnist_system_dir);
}

namespace detail {
/// File stems of the training images and labels, test images and labels.
inline constexpr std::array<std::string_view, 4> fmnist_stems = {
    "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};

/// Path of `stem`.gz in `dir`, else of `stem`, or "" when neither is a file.
inline std::string fmnist_file(const std::string& dir, std::string_view stem) {
  std::error_code ec;
  const std::filesystem::path base = std::filesystem::path(dir) / std::string(stem);
  std::filesystem::path gz = base;
  gz += ".gz";
  if (std::filesystem::is_regular_file(gz, ec)) return gz.string();
  if (std::filesystem::is_regular_file(base, ec)) return base.string();
  return {};
}
}  // namespace detail

/// True when all four Fashion-MNIST files (gzip or plain) exist in `dir`.
inline bool fashion_mnist_available(const std::string& dir = default_fashion_mnist_dir()) {
  for (auto stem : detail::fmnist_stems)
    if (detail::fmnist_file(dir, stem).empty()) return false;
  return true;
}

/// Loads Fashion-MNIST: one column per image (784 rows, row-major pixels), labels 0..9.
/**
 * Features are in [0, 1] by default (x = pixel / 255). Normalization::standardize gives
 * x = (pixel - m) / s with the mean m and standard deviation s of all pixels of the training
 * samples kept (on the full set m = 72.94, s = 90.02, i.e. 0.2860 and 0.3530 after /255), applied
 * to train and test alike; Normalization::raw keeps x = pixel. `transform` reports the map used.
 * All four files are read and checked completely, also with limits; the test pair is read on a
 * second thread while the training pair loads.
 * @tparam S feature scalar type
 * @param dir         folder with the four files (default: default_fashion_mnist_dir())
 * @param train_limit keep the first `train_limit` training samples (all_samples = all 60,000)
 * @param test_limit  keep the first `test_limit` test samples (all_samples = all 10,000)
 * @param norm        feature normalisation
 * @throws DataError when a file is missing (the message says what to install), corrupt, not
 *         N x 28 x 28 images, has labels outside 0..9, or when image and label counts differ.
 */
template <typename S = float>
FashionMnist<S> load_fashion_mnist(const std::string& dir = default_fashion_mnist_dir(),
                                   std::size_t train_limit = all_samples, std::size_t test_limit = all_samples,
                                   Normalization norm = Normalization::unit) {
  constexpr std::string_view where = "fedpp::load_fashion_mnist";
  std::array<std::string, 4> paths;
  for (std::size_t i = 0; i < 4; ++i) {
    paths[i] = detail::fmnist_file(dir, detail::fmnist_stems[i]);
    if (paths[i].empty()) {
      const std::filesystem::path base = std::filesystem::path(dir) / std::string(detail::fmnist_stems[i]);
      fail<DataError>(where, "Fashion-MNIST not found: neither '" + base.string() + ".gz' nor '" + base.string() +
                                 "' exists; " + std::string(fashion_mnist_install_hint));
    }
  }
  static constexpr std::array<std::uint32_t, 2> shape = {fashion_mnist_side, fashion_mnist_side};
  FashionMnist<S> out;
  out.dir = dir;
  // With a fixed transform (all but standardize) the test pair does not depend on the training
  // pair: read it concurrently (gzip inflation dominates the load time).
  const bool independent = norm != Normalization::standardize;
  PixelTransform test_transform = norm == Normalization::raw ? PixelTransform{0.0, 1.0} : PixelTransform{};
  PixelTransform test_used;
  const auto load_test = [&] {
    return detail::idx_load_pair<S>(paths[2], paths[3], fashion_mnist_classes, test_limit, norm, &test_transform,
                                    test_used, where, shape);
  };
  std::future<Dataset<S>> test_future;
  if (independent) test_future = std::async(std::launch::async, load_test);
  Dataset<S> train;
  try {
    train = detail::idx_load_pair<S>(paths[0], paths[1], fashion_mnist_classes, train_limit, norm, nullptr,
                                     out.transform, where, shape);
  } catch (...) {
    if (test_future.valid()) test_future.wait();
    throw;
  }
  out.train = std::make_shared<const Dataset<S>>(std::move(train));
  if (!independent) test_transform = out.transform;
  out.test = std::make_shared<const Dataset<S>>(independent ? test_future.get() : load_test());
  return out;
}

}  // namespace fedpp
