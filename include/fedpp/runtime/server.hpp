#pragma once
/// @file server.hpp
/// The synchronous federated server: samples clients among those available, runs each round
/// through the RoundPipeline over any Transport, with a deadline, quorum and over-selection.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include "fedpp/aggregators/weighted_mean.hpp"
#include "fedpp/compressors/identity.hpp"
#include "fedpp/core/concepts.hpp"
#include "fedpp/optimizers/server_sgd.hpp"
#include "fedpp/runtime/callbacks.hpp"
#include "fedpp/runtime/pipeline.hpp"
#include "fedpp/runtime/round_stats.hpp"
#include "fedpp/runtime/sampling.hpp"
#include "fedpp/runtime/transport.hpp"

namespace fedpp {

/// Run settings of a Server.
struct ServerOptions {
  std::uint64_t rounds = 100;        ///< rounds to run (a resumed server runs until this many have completed)
  double fraction = 0.1;             ///< fraction of clients sampled per round, in (0, 1]
  std::size_t clients_per_round = 0; ///< when > 0, sample exactly this many (overrides fraction)
  std::size_t min_updates = 1;       ///< quorum: fewer valid updates leave the model unchanged
  std::uint64_t seed = 1;            ///< run seed (sampling and every client stream)
  std::uint64_t eval_every = 1;      ///< evaluate the global model every this many rounds (and the last)
  double over_selection = 0.0;       ///< ask ceil(m (1 + over_selection)) clients, keep the first m valid in rank order
  std::chrono::milliseconds round_timeout{0};  ///< a round's deadline after it starts (0: wait for every reply)
  bool arrival_order = false;        ///< feed replies to the pipeline as they arrive, not in participant order
                                     ///< (no reply held: O(d) memory with a streaming aggregator; sums then
                                     ///< follow the arrival order, so results are not bit-reproducible)
};

/// A federated server composed from an aggregator, a server optimizer and a compressor (decoder).
/**
 * One round (the table "Round semantics" in docs/architecture.md is the reference):
 * 1. m = clients_per_round(N, fraction | clients_per_round), at most the clients available now
 *    (`transport.available_clients()`); m' = min(available, ceil(m (1 + over_selection)));
 *    m' ids drawn among the available ones from the stream (seed, round, server, sampling), in
 *    draw (rank) order.
 * 2. The request (an owned copy of the model and the server optimizer's broadcast) goes to the
 *    m' participants; replies are fed to the RoundPipeline as they arrive, through an Ordered
 *    adapter (participant order, so streaming sums are bit-identical whatever the arrival
 *    order) unless over-selecting (then in arrival order: the pipeline keeps the first m valid
 *    in rank order and sorts them by id, and the round closes as soon as they are known).
 * 3. The round ends when every participant answered, the kept set is settled, or the deadline
 *    (`round_timeout`) passes; missing replies count as timed out; the pipeline commits
 *    (quorum `min_updates`, aggregation with the AggregationContext {round, seed}, server step,
 *    roll-back of a non-finite step).
 * 4. Evaluation every eval_every rounds, then the callbacks.
 * The pipeline's state (ServerState: round, parameters, optimizer, decoder and aggregator states)
 * is the whole server state: fedpp/runtime/checkpoint.hpp saves it after each round and
 * restores it, so a resumed run ends bit-identical to an uninterrupted one.
 *
 * Coupled server optimizers (SCAFFOLD, FedDyn; see ServerOptimizer): the broadcast goes to every
 * participant with the model and counts in bytes_down; with `needs_aux()` each reply's aux must
 * decode to d finite values; `observe` sees every accepted update in client-id order (after the
 * stage when one is set). Stateful decoders (EF21): one decoder state per client id, replaced
 * only when that client's update is accepted (see RoundPipeline).
 * @tparam S    scalar type (float or double)
 * @tparam Agg  an Aggregator (default WeightedMean, i.e. FedAvg)
 * @tparam SOpt a ServerOptimizer (default ServerSgd)
 * @tparam Comp the Compressor the clients use (the server decodes with it; default Identity)
 */
template <typename S = float, typename Agg = WeightedMean, typename SOpt = ServerSgd, typename Comp = Identity>
  requires Aggregator<Agg, S> && ServerOptimizer<SOpt, S> && Compressor<Comp, S>
class Server {
 public:
  /// Scalar type.
  using Scalar = S;
  /// The round pipeline type.
  using Pipeline = RoundPipeline<S, Agg, SOpt, Comp>;
  /// The serialisable whole-server state.
  using State = typename Pipeline::State;
  /// Evaluates a parameter vector on held-out data.
  using Evaluator = std::function<EvalResult(std::span<const S>)>;
  /// A batch stage run at commit, before aggregation (simulated attacks, audits).
  using Stage = typename Pipeline::Stage;

  /// A server starting from `initial` parameters.
  explicit Server(Vector<S> initial, ServerOptions opts = {}, Agg agg = Agg(), SOpt sopt = SOpt(), Comp comp = Comp())
      : opts_(checked(opts)), pipe_(checked(std::move(initial)), opts.min_updates, opts.seed, std::move(agg), std::move(sopt),
                                    std::move(comp)) {}

  /// Sets the function used to evaluate the global model (e.g. on a test set).
  void set_evaluator(Evaluator e) { eval_ = std::move(e); }

  /// Sets a stage that rewrites each round's validated batch before aggregation (see RoundPipeline).
  /**
   * With a stage, updates are always collected into a batch (no streaming). The stage may change
   * columns and weights but not the dimension (else DimensionError); afterwards columns with
   * non-finite values are removed and counted in rejected_nonfinite. A bad weight cannot be set
   * (UpdateBatch throws InvalidArgument, which leaves step() with the model unchanged).
   */
  void set_stage(Stage t) { pipe_.set_stage(std::move(t)); }

  /// Runs rounds until `options().rounds` have completed or a callback asks to stop.
  template <typename T, typename... Callbacks>
    requires Transport<T, S> || SynchronousTransport<T, S>
  RunResult<S> run(T& transport, Callbacks&&... cbs) {
    if constexpr (Transport<T, S>) {
      return run_impl(transport, cbs...);
    } else {
      SynchronousAdapter<T, S> adapted(transport);
      return run_impl(adapted, cbs...);
    }
  }

  /// Runs one round and returns its statistics (on_round_end is called by run(), not here).
  template <typename T, typename... Callbacks>
    requires Transport<T, S> || SynchronousTransport<T, S>
  RoundStats step(T& transport, Callbacks&... cbs) {
    if constexpr (Transport<T, S>) {
      return step_impl(transport, cbs...);
    } else {
      SynchronousAdapter<T, S> adapted(transport);
      return step_impl(adapted, cbs...);
    }
  }

  /// Current global parameters.
  [[nodiscard]] const Vector<S>& params() const noexcept { return pipe_.params(); }
  /// Rounds completed so far.
  [[nodiscard]] std::uint64_t round() const noexcept { return pipe_.round(); }
  /// Run settings.
  [[nodiscard]] const ServerOptions& options() const noexcept { return opts_; }
  /// The aggregator.
  [[nodiscard]] Agg& aggregator() noexcept { return pipe_.aggregator(); }
  /// The aggregator, read-only.
  [[nodiscard]] const Agg& aggregator() const noexcept { return pipe_.aggregator(); }
  /// The server optimizer.
  [[nodiscard]] const SOpt& server_optimizer() const noexcept { return pipe_.server_optimizer(); }
  /// The server optimizer's state.
  [[nodiscard]] const server_state_t<SOpt, S>& server_state() const noexcept { return pipe_.server_state(); }
  /// Mutable server optimizer state.
  [[nodiscard]] server_state_t<SOpt, S>& server_state() noexcept { return pipe_.server_state(); }
  /// The compressor used to decode payloads.
  [[nodiscard]] const Comp& compressor() const noexcept { return pipe_.compressor(); }
  /// Per-client decoder states (StatefulDecoder compressors only; keyed by client id).
  [[nodiscard]] const auto& decoder_states() const noexcept
    requires StatefulDecoder<Comp, S>
  {
    return pipe_.decoder_states();
  }
  /// Mutable per-client decoder states.
  [[nodiscard]] auto& decoder_states() noexcept
    requires StatefulDecoder<Comp, S>
  {
    return pipe_.decoder_states();
  }
  /// The round pipeline.
  [[nodiscard]] Pipeline& pipeline() noexcept { return pipe_; }
  /// The round pipeline, read-only.
  [[nodiscard]] const Pipeline& pipeline() const noexcept { return pipe_; }
  /// The whole server state (what a checkpoint holds).
  [[nodiscard]] const State& state() const noexcept { return pipe_.state(); }
  /// Continues from `s` (e.g. a loaded checkpoint): the next round is s.round.
  void restore(State s) { pipe_.restore(std::move(s)); }

 private:
  static Vector<S> checked(Vector<S> initial) {
    constexpr std::string_view who = "fedpp::Server";
    require(initial.size() > 0, who, "the initial model must not be empty", initial.size());
    require(initial.allFinite(), who, "the initial model must be finite", "non-finite values");
    return initial;
  }

  static ServerOptions checked(const ServerOptions& o) {
    constexpr std::string_view who = "fedpp::Server";
    require(o.rounds >= 1, who, "rounds must be >= 1", o.rounds);
    require(o.min_updates >= 1, who, "min_updates must be >= 1", o.min_updates);
    require(o.eval_every >= 1, who, "eval_every must be >= 1", o.eval_every);
    if (o.clients_per_round == 0)
      require(std::isfinite(o.fraction) && o.fraction > 0 && o.fraction <= 1, who, "fraction must be in (0, 1]",
              o.fraction);
    require(std::isfinite(o.over_selection) && o.over_selection >= 0, who, "over_selection must be finite and >= 0",
            o.over_selection);
    require(o.round_timeout.count() >= 0, who, "round_timeout must be >= 0 ms", o.round_timeout.count());
    return o;
  }

  template <typename T, typename... Callbacks>
  RunResult<S> run_impl(T& transport, Callbacks&... cbs) {
    RunResult<S> result;
    while (pipe_.round() < opts_.rounds) {
      RoundStats st = step_impl(transport, cbs...);
      result.history.push_back(st);
      // Every callback sees the round (no short-circuit); any of them may ask to stop.
      const int stops = (static_cast<int>(detail::call_round_end(cbs, st, as_span(params()))) + ... + 0);
      if (stops > 0) break;
    }
    result.params = params();
    if (eval_) {
      if (!result.history.empty() && !std::isnan(result.history.back().test_accuracy))
        result.final_test = last_eval_;
      else
        result.final_test = eval_(as_span(params()));
    }
    (detail::call_run_end(cbs, result), ...);
    return result;
  }

  template <typename T, typename... Callbacks>
  RoundStats step_impl(T& transport, Callbacks&... cbs) {
    const auto t0 = RoundClock::now();
    const std::uint64_t round = pipe_.round();
    const std::size_t n = transport.num_clients();
    const std::vector<ClientId> avail = transport.available_clients();
    const std::size_t m = std::min(clients_per_round(n, opts_.fraction, opts_.clients_per_round), avail.size());
    std::size_t asked = m;
    if (opts_.over_selection > 0)
      asked = std::min(avail.size(), static_cast<std::size_t>(std::ceil(static_cast<double>(m) * (1.0 + opts_.over_selection))));
    Rng srng = make_rng(opts_.seed, round, server_stream, Purpose::sampling);
    std::vector<ClientId> who = sample_clients_ranked(avail.size(), asked, srng);
    for (ClientId& id : who) id = avail[id];
    const bool over = asked > m;
    if (!over) std::sort(who.begin(), who.end());  // rank order only matters when over-selecting

    pipe_.set_num_clients(n);
    pipe_.begin(who, m);
    RoundStats& live = pipe_.stats();
    live.rounds = opts_.rounds;
    live.available = avail.size();
    (detail::call_round_begin(cbs, std::as_const(live)), ...);

    if (!who.empty()) {
      RoundRequest<S> req = pipe_.request();
      live.bytes_down = static_cast<std::uint64_t>(req.bytes()) * who.size();
      const Deadline deadline = opts_.round_timeout.count() > 0 ? t0 + opts_.round_timeout : no_deadline;
      req.deadline = deadline;
      if (over || opts_.arrival_order) {
        collect(transport, req, who, deadline, over);
      } else {
        Ordered<T, S> ordered(transport);
        collect(ordered, req, who, deadline, false);
      }
    }
    RoundStats st = pipe_.commit([&](const RoundStats& s, [[maybe_unused]] std::span<const S> agg) {
      (detail::call_aggregate(cbs, s, agg), ...);
    });
    if (eval_ && (pipe_.round() % opts_.eval_every == 0 || pipe_.round() == opts_.rounds)) {
      last_eval_ = eval_(as_span(params()));
      st.test_loss = last_eval_.loss();
      st.test_accuracy = last_eval_.accuracy();
    }
    st.seconds = std::chrono::duration<double>(RoundClock::now() - t0).count();
    return st;
  }

  template <typename T>
  void collect(T& transport, const RoundRequest<S>& req, std::span<const ClientId> who, Deadline deadline,
               bool close_when_settled) {
    bool closed = false;
    transport.start_round(req, who, [&](Reply&& r) {
      if (closed) return;
      pipe_.accept(r);
      if (close_when_settled && pipe_.settled()) {
        closed = true;
        transport.cancel_round();
      }
    });
    if (!transport.run_until(deadline) && !closed) transport.cancel_round();
  }

  ServerOptions opts_;
  Pipeline pipe_;
  Evaluator eval_;
  EvalResult last_eval_;
};

}  // namespace fedpp
