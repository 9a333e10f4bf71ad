#pragma once
/// @file mimic.hpp
/// Mimic attack: every Byzantine client copies the update of one honest client.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "fedpp/attacks/detail/statistics.hpp"
#include "fedpp/core/concepts.hpp"
#include "fedpp/core/error.hpp"
#include "fedpp/core/messages.hpp"
#include "fedpp/core/rng.hpp"
#include "fedpp/core/types.hpp"
#include "fedpp/core/update_batch.hpp"

namespace fedpp {

/// How Mimic picks the honest client it copies.
enum class MimicTarget {
  index,         ///< a fixed position in the round's honest batch (ByzFL's `Mimic(epsilon)`)
  top_direction  ///< the paper's heuristic: largest projection on the top principal direction
};

/// Mimic: every Byzantine client sends a copy of one honest client's update.
/**
 * Karimireddy, He, Jaggi, 2022, "Byzantine-Robust Learning on Heterogeneous Datasets via
 * Bucketing", ICLR, arXiv:2006.09365. On non-IID data, copying one honest worker
 * over-represents its data and biases robust rules that select or weight "typical" updates,
 * while every Byzantine vector looks perfectly honest. Against the mean the effect is a
 * reweighting of the honest updates, no more.
 *
 * Target `index` (the default, index 0): the honest update at position `index()` of the
 * honest batch (client-id order), every round, as ByzFL's `Mimic(epsilon=index)`. Stateless.
 *
 * Target `top_direction` (Mimic::top_direction(warmup_rounds, power_iterations)), following
 * the authors' reference code (`MimicVariantAttacker`): the attack keeps a running mean mu
 * and a unit direction z over its first `warmup_rounds` calls t = 0, 1, ...:
 * - t = 0: mu = honest mean; z = z0 / ||z0|| with z0 ~ N(0, I) drawn from the Rng passed in
 *   (coordinate order, one Rng::normal() each), then `power_iterations` power steps
 *   z <- C z / ||C z||, where C = sum_i (g_i - mu)(g_i - mu)^T over the honest updates g_i;
 * - 0 < t < warmup: mu <- t/(t+1) mu + mean/(t+1); w = z after `power_iterations` power
 *   steps with the new mu; z <- normalise(t/(t+1) z + w/(t+1));
 * - during warm-up the copied update is argmax_i <g_i, z> (lowest index on ties), and its
 *   client id is remembered; after warm-up that client is copied whenever it is among the
 *   round's honest clients; in a round where it is not (client sampling), the argmax under
 *   the last z is copied instead (state unchanged).
 * power_iterations = 1 is the reference code's update. A power step that gives C z = 0 (all
 * honest updates equal, or a single one) keeps z. State: mu and z, 2 d doubles, plus the
 * client id; copies of the object carry their state; reset() forgets it. A call with an
 * empty `byz` is a no-op and does not advance the state.
 *
 * Determinism: dot products and norms are summed per block of 2048 coordinates and then over
 * blocks in order; per-coordinate sums run over the columns in order; so the result does not
 * depend on the thread count. Cost per warm-up call: (2 power_iterations + 2) reads of the
 * honest batch; after warm-up: one copy. Knowledge: omniscient (the round's honest updates).
 */
class Mimic {
 public:
  /// Copies the honest update at position `index` (>= 0, default 0) of each round's honest batch.
  /**
   * @throws InvalidArgument if index < 0.
   */
  explicit Mimic(Index index = 0)
      : index_(require(index >= 0, name, "index must be >= 0", index)) {}

  /// The paper's heuristic (see the class comment): warmup_rounds >= 1, power_iterations >= 1.
  /**
   * @throws InvalidArgument if warmup_rounds < 1 or power_iterations < 1.
   */
  [[nodiscard]] static Mimic top_direction(Index warmup_rounds = 1, int power_iterations = 1) {
    Mimic m;
    m.target_ = MimicTarget::top_direction;
    m.warmup_ = require(warmup_rounds >= 1, name, "warmup_rounds must be >= 1", warmup_rounds);
    m.power_iterations_ = require(power_iterations >= 1, name, "power_iterations must be >= 1", power_iterations);
    return m;
  }

  /// How the copied client is chosen.
  [[nodiscard]] MimicTarget target() const noexcept { return target_; }
  /// The fixed position (target index).
  [[nodiscard]] Index index() const noexcept { return index_; }
  /// Warm-up calls of the heuristic (target top_direction).
  [[nodiscard]] Index warmup_rounds() const noexcept { return warmup_; }
  /// Power steps per warm-up call (target top_direction).
  [[nodiscard]] int power_iterations() const noexcept { return power_iterations_; }
  /// Calls that advanced the heuristic's state so far (at most warmup_rounds()).
  [[nodiscard]] Index rounds_seen() const noexcept { return t_; }
  /// The client the heuristic chose last (none before the first call).
  [[nodiscard]] std::optional<ClientId> chosen_client() const noexcept { return chosen_; }
  /// The heuristic's current direction z (empty before the first call).
  [[nodiscard]] const Vector<double>& direction() const noexcept { return z_; }

  /// cereal: the heuristic's state (call count, running mean, direction, chosen client), so a
  /// resumed simulation continues the attack where it stopped; settings are configuration.
  template <class Archive>
  void serialize(Archive& ar) {
    bool has_chosen = chosen_.has_value();
    ClientId chosen = chosen_.value_or(0);
    ar(t_, mu_, z_, has_chosen, chosen);
    chosen_ = has_chosen ? std::optional<ClientId>(chosen) : std::nullopt;
  }

  /// Forgets the heuristic's state (mu, z, chosen client, call count).
  void reset() noexcept {
    t_ = 0;
    mu_.resize(0);
    z_.resize(0);
    chosen_.reset();
  }

  /// Copies the chosen honest update into every column of `byz`.
  /**
   * @throws InvalidArgument if `honest` is empty (and `byz` is not) or, for target index,
   * holds no update at position index(); DimensionError if the dimensions of `honest` and
   * `byz` differ, or (top_direction) the dimension changed since the first call.
   */
  template <typename S>
  void corrupt(UpdateBatch<S>& byz, const UpdateBatch<S>& honest, const AttackContext& /*ctx*/, Rng& rng) {
    if (byz.empty() || byz.dim() == 0) return;
    detail::check_honest(corrupt_name, honest, byz, 1, "a client to copy");
    Index pick = 0;
    if (target_ == MimicTarget::index) {
      if (index_ >= honest.size())
        fail(corrupt_name,
             "index must be < the number of honest updates (" + std::to_string(honest.size()) + ")", index_);
      pick = index_;
    } else {
      pick = choose(honest, rng);
    }
    const Index d = byz.dim();
    const S* src = honest.column(pick).data();
    S* out = byz.column(0).data();
    for (Index c = 0; c < byz.size(); ++c) std::copy_n(src, d, out + c * d);
  }

 private:
  static constexpr const char* name = "fedpp::Mimic";
  static constexpr const char* corrupt_name = "fedpp::Mimic::corrupt";
  static constexpr Index block = detail::attack_block;

  /// The heuristic's choice for this round (a column of `honest`), advancing the state during warm-up.
  template <typename S>
  Index choose(const UpdateBatch<S>& honest, Rng& rng) {
    const Index d = honest.dim();
    if (t_ > 0 && mu_.size() != d)
      fail<DimensionError>(corrupt_name, "the update dimension must not change between rounds (" +
                                             std::to_string(mu_.size()) + ")", d);
    if (t_ >= warmup_) {
      if (chosen_) {
        const auto ids = honest.ids();
        const auto it = std::find(ids.begin(), ids.end(), *chosen_);
        if (it != ids.end()) return static_cast<Index>(it - ids.begin());
      }
      return argmax_projection(honest);
    }
    Vector<double> avg(d);
    detail::coordinate_moments(honest, false, [&](Index lo, Index len, const double* mean, const double*) {
      for (Index k = 0; k < len; ++k) avg[lo + k] = mean[k];
    });
    if (t_ == 0) {
      mu_ = avg;
      z_.resize(d);
      for (Index j = 0; j < d; ++j) z_[j] = rng.normal();
      normalise(z_);
      for (int it = 0; it < power_iterations_; ++it) power_step(honest, z_);
    } else {
      const double t = static_cast<double>(t_);
      const double keep = t / (t + 1.0);
      const double take = 1.0 / (t + 1.0);
      detail::block_loop(d, block, d, [&](Index lo, Index hi) {
        for (Index j = lo; j < hi; ++j) mu_[j] = detail::attack_madd(keep, mu_[j], avg[j] * take);
      });
      Vector<double> w = z_;
      for (int it = 0; it < power_iterations_; ++it) power_step(honest, w);
      detail::block_loop(d, block, d, [&](Index lo, Index hi) {
        for (Index j = lo; j < hi; ++j) z_[j] = detail::attack_madd(keep, z_[j], w[j] * take);
      });
      normalise(z_);
    }
    ++t_;
    const Index pick = argmax_projection(honest);
    chosen_ = honest.ids()[static_cast<std::size_t>(pick)];
    return pick;
  }

  /// Column i with the largest <g_i, z> (lowest index on ties).
  template <typename S>
  Index argmax_projection(const UpdateBatch<S>& honest) const {
    const std::vector<double> p = projections(honest, nullptr, z_.data());
    Index best = 0;
    for (Index i = 1; i < static_cast<Index>(p.size()); ++i)
      if (p[static_cast<std::size_t>(i)] > p[static_cast<std::size_t>(best)]) best = i;
    return best;
  }

  /// w_i = sum_j (g_i[j] - mu[j]) v[j] (mu may be null: no centring), summed per block then over blocks in order.
  template <typename S>
  static std::vector<double> projections(const UpdateBatch<S>& h, const double* mu, const double* v) {
    const Index d = h.dim();
    const Index n = h.size();
    const Index nblocks = (d + block - 1) / block;
    std::vector<double> partial(static_cast<std::size_t>(nblocks * n), 0.0);
    const S* data = h.data();
    detail::block_loop(d, block, d * n, [&](Index lo, Index hi) {
      const Index b = lo / block;
      for (Index i = 0; i < n; ++i) {
        const S* col = data + i * d;
        double acc = 0.0;
        for (Index j = lo; j < hi; ++j) {
          const double x = mu ? static_cast<double>(col[j]) - mu[j] : static_cast<double>(col[j]);
          acc = detail::attack_madd(x, v[j], acc);
        }
        partial[static_cast<std::size_t>(b * n + i)] = acc;
      }
    });
    std::vector<double> w(static_cast<std::size_t>(n), 0.0);
    for (Index b = 0; b < nblocks; ++b)
      for (Index i = 0; i < n; ++i) w[static_cast<std::size_t>(i)] += partial[static_cast<std::size_t>(b * n + i)];
    return w;
  }

  /// Euclidean norm, summed per block then over blocks in order.
  static double norm(const Vector<double>& v) {
    const Index d = v.size();
    const Index nblocks = (d + block - 1) / block;
    std::vector<double> partial(static_cast<std::size_t>(nblocks), 0.0);
    detail::block_loop(d, block, d, [&](Index lo, Index hi) {
      double acc = 0.0;
      for (Index j = lo; j < hi; ++j) acc = detail::attack_madd(v[j], v[j], acc);
      partial[static_cast<std::size_t>(lo / block)] = acc;
    });
    double s = 0.0;
    for (double p : partial) s += p;
    return std::sqrt(s);
  }

  /// v <- v / ||v|| (unchanged when ||v|| is 0).
  static void normalise(Vector<double>& v) {
    const double nv = norm(v);
    if (nv > 0.0) v /= nv;
  }

  /// w <- C w / ||C w||, C = sum_i (g_i - mu)(g_i - mu)^T; w unchanged when C w = 0.
  template <typename S>
  void power_step(const UpdateBatch<S>& h, Vector<double>& w) const {
    const Index d = h.dim();
    const Index n = h.size();
    const std::vector<double> coef = projections(h, mu_.data(), w.data());
    Vector<double> cw(d);
    const S* data = h.data();
    detail::block_loop(d, block, d * n, [&](Index lo, Index hi) {
      for (Index j = lo; j < hi; ++j) cw[j] = 0.0;
      for (Index i = 0; i < n; ++i) {
        const S* col = data + i * d;
        const double ci = coef[static_cast<std::size_t>(i)];
        for (Index j = lo; j < hi; ++j) cw[j] = detail::attack_madd(ci, static_cast<double>(col[j]) - mu_[j], cw[j]);
      }
    });
    const double nc = norm(cw);
    if (nc > 0.0) w = cw / nc;
  }

  MimicTarget target_ = MimicTarget::index;
  Index index_ = 0;
  Index warmup_ = 1;
  int power_iterations_ = 1;
  Index t_ = 0;
  Vector<double> mu_;
  Vector<double> z_;
  std::optional<ClientId> chosen_;
};

static_assert(Attack<Mimic, float> && Attack<Mimic, double>);

}  // namespace fedpp
