#pragma once
/// @file gaussian.hpp
/// Gaussian-noise attack: Byzantine clients send (or add) i.i.d. normal noise.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "fedpp/attacks/detail/statistics.hpp"
#include "fedpp/core/concepts.hpp"
#include "fedpp/core/config.hpp"
#include "fedpp/core/error.hpp"
#include "fedpp/core/messages.hpp"
#include "fedpp/core/rng.hpp"
#include "fedpp/core/types.hpp"
#include "fedpp/core/update_batch.hpp"

namespace fedpp {

/// How GaussianNoise uses its draws.
enum class NoiseMode {
  replace,  ///< b = noise: the attacker's own update is discarded
  add       ///< b = g_own + noise
};

/// Whether the Byzantine clients of a round draw their own noise or share one draw.
enum class NoiseDraws {
  independent,  ///< one noise vector per Byzantine column
  shared        ///< one noise vector copied to every Byzantine column (ByzFL: `[byz_vector] * f`)
};

/// Gaussian noise: b = N(mean, sigma^2 I) (mode replace) or b = g_own + N(mean, sigma^2 I) (mode add).
/**
 * A standard baseline of the Byzantine literature (e.g. Blanchard et al., 2017, "Machine
 * learning with adversaries: Byzantine tolerant gradient descent", NeurIPS; ByzFL's
 * `Gaussian(mu=0, sigma=1)`, see GaussianNoise::byzfl()). Default sigma = 1 (ByzFL's default;
 * papers also use sigma^2 = 200). It needs no knowledge of the other clients, so it also works
 * in a real client.
 *
 * Effect: with f of n clients sending independent noise the mean moves by a random vector of
 * per-coordinate standard deviation sigma * sqrt(f) / n, which swamps typical updates for
 * sigma = 1; robust rules discard it. Shared draws make the f Byzantine vectors identical,
 * which some distance-based rules (Krum) then favour: compare both.
 *
 * Draws (deterministic given the Rng): for each Byzantine column c in order, one 64-bit key
 * k_c = rng() is taken from the Rng passed in and coordinate j of the column's noise is the
 * j-th Rng(k_c).normal() (Box-Muller), so column c's noise does not depend on the dimension
 * of other columns or on the thread count (columns fill in parallel). With NoiseDraws::shared
 * one key is taken and its vector is copied. Values: b[j] = S(mean + sigma * z_j) or
 * S(g[j] + (mean + sigma * z_j)), computed in double. An empty `byz` is left alone (no draw).
 */
class GaussianNoise {
 public:
  /// Noise of standard deviation `sigma` (finite, >= 0; default 1) around `mean` (finite; default 0).
  /**
   * @throws InvalidArgument if sigma is negative or not finite, or mean is not finite.
   */
  explicit GaussianNoise(double sigma = 1.0, NoiseMode mode = NoiseMode::replace, double mean = 0.0,
                         NoiseDraws draws = NoiseDraws::independent)
      : sigma_(require(std::isfinite(sigma) && sigma >= 0.0, name, "sigma must be finite and >= 0", sigma)),
        mean_(require(std::isfinite(mean), name, "mean must be finite", mean)),
        mode_(mode),
        draws_(draws) {}

  /// ByzFL's `Gaussian(mu, sigma)`: one N(mu, sigma^2 I) vector sent by every Byzantine client.
  [[nodiscard]] static GaussianNoise byzfl(double mu = 0.0, double sigma = 1.0) {
    return GaussianNoise(sigma, NoiseMode::replace, mu, NoiseDraws::shared);
  }

  /// Standard deviation of the noise.
  [[nodiscard]] double sigma() const noexcept { return sigma_; }
  /// Mean of the noise.
  [[nodiscard]] double mean() const noexcept { return mean_; }
  /// Replace or add.
  [[nodiscard]] NoiseMode mode() const noexcept { return mode_; }
  /// Independent or shared draws.
  [[nodiscard]] NoiseDraws draws() const noexcept { return draws_; }

  /// Replaces each column of `byz` by noise, or adds noise to it; `honest` is not used.
  template <typename S>
  void corrupt(UpdateBatch<S>& byz, const UpdateBatch<S>& /*honest*/, const AttackContext& /*ctx*/, Rng& rng) const {
    if (byz.empty() || byz.dim() == 0) return;
    const Index d = byz.dim();
    const Index f = byz.size();
    const Index keys_needed = draws_ == NoiseDraws::shared ? 1 : f;
    std::vector<std::uint64_t> keys(static_cast<std::size_t>(keys_needed));
    for (auto& k : keys) k = rng();
    S* out = byz.column(0).data();
    const double mu = mean_;
    const double sigma = sigma_;
    const bool add = mode_ == NoiseMode::add;
    auto fill = [&](Index c, std::uint64_t key) {
      Rng col_rng(key);
      S* x = out + c * d;
      for (Index j = 0; j < d; ++j) {
        const double noise = detail::attack_madd(sigma, col_rng.normal(), mu);
        x[j] = add ? static_cast<S>(static_cast<double>(x[j]) + noise) : static_cast<S>(noise);
      }
    };
    if (draws_ == NoiseDraws::shared && !add) {
      fill(0, keys[0]);
      for (Index c = 1; c < f; ++c) std::copy_n(out, d, out + c * d);
      return;
    }
    // Column c replays key c (independent) or key 0 (shared, mode add); columns fill in parallel.
    const bool shared = draws_ == NoiseDraws::shared;
    if (f > 1 && d * f >= (Index{1} << 15)) {
      FEDPP_OMP_PARALLEL_FOR
      for (Index c = 0; c < f; ++c) fill(c, keys[shared ? 0 : static_cast<std::size_t>(c)]);
    } else {
      for (Index c = 0; c < f; ++c) fill(c, keys[shared ? 0 : static_cast<std::size_t>(c)]);
    }
  }

 private:
  static constexpr const char* name = "fedpp::GaussianNoise";

  double sigma_;
  double mean_;
  NoiseMode mode_;
  NoiseDraws draws_;
};

static_assert(Attack<GaussianNoise, float> && Attack<GaussianNoise, double>);

}  // namespace fedpp
