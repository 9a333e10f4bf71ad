#pragma once
/// @file norm_clipping.hpp
/// Static norm clipping: the batch transform NormClip scales every update to L2 norm at most c;
/// NormClipping<A> hands the clipped batch to any aggregator.

#include <cmath>
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

/// Static L2 clipping as a batch transform: x_i -> x_i * min(1, c / ||x_i||).
/**
 * The classic clipping pre-aggregator (ByzFL's Clipping, default c = 2; e.g. Karimireddy et al.,
 * 2021, arXiv:2012.10333, and the DP-style clipped mean). Updates with norm <= c are unchanged
 * (bit for bit); the others are multiplied by c / ||x_i|| (x_i[j] = S(double(x_i[j]) * scale)).
 * Norms are computed in double (detail/dist_sweep.hpp: fixed lanes, bit-identical on any thread
 * count). The clipped batch keeps ids and weights. No requirement on n. Deterministic: the
 * AggregationContext is not used. Inputs must be finite. Memory: a clipped copy of the batch.
 * NormClipping<A> is this transform in front of A; compose it with others through PreAggregated.
 */
class NormClip {
 public:
  /// Clipping threshold c (> 0, finite).
  /// @throws InvalidArgument if c is not finite and > 0.
  explicit NormClip(double c = 2.0) : NormClip(c, {"fedpp::NormClip", "fedpp::NormClip::transform"}) {}
  /// As NormClip(c), reporting errors under `names` (used by NormClipping<A>).
  NormClip(double c, detail::ErrorNames names)
      : names_(names), c_(require(c > 0.0 && std::isfinite(c), names.cls, "c must be finite and > 0", c)) {}

  /// Clipping threshold.
  [[nodiscard]] double c() const noexcept { return c_; }

  /// Per-column scale factors (1 for columns within the threshold).
  template <typename S>
  [[nodiscard]] std::vector<double> scales(const UpdateBatch<S>& batch) const {
    std::vector<double> s = detail::column_sq_norms(batch.data(), batch.dim(), batch.size());
    for (double& v : s) {
      const double norm = std::sqrt(v);
      v = norm > c_ ? c_ / norm : 1.0;
    }
    return s;
  }

  /// The clipped batch (same ids and weights); ctx is not used.
  /// @throws InvalidArgument on an empty batch.
  template <typename S>
  [[nodiscard]] UpdateBatch<S> transform(const UpdateBatch<S>& batch, const AggregationContext& /*ctx*/ = {}) const {
    batch.check_nonempty(names_.transform);
    UpdateBatch<S> out = batch;
    detail::scale_columns(out.matrix().data(), out.dim(), scales(batch));
    return out;
  }

 private:
  detail::ErrorNames names_;
  double c_;
};

static_assert(BatchTransform<NormClip, float> && BatchTransform<NormClip, double>);

/// Static L2 clipping before an inner rule: PreAggregated<A, NormClip>.
/**
 * See NormClip for the rule. The clipped batch goes to the inner rule (default: WeightedMean,
 * i.e. the clipped mean). Errors name fedpp::NormClipping. Forwards the inner rule's state()
 * when it has one.
 * @tparam A inner aggregator (any Aggregator).
 */
template <typename A = WeightedMean>
class NormClipping : public PreAggregated<A, NormClip> {
  using Base = PreAggregated<A, NormClip>;

 public:
  /// Clipping threshold c (> 0, finite) in front of `inner`.
  /// @throws InvalidArgument if c is not finite and > 0.
  explicit NormClipping(double c = 2.0, A inner = A())
      : Base(std::move(inner), NormClip(c, {"fedpp::NormClipping", "fedpp::NormClipping::transform"})) {}

  /// Clipping threshold.
  [[nodiscard]] double c() const noexcept { return this->template transform_at<0>().c(); }

  /// Per-column scale factors (1 for columns within the threshold).
  template <typename S>
  [[nodiscard]] std::vector<double> scales(const UpdateBatch<S>& batch) const {
    return this->template transform_at<0>().scales(batch);
  }

  using Base::transform;
  /// The clipped batch (same ids and weights).
  /// @throws InvalidArgument on an empty batch.
  template <typename S>
  [[nodiscard]] UpdateBatch<S> transform(const UpdateBatch<S>& batch) const {
    return Base::transform(batch, AggregationContext{});
  }
};

static_assert(Aggregator<NormClipping<>, float> && Aggregator<NormClipping<>, double> &&
              ContextAggregator<NormClipping<>, float>);

}  // namespace fedpp
