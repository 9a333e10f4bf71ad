#pragma once
/// @file fed_speed.hpp
/// FedSpeed: prox-correction (a FedDyn-style dual term) plus the sharpness-aware quasi-gradient
/// (Sun, Shen, Huang, Ding, Tao, ICLR 2023, arXiv:2302.10429).

#include <cmath>
#include <string_view>

#include "fedpp/core/archetypes.hpp"
#include "fedpp/core/concepts.hpp"
#include "fedpp/core/error.hpp"
#include "fedpp/optimizers/detail/sam_gradient.hpp"
#include "fedpp/optimizers/detail/sgd_loop.hpp"
#include "fedpp/optimizers/fed_dyn.hpp"
#include "fedpp/optimizers/local_sgd.hpp"

namespace fedpp {

/// Which aggregation of the dual variables FedSpeed uses.
enum class FedSpeedForm {
  reference,  ///< FL-Simulator: clients send x_{i,K} - x_t; server x <- mean_S x_i + mean_{all j} h_j (FedDynServer)
  paper,      ///< Algorithm 1 of the paper: clients send x_hat_i - x_t, x_hat_i = x_{i,K} + h_i; server averages
};

/// Settings of FedSpeed (defaults: FL-Simulator's train.py, except the LocalSgd loop's own defaults).
struct FedSpeedOptions {
  double prox = 0.1;       ///< prox coefficient 1/lambda of the paper (FL-Simulator's `lamb`), finite and > 0
  double rho = 0.1;        ///< radius of the gradient-ascent perturbation, finite and >= 0
  double alpha = 1.0;      ///< quasi-gradient mix (1 - alpha) g1 + alpha g2, in [0, 1]; the code uses 1
  bool adaptive = false;   ///< ASAM-scaled perturbation (ESAM's adaptive option)
  double eps = 1e-7;       ///< added to the perturbation's normaliser, >= 0
  FedSpeedForm form = FedSpeedForm::reference;  ///< how the duals reach the global model
  LocalSgdOptions sgd{};   ///< the local SGD loop (lr, epochs/steps, batch, weight decay, clipping, decay)
};

/// FedSpeed local optimizer (Sun et al., ICLR 2023, arXiv:2302.10429; FL-Simulator's client/fedspeed.py).
/**
 * Per mini-batch, with x_t the round's global model and h_i the client's accumulated drift:
 *   g1 = grad L_B(w);  e = rho g1 / (||g1|| + eps);  g2 = grad L_B(w + e)
 *   g  = (1 - alpha) g1 + alpha g2 + prox (h_i - x_t)     clipped to clip_norm (global L2)
 *   w <- w - lr (g + (wd + prox) w)                          (momentum as LocalSgd when set)
 * so unclipped the direction is g~ + wd w + prox (w - x_t + h_i): the paper's g~ - lambda_hat_i +
 * (1/lambda)(w - x_t) with lambda = 1/prox and lambda_hat_i = -prox h_i. After the K steps
 * h_i <- h_i + (x_{i,K} - x_t) (the paper's lambda_hat_i <- lambda_hat_i - (1/lambda)(x_{i,K} - x_t)).
 *
 * Forms (FedSpeedForm): `reference` (default) is FL-Simulator's: the client's update is
 * x_{i,K} - x_t and the server (FedDynServer) sets x_{t+1} = mean_S x_{i,K} + (1/N) sum_{all j} h_j.
 * `paper` follows Algorithm 1: the client sends the auxiliary model x_hat_i = x_{i,K} - lambda
 * lambda_hat_i = x_{i,K} + h_i (its update is x_hat_i - x_t) and the server only averages,
 * x_{t+1} = mean_S x_hat_i (FedDynServer with add_dual = false). Both agree under full participation.
 * alpha = 1 (the code's ESAM.step(alpha = 1), pure SAM gradient) is the default; the paper's
 * quasi-gradient allows any alpha in [0, 1]. With rho = 0 this is FedDyn with alpha = prox, bit for bit.
 * paired_server() gives the server step of the chosen form (the Simulation default).
 * Two gradients per step when rho > 0. Reference defaults: FedSpeed::reference_options().
 * @throws InvalidArgument for prox <= 0, rho < 0, alpha outside [0, 1], eps < 0, non-finite values
 *         or any invalid LocalSgd setting (messages name fedpp::FedSpeed).
 */
class FedSpeed {
 public:
  /// Settings type.
  using Options = FedSpeedOptions;
  /// Per-client state for scalar S: h_i and the momentum buffer (as FedDyn).
  template <typename S>
  using State = DualState<S>;

  /// Builds the optimizer, validating every setting.
  explicit FedSpeed(Options o = {}) : o_(check(o)) {}

  /// FL-Simulator's defaults (train.py): lr 0.1, 5 epochs of batch 50, weight decay 1e-3, clip 10,
  /// lr decay 0.998 per round, prox (lamb) 0.1, rho 0.1, alpha 1, reference form.
  [[nodiscard]] static Options reference_options() {
    return {.prox = 0.1,
            .rho = 0.1,
            .alpha = 1.0,
            .sgd = {.lr = 0.1, .epochs = 5, .batch_size = 50, .weight_decay = 1e-3, .clip_norm = 10.0,
                    .lr_decay = 0.998}};
  }

  /// The settings.
  [[nodiscard]] const Options& options() const noexcept { return o_; }

  /// Creates the per-client state: h_i = 0 (and a zero momentum buffer when momentum > 0).
  template <Model M>
  [[nodiscard]] State<typename M::Scalar> make_state(const M& model) const {
    return detail::fresh_dual_state<typename M::Scalar>(o_.sgd, model.num_params());
  }

  /// The server step of the chosen form: FedDynServer (reference) or FedDynServer without the dual term (paper).
  [[nodiscard]] FedDynServer paired_server() const {
    return FedDynServer({.lr = 1.0, .add_dual = o_.form == FedSpeedForm::reference});
  }

  /// Trains `params` in place and updates h_i; in the paper form `params` ends as x_hat_i = x_{i,K} + h_i.
  template <Model M>
  LocalResult train(const M& model, Vector<typename M::Scalar>& params, const DatasetView<typename M::Scalar>& data,
                    State<typename M::Scalar>& state, const RoundContext& ctx, Rng& rng) const {
    using S = typename M::Scalar;
    detail::begin_sgd_round(o_.sgd, state.momentum);
    LocalResult res = detail::dual_round(model, params, data, detail::sgd_round_settings(o_.sgd, ctx.round), o_.prox,
                                         state, rng,
                                         detail::SamGradient<S>{{o_.rho, o_.adaptive, o_.alpha, o_.eps}, {}, {}});
    if (o_.form == FedSpeedForm::paper) params += state.h;
    return res;
  }

 private:
  static Options check(const Options& o) {
    constexpr std::string_view who = "fedpp::FedSpeed";
    require(std::isfinite(o.prox) && o.prox > 0, who, "prox must be finite and > 0", o.prox);
    detail::check_sam_settings({o.rho, o.adaptive, o.alpha, o.eps}, who);
    require(o.form == FedSpeedForm::reference || o.form == FedSpeedForm::paper, who, "form must be reference or paper",
            static_cast<int>(o.form));
    detail::check_local_sgd_options(o.sgd, who);
    return o;
  }

  Options o_;
};

static_assert(LocalOptimizer<FedSpeed, archetypes::ModelArchetype<float>> &&
              LocalOptimizer<FedSpeed, archetypes::ModelArchetype<double>>);

}  // namespace fedpp
