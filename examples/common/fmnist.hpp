#pragma once
// Shared by the Fashion-MNIST examples: the data-set flags, loading with the --quick limits, and
// the model chosen by --model / --hidden.

#include <fedpp/fedpp.hpp>

#include <cstddef>
#include <iostream>
#include <string>
#include <vector>

#include "cli.hpp"

namespace examples {

/// Declares --train-limit, --test-limit and --data-dir.
inline Cli& data_options(Cli& cli) {
  return cli.option("train-limit", "0", "use only the first N training images (0 = all)")
      .option("test-limit", "0", "use only the first N test images (0 = all)")
      .option("data-dir", "", "Fashion-MNIST directory (default: FEDPP_FASHION_MNIST_DIR or the Debian path)");
}

/// Loads Fashion-MNIST as --data-dir, --train-limit and --test-limit say; under --quick the limits
/// not given on the command line become `quick_train` and `quick_test`.
template <typename S>
fedpp::FashionMnist<S> load_fmnist(const Cli& cli, std::size_t quick_train, std::size_t quick_test) {
  auto train_limit = static_cast<std::size_t>(cli.integer("train-limit"));
  auto test_limit = static_cast<std::size_t>(cli.integer("test-limit"));
  if (cli.on("quick")) {
    if (!cli.given("train-limit")) train_limit = quick_train;
    if (!cli.given("test-limit")) test_limit = quick_test;
  }
  const std::string dir = cli.str("data-dir").empty() ? fedpp::default_fashion_mnist_dir() : cli.str("data-dir");
  return fedpp::load_fashion_mnist<S>(dir, train_limit ? train_limit : fedpp::all_samples,
                                      test_limit ? test_limit : fedpp::all_samples);
}

/// Returns fn(model) for the model --model (softmax | mlp) and --hidden ask for, shaped by the
/// data's inputs and classes; prints an error naming `program` and returns 2 for another --model.
template <typename S, typename F>
int with_model(const Cli& cli, const fedpp::FashionMnist<S>& data, const std::string& program, F&& fn) {
  const fedpp::Index in = data.train->dim();
  const int classes = data.train->num_classes;
  if (cli.str("model") == "softmax") return fn(fedpp::SoftmaxRegression<S>(in, classes));
  if (cli.str("model") == "mlp") {
    std::vector<fedpp::Index> sizes{in};
    for (long long h : cli.integers("hidden")) sizes.push_back(h);
    sizes.push_back(classes);
    return fn(fedpp::Mlp<S>(sizes));
  }
  std::cerr << program << ": --model must be mlp or softmax, got " << cli.str("model") << "\n";
  return 2;
}

}  // namespace examples
