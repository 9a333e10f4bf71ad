#pragma once
/// @file sign_flip.hpp
/// Sign-flipping attack: Byzantine clients send a negated, scaled update.

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

/// What a sign-flipping attacker negates.
enum class SignFlipSource {
  own,         ///< its own honestly computed update: b = -c * g_own (Garfield "reverse" with c = 10)
  honest_mean  ///< the coordinate-wise mean of the round's honest updates: b = -c * mean(H) (ByzFL, c = 1)
};

/// Sign flipping: every Byzantine client sends b = -c * g, g its own update or the honest mean.
/**
 * The classic attack of the robust-aggregation literature (e.g. Allen-Zhu et al., 2020,
 * arXiv:2012.14368; Garfield's `reverse` attack uses c = 10; ByzFL's `SignFlipping` is
 * c = 1 on the honest mean, see SignFlip::byzfl()).
 *
 * Effect on the plain mean (source `own`, honest updates close to g): the mean becomes
 * ((n - f) - c f) / n * g, so it only changes direction when c > (n - f) / f. With n = 20
 * and f = 4 a plain flip (c = 1) merely shrinks the step to 0.6 g, c = 4 cancels it and the
 * default c = 10 reverses it (-1.2 g). Robust rules (median, trimmed mean, Krum...) ignore a
 * minority of such outliers whatever c is.
 *
 * Knowledge: source `own` needs nothing but the attacker's own update (it works in a real
 * client); `honest_mean` needs the round's honest updates (at least one; every Byzantine
 * column receives the same vector). Arithmetic: b[j] = S(-c * double(g[j])), coordinates in
 * parallel blocks, identical for any thread count. An empty `byz` is left alone.
 */
class SignFlip {
 public:
  /// b = -scale * g_own (scale finite and > 0; default 10, Garfield's `reverse`), or -scale * mean(H).
  /**
   * @throws InvalidArgument if `scale` is not finite or not > 0.
   */
  explicit SignFlip(double scale = 10.0, SignFlipSource source = SignFlipSource::own)
      : scale_(require(std::isfinite(scale) && scale > 0.0, name, "scale must be finite and > 0", scale)),
        source_(source) {}

  /// ByzFL's `SignFlipping()`: b = -mean(honest), every Byzantine client sending the same vector.
  [[nodiscard]] static SignFlip byzfl() { return SignFlip(1.0, SignFlipSource::honest_mean); }

  /// The scale c.
  [[nodiscard]] double scale() const noexcept { return scale_; }
  /// What is negated.
  [[nodiscard]] SignFlipSource source() const noexcept { return source_; }

  /// Replaces each column of `byz` by -c times its own value or -c times the honest mean.
  /**
   * @throws InvalidArgument (source honest_mean) if `honest` is empty while `byz` is not;
   * DimensionError if their dimensions differ.
   */
  template <typename S>
  void corrupt(UpdateBatch<S>& byz, const UpdateBatch<S>& honest, const AttackContext& /*ctx*/, Rng& /*rng*/) const {
    if (byz.empty() || byz.dim() == 0) return;
    const double scale = scale_;
    const Index d = byz.dim();
    const Index f = byz.size();
    S* out = byz.column(0).data();
    if (source_ == SignFlipSource::own) {
      const Index total = d * f;
      detail::block_loop(total, detail::attack_block, total, [&](Index lo, Index hi) {
        for (Index j = lo; j < hi; ++j) out[j] = static_cast<S>(-scale * static_cast<double>(out[j]));
      });
      return;
    }
    detail::check_honest(corrupt_name, honest, byz, 1, "source honest_mean");
    detail::coordinate_moments(honest, false, [&](Index lo, Index len, const double* mean, const double*) {
      S* first = out + lo;  // column 0, then copied to the other columns
      for (Index k = 0; k < len; ++k) first[k] = static_cast<S>(-scale * mean[k]);
      for (Index c = 1; c < f; ++c) std::copy_n(first, len, out + c * d + lo);
    });
  }

 private:
  static constexpr const char* name = "fedpp::SignFlip";
  static constexpr const char* corrupt_name = "fedpp::SignFlip::corrupt";

  double scale_;
  SignFlipSource source_;
};

static_assert(Attack<SignFlip, float> && Attack<SignFlip, double>);

}  // namespace fedpp
