#pragma once
/// @file arc.hpp
/// Adaptive robust clipping (ARC): the batch transform ArcClipping clips the k largest updates to
/// the norm of the largest one kept; Arc<A> hands the clipped batch to any aggregator.

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "fedpp/aggregators/detail/dist_mix.hpp"
#include "fedpp/aggregators/detail/dist_sweep.hpp"
#include "fedpp/aggregators/pre_aggregated.hpp"
#include "fedpp/aggregators/weighted_mean.hpp"
#include "fedpp/core/concepts.hpp"
#include "fedpp/core/error.hpp"
#include "fedpp/core/messages.hpp"
#include "fedpp/core/types.hpp"
#include "fedpp/core/update_batch.hpp"

namespace fedpp {

/// Adaptive robust clipping (ByzFL's ARC) as a batch transform.
/**
 * Allouah, Guerraoui, Gupta, Jellouli, Rizk, Stephan, 2024, "The Vital Role of Gradient
 * Clipping in Byzantine-Resilient Distributed Learning", arXiv:2405.14432.
 * k = floor(2 f (n - f) / n) (integer arithmetic); the updates are ordered by (norm, column
 * index); the k last ones are scaled to the norm of the (n - k)-th (x -> x * threshold / ||x||
 * when ||x|| > threshold); k = 0 changes nothing. The order among equal norms cannot change the
 * result (a norm equal to the threshold is not above it; equal norms above it get equal
 * factors). Ids and weights are kept. Requires n > f. Norms in double (detail/dist_sweep.hpp).
 * ByzFL computes k in floating point (int((2f/n)(n-f))), which can differ by one where the
 * exact value is an integer that rounds below it. Deterministic: the AggregationContext is not
 * used. Inputs must be finite. Memory: a clipped copy of the batch.
 * Arc<A> is this transform in front of A; compose it with others through PreAggregated.
 */
class ArcClipping {
 public:
  /// ARC for f declared Byzantine updates (f >= 0).
  /// @throws InvalidArgument if f < 0.
  explicit ArcClipping(Index f = 0) : ArcClipping(f, {"fedpp::ArcClipping", "fedpp::ArcClipping::transform"}) {}
  /// As ArcClipping(f), reporting errors under `names` (used by Arc<A>).
  ArcClipping(Index f, detail::ErrorNames names) : names_(names), f_(require(f >= 0, names.cls, "f must be >= 0", f)) {}

  /// Declared number of Byzantine updates.
  [[nodiscard]] Index f() const noexcept { return f_; }
  /// Number of updates clipped in a batch of n (> f).
  [[nodiscard]] Index num_clipped(Index n) const noexcept { return n > 0 ? 2 * f_ * (n - f_) / n : 0; }

  /// Per-column scale factors (1 for columns left unchanged).
  /// @throws InvalidArgument on an empty batch or when n <= f.
  template <typename S>
  [[nodiscard]] std::vector<double> scales(const UpdateBatch<S>& batch) const {
    batch.check_nonempty(names_.transform);
    const Index n = batch.size();
    if (n <= f_)
      fail(names_.transform, "requires n > f (n = " + std::to_string(n) + ", f = " + std::to_string(f_) + ")",
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

  /// The clipped batch (same ids and weights); ctx is not used.
  /// @throws InvalidArgument on an empty batch or when n <= f.
  template <typename S>
  [[nodiscard]] UpdateBatch<S> transform(const UpdateBatch<S>& batch, const AggregationContext& /*ctx*/ = {}) const {
    const std::vector<double> s = scales(batch);
    UpdateBatch<S> out = batch;
    detail::scale_columns(out.matrix().data(), out.dim(), s);
    return out;
  }

 private:
  detail::ErrorNames names_;
  Index f_;
};

static_assert(BatchTransform<ArcClipping, float> && BatchTransform<ArcClipping, double>);

/// Adaptive robust clipping before an inner rule: PreAggregated<A, ArcClipping>.
/**
 * See ArcClipping for the rule. The clipped batch goes to the inner rule (default:
 * WeightedMean). Requires n > f, plus the inner rule's requirements. Errors name fedpp::Arc.
 * Forwards the inner rule's state() when it has one.
 * @tparam A inner aggregator (any Aggregator).
 */
template <typename A = WeightedMean>
class Arc : public PreAggregated<A, ArcClipping> {
  using Base = PreAggregated<A, ArcClipping>;

 public:
  /// ARC for f declared Byzantine updates (f >= 0) in front of `inner`.
  /// @throws InvalidArgument if f < 0.
  explicit Arc(Index f = 0, A inner = A())
      : Base(std::move(inner), ArcClipping(f, {"fedpp::Arc", "fedpp::Arc::transform"})) {}

  /// Declared number of Byzantine updates.
  [[nodiscard]] Index f() const noexcept { return this->template transform_at<0>().f(); }
  /// Number of updates clipped in a batch of n (> f).
  [[nodiscard]] Index num_clipped(Index n) const noexcept { return this->template transform_at<0>().num_clipped(n); }

  /// Per-column scale factors (1 for columns left unchanged).
  /// @throws InvalidArgument on an empty batch or when n <= f.
  template <typename S>
  [[nodiscard]] std::vector<double> scales(const UpdateBatch<S>& batch) const {
    return this->template transform_at<0>().scales(batch);
  }

  using Base::transform;
  /// The clipped batch (same ids and weights).
  template <typename S>
  [[nodiscard]] UpdateBatch<S> transform(const UpdateBatch<S>& batch) const {
    return Base::transform(batch, AggregationContext{});
  }
};

static_assert(Aggregator<Arc<>, float> && Aggregator<Arc<>, double> && ContextAggregator<Arc<>, float>);

}  // namespace fedpp
