#pragma once
// Seeded inputs shared by the aggregator tests: normal clouds, normal columns with random scales,
// ByzFL's 3 x 3 example, and the kinds of random columns of the coordinate-wise rules.
#include <cmath>
#include <cstdint>
#include <limits>

#include "fedpp/core/rng.hpp"
#include "fedpp/core/types.hpp"

namespace fedpp_test {

/// d x n updates, every coordinate center + sigma * N(0, 1); same seed -> same matrix.
template <typename S>
fedpp::Matrix<S> cloud(fedpp::Index d, fedpp::Index n, double center, double sigma, std::uint64_t seed) {
  fedpp::Matrix<S> m(d, n);
  auto rng = fedpp::make_rng(seed, 0, 0, fedpp::Purpose::user);
  for (fedpp::Index i = 0; i < n; ++i)
    for (fedpp::Index j = 0; j < d; ++j) m(j, i) = static_cast<S>(center + sigma * rng.normal());
  return m;
}

/// d x n normal values, each column scaled by a random 2^-3 .. 2^3, plus a common offset (so
/// norms >> distances when the offset is large); same seed -> same matrix.
template <typename S>
fedpp::Matrix<S> scaled_columns(fedpp::Index d, fedpp::Index n, std::uint64_t seed, double offset = 0.0) {
  fedpp::Matrix<S> m(d, n);
  auto rng = fedpp::make_rng(seed, 0, 0, fedpp::Purpose::user);
  for (fedpp::Index i = 0; i < n; ++i) {
    const double scale = std::ldexp(1.0, static_cast<int>(rng.uniform_index(7)) - 3);
    for (fedpp::Index j = 0; j < d; ++j) m(j, i) = static_cast<S>(offset + scale * rng.normal());
  }
  return m;
}

/// ByzFL's example input: columns are ByzFL's rows [1,2,3], [4,5,6], [7,8,9].
template <typename S>
fedpp::Matrix<S> byzfl_x() {
  fedpp::Matrix<S> x(3, 3);
  x << 1, 4, 7,  //
      2, 5, 8,   //
      3, 6, 9;
  return x;
}

/// d x n values k / 64 with k uniform in [-2^15, 2^15) (exact in float; some ties at large n):
/// cheap inputs for the large-n order-statistic tests; same seed -> same matrix.
template <typename S>
fedpp::Matrix<S> grid_matrix(fedpp::Index d, fedpp::Index n, std::uint64_t seed) {
  fedpp::Matrix<S> m(d, n);
  auto rng = fedpp::make_rng(seed, 0, 0, fedpp::Purpose::user);
  for (fedpp::Index i = 0; i < n; ++i)
    for (fedpp::Index j = 0; j < d; ++j)
      m(j, i) = static_cast<S>(static_cast<double>(static_cast<std::int64_t>(rng.uniform_index(65536)) - 32768) / 64.0);
  return m;
}

/// Kinds of random columns for the coordinate-wise rules: spread-out normals, heavy ties with
/// signed zeros, huge and tiny magnitudes mixed, and columns where every value repeats one of a few.
enum class Kind { normal, ties, extremes, duplicates };

/// A d x n batch of the given kind, value by value down each column, where extreme(rng) draws
/// each Kind::extremes value (the rules differ in how large a value they can take); same seed ->
/// same batch.
template <typename S, typename Extreme>
fedpp::Matrix<S> kind_matrix(fedpp::Index d, fedpp::Index n, Kind kind, std::uint64_t seed, Extreme&& extreme) {
  fedpp::Matrix<S> m(d, n);
  auto rng = fedpp::make_rng(seed, 0, 0, fedpp::Purpose::user);
  for (fedpp::Index i = 0; i < n; ++i)
    for (fedpp::Index j = 0; j < d; ++j) {
      S v = 0;
      switch (kind) {
        case Kind::normal:
          v = static_cast<S>(rng.normal() * std::ldexp(1.0, static_cast<int>(rng.uniform_index(20)) - 10));
          break;
        case Kind::ties: {
          const int k = static_cast<int>(rng.uniform_index(7)) - 3;  // -3..3, zeros get a random sign
          v = k == 0 ? (rng.uniform() < 0.5 ? S(-0.0) : S(0.0)) : static_cast<S>(k);
          break;
        }
        case Kind::extremes:
          v = extreme(rng);
          break;
        case Kind::duplicates: {
          const S palette[4] = {S(0.1), S(-2.5), S(1e3), S(0.1)};
          v = palette[(j % 3 == 0) ? 0 : rng.uniform_index(4)];
          break;
        }
      }
      m(j, i) = v;
    }
  return m;
}

}  // namespace fedpp_test
