#pragma once
/// @file arc.hpp
/// Adaptive robust clipping (ARC): a pre-aggregator that clips the k largest updates to the
/// norm of the largest one kept, then hands the batch to any aggregator.

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "fedpp/aggregators/detail/dist_mix.hpp"
#include "fedpp/aggregators/detail/dist_sweep.hpp"
#include "fedpp/aggregators/weighted_mean.hpp"
#include "fedpp/core/concepts.hpp"
#include "fedpp/core/error.hpp"
#include "fedpp/core/types.hpp"
#include "fedpp/core/update_batch.hpp"

namespace fedpp {

/// Adaptive robust clipping before an inner rule (ByzFL's ARC).
/**
 * Allouah, Guerraoui, Gupta, Jellouli, Rizk, Stephan, 2024, "The Vital Role of Gradient
 * Clipping in Byzantine-Resilient Distributed Learning", arXiv:2405.14432.
 * k = floor(2 f (n - f) / n) (integer arithmetic); the updates are ordered by (norm, column
 * index); the k last ones are scaled to the norm of the (n - k)-th (x -> x * threshold / ||x||
 * when ||x|| > threshold); k = 0 changes nothing. The order among equal norms cannot change the
 * result (a norm equal to the threshold is not above it; equal norms above it get equal
 * factors). Ids and weights are kept; the batch goes to the inner rule (default:
 * WeightedMean). Requires n > f. Norms in double (detail/dist_sweep.hpp).
 * ByzFL computes k in floating point (int((2f/n)(n-f))), which can differ by one where the
 * exact value is an integer that rounds below it. Inputs must be finite.
 * Memory: a clipped copy of the batch.
 * @tparam A inner aggregator (any Aggregator).
 */
template <typename A = WeightedMean>
class Arc {
 public:
  /// ARC for f declared Byzantine updates (f >= 0) in front of `inner`.
  /// @throws InvalidArgument if f < 0.
  explicit Arc(Index f = 0, A inner = A()) : f_(require(f >= 0, name, "f must be >= 0", f)), inner_(std::move(inner)) {}

  /// Declared number of Byzantine updates.
  [[nodiscard]] Index f() const noexcept { return f_; }
  /// Number of updates clipped in a batch of n (> f).
  [[nodiscard]] Index num_clipped(Index n) const noexcept { return n > 0 ? 2 * f_ * (n - f_) / n : 0; }
  /// The inner rule.
  [[nodiscard]] const A& inner() const noexcept { return inner_; }
  /// The inner rule (mutable).
  [[nodiscard]] A& inner() noexcept { return inner_; }

  /// Per-column scale factors (1 for columns left unchanged).
  /// @throws InvalidArgument on an empty batch or when n <= f.
  template <typename S>
  [[nodiscard]] std::vector<double> scales(const UpdateBatch<S>& batch) const {
    batch.check_nonempty(transform_name);
    const Index n = batch.size();
    if (n <= f_)
      fail(transform_name, "requires n > f (n = " + std::to_string(n) + ", f = " + std::to_string(f_) + ")",
           "n = " + std::to_string(n));
    std::vector<double> norms = detail::column_sq_norms(batch.data(), batch.dim(), n);
    for (double& v : norms) v = std::sqrt(v);
    std::vector<Index> order(static_cast<std::size_t>(n));
    std::iota(order.begin(), order.end(), Index{0});
    std::stable_sort(order.begin(), order.end(), [&](Index a, Index b) {
      return norms[static_cast<std::size_t>(a)] < norms[static_cast<std::size_t>(b)];
    });
    std::vector<double> s(static_cast<std::size_t>(n), 1.0);
    const Index k = num_clipped(n);
    if (k == 0) return s;
    const double threshold = norms[static_cast<std::size_t>(order[static_cast<std::size_t>(n - k - 1)])];
    for (Index r = n - k; r < n; ++r) {
      const auto i = static_cast<std::size_t>(order[static_cast<std::size_t>(r)]);
      if (norms[i] > threshold) s[i] = threshold / norms[i];
    }
    return s;
  }

  /// The clipped batch (same ids and weights).
  template <typename S>
  [[nodiscard]] UpdateBatch<S> transform(const UpdateBatch<S>& batch) const {
    const std::vector<double> s = scales(batch);
    UpdateBatch<S> out = batch;
    detail::scale_columns(out.matrix().data(), out.dim(), s);
    return out;
  }

  /// Clips the batch, then aggregates it with the inner rule.
  template <typename S>
  void aggregate(const UpdateBatch<S>& batch, Vector<S>& out) {
    inner_.aggregate(transform(batch), out);
  }

 private:
  static constexpr const char* name = "fedpp::Arc";
  static constexpr const char* transform_name = "fedpp::Arc::transform";
  Index f_;
  A inner_;
};

static_assert(Aggregator<Arc<>, float> && Aggregator<Arc<>, double>);

}  // namespace fedpp
