#pragma once
/// @file trimmed_mean.hpp
/// Coordinate-wise trimmed mean of client updates (Yin et al., 2018).

#include <cmath>
#include <concepts>
#include <string>

#include "fedpp/aggregators/detail/coordinate_blocks.hpp"
#include "fedpp/core/concepts.hpp"
#include "fedpp/core/error.hpp"
#include "fedpp/core/types.hpp"
#include "fedpp/core/update_batch.hpp"

namespace fedpp {

/// Coordinate-wise trimmed mean: per coordinate, drop the b smallest and b largest of the n
/// values and average the other n - 2b.
/**
 * Yin, Chen, Ramchandran, Bartlett, 2018, "Byzantine-Robust Distributed Learning: Towards
 * Optimal Statistical Rates", arXiv:1803.01498 (β-trimmed mean).
 *
 * Two ways to say how much to trim per side:
 * - by fraction, `TrimmedMean::fraction(beta)` or `TrimmedMean(beta)`, beta in [0, 0.5)
 *   (default 0.1): b = floor(beta * n) for a batch of n (as scipy.stats.trim_mean and
 *   Flower's FedTrimmedAvg); 2b < n always holds;
 * - by count, `TrimmedMean::count(f)`, f >= 0: b = f (as ByzFL's TrMean(f) and the
 *   FlagAggregator code); aggregate() requires n > 2f and throws otherwise (it never falls
 *   back to the median).
 * b = 0 gives the plain unweighted mean (not NaN). An integer argument to the constructor does
 * not compile (`TrimmedMean(2)` is almost surely meant as a count): write `TrimmedMean::count(2)`.
 *
 * Arithmetic, fixed for every coordinate: the kept values are summed in double in ascending
 * order (by IEEE totalOrder, so -0.0 before +0.0) starting from +0.0, and the sum is divided by
 * n - 2b and rounded to S. The result therefore depends only on the multiset of values: it is
 * bit-identical under any column permutation and any thread count, and equal to sorting the
 * values with std::sort and summing the middle ones in that order. (With b = 0 it can differ from
 * WeightedMean(Weighting::uniform), which sums in column order, by rounding.) Client weights are
 * ignored (unweighted, as in ByzFL). Inputs are assumed finite (the Server rejects non-finite
 * updates before aggregation).
 *
 * Speed and memory: as CoordinateMedian (tiles of consecutive coordinates ordered by a SIMD
 * comparator network pruned to the kept ranks b..n-b-1), then a vectorised double sum over the
 * kept ranks. Extra memory: one n x detail::tile_lanes<S> tile of keys per thread plus the
 * network. See docs/aggregators/coordinate.md.
 */
class TrimmedMean {
 public:
  /// Trims floor(beta * n) values per side; beta in [0, 0.5) (default 0.1).
  /**
   * @throws InvalidArgument if beta is not in [0, 0.5).
   */
  explicit TrimmedMean(double beta = 0.1) : beta_(check_beta(beta)) {}

  /// Integer arguments are rejected at compile time: use TrimmedMean::count(f) or a double fraction.
  template <std::integral I>
  explicit TrimmedMean(I) = delete;

  /// Trims floor(beta * n) values per side of a batch of n; beta in [0, 0.5).
  /**
   * @throws InvalidArgument if beta is not in [0, 0.5).
   */
  [[nodiscard]] static TrimmedMean fraction(double beta) { return TrimmedMean(beta); }

  /// Trims exactly f values per side (f >= 0; aggregate() then requires n > 2f).
  /**
   * @throws InvalidArgument if f < 0.
   */
  [[nodiscard]] static TrimmedMean count(Index f) {
    TrimmedMean t(0.0);
    t.by_count_ = true;
    t.f_ = require(f >= 0, name, "f must be >= 0", f);
    return t;
  }

  /// True when built with count(f), false when built with a fraction.
  [[nodiscard]] bool by_count() const noexcept { return by_count_; }
  /// The fraction trimmed per side (0 when built with count()).
  [[nodiscard]] double beta() const noexcept { return beta_; }
  /// The count trimmed per side (0 when built with a fraction).
  [[nodiscard]] Index f() const noexcept { return f_; }

  /// Values trimmed per side for a batch of n: f, or floor(beta * n).
  [[nodiscard]] Index trimmed_per_side(Index n) const noexcept {
    return by_count_ ? f_ : static_cast<Index>(std::floor(beta_ * static_cast<double>(n)));
  }

  /// Writes the coordinate-wise trimmed mean of the batch's columns into `out` (resized to `batch.dim()`).
  /**
   * @throws InvalidArgument if the batch is empty or has dimension 0 (DimensionError), or if
   * n <= 2b (only possible with count(f)); `out` is left untouched then.
   */
  template <typename S>
  void aggregate(const UpdateBatch<S>& batch, Vector<S>& out) const {
    batch.check_nonempty(where);
    const Index n = batch.size();
    const Index b = trimmed_per_side(n);
    if (n <= 2 * b)
      fail(where, "requires n > 2f (n = " + std::to_string(n) + ", f = " + std::to_string(b) + ")",
           "n = " + std::to_string(n));
    out.resize(batch.dim());
    const std::vector<Index> columns = detail::all_columns(n);
    detail::coordinate_trimmed_mean<S>(batch.data(), batch.dim(), columns, b, out.data());
  }

 private:
  static constexpr const char* name = "fedpp::TrimmedMean";
  static constexpr const char* where = "fedpp::TrimmedMean::aggregate";

  static double check_beta(double beta) {
    return require(beta >= 0.0 && beta < 0.5, name, "beta must be in [0, 0.5)", beta);
  }

  double beta_ = 0.1;
  bool by_count_ = false;
  Index f_ = 0;
};

static_assert(Aggregator<TrimmedMean, float> && Aggregator<TrimmedMean, double>);

}  // namespace fedpp
