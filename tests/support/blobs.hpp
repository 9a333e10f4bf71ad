#pragma once
// Tiny seeded Gaussian-blob classification data for runtime tests.
#include <memory>

#include "fedpp/core/dataset.hpp"
#include "fedpp/core/rng.hpp"

namespace fedpp_test {

/// n samples in d dims, `classes` classes; class y shifts the features i with i % classes == y by `sep`.
template <typename S>
std::shared_ptr<fedpp::Dataset<S>> blobs(fedpp::Index n, fedpp::Index d, int classes, std::uint64_t seed,
                                         double sep = 2.0) {
  auto ds = std::make_shared<fedpp::Dataset<S>>();
  ds->features.resize(d, n);
  ds->labels.resize(static_cast<std::size_t>(n));
  ds->num_classes = classes;
  fedpp::Rng rng(seed);
  for (fedpp::Index j = 0; j < n; ++j) {
    const int y = static_cast<int>(rng.uniform_index(static_cast<std::uint64_t>(classes)));
    ds->labels[static_cast<std::size_t>(j)] = y;
    for (fedpp::Index i = 0; i < d; ++i)
      ds->features(i, j) = static_cast<S>(rng.normal() + (i % classes == y ? sep : 0.0));
  }
  return ds;
}

/// Splits [0, n) into `k` contiguous views of a shared data set.
template <typename S>
std::vector<fedpp::DatasetView<S>> contiguous_split(const std::shared_ptr<fedpp::Dataset<S>>& ds, std::size_t k) {
  std::vector<fedpp::DatasetView<S>> out(k);
  const auto n = static_cast<std::size_t>(ds->size());
  for (std::size_t c = 0; c < k; ++c) {
    out[c].base = ds;
    for (std::size_t i = c * n / k; i < (c + 1) * n / k; ++i) out[c].indices.push_back(static_cast<std::uint32_t>(i));
  }
  return out;
}

}  // namespace fedpp_test
