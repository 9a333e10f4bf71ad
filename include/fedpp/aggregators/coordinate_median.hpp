#pragma once
/// @file coordinate_median.hpp
/// Coordinate-wise median of client updates (Yin et al., 2018).

#include <string>

#include "fedpp/aggregators/detail/coordinate_blocks.hpp"
#include "fedpp/core/concepts.hpp"
#include "fedpp/core/error.hpp"
#include "fedpp/core/types.hpp"
#include "fedpp/core/update_batch.hpp"

namespace fedpp {

/// Which value the median of an even number of values is.
enum class MedianConvention {
  average,  ///< the midpoint of the two middle values (textbook definition, NumPy, ByzFL); the default
  lower     ///< the lower of the two middle values (torch.median)
};

/// Coordinate-wise median: out[j] = median of the n clients' values at coordinate j.
/**
 * Yin, Chen, Ramchandran, Bartlett, 2018, "Byzantine-Robust Distributed Learning: Towards
 * Optimal Statistical Rates", arXiv:1803.01498.
 *
 * Odd n: the middle value. Even n: with MedianConvention::average (default) the correctly
 * rounded mean of the two middle values, computed without overflow (the value of
 * std::midpoint(a, b)); with MedianConvention::lower the lower one (torch.median's choice).
 * Values are ordered by IEEE totalOrder, so -0.0 sorts before +0.0: the median of {-0, +0, +0}
 * is +0, the lower median of {-0, +0} is -0, and their average median is +0. The result is
 * exact (a value of the batch, or the rounded midpoint of two) and does not depend on the
 * column order or the thread count. Client weights are ignored (unweighted, as in ByzFL).
 *
 * Requirements: any n >= 1. The optional declared Byzantine count f (default 0) adds the check
 * n > 2f in aggregate(); the median tolerates up to ceil(n / 2) - 1 arbitrary clients.
 * Inputs are assumed finite (the Server rejects non-finite updates before aggregation).
 *
 * Speed and memory: the coordinates are processed in tiles of detail::tile_lanes<S> consecutive
 * coordinates (one contiguous range of tiles per OpenMP thread); a tile's n values per
 * coordinate are loaded as integer keys and ordered by a pruned merge-exchange comparator network
 * run across all the tile's coordinates at once in SIMD registers (AVX-512 or AVX2 chosen at run
 * time on x86-64). Extra memory: one n x tile_lanes tile of keys per thread (12.8 KiB for n = 100
 * floats) plus the network (about 9 n log2(n)^2 / 4 bytes). See docs/aggregators/coordinate.md.
 */
class CoordinateMedian {
 public:
  /// Average convention, no declared Byzantine count.
  CoordinateMedian() = default;

  /// Median with the given convention and declared Byzantine count f (>= 0; checks n > 2f when f > 0).
  /**
   * @throws InvalidArgument if f < 0.
   */
  explicit CoordinateMedian(MedianConvention convention, Index f = 0) : convention_(convention), f_(check_f(f)) {}

  /// Average convention with declared Byzantine count f (>= 0; checks n > 2f when f > 0).
  /**
   * @throws InvalidArgument if f < 0.
   */
  explicit CoordinateMedian(Index f) : f_(check_f(f)) {}

  /// The even-n convention.
  [[nodiscard]] MedianConvention convention() const noexcept { return convention_; }
  /// The declared number of Byzantine clients (0: no check on n).
  [[nodiscard]] Index f() const noexcept { return f_; }

  /// Writes the coordinate-wise median of the batch's columns into `out` (resized to `batch.dim()`).
  /**
   * @throws InvalidArgument if the batch is empty or has dimension 0 (DimensionError), or if
   * f > 0 and n <= 2f; `out` is left untouched then.
   */
  template <typename S>
  void aggregate(const UpdateBatch<S>& batch, Vector<S>& out) const {
    batch.check_nonempty(where);
    const Index n = batch.size();
    if (f_ > 0 && n <= 2 * f_)
      fail(where, "requires n > 2f (n = " + std::to_string(n) + ", f = " + std::to_string(f_) + ")", "n = " + std::to_string(n));
    out.resize(batch.dim());
    const std::vector<Index> columns = detail::all_columns(n);
    detail::coordinate_median<S>(batch.data(), batch.dim(), columns, convention_ == MedianConvention::average,
                                 out.data());
  }

 private:
  static constexpr const char* name = "fedpp::CoordinateMedian";
  static constexpr const char* where = "fedpp::CoordinateMedian::aggregate";

  static Index check_f(Index f) { return require(f >= 0, name, "f must be >= 0", f); }

  MedianConvention convention_ = MedianConvention::average;
  Index f_ = 0;
};

static_assert(Aggregator<CoordinateMedian, float> && Aggregator<CoordinateMedian, double>);

}  // namespace fedpp
