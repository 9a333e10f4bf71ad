#pragma once
/// @file ipm.hpp
/// Inner Product Manipulation (IPM): Byzantine clients send a small negative multiple of the honest mean.

#include <algorithm>
#include <cmath>

#include "fedpp/attacks/detail/statistics.hpp"
#include "fedpp/core/concepts.hpp"
#include "fedpp/core/error.hpp"
#include "fedpp/core/messages.hpp"
#include "fedpp/core/rng.hpp"
#include "fedpp/core/types.hpp"
#include "fedpp/core/update_batch.hpp"

namespace fedpp {

/// IPM: every Byzantine client sends b = -epsilon * mu, mu the coordinate-wise honest mean.
/**
 * Xie, Koyejo, Gupta, 2019, "Fall of Empires: Breaking Byzantine-tolerant SGD by Inner
 * Product Manipulation", UAI, arXiv:1903.03936.
 *
 * Default epsilon = 0.1 (the paper's small-epsilon setting, Garfield's `empire`); ByzFL's
 * `InnerProductManipulation(tau=2.0)` is Ipm::byzfl(). With f of n clients Byzantine the plain
 * mean becomes ((n - f) - f epsilon) / n * mu, so <mean, mu> drops by (f/n)(1 + epsilon)||mu||^2
 * relative to the honest mean, and turns negative (a descent direction becomes an ascent one)
 * once epsilon > (n - f) / f. A small epsilon keeps the Byzantine vectors close to the honest
 * ones (near the origin), which fools Krum and the median when the honest spread is large; a
 * large epsilon (e.g. 100) targets the median and trimmed mean.
 *
 * Knowledge: omniscient (the round's honest updates, at least one). Arithmetic per coordinate:
 * b = S(-epsilon * mu) with mu summed in double in column order, the same vector in every
 * Byzantine column, identical for any thread count. An empty `byz` is left alone.
 */
class Ipm {
 public:
  /// b = -epsilon * mean(honest), epsilon finite and > 0 (default 0.1).
  /**
   * @throws InvalidArgument if epsilon is not finite or not > 0.
   */
  explicit Ipm(double epsilon = 0.1)
      : epsilon_(require(std::isfinite(epsilon) && epsilon > 0.0, name, "epsilon must be finite and > 0", epsilon)) {}

  /// ByzFL's `InnerProductManipulation(tau)`: b = -tau * mean(honest) (default tau = 2).
  [[nodiscard]] static Ipm byzfl(double tau = 2.0) { return Ipm(tau); }

  /// The scale epsilon.
  [[nodiscard]] double epsilon() const noexcept { return epsilon_; }

  /// Writes -epsilon times the honest mean into every column of `byz`.
  /**
   * @throws InvalidArgument if `honest` is empty (and `byz` is not); DimensionError if the
   * dimensions of `honest` and `byz` differ.
   */
  template <typename S>
  void corrupt(UpdateBatch<S>& byz, const UpdateBatch<S>& honest, const AttackContext& /*ctx*/, Rng& /*rng*/) const {
    if (byz.empty() || byz.dim() == 0) return;
    detail::check_honest(corrupt_name, honest, byz, 1, "the honest mean");
    const double eps = epsilon_;
    const Index d = byz.dim();
    const Index f = byz.size();
    S* out = byz.column(0).data();
    detail::coordinate_moments(honest, false, [&](Index lo, Index len, const double* mean, const double*) {
      S* first = out + lo;  // column 0, then copied to the other columns
      for (Index k = 0; k < len; ++k) first[k] = static_cast<S>(-eps * mean[k]);
      for (Index c = 1; c < f; ++c) std::copy_n(first, len, out + c * d + lo);
    });
  }

 private:
  static constexpr const char* name = "fedpp::Ipm";
  static constexpr const char* corrupt_name = "fedpp::Ipm::corrupt";

  double epsilon_;
};

static_assert(Attack<Ipm, float> && Attack<Ipm, double>);

}  // namespace fedpp
