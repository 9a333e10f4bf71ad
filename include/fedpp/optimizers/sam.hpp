#pragma once
/// @file sam.hpp
/// SAM (sharpness-aware minimisation) and its adaptive variant ASAM as a client's local optimizer;
/// FedSAM is FedAvg with this local optimizer.

#include <cmath>
#include <string_view>

#include "fedpp/core/archetypes.hpp"
#include "fedpp/core/concepts.hpp"
#include "fedpp/core/error.hpp"
#include "fedpp/optimizers/detail/sam_gradient.hpp"
#include "fedpp/optimizers/detail/sgd_loop.hpp"
#include "fedpp/optimizers/local_sgd.hpp"

namespace fedpp {

/// Settings of Sam: the perturbation and the LocalSgd settings of the base optimizer.
struct SamOptions {
  double rho = 0.05;      ///< perturbation radius rho, finite and >= 0 (0 = the base optimizer alone)
  bool adaptive = false;  ///< ASAM: perturbation rho w^2 g / ||w g|| (Kwon et al., 2021)
  double eps = 1e-7;      ///< added to the normaliser ||g|| (FL-Simulator's ESAM uses 1e-7), >= 0
  LocalSgdOptions sgd{};  ///< the base SGD loop (lr, epochs/steps, batch, momentum, clipping, decay)
};

/// SAM local optimizer: each step takes the gradient at the ascent point w + e and applies it at w.
/**
 * Per mini-batch B: g1 = grad L_B(w); e = rho g1 / (||g1|| + eps) (ASAM: rho w^2 g1 / (||w g1|| + eps));
 * g = grad L_B(w + e); then the LocalSgd step with g (clipping, weight decay, momentum, lr decay as
 * LocalSgd). The perturbation uses the loss gradient only (weight decay is the base optimizer's), as
 * FL-Simulator's ESAM does. Two gradients per step. Foret, Kleiner, Mobahi, Neyshabur, ICLR 2021
 * (arXiv:2010.01412); ASAM: Kwon et al., ICML 2021 (arXiv:2102.11600). As the local optimizer of
 * FedAvg this is FedSAM (Qu et al., ICML 2022, arXiv:2206.02618; Caldarola et al., ECCV 2022).
 * The reported train loss is L_B(w) at the unperturbed point. rho = 0 is LocalSgd bit for bit.
 * @throws InvalidArgument for rho < 0, eps < 0, non-finite values or any invalid LocalSgd setting
 *         (messages name fedpp::Sam).
 */
class Sam {
 public:
  /// Settings type.
  using Options = SamOptions;
  /// Per-client state for scalar S: the momentum buffer (as LocalSgd).
  template <typename S>
  using State = LocalSgdState<S>;

  /// Builds the optimizer, validating every setting.
  explicit Sam(Options o = {}) : o_(check(o)) {}

  /// The settings.
  [[nodiscard]] const Options& options() const noexcept { return o_; }

  /// Creates the per-client state (a zero momentum buffer when momentum > 0, else empty).
  template <Model M>
  [[nodiscard]] State<typename M::Scalar> make_state(const M& model) const {
    return detail::fresh_sgd_state<typename M::Scalar>(o_.sgd, model.num_params());
  }

  /// Trains `params` in place on `data` with sharpness-aware steps.
  template <Model M>
  LocalResult train(const M& model, Vector<typename M::Scalar>& params, const DatasetView<typename M::Scalar>& data,
                    State<typename M::Scalar>& state, const RoundContext& ctx, Rng& rng) const {
    using S = typename M::Scalar;
    detail::begin_sgd_round(o_.sgd, state);
    detail::StepTerms<S, detail::SamGradient<S>> terms{{{o_.rho, o_.adaptive, 1.0, o_.eps}, {}, {}}, nullptr, {}};
    return detail::sgd_loop(model, params, data, detail::sgd_round_settings(o_.sgd, ctx.round), state.momentum, rng,
                            terms);
  }

 private:
  static Options check(const Options& o) {
    constexpr std::string_view who = "fedpp::Sam";
    detail::check_sam_settings({o.rho, o.adaptive, 1.0, o.eps}, who);
    detail::check_local_sgd_options(o.sgd, who);
    return o;
  }

  Options o_;
};

/// FedSAM: FedAvg with SAM as the local optimizer (pair with ServerSgd, the default).
using FedSam = Sam;

static_assert(LocalOptimizer<Sam, archetypes::ModelArchetype<float>> &&
              LocalOptimizer<Sam, archetypes::ModelArchetype<double>>);

}  // namespace fedpp
