#pragma once
/// @file alie.hpp
/// "A Little Is Enough" (ALIE): Byzantine clients send the honest mean shifted by z standard deviations.

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <string_view>

#include "fedpp/attacks/detail/statistics.hpp"
#include "fedpp/core/concepts.hpp"
#include "fedpp/core/error.hpp"
#include "fedpp/core/messages.hpp"
#include "fedpp/core/rng.hpp"
#include "fedpp/core/types.hpp"
#include "fedpp/core/update_batch.hpp"

namespace fedpp {

/// How ALIE computes z from the number of participants n and of Byzantine clients f.
/**
 * Both use the number of "supporters" s = floor(n/2 + 1) - f the attackers need among the
 * honest clients for a majority. Worked values (A, B): n = 15, f = 3: 0.2104, 0.4307;
 * n = 20, f = 4: 0.1573, 0.3853; n = 25, f = 5: 0.2533, 0.4677; n = 50, f = 12: 0.3360, 0.5828.
 */
enum class AlieVariant {
  a,  ///< z = Phi^{-1}((n - f - s) / (n - f)): widely used attack code (Garfield's z = 0.21 is n=15, f=3)
  b   ///< z = Phi^{-1}((n - s) / n): the form of the paper's Algorithm 1
};

/// Direction of the ALIE shift.
enum class AlieSign {
  minus,  ///< b = mu - z * sigma (the paper's form; the default)
  plus    ///< b = mu + z * sigma (ByzFL's ALittleIsEnough)
};

/// ALIE: every Byzantine client sends b = mu -/+ z * sigma (coordinate-wise honest mean and std).
/**
 * Baruch, Baruch, Goldberg, 2019, "A Little Is Enough: Circumventing Defenses For Distributed
 * Learning", NeurIPS, arXiv:1902.06156.
 *
 * mu and sigma are the coordinate-wise mean and unbiased standard deviation (divisor n_H - 1,
 * as torch.std and ByzFL's ddof=1) of the round's honest updates; with a single honest update
 * sigma is defined as 0 (b = mu). z is either fixed (Alie::fixed, Alie::byzfl: ByzFL's
 * `ALittleIsEnough(tau=1.5)` is b = mu + 1.5 sigma) or computed every round from
 * n = ctx.num_clients and f = ctx.num_byzantine (AlieVariant; default variant A, sign minus).
 * Variant A gives z < 0 when f is small relative to n (e.g. n = 20, f = 1: z = -0.066),
 * which is the formula, not an error. Requirements for a computed z: 1 <= n, 0 <= f <= n,
 * s >= 1 (f <= floor(n/2), a Byzantine minority) and, for variant A, n >= 3 (for variant B,
 * s < n, which excludes only n = 1 and n = 2 with f = 0).
 *
 * Knowledge: omniscient (the honest updates of the round and n, f), as in most attack code;
 * the paper's attackers estimate mu and sigma from their own data instead.
 * Effect: the shift hides inside the honest spread, so median, trimmed mean and Krum keep
 * (or select) the Byzantine vector, while the mean barely moves; its damage accumulates over
 * rounds. Arithmetic per coordinate: b = S(madd(+/-z, sigma, mu)) in double (see
 * detail::coordinate_moments), the same vector in every Byzantine column, identical for any
 * thread count. Memory: two blocks of 2048 doubles per thread. An empty `byz` is left alone.
 *
 * Phi^{-1} is detail::normal_quantile (Acklam's approximation refined by one Halley step,
 * accurate to a few ulp), so fedpp::fedpp keeps depending on Eigen only.
 */
class Alie {
 public:
  /// z from the round's n and f by variant A, b = mu - z sigma.
  Alie() = default;

  /// z from the round's n and f by `variant`, shifted in direction `sign`.
  explicit Alie(AlieVariant variant, AlieSign sign = AlieSign::minus) noexcept : variant_(variant), sign_(sign) {}

  /// A fixed z (finite, >= 0) in direction `sign`, whatever n and f.
  /**
   * @throws InvalidArgument if z is negative or not finite.
   */
  [[nodiscard]] static Alie fixed(double z, AlieSign sign = AlieSign::minus) {
    Alie a(AlieVariant::a, sign);
    a.z_ = require(std::isfinite(z) && z >= 0.0, name, "z must be finite and >= 0", z);
    return a;
  }

  /// ByzFL's `ALittleIsEnough(tau)`: b = mu + tau * sigma (default tau = 1.5).
  [[nodiscard]] static Alie byzfl(double tau = 1.5) { return fixed(tau, AlieSign::plus); }

  /// z_max for n participants of which f Byzantine, by `variant` (see AlieVariant).
  /**
   * @throws InvalidArgument (naming fedpp::Alie::z_max, n and f) unless 1 <= n, 0 <= f <= n,
   * s = floor(n/2 + 1) - f >= 1 and, for variant A, n >= 3 (variant B: s < n).
   */
  [[nodiscard]] static double z_max(Index n, Index f, AlieVariant variant = AlieVariant::a) {
    return z_from_counts("fedpp::Alie::z_max", n, f, variant);
  }

  /// The fixed z, or nothing when z is computed from n and f.
  [[nodiscard]] std::optional<double> fixed_z() const noexcept { return z_; }
  /// The variant used when z is computed.
  [[nodiscard]] AlieVariant variant() const noexcept { return variant_; }
  /// The direction of the shift.
  [[nodiscard]] AlieSign sign() const noexcept { return sign_; }

  /// The z this attack uses in a round with context `ctx`.
  /**
   * @throws InvalidArgument when z is computed and ctx's n and f violate z_max's requirements.
   */
  [[nodiscard]] double z_for(const AttackContext& ctx) const {
    if (z_) return *z_;
    return z_from_counts(corrupt_name, ctx.num_clients, ctx.num_byzantine, variant_);
  }

  /// Writes mu -/+ z sigma of the honest updates into every column of `byz`.
  /**
   * @throws InvalidArgument if `honest` is empty (and `byz` is not), or as z_for();
   * DimensionError if the dimensions of `honest` and `byz` differ.
   */
  template <typename S>
  void corrupt(UpdateBatch<S>& byz, const UpdateBatch<S>& honest, const AttackContext& ctx, Rng& /*rng*/) const {
    if (byz.empty() || byz.dim() == 0) return;
    detail::check_honest(corrupt_name, honest, byz, 1, "mu and sigma of the honest updates");
    const double z = z_for(ctx);
    const double shift = sign_ == AlieSign::minus ? -z : z;
    const Index d = byz.dim();
    const Index f = byz.size();
    S* out = byz.column(0).data();
    detail::coordinate_moments(honest, true, [&](Index lo, Index len, const double* mean, const double* sd) {
      S* first = out + lo;  // column 0, then copied to the other columns
      for (Index k = 0; k < len; ++k) first[k] = static_cast<S>(detail::attack_madd(shift, sd[k], mean[k]));
      for (Index c = 1; c < f; ++c) std::copy_n(first, len, out + c * d + lo);
    });
  }

 private:
  static constexpr const char* name = "fedpp::Alie";
  static constexpr const char* corrupt_name = "fedpp::Alie::corrupt";

  static double z_from_counts(std::string_view where, Index n, Index f, AlieVariant variant) {
    const std::string counts = " (n = " + std::to_string(n) + ", f = " + std::to_string(f) + ")";
    if (n < 1) fail(where, "requires n >= 1" + counts, "n = " + std::to_string(n));
    if (f < 0 || f > n) fail(where, "requires 0 <= f <= n" + counts, "f = " + std::to_string(f));
    const Index s = n / 2 + 1 - f;  // floor(n/2 + 1) - f
    if (s < 1)
      fail(where, "requires s = floor(n/2 + 1) - f >= 1, i.e. f <= floor(n/2)" + counts,
           "s = " + std::to_string(s));
    double p = 0.0;
    if (variant == AlieVariant::a) {
      if (n < 3) fail(where, "variant a requires n >= 3" + counts, "n = " + std::to_string(n));
      p = static_cast<double>(n - f - s) / static_cast<double>(n - f);
    } else {
      if (s >= n) fail(where, "variant b requires s = floor(n/2 + 1) - f < n" + counts, "s = " + std::to_string(s));
      p = static_cast<double>(n - s) / static_cast<double>(n);
    }
    // p is in (0, 1) here: 0 < n - f - s < n - f (n >= 3, s >= 1) or 0 < n - s < n.
    return detail::normal_quantile(p);
  }

  std::optional<double> z_;
  AlieVariant variant_ = AlieVariant::a;
  AlieSign sign_ = AlieSign::minus;
};

static_assert(Attack<Alie, float> && Attack<Alie, double>);

}  // namespace fedpp
