#pragma once
/// @file meamed.hpp
/// Mean around the median (Meamed), coordinate-wise (Xie et al., 2018).

#include <string>

#include "fedpp/aggregators/coordinate_median.hpp"
#include "fedpp/aggregators/detail/coordinate_blocks.hpp"
#include "fedpp/core/concepts.hpp"
#include "fedpp/core/error.hpp"
#include "fedpp/core/types.hpp"
#include "fedpp/core/update_batch.hpp"

namespace fedpp {

/// Mean around the median: per coordinate, the mean of the n - f values closest to the median.
/**
 * Xie, Koyejo, Gupta, 2018, "Generalized Byzantine-tolerant SGD", arXiv:1802.10116; semantics
 * of ByzFL's `Meamed(f)`.
 *
 * Per coordinate j: the median m of the n values (CoordinateMedian's, MedianConvention::average
 * by default as ByzFL's np.median, rounded to S), then the n - f values x with the smallest
 * distance |x - m| (computed in double), averaged. Tie rule: when two candidates are equally
 * far from m, the smaller value is kept (ByzFL leaves this to argpartition; its documented
 * example, {1, 4, 7} with f = 1, keeps 1). The kept values are a run of consecutive order
 * statistics, summed in double in ascending order from +0.0, divided by n - f and rounded to S,
 * so the result depends only on the multiset of values (any column order, any thread count).
 * f = 0 gives the plain unweighted mean. Client weights are ignored (unweighted, as in ByzFL).
 *
 * Requirements: f >= 0 and n > 2f (Xie et al.'s assumption; ByzFL's code accepts any f < n).
 * Inputs are assumed finite (the Server rejects non-finite updates before aggregation).
 *
 * Speed and memory: as CoordinateMedian, with a full sorting network (all ranks are needed),
 * then a vectorised search for the window start and a double sum. Extra memory: one
 * n x detail::tile_lanes<S> tile of keys per thread plus the network.
 */
class Meamed {
 public:
  /// Meamed with declared Byzantine count f (>= 0) and the median convention (default average).
  /**
   * @throws InvalidArgument if f < 0.
   */
  explicit Meamed(Index f = 0, MedianConvention convention = MedianConvention::average)
      : f_(require(f >= 0, name, "f must be >= 0", f)), convention_(convention) {}

  /// The declared number of Byzantine clients.
  [[nodiscard]] Index f() const noexcept { return f_; }
  /// The median convention for even n.
  [[nodiscard]] MedianConvention convention() const noexcept { return convention_; }

  /// Writes the coordinate-wise mean around the median into `out` (resized to `batch.dim()`).
  /**
   * @throws InvalidArgument if the batch is empty or has dimension 0 (DimensionError), or if
   * n <= 2f; `out` is left untouched then.
   */
  template <typename S>
  void aggregate(const UpdateBatch<S>& batch, Vector<S>& out) const {
    batch.check_nonempty(where);
    const Index n = batch.size();
    if (n <= 2 * f_)
      fail(where, "requires n > 2f (n = " + std::to_string(n) + ", f = " + std::to_string(f_) + ")",
           "n = " + std::to_string(n));
    out.resize(batch.dim());
    const std::vector<Index> columns = detail::all_columns(n);
    detail::coordinate_mean_around_median<S>(batch.data(), batch.dim(), columns, n - f_,
                                             convention_ == MedianConvention::average, out.data());
  }

 private:
  static constexpr const char* name = "fedpp::Meamed";
  static constexpr const char* where = "fedpp::Meamed::aggregate";

  Index f_ = 0;
  MedianConvention convention_ = MedianConvention::average;
};

static_assert(Aggregator<Meamed, float> && Aggregator<Meamed, double>);

}  // namespace fedpp
