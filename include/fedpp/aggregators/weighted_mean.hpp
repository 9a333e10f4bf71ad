#pragma once
/// @file weighted_mean.hpp
/// Weighted mean of client updates (FedAvg aggregation), in batch and streaming forms.

#include <algorithm>
#include <cmath>
#include <span>
#include <string>
#include <vector>

#include "fedpp/aggregators/detail/weighted_sum.hpp"
#include "fedpp/core/concepts.hpp"
#include "fedpp/core/config.hpp"
#include "fedpp/core/error.hpp"
#include "fedpp/core/types.hpp"
#include "fedpp/core/update_batch.hpp"

namespace fedpp {

/// How a mean-like aggregator weights the clients of a batch.
enum class Weighting {
  by_weight,  ///< use each update's weight (UpdateBatch::weights(), usually local sample counts)
  uniform     ///< every update counts once, whatever its weight
};

/// Weighted mean of client updates: out = sum_i w_i x_i / sum_i w_i (FedAvg's server step).
/**
 * McMahan et al., 2017, "Communication-Efficient Learning of Deep Networks from Decentralized
 * Data", arXiv:1602.05629.
 *
 * Weights need not be normalised; some may be zero as long as their sum is positive. With
 * Weighting::uniform every weight is taken as 1. Sums are accumulated in double whatever S is.
 *
 * Arithmetic, the same in both forms for every coordinate j:
 * `acc = 0; for i in column order: acc = madd(acc, w_i, double(x_i[j])); out[j] = S(acc / sum_w)`
 * with `sum_w = ((0 + w_0) + w_1) + ...` and `madd` a plain multiply then add, or one fused
 * multiply-add (std::fma) on targets that have one (x86 with -mfma or -march=haswell and later,
 * AArch64). Thread count, block size and instruction set (x86-64 builds pick an AVX2 kernel at
 * run time; it does the same operations) change only when each step runs. So the streaming
 * Accumulator, fed the batch's columns in order, reproduces aggregate() bit for bit, and any
 * thread count gives the same bits. Conditions: every translation unit uses the same target
 * flags, no -ffast-math/-fassociative-math, FLT_EVAL_METHOD == 0 (any x86-64 or AArch64 build).
 * Column order matters up to rounding: sort the batch by client id first (UpdateBatch::sort_by_id)
 * for results independent of arrival order. Non-finite values propagate (validate updates first).
 *
 * Speed: aggregate() reads the batch at memory bandwidth (coordinate blocks that keep their
 * double accumulator in L2, 4 columns per pass, software prefetch; see docs/performance.md).
 * Memory: aggregate() uses one block of block_size() doubles per thread (half the L2 cache, at
 * most 512 KiB); an Accumulator holds `dim` doubles.
 */
class WeightedMean {
 public:
  /// Columns added per pass over a block in aggregate().
  static constexpr int column_group = 4;
  /// Most coordinates per block in aggregate(): half the L2 cache in doubles, in [8192, 65536].
  [[nodiscard]] static Index block_size() noexcept { return detail::default_block(); }

  /// Mean weighted by the batch's weights.
  WeightedMean() = default;
  /// Mean with the given weighting (by_weight or uniform).
  explicit WeightedMean(Weighting weighting) noexcept : weighting_(weighting) {}

  /// The weighting in use.
  [[nodiscard]] Weighting weighting() const noexcept { return weighting_; }

  /// Writes the weighted mean of the batch's columns into `out` (resized to `batch.dim()`).
  /**
   * @throws InvalidArgument if the batch is empty, has dimension 0 (DimensionError), or its
   * weights sum to 0 (or overflow); `out` is left untouched then.
   */
  template <typename S>
  void aggregate(const UpdateBatch<S>& batch, Vector<S>& out) const {
    batch.check_nonempty(name);
    const Index n = batch.size();
    std::vector<double> w;
    if (weighting_ == Weighting::uniform) {
      w.assign(static_cast<std::size_t>(n), 1.0);
    } else {
      w.assign(batch.weights().begin(), batch.weights().end());
    }
    double sum_w = 0.0;
    for (double wi : w) sum_w += wi;
    check_sum(sum_w);
    out.resize(batch.dim());
    detail::weighted_mean_blocked<column_group>(batch.data(), batch.dim(), n, w.data(), sum_w, out.data());
  }

  /// Streaming form: updates added one at a time, O(dim) memory.
  /**
   * Adding a batch's columns in order with their weights and then calling finish() gives
   * bit-for-bit the output of aggregate() on that batch.
   * @tparam S scalar type of the updates (float or double).
   */
  template <typename S>
  class Accumulator {
   public:
    /// An empty accumulator for updates of dimension `dim` (> 0), using `mean`'s weighting.
    Accumulator(const WeightedMean& mean, Index dim)
        : weighting_(mean.weighting()), dim_(check_dim(dim)), acc_(static_cast<std::size_t>(dim), 0.0) {}

    /// Adds one update `x` (size dim) with weight `w` (finite, >= 0; ignored under Weighting::uniform).
    /**
     * @throws DimensionError if x.size() != dim; InvalidArgument if w is negative or not finite.
     */
    void add(std::span<const S> x, double w) {
      if (static_cast<Index>(x.size()) != dim_)
        fail<DimensionError>(acc_name, "update size must equal dim " + std::to_string(dim_), x.size());
      if (!(std::isfinite(w) && w >= 0.0)) fail(acc_name, "weight must be finite and >= 0", w);
      const double wk = weighting_ == Weighting::uniform ? 1.0 : w;
      double* acc = acc_.data();
      const S* xp = x.data();
      const detail::Partition parts = detail::partition_for_threads(dim_, parallel_min);
      if (parts.count == 1) {
        detail::add_columns<1, S, false>(acc, xp, 0, &wk, dim_);
      } else {
        FEDPP_OMP_PARALLEL_FOR
        for (Index p = 0; p < parts.count; ++p) {
          const Index lo = parts.lo(p);
          detail::add_columns<1, S, false>(acc + lo, xp + lo, 0, &wk, parts.hi(p, dim_) - lo);
        }
      }
      sum_w_ += wk;
      ++count_;
    }

    /// Writes the weighted mean of the updates added so far into `out` (resized to dim).
    /**
     * The accumulator is unchanged: more updates may be added and finish() called again.
     * @throws InvalidArgument if no update was added or the weights added sum to 0.
     */
    void finish(Vector<S>& out) const {
      if (count_ == 0) fail(acc_name, "no update was added");
      check_sum(sum_w_);
      out.resize(dim_);
      S* op = out.data();
      const double* acc = acc_.data();
      const double sum_w = sum_w_;
      const detail::Partition parts = detail::partition_for_threads(dim_, parallel_min);
      if (parts.count == 1) {
        detail::scale_out(op, acc, sum_w, dim_);
      } else {
        FEDPP_OMP_PARALLEL_FOR
        for (Index p = 0; p < parts.count; ++p) {
          const Index lo = parts.lo(p);
          detail::scale_out(op + lo, acc + lo, sum_w, parts.hi(p, dim_) - lo);
        }
      }
    }

    /// Forgets every update added (keeps the dimension and the allocation).
    void reset() noexcept {
      std::fill(acc_.begin(), acc_.end(), 0.0);
      sum_w_ = 0.0;
      count_ = 0;
    }

    /// Dimension of the updates.
    [[nodiscard]] Index dim() const noexcept { return dim_; }
    /// Number of updates added.
    [[nodiscard]] Index count() const noexcept { return count_; }
    /// Sum of the weights used so far (the count under Weighting::uniform).
    [[nodiscard]] double weight_sum() const noexcept { return sum_w_; }

   private:
    static constexpr const char* acc_name = "fedpp::WeightedMean::Accumulator";
    /// Fewest coordinates per thread in add() and finish() (smaller updates are not split).
    static constexpr Index parallel_min = 16384;

    static Index check_dim(Index dim) {
      if (dim <= 0) fail<DimensionError>(acc_name, "dim must be > 0", dim);
      return dim;
    }

    Weighting weighting_;
    Index dim_;
    std::vector<double> acc_;
    double sum_w_ = 0.0;
    Index count_ = 0;
  };

 private:
  static constexpr const char* name = "fedpp::WeightedMean";

  static void check_sum(double sum_w) {
    if (!(sum_w > 0.0 && std::isfinite(sum_w))) fail(name, "the sum of the weights must be finite and > 0", sum_w);
  }

  Weighting weighting_ = Weighting::by_weight;
};

/// FedAvg's server aggregation is the weighted mean.
using FedAvg = WeightedMean;

static_assert(Aggregator<WeightedMean, float> && Aggregator<WeightedMean, double>);
static_assert(StreamingAggregator<WeightedMean, float> && StreamingAggregator<WeightedMean, double>);

}  // namespace fedpp
