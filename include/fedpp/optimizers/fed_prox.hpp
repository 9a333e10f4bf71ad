#pragma once
/// @file fed_prox.hpp
/// FedProx: local SGD on the loss plus a proximal term that keeps the client near the global model.

#include <cmath>
#include <string_view>

#include "fedpp/core/archetypes.hpp"
#include "fedpp/core/concepts.hpp"
#include "fedpp/core/error.hpp"
#include "fedpp/optimizers/detail/sgd_loop.hpp"
#include "fedpp/optimizers/local_sgd.hpp"

namespace fedpp {

/// Settings of FedProx: the proximal coefficient mu and the LocalSgd settings of the local loop.
struct FedProxOptions {
  double mu = 0.01;      ///< proximal coefficient, >= 0 (0 = LocalSgd)
  LocalSgdOptions sgd{};  ///< the local SGD loop (lr, epochs/steps, batch, momentum, clipping, decay)
};

/// FedProx local optimizer: minimises f_i(w) + (mu/2) ||w - w_global||^2 with LocalSgd's loop.
/**
 * Each step uses the gradient g + mu (w - w_global), w_global being `params` on entry to train()
 * (the global model of the round); the proximal term is added after clipping and weight decay, so
 * clipping bounds the loss gradient only. With mu = 0 the result is bit-identical to LocalSgd
 * with the same settings. Li et al., MLSys 2020 (arXiv:1812.06127).
 * @throws InvalidArgument for mu < 0 or non-finite, and for any invalid LocalSgd setting
 *         (messages name fedpp::FedProx).
 */
class FedProx {
 public:
  /// Settings type.
  using Options = FedProxOptions;
  /// Per-client state for scalar S: the momentum buffer (as LocalSgd).
  template <typename S>
  using State = LocalSgdState<S>;

  /// Builds the optimizer, validating every setting.
  explicit FedProx(Options o = {}) : o_(check(o)) {}

  /// The settings.
  [[nodiscard]] const Options& options() const noexcept { return o_; }

  /// Creates the per-client state (a zero momentum buffer when momentum > 0, else empty).
  template <Model M>
  [[nodiscard]] State<typename M::Scalar> make_state(const M& model) const {
    return detail::fresh_sgd_state<typename M::Scalar>(o_.sgd, model.num_params());
  }

  /// Trains `params` in place on `data` with the proximal term around their value on entry.
  template <Model M>
  LocalResult train(const M& model, Vector<typename M::Scalar>& params, const DatasetView<typename M::Scalar>& data,
                    State<typename M::Scalar>& state, const RoundContext& ctx, Rng& rng) const {
    using S = typename M::Scalar;
    detail::begin_sgd_round(o_.sgd, state);
    const auto settings = detail::sgd_round_settings(o_.sgd, ctx.round);
    if (o_.mu == 0.0) return detail::sgd_loop(model, params, data, settings, state.momentum, rng, detail::StepTerms<S>{});
    const Vector<S> global = params;
    const S mu = static_cast<S>(o_.mu);
    auto prox = [&](Vector<S>& g, const Vector<S>& w) { g += mu * (w - global); };
    return detail::sgd_loop(model, params, data, settings, state.momentum, rng,
                            detail::StepTerms<S, detail::PlainGradient, decltype(prox)>{{}, nullptr, prox});
  }

 private:
  static Options check(const Options& o) {
    constexpr std::string_view who = "fedpp::FedProx";
    require(std::isfinite(o.mu) && o.mu >= 0, who, "mu must be finite and >= 0", o.mu);
    detail::check_local_sgd_options(o.sgd, who);
    return o;
  }

  Options o_;
};

static_assert(LocalOptimizer<FedProx, archetypes::ModelArchetype<float>> &&
              LocalOptimizer<FedProx, archetypes::ModelArchetype<double>>);

}  // namespace fedpp
