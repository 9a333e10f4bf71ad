#pragma once
/// @file scaffold.hpp
/// SCAFFOLD: local SGD corrected by control variates, and the server step that keeps the global
/// control variate (Karimireddy, Kale, Mohri, Reddi, Stich, Suresh, ICML 2020, arXiv:1910.06378).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "fedpp/core/archetypes.hpp"
#include "fedpp/core/concepts.hpp"
#include "fedpp/core/config.hpp"
#include "fedpp/core/error.hpp"
#include "fedpp/optimizers/detail/sgd_loop.hpp"
#include "fedpp/optimizers/local_sgd.hpp"

namespace fedpp {

/// Settings of ScaffoldServer.
struct ScaffoldServerOptions {
  double lr = 1.0;  ///< global step size eta_g on the aggregated update, finite and > 0
};

/// SCAFFOLD's server: x <- x + eta_g * update and c <- c + (1/N) sum_{i in S} delta c_i.
/**
 * Broadcasts c with the model (RoundRequest::aux, d more values down per participant), needs
 * each client's delta c_i in Reply::aux (an update without one is rejected) and sums them as they
 * are accepted (observe()); step() folds the sum into c with N = ServerContext::num_clients
 * (Algorithm 1 of the paper: c <- c + |S|/N * mean_S delta c_i). Sums accepted in a round whose
 * quorum fails are folded in at the next applied step, so c keeps tracking the mean of the
 * clients' c_i. Lost replies (dropped clients) leave that client's c_i change unknown to the
 * server, as in any deployment of SCAFFOLD.
 *
 * State: c in double plus its copy in S that is broadcast, and the pending sum (20 B/param for
 * float). Elementwise loops under a static OpenMP partition: thread-count independent.
 * @throws InvalidArgument for lr <= 0 or non-finite; DimensionError on mismatched sizes.
 */
class ScaffoldServer {
 public:
  /// Settings type.
  using Options = ScaffoldServerOptions;

  /// Server state for scalar S: the control variate and the sum of this round's delta c_i.
  template <typename S>
  struct State {
    Vector<double> c;         ///< global control variate c (zero initially)
    Vector<S> c_sent;         ///< c rounded to S, what is broadcast
    Vector<double> pending;   ///< sum of accepted delta c_i not yet folded into c
    std::uint64_t steps = 0;  ///< number of step() calls applied

    /// cereal: c, its broadcast copy, the pending sum, the step count.
    template <class Archive>
    void serialize(Archive& ar) {
      ar(c, c_sent, pending, steps);
    }
  };

  /// Builds the server step, validating the settings.
  explicit ScaffoldServer(Options o = {}) : o_(o) {
    require(std::isfinite(o.lr) && o.lr > 0, where, "lr must be finite and > 0", o.lr);
  }

  /// The settings.
  [[nodiscard]] const Options& options() const noexcept { return o_; }

  /// Creates the state: c = 0 with `dim` entries.
  template <typename S>
  [[nodiscard]] State<S> make_state(Index dim) const {
    require(dim >= 0, where, "dim must be >= 0", dim);
    return State<S>{Vector<double>::Zero(dim), Vector<S>::Zero(dim), Vector<double>::Zero(dim), 0};
  }

  /// Every reply must carry delta c_i.
  [[nodiscard]] static constexpr bool needs_aux() noexcept { return true; }

  /// The control variate sent to the participants with the model.
  template <typename S>
  [[nodiscard]] std::span<const S> broadcast(const State<S>& state) const noexcept {
    return as_span(state.c_sent);
  }

  /// pending <- pending + delta c_i (each accepted reply, in client-id order).
  template <typename S>
  void observe(State<S>& state, const ClientUpdateView<S>& u) const {
    require<DimensionError>(static_cast<Index>(u.aux.size()) == state.pending.size(), where,
                            "delta c size must equal the state size", u.aux.size());
    const Index n = state.pending.size();
    double* p = state.pending.data();
    const S* a = u.aux.data();
    FEDPP_OMP_PARALLEL_FOR
    for (Index i = 0; i < n; ++i) p[i] += static_cast<double>(a[i]);
  }

  /// x <- x + eta_g * update; c <- c + pending / N; pending <- 0.
  /** @throws DimensionError if sizes differ; InvalidArgument if ctx.num_clients is 0. */
  template <typename S>
  void step(Vector<S>& params, const Vector<S>& update, State<S>& state, const ServerContext& ctx) const {
    require<DimensionError>(update.size() == params.size() && state.c.size() == params.size(), where,
                            "update and state sizes must equal the model size", update.size());
    require(ctx.num_clients > 0, where, "the number of clients must be > 0", ctx.num_clients);
    const double lr = o_.lr;
    const double inv_n = 1.0 / static_cast<double>(ctx.num_clients);
    const Index n = params.size();
    S* x = params.data();
    const S* u = update.data();
    double* c = state.c.data();
    S* cs = state.c_sent.data();
    double* p = state.pending.data();
    FEDPP_OMP_PARALLEL_FOR
    for (Index i = 0; i < n; ++i) {
      x[i] = static_cast<S>(static_cast<double>(x[i]) + lr * static_cast<double>(u[i]));
      c[i] += p[i] * inv_n;
      cs[i] = static_cast<S>(c[i]);
      p[i] = 0.0;
    }
    ++state.steps;
  }

 private:
  static constexpr std::string_view where = "fedpp::ScaffoldServer";
  Options o_;
};

static_assert(BroadcastingServerOptimizer<ScaffoldServer, float> && ObservingServerOptimizer<ScaffoldServer, float> &&
              ServerOptimizerWithContext<ScaffoldServer, double>);

/// How a SCAFFOLD client refreshes its control variate c_i after the local steps.
enum class ScaffoldVariant {
  option1,  ///< c_i+ = grad f_i(x_t): the full local loss gradient at the global model (one more pass)
  option2,  ///< c_i+ = c_i - c + (x_t - y_i) / (K lr): from the local steps, no extra pass
};

/// Per-client state of Scaffold: the client control variate c_i and the momentum buffer.
template <typename S>
struct ScaffoldState {
  Vector<S> c;         ///< client control variate c_i (zero until the first round ends)
  Vector<S> momentum;  ///< heavy-ball buffer (empty without momentum)

  /// cereal: c_i, then the momentum buffer.
  template <class Archive>
  void serialize(Archive& ar) {
    ar(c, momentum);
  }
};

/// Settings of Scaffold.
struct ScaffoldOptions {
  ScaffoldVariant variant = ScaffoldVariant::option2;  ///< control-variate refresh (the paper's option II is its default)
  LocalSgdOptions sgd{};  ///< the local SGD loop (lr, epochs/steps, batch, weight decay, clipping, decay)
};

/// SCAFFOLD local optimizer (Karimireddy et al., ICML 2020, arXiv:1910.06378, Algorithm 1).
/**
 * Each step uses g + (c - c_i) with c the server control variate received with the model
 * (LocalExchange::received) and c_i the client's own (ScaffoldState::c); the correction is clipped
 * with the loss gradient (it is part of FL-Simulator's loss), weight decay and momentum are
 * LocalSgd's. After the K steps (y_i the local model, lr the round's learning rate):
 *   option I:  c_i+ = grad f_i(x_t), the mean loss gradient over the whole shard at x_t;
 *   option II: c_i+ = c_i - c + (x_t - y_i) / (K lr)    (K = the steps actually taken);
 * the client sends delta c_i = c_i+ - c_i back (LocalExchange::reply, Reply::aux: d more values up)
 * and keeps c_i+. Pair with ScaffoldServer (paired_server(), the Simulation default); with c = c_i
 * = 0 the first round is LocalSgd. FL-Simulator's K is epochs * n / batch (fractional); here K is
 * the exact count, which differs when the batch does not divide the shard.
 * @throws InvalidArgument for an invalid LocalSgd setting or variant (messages name
 *         fedpp::Scaffold); train() throws InvalidArgument when no control variate of the model's
 *         size was received (Scaffold without ScaffoldServer), which the Client reports as failed.
 */
class Scaffold {
 public:
  /// Settings type.
  using Options = ScaffoldOptions;
  /// Per-client state for scalar S: c_i and the momentum buffer.
  template <typename S>
  using State = ScaffoldState<S>;

  /// Builds the optimizer, validating every setting.
  explicit Scaffold(Options o = {}) : o_(check(o)) {}

  /// The settings.
  [[nodiscard]] const Options& options() const noexcept { return o_; }

  /// Creates the per-client state: c_i = 0 (and a zero momentum buffer when momentum > 0).
  template <Model M>
  [[nodiscard]] State<typename M::Scalar> make_state(const M& model) const {
    using S = typename M::Scalar;
    return State<S>{Vector<S>::Zero(model.num_params()), detail::momentum_buffer<S>(o_.sgd, model.num_params())};
  }

  /// The server step SCAFFOLD needs: ScaffoldServer with eta_g = 1.
  [[nodiscard]] ScaffoldServer paired_server() const { return ScaffoldServer(); }

  /// Without a server control variate there is nothing to correct with: always throws.
  template <Model M>
  LocalResult train(const M& /*model*/, Vector<typename M::Scalar>& /*params*/,
                    const DatasetView<typename M::Scalar>& /*data*/, State<typename M::Scalar>& /*state*/,
                    const RoundContext& /*ctx*/, Rng& /*rng*/) const {
    fail(who, "train needs the server control variate: pair Scaffold with ScaffoldServer", "no exchange");
  }

  /// Trains `params` in place with the control-variate correction; puts delta c_i in `ex.reply`.
  template <Model M>
  LocalResult train(const M& model, Vector<typename M::Scalar>& params, const DatasetView<typename M::Scalar>& data,
                    State<typename M::Scalar>& state, const RoundContext& ctx, Rng& rng,
                    LocalExchange<typename M::Scalar>& ex) const {
    using S = typename M::Scalar;
    const Index d = params.size();
    if (static_cast<Index>(ex.received.size()) != d)
      fail(who, "the server control variate must have the model's " + std::to_string(d) +
                    " entries (pair Scaffold with ScaffoldServer)", ex.received.size());
    if (state.c.size() != d) state.c = Vector<S>::Zero(d);
    const auto c = ConstVectorMap<S>(ex.received.data(), d);
    const Vector<S> global = params;
    const Vector<S> correction = c - state.c;
    detail::begin_sgd_round(o_.sgd, state.momentum);
    const auto settings = detail::sgd_round_settings(o_.sgd, ctx.round);
    detail::StepTerms<S> terms{{}, &correction, {}};
    const LocalResult res = detail::sgd_loop(model, params, data, settings, state.momentum, rng, terms);

    Vector<S> updated;
    if (res.steps == 0) {
      updated = state.c;  // no local data: nothing learned about f_i
    } else if (o_.variant == ScaffoldVariant::option2) {
      const S inv = static_cast<S>(1.0 / (static_cast<double>(res.steps) * settings.lr));
      updated = state.c - c + inv * (global - params);
    } else {
      updated = full_gradient(model, global, data);
    }
    ex.reply = updated - state.c;
    state.c = std::move(updated);
    return res;
  }

 private:
  static constexpr std::string_view who = "fedpp::Scaffold";

  static Options check(const Options& o) {
    require(o.variant == ScaffoldVariant::option1 || o.variant == ScaffoldVariant::option2, who,
            "variant must be option1 or option2", static_cast<int>(o.variant));
    detail::check_local_sgd_options(o.sgd, who);
    return o;
  }

  /// Mean loss gradient over the whole shard at w, in chunks of at most 1024 samples (index order).
  template <Model M>
  static Vector<typename M::Scalar> full_gradient(const M& model, const Vector<typename M::Scalar>& w,
                                                  const DatasetView<typename M::Scalar>& data) {
    using S = typename M::Scalar;
    constexpr Index chunk = 1024;
    const Index n = data.size();
    Vector<double> sum = Vector<double>::Zero(w.size());
    Vector<S> g(w.size());
    Matrix<S> X;
    std::vector<Label> y;
    std::vector<std::uint32_t> idx;
    for (Index first = 0; first < n; first += chunk) {
      const Index count = std::min(chunk, n - first);
      idx.resize(static_cast<std::size_t>(count));
      std::iota(idx.begin(), idx.end(), static_cast<std::uint32_t>(first));
      data.gather(idx, X, y);
      model.loss_and_gradient(as_span(w), X, y, as_span(g));
      sum += static_cast<double>(count) * g.template cast<double>();
    }
    return (sum / static_cast<double>(n)).template cast<S>();
  }

  Options o_;
};

static_assert(ExchangingLocalOptimizer<Scaffold, archetypes::ModelArchetype<float>> &&
              ExchangingLocalOptimizer<Scaffold, archetypes::ModelArchetype<double>>);

}  // namespace fedpp
