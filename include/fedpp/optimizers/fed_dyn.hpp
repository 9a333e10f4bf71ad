#pragma once
/// @file fed_dyn.hpp
/// FedDyn: local SGD with a dynamic regulariser (linear dual correction plus a proximal term), and
/// the server step that adds the clients' average dual drift (also FedSpeed's server step).

#include <cmath>
#include <cstdint>
#include <string_view>
#include <type_traits>
#include <utility>

#include "fedpp/core/archetypes.hpp"
#include "fedpp/core/concepts.hpp"
#include "fedpp/core/config.hpp"
#include "fedpp/core/error.hpp"
#include "fedpp/optimizers/detail/sgd_loop.hpp"
#include "fedpp/optimizers/local_sgd.hpp"

namespace fedpp {

/// Per-client state of FedDyn and FedSpeed: the accumulated drift h_i and the momentum buffer.
/**
 * h_i = sum over the client's past rounds of (x_{i,K} - x_t), zero before its first round. In the
 * FedDyn paper's notation the client's stored gradient is grad L_i(theta_i) = -alpha h_i; in the
 * FedSpeed paper's, the dual variable is lambda_hat_i = -h_i / lambda = -prox h_i.
 */
template <typename S>
struct DualState {
  Vector<S> h;         ///< accumulated local drift h_i (zero until the first round ends)
  Vector<S> momentum;  ///< heavy-ball buffer (empty without momentum)

  /// cereal: h, then the momentum buffer.
  template <class Archive>
  void serialize(Archive& ar) {
    ar(h, momentum);
  }
};

/// Settings of FedDynServer.
struct FedDynServerOptions {
  double lr = 1.0;        ///< server learning rate on the aggregated update, finite and > 0
  bool add_dual = true;   ///< add the clients' mean drift H / N (false: plain x + lr * update)
};

/// Server step of FedDyn (and FedSpeed's reference form): x <- x + lr * update + H / N.
/**
 * H = sum of every accepted client update so far (observe()), which equals sum_j h_j over all N
 * clients, participating this round or not; N = ServerContext::num_clients. With lr = 1 and a
 * uniform mean this is FedDyn's theta_{t+1} = mean_{P_t} theta_i - h_t / alpha (Acar et al., ICLR
 * 2021, arXiv:2111.04263, Algorithm 1; h_t / alpha = -H / N) and FL-Simulator's
 * `Averaged_model + mean(h_params_list)` for FedDyn and FedSpeed. An accepted update of a round
 * whose quorum fails still enters H (the client's h_i moved on). With `add_dual = false` the step is
 * x <- x + lr * update (what FedSpeed's paper form needs, its clients sending x_hat_i - x_t).
 *
 * State: H in double (8 B/param). Each element is computed in double and rounded to S once; the
 * loops are elementwise under a static OpenMP partition, so the result is the same for any thread
 * count.
 * @throws InvalidArgument for lr <= 0 or non-finite; DimensionError on mismatched sizes.
 */
class FedDynServer {
 public:
  /// Settings type.
  using Options = FedDynServerOptions;

  /// Server state: H, the running sum of accepted updates, and the steps applied.
  struct State {
    Vector<double> h_sum;     ///< H = sum of accepted client updates over the run
    std::uint64_t steps = 0;  ///< number of step() calls applied

    /// cereal: H and the step count.
    template <class Archive>
    void serialize(Archive& ar) {
      ar(h_sum, steps);
    }
  };

  /// Builds the server step, validating the settings.
  explicit FedDynServer(Options o = {}) : o_(o) {
    require(std::isfinite(o.lr) && o.lr > 0, where, "lr must be finite and > 0", o.lr);
  }

  /// The settings.
  [[nodiscard]] const Options& options() const noexcept { return o_; }

  /// Creates the state: H = 0 with `dim` entries.
  template <typename S>
  [[nodiscard]] State make_state(Index dim) const {
    require(dim >= 0, where, "dim must be >= 0", dim);
    return State{Vector<double>::Zero(dim), 0};
  }

  /// H <- H + update (each accepted update of the round, in client-id order).
  template <typename S>
  void observe(State& state, const ClientUpdateView<S>& u) const {
    if (!o_.add_dual) return;
    require<DimensionError>(static_cast<Index>(u.update.size()) == state.h_sum.size(), where,
                            "update size must equal the state size", u.update.size());
    const Index n = state.h_sum.size();
    double* h = state.h_sum.data();
    const S* x = u.update.data();
    FEDPP_OMP_PARALLEL_FOR
    for (Index i = 0; i < n; ++i) h[i] += static_cast<double>(x[i]);
  }

  /// x <- x + lr * update + H / N.
  /** @throws DimensionError if sizes differ; InvalidArgument if ctx.num_clients is 0. */
  template <typename S>
  void step(Vector<S>& params, const Vector<S>& update, State& state, const ServerContext& ctx) const {
    require<DimensionError>(update.size() == params.size() && state.h_sum.size() == params.size(), where,
                            "update and state sizes must equal the model size", update.size());
    require(ctx.num_clients > 0, where, "the number of clients must be > 0", ctx.num_clients);
    const double lr = o_.lr;
    const double inv_n = o_.add_dual ? 1.0 / static_cast<double>(ctx.num_clients) : 0.0;
    const Index n = params.size();
    S* x = params.data();
    const S* u = update.data();
    const double* h = state.h_sum.data();
    FEDPP_OMP_PARALLEL_FOR
    for (Index i = 0; i < n; ++i)
      x[i] = static_cast<S>(static_cast<double>(x[i]) + lr * static_cast<double>(u[i]) + h[i] * inv_n);
    ++state.steps;
  }

 private:
  static constexpr std::string_view where = "fedpp::FedDynServer";
  Options o_;
};

static_assert(ObservingServerOptimizer<FedDynServer, float> && ObservingServerOptimizer<FedDynServer, double>);
static_assert(ServerOptimizerWithContext<FedDynServer, float>);

namespace detail {

/// A fresh DualState: h_i = 0 over d parameters, and the momentum buffer of `o`.
template <typename S>
DualState<S> fresh_dual_state(const LocalSgdOptions& o, Index d) {
  return {Vector<S>::Zero(d), momentum_buffer<S>(o, d)};
}

/// The FedDyn/FedSpeed local round: SGD on L + <lambda (h_i - x_t), w> + (lambda / 2) ||w||^2.
/**
 * Runs sgd_loop with the step's base gradient `grad` (plain or SAM), the linear correction
 * c = coef (h_i - x_t) clipped with it, and weight decay wd + coef after clipping (torch's SGD with
 * weight_decay = wd + lamb, as FL-Simulator's clients): unclipped, the step direction is
 * g + wd w + coef (w - x_t + h_i). Afterwards h_i <- h_i + (x_{i,K} - x_t).
 */
template <Model M, typename Grad>
LocalResult dual_round(const M& model, Vector<typename M::Scalar>& params, const DatasetView<typename M::Scalar>& data,
                       SgdLoopSettings settings, double coef, DualState<typename M::Scalar>& state, Rng& rng,
                       Grad&& grad) {
  using S = typename M::Scalar;
  const Index d = params.size();
  if (state.h.size() != d) state.h = Vector<S>::Zero(d);
  const Vector<S> global = params;
  const Vector<S> correction = static_cast<S>(coef) * (state.h - global);
  settings.weight_decay += coef;
  StepTerms<S, std::remove_cvref_t<Grad>> terms{std::forward<Grad>(grad), &correction, {}};
  LocalResult res = sgd_loop(model, params, data, settings, state.momentum, rng, terms);
  state.h += params - global;
  return res;
}

}  // namespace detail

/// Settings of FedDyn: the regulariser alpha and the LocalSgd settings of the local loop.
struct FedDynOptions {
  double alpha = 0.1;     ///< dynamic-regulariser coefficient alpha (FL-Simulator's `lamb`), finite and > 0
  LocalSgdOptions sgd{};  ///< the local SGD loop (lr, epochs/steps, batch, weight decay, clipping, decay)
};

/// FedDyn local optimizer (Acar et al., ICLR 2021, arXiv:2111.04263): a dynamic regulariser that
/// makes the clients' stationary points agree with the global one.
/**
 * Client i minimises L_i(w) - <grad L_i(theta_i), w> + (alpha/2) ||w - x_t||^2 with the stored
 * gradient grad L_i(theta_i) = -alpha h_i (DualState::h), i.e. each step uses
 *   g + wd w + alpha (w - x_t + h_i),
 * and after the round h_i <- h_i + (x_{i,K} - x_t). The term alpha (h_i - x_t) is clipped with the
 * loss gradient (it is part of FL-Simulator's loss) and alpha w is added as weight decay after
 * clipping. Pair with FedDynServer (paired_server(), the Simulation default). With h_i = 0 the
 * first round is FedProx with mu = alpha.
 * @throws InvalidArgument for alpha <= 0, non-finite, or any invalid LocalSgd setting
 *         (messages name fedpp::FedDyn).
 */
class FedDyn {
 public:
  /// Settings type.
  using Options = FedDynOptions;
  /// Per-client state for scalar S: h_i and the momentum buffer.
  template <typename S>
  using State = DualState<S>;

  /// Builds the optimizer, validating every setting.
  explicit FedDyn(Options o = {}) : o_(check(o)) {}

  /// The settings.
  [[nodiscard]] const Options& options() const noexcept { return o_; }

  /// Creates the per-client state: h_i = 0 (and a zero momentum buffer when momentum > 0).
  template <Model M>
  [[nodiscard]] State<typename M::Scalar> make_state(const M& model) const {
    return detail::fresh_dual_state<typename M::Scalar>(o_.sgd, model.num_params());
  }

  /// The server step FedDyn needs: FedDynServer with lr 1.
  [[nodiscard]] FedDynServer paired_server() const { return FedDynServer(); }

  /// Trains `params` in place and updates h_i.
  template <Model M>
  LocalResult train(const M& model, Vector<typename M::Scalar>& params, const DatasetView<typename M::Scalar>& data,
                    State<typename M::Scalar>& state, const RoundContext& ctx, Rng& rng) const {
    detail::begin_sgd_round(o_.sgd, state.momentum);
    return detail::dual_round(model, params, data, detail::sgd_round_settings(o_.sgd, ctx.round), o_.alpha, state,
                              rng, detail::PlainGradient{});
  }

 private:
  static Options check(const Options& o) {
    constexpr std::string_view who = "fedpp::FedDyn";
    require(std::isfinite(o.alpha) && o.alpha > 0, who, "alpha must be finite and > 0", o.alpha);
    detail::check_local_sgd_options(o.sgd, who);
    return o;
  }

  Options o_;
};

static_assert(LocalOptimizer<FedDyn, archetypes::ModelArchetype<float>> &&
              LocalOptimizer<FedDyn, archetypes::ModelArchetype<double>>);

}  // namespace fedpp
