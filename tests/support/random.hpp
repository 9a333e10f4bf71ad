#pragma once
// Seeded random inputs and labels for model tests.
#include <vector>

#include "fedpp/core/dataset.hpp"
#include "fedpp/core/rng.hpp"
#include "fedpp/core/types.hpp"

namespace fedpp_test {

/// rows x cols standard-normal inputs.
template <typename S>
fedpp::Matrix<S> random_inputs(fedpp::Index rows, fedpp::Index cols, fedpp::Rng& rng) {
  fedpp::Matrix<S> X(rows, cols);
  for (fedpp::Index j = 0; j < cols; ++j)
    for (fedpp::Index i = 0; i < rows; ++i) X(i, j) = static_cast<S>(rng.normal());
  return X;
}

/// m uniform labels in [0, classes).
inline std::vector<fedpp::Label> random_labels(fedpp::Index m, int classes, fedpp::Rng& rng) {
  std::vector<fedpp::Label> y(static_cast<std::size_t>(m));
  for (auto& v : y) v = static_cast<fedpp::Label>(rng.uniform_index(static_cast<std::uint64_t>(classes)));
  return y;
}

}  // namespace fedpp_test
