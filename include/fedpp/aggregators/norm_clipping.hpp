#pragma once
/// @file norm_clipping.hpp
/// Static norm clipping: a pre-aggregator that scales every update to L2 norm at most c, then
/// hands the clipped batch to any aggregator.

#include <cmath>
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

/// Static L2 clipping before an inner rule: x_i -> x_i * min(1, c / ||x_i||).
/**
 * The classic clipping pre-aggregator (ByzFL's Clipping, default c = 2; e.g. Karimireddy et al.,
 * 2021, arXiv:2012.10333, and the DP-style clipped mean). Updates with norm <= c are unchanged
 * (bit for bit); the others are multiplied by c / ||x_i|| (x_i[j] = S(double(x_i[j]) * scale)).
 * Norms are computed in double (detail/dist_sweep.hpp: fixed lanes, bit-identical on any thread
 * count). The clipped batch keeps ids and weights and goes to the inner rule (default:
 * WeightedMean, i.e. the clipped mean). No requirement on n. Inputs must be finite.
 * Memory: a clipped copy of the batch.
 * @tparam A inner aggregator (any Aggregator).
 */
template <typename A = WeightedMean>
class NormClipping {
 public:
  /// Clipping threshold c (> 0, finite) in front of `inner`.
  /// @throws InvalidArgument if c is not finite and > 0.
  explicit NormClipping(double c = 2.0, A inner = A())
      : c_(require(c > 0.0 && std::isfinite(c), name, "c must be finite and > 0", c)), inner_(std::move(inner)) {}

  /// Clipping threshold.
  [[nodiscard]] double c() const noexcept { return c_; }
  /// The inner rule.
  [[nodiscard]] const A& inner() const noexcept { return inner_; }
  /// The inner rule (mutable).
  [[nodiscard]] A& inner() noexcept { return inner_; }

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

  /// The clipped batch (same ids and weights).
  /// @throws InvalidArgument on an empty batch.
  template <typename S>
  [[nodiscard]] UpdateBatch<S> transform(const UpdateBatch<S>& batch) const {
    batch.check_nonempty("fedpp::NormClipping::transform");
    UpdateBatch<S> out = batch;
    detail::scale_columns(out.matrix().data(), out.dim(), scales(batch));
    return out;
  }

  /// Clips the batch, then aggregates it with the inner rule.
  template <typename S>
  void aggregate(const UpdateBatch<S>& batch, Vector<S>& out) {
    inner_.aggregate(transform(batch), out);
  }

 private:
  static constexpr const char* name = "fedpp::NormClipping";
  double c_;
  A inner_;
};

static_assert(Aggregator<NormClipping<>, float> && Aggregator<NormClipping<>, double>);

}  // namespace fedpp
