#pragma once
// Helpers of the coordinate-wise rule tests (coordinate median, trimmed mean, Meamed): the pieces of
// their sort-based brute-force references (IEEE totalOrder, sorted coordinates, the median), a
// one-call aggregate of a matrix's columns, and the attackers and range check of the breakdown tests.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <numeric>
#include <vector>

#include "fedpp/core/rng.hpp"
#include "fedpp/core/types.hpp"
#include "fedpp/core/update_batch.hpp"

namespace fedpp_test {

/// IEEE totalOrder on non-NaN values: -0 before +0.
template <typename S>
bool total_less(S a, S b) {
  return a < b || (a == b && std::signbit(a) && !std::signbit(b));
}

/// Coordinate j of the listed columns of m, sorted by totalOrder.
template <typename S>
std::vector<S> sorted_coordinate(const fedpp::Matrix<S>& m, fedpp::Index j, const std::vector<fedpp::Index>& columns) {
  std::vector<S> v;
  v.reserve(columns.size());
  for (fedpp::Index col : columns) v.push_back(m(j, col));
  std::sort(v.begin(), v.end(), total_less<S>);
  return v;
}

/// Coordinate j of every column of m, sorted by totalOrder.
template <typename S>
std::vector<S> sorted_coordinate(const fedpp::Matrix<S>& m, fedpp::Index j) {
  std::vector<fedpp::Index> all(static_cast<std::size_t>(m.cols()));
  std::iota(all.begin(), all.end(), fedpp::Index{0});
  return sorted_coordinate(m, j, all);
}

/// Median of sorted values: std::midpoint of the two middle values (average), else the lower one.
template <typename S>
S sorted_median(const std::vector<S>& v, bool average) {
  const std::size_t c = v.size();
  const S lo = v[(c - 1) / 2], hi = v[c / 2];
  return average ? std::midpoint(lo, hi) : lo;
}

/// rule's aggregate of the columns of m (unit weights).
template <typename S, typename Rule>
fedpp::Vector<S> aggregated(const Rule& rule, const fedpp::Matrix<S>& m) {
  fedpp::Vector<S> out;
  rule.aggregate(fedpp::UpdateBatch<S>(m), out);
  return out;
}

/// Overwrites columns honest.. of m with attackers: every coordinate +huge or -huge by a coin flip.
template <typename S>
void fill_attackers(fedpp::Matrix<S>& m, fedpp::Index honest, S huge, fedpp::Rng& rng) {
  for (fedpp::Index i = honest; i < m.cols(); ++i)
    for (fedpp::Index j = 0; j < m.rows(); ++j) m(j, i) = rng.uniform() < 0.5 ? huge : -huge;
}

/// Number of coordinates j where out(j) lies outside the range of the first `honest` columns of m.
template <typename S>
fedpp::Index outside_honest_range(const fedpp::Vector<S>& out, const fedpp::Matrix<S>& m, fedpp::Index honest) {
  fedpp::Index outside = 0;
  for (fedpp::Index j = 0; j < m.rows(); ++j) {
    const auto row = m.row(j).head(honest);
    if (out(j) < row.minCoeff() || out(j) > row.maxCoeff()) ++outside;
  }
  return outside;
}

}  // namespace fedpp_test
