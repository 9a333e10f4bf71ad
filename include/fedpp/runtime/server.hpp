#pragma once
/// @file server.hpp
/// The federated server: samples clients, collects and validates their updates, aggregates
/// them and applies the server optimizer, round after round, over any Transport.

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include "fedpp/aggregators/weighted_mean.hpp"
#include "fedpp/compressors/identity.hpp"
#include "fedpp/core/concepts.hpp"
#include "fedpp/optimizers/server_sgd.hpp"
#include "fedpp/runtime/callbacks.hpp"
#include "fedpp/runtime/round_stats.hpp"
#include "fedpp/runtime/sampling.hpp"

namespace fedpp {

namespace detail {
/// Per-client decoder states of a StatefulDecoder compressor, or an empty placeholder.
template <typename C, typename S, bool Stateful>
struct DecoderStatesOf {
  struct type {};
  struct state {};
};
template <typename C, typename S>
struct DecoderStatesOf<C, S, true> {
  using state = decoder_state_t<C, S>;
  using type = std::map<ClientId, state>;
};

/// The streaming accumulator type of an aggregator, or an empty placeholder when it has none.
template <typename A, typename S, bool Streaming>
struct AccumulatorOf {
  struct type {};
};
template <typename A, typename S>
struct AccumulatorOf<A, S, true> {
  using type = typename A::template Accumulator<S>;
};
}  // namespace detail

/// Run settings of a Server.
struct ServerOptions {
  std::uint64_t rounds = 100;        ///< rounds to run
  double fraction = 0.1;             ///< fraction of clients sampled per round, in (0, 1]
  std::size_t clients_per_round = 0; ///< when > 0, sample exactly this many (overrides fraction)
  std::size_t min_updates = 1;       ///< quorum: fewer valid updates leave the model unchanged
  std::uint64_t seed = 1;            ///< run seed (sampling and every client stream)
  std::uint64_t eval_every = 1;      ///< evaluate the global model every this many rounds (and the last)
};

/// A federated server composed from an aggregator, a server optimizer and a compressor (decoder).
/**
 * One round: sample clients (stream (seed, round, server, sampling)); send the global model;
 * receive replies in participant order; decode each payload, reject malformed and non-finite
 * updates (counted in RoundStats, never aggregated); aggregate (streaming with O(d) memory
 * when the aggregator allows it); apply the server optimizer if the quorum is met; evaluate;
 * call the callbacks. A dropped or failing client only reduces the round's participants.
 *
 * Coupled server optimizers (SCAFFOLD, FedDyn; see ServerOptimizer): a broadcast
 * (`broadcast(state)`) goes to every participant with the model and counts in bytes_down; with
 * `needs_aux()` each reply's Reply::aux must decode (dense, the model's dimension) to finite values,
 * else the update is rejected like a malformed or non-finite one; `observe(state, update)` sees every
 * accepted update in client-id order (after the batch transform when one is set); step() gets the
 * ServerContext (round, number of clients N, accepted updates) when it takes one. Reply::aux bytes
 * count in bytes_up.
 *
 * Stateful decoders (StatefulDecoder, e.g. Ef21): the server keeps one decoder state per client
 * id, created with `make_decoder_state<S>(d)` on that client's first accepted payload and kept
 * across rounds, so memory grows by O(d) per distinct client seen. Each payload is decoded with a
 * scratch copy of the client's state, which replaces the stored state only when the update is
 * accepted (decodes, is finite, has a valid weight); a rejected payload leaves it unchanged. A
 * batch transform's later removal of a column does not roll the state back (the payload itself
 * was valid).
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
  /// Evaluates a parameter vector on held-out data.
  using Evaluator = std::function<EvalResult(std::span<const S>)>;
  /// Rewrites a round's batch of validated updates before aggregation (see set_batch_transform).
  using BatchTransform = std::function<void(UpdateBatch<S>&, const RoundStats&)>;

  /// A server starting from `initial` parameters.
  explicit Server(Vector<S> initial, ServerOptions opts = {}, Agg agg = Agg(), SOpt sopt = SOpt(), Comp comp = Comp())
      : params_(std::move(initial)), opts_(opts), agg_(std::move(agg)), sopt_(std::move(sopt)), comp_(std::move(comp)),
        sopt_state_(sopt_.template make_state<S>(params_.size())) {
    constexpr std::string_view who = "fedpp::Server";
    require(params_.size() > 0, who, "the initial model must not be empty", params_.size());
    require(params_.allFinite(), who, "the initial model must be finite", "non-finite values");
    require(opts_.rounds >= 1, who, "rounds must be >= 1", opts_.rounds);
    require(opts_.min_updates >= 1, who, "min_updates must be >= 1", opts_.min_updates);
    require(opts_.eval_every >= 1, who, "eval_every must be >= 1", opts_.eval_every);
    if (opts_.clients_per_round == 0)
      require(std::isfinite(opts_.fraction) && opts_.fraction > 0 && opts_.fraction <= 1, who,
              "fraction must be in (0, 1]", opts_.fraction);
  }

  /// Sets the function used to evaluate the global model (e.g. on a test set).
  void set_evaluator(Evaluator e) { eval_ = std::move(e); }

  /// Rewrites each round's validated batch before aggregation (simulated attacks, audits).
  /**
   * When set, updates are always collected into a batch (no streaming). The transform may change
   * columns and weights but not the dimension (else DimensionError); afterwards columns with
   * non-finite values are removed and counted in rejected_nonfinite, exactly as for received
   * updates. A bad weight cannot be set (UpdateBatch throws InvalidArgument, which leaves step()
   * with the model unchanged).
   */
  void set_batch_transform(BatchTransform t) { transform_ = std::move(t); }

  /// Runs rounds until `options().rounds` have completed or a callback asks to stop.
  template <typename T, typename... Callbacks>
    requires Transport<T, S>
  RunResult<S> run(T& transport, Callbacks&&... cbs) {
    RunResult<S> result;
    while (round_ < opts_.rounds) {
      RoundStats st = step(transport, cbs...);
      result.history.push_back(st);
      // Every callback sees the round (no short-circuit); any of them may ask to stop.
      const int stops = (static_cast<int>(detail::call_round_end(cbs, st, as_span(std::as_const(params_)))) + ... + 0);
      if (stops > 0) break;
    }
    result.params = params_;
    if (eval_) {
      if (!result.history.empty() && !std::isnan(result.history.back().test_accuracy))
        result.final_test = last_eval_;
      else
        result.final_test = eval_(as_span(std::as_const(params_)));
    }
    (detail::call_run_end(cbs, result), ...);
    return result;
  }

  /// Runs one round and returns its statistics (on_round_end is called by run(), not here).
  template <typename T, typename... Callbacks>
    requires Transport<T, S>
  RoundStats step(T& transport, Callbacks&... cbs) {
    const auto t0 = std::chrono::steady_clock::now();
    const Index d = params_.size();
    RoundStats st;
    st.round = round_;
    st.rounds = opts_.rounds;

    const std::size_t m = clients_per_round(transport.num_clients(), opts_.fraction, opts_.clients_per_round);
    Rng srng = make_rng(opts_.seed, round_, server_stream, Purpose::sampling);
    const std::vector<ClientId> who = sample_clients(transport.num_clients(), m, srng);
    st.participants = who.size();
    (detail::call_round_begin(cbs, st), ...);

    RoundRequest<S> req{round_, opts_.seed, as_span(std::as_const(params_)), {}};
    if constexpr (BroadcastingServerOptimizer<SOpt, S>) {
      req.aux = std::span<const S>(sopt_.broadcast(std::as_const(sopt_state_)));
      if (!req.aux.empty() && static_cast<Index>(req.aux.size()) != d)
        fail<DimensionError>("fedpp::Server::step", "the server optimizer's broadcast must have the model's " +
                                                        std::to_string(d) + " entries", req.aux.size());
    }
    st.bytes_down = static_cast<std::uint64_t>(req.bytes()) * who.size();

    // Either stream into an O(d) accumulator or collect a d x m batch (always a batch when a
    // batch transform, e.g. a simulated attack, must see the whole round).
    constexpr bool can_stream = StreamingAggregator<Agg, S>;
    const bool stream = can_stream && !transform_;
    std::optional<typename detail::AccumulatorOf<Agg, S, can_stream>::type> acc;
    UpdateBatch<S> batch;
    if constexpr (can_stream) {
      if (stream) acc.emplace(agg_, d);
    }
    if (!stream) batch = UpdateBatch<S>(d, static_cast<Index>(who.size()));
    scratch_.resize(d);
    double loss_sum = 0.0, weight_sum = 0.0;
    // Observing server optimizers see each accepted update: at once, or after the batch transform
    // when there is one (they must see what is aggregated). needs_aux: each reply's aux is decoded.
    const bool needs_aux = detail::server_needs_aux(sopt_);
    const bool defer_observe = static_cast<bool>(transform_);
    if (needs_aux) aux_scratch_.resize(d);
    deferred_aux_.clear();

    transport.run_round(req, who, [&](Reply&& r) {
      st.bytes_up += r.payload.bytes() + r.aux.bytes();
      if (r.status == ReplyStatus::failed) { ++st.failed; return; }
      if (r.status == ReplyStatus::dropped) { ++st.dropped; return; }
      try {
        if constexpr (stateful_decoder) {
          // Decode with a scratch copy of the client's state; committed below only on acceptance.
          const auto known = decoder_states_.find(r.client);
          if (known == decoder_states_.end())
            decoder_scratch_ = comp_.template make_decoder_state<S>(d);
          else if (decoder_scratch_)
            *decoder_scratch_ = known->second;  // reuses the scratch's buffers
          else
            decoder_scratch_.emplace(known->second);
          comp_.decode(r.payload, as_span(scratch_), *decoder_scratch_);
        } else {
          comp_.decode(r.payload, as_span(scratch_));
        }
        if (needs_aux) Identity().decode(r.aux, as_span(aux_scratch_));
      } catch (const Error&) {
        ++st.rejected_malformed;
        return;
      }
      if (!scratch_.allFinite() || !std::isfinite(r.weight) || r.weight < 0 ||
          (needs_aux && !aux_scratch_.allFinite())) {
        ++st.rejected_nonfinite;
        return;
      }
      if constexpr (stateful_decoder) {
        const auto known = decoder_states_.find(r.client);
        if (known != decoder_states_.end())
          std::swap(known->second, *decoder_scratch_);  // the old state becomes next scratch
        else
          decoder_states_.emplace(r.client, std::move(*decoder_scratch_));
      }
      bool streamed = false;
      if constexpr (can_stream) {
        if (stream) {
          acc->add(as_span(std::as_const(scratch_)), r.weight);
          streamed = true;
        }
      }
      if (!streamed) batch.push_back(r.client, r.weight, as_span(std::as_const(scratch_)));
      if constexpr (ObservingServerOptimizer<SOpt, S>) {
        const std::span<const S> aux = needs_aux ? as_span(std::as_const(aux_scratch_)) : std::span<const S>();
        if (!defer_observe)
          sopt_.observe(sopt_state_, ClientUpdateView<S>{r.client, r.weight, as_span(std::as_const(scratch_)), aux});
        else if (needs_aux)
          deferred_aux_.emplace_back(r.client, aux_scratch_);
      }
      ++st.accepted;
      if (std::isfinite(r.local.train_loss)) {
        loss_sum += r.weight * r.local.train_loss;
        weight_sum += r.weight;
      }
    });
    if (weight_sum > 0) st.train_loss = loss_sum / weight_sum;

    if (transform_ && !batch.empty()) {
      transform_(batch, st);
      if (batch.dim() != d)
        fail<DimensionError>("fedpp::Server::step", "the batch transform must keep the dimension " + std::to_string(d),
                             batch.dim());
      // Whatever the transform produced is validated like a received update. Its weights need no
      // check: UpdateBatch refuses a non-finite or negative weight wherever one is set.
      const Index before = batch.size();
      batch.remove_columns_if([&](Index i) { return !as_map(batch.column(i)).allFinite(); });
      const auto removed = static_cast<std::size_t>(before - batch.size());
      st.rejected_nonfinite += removed;
      st.accepted -= std::min(st.accepted, removed);
    }
    if constexpr (ObservingServerOptimizer<SOpt, S>) {
      if (defer_observe) {
        for (Index i = 0; i < batch.size(); ++i) {
          const ClientId id = batch.ids()[static_cast<std::size_t>(i)];
          std::span<const S> aux;
          if (needs_aux) {
            const auto it = std::find_if(deferred_aux_.begin(), deferred_aux_.end(),
                                         [id](const auto& e) { return e.first == id; });
            if (it != deferred_aux_.end()) aux = as_span(std::as_const(it->second));
          }
          sopt_.observe(sopt_state_, ClientUpdateView<S>{id, batch.weights()[static_cast<std::size_t>(i)],
                                                         batch.column(i), aux});
        }
      }
    }

    if (st.accepted >= opts_.min_updates) {
      bool finished = false;
      if constexpr (can_stream) {
        if (stream) {
          acc->finish(update_);
          finished = true;
        }
      }
      if (!finished) agg_.aggregate(batch, update_);
      if (update_.size() == d && update_.allFinite()) {
        st.update_norm = static_cast<double>(update_.template cast<double>().norm());
        (detail::call_aggregate(cbs, st, as_span(std::as_const(update_))), ...);
        backup_ = params_;
        detail::server_step(sopt_, params_, update_, sopt_state_,
                            ServerContext{round_, transport.num_clients(), st.accepted});
        st.applied = params_.allFinite();
        if (!st.applied) params_.swap(backup_);  // never let a non-finite step reach the model
      }
    }

    ++round_;
    if (eval_ && (round_ % opts_.eval_every == 0 || round_ == opts_.rounds)) {
      last_eval_ = eval_(as_span(std::as_const(params_)));
      st.test_loss = last_eval_.loss();
      st.test_accuracy = last_eval_.accuracy();
    }
    st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return st;
  }

  /// Current global parameters.
  [[nodiscard]] const Vector<S>& params() const noexcept { return params_; }
  /// Rounds completed so far.
  [[nodiscard]] std::uint64_t round() const noexcept { return round_; }
  /// Run settings.
  [[nodiscard]] const ServerOptions& options() const noexcept { return opts_; }
  /// The aggregator.
  [[nodiscard]] Agg& aggregator() noexcept { return agg_; }
  /// The aggregator, read-only.
  [[nodiscard]] const Agg& aggregator() const noexcept { return agg_; }
  /// The server optimizer.
  [[nodiscard]] const SOpt& server_optimizer() const noexcept { return sopt_; }
  /// The server optimizer's state.
  [[nodiscard]] const server_state_t<SOpt, S>& server_state() const noexcept { return sopt_state_; }
  /// Mutable server optimizer state (e.g. to restore it from a checkpoint).
  [[nodiscard]] server_state_t<SOpt, S>& server_state() noexcept { return sopt_state_; }
  /// The compressor used to decode payloads.
  [[nodiscard]] const Comp& compressor() const noexcept { return comp_; }
  /// Per-client decoder states (StatefulDecoder compressors only; keyed by client id).
  [[nodiscard]] const auto& decoder_states() const noexcept
    requires StatefulDecoder<Comp, S>
  {
    return decoder_states_;
  }
  /// Mutable per-client decoder states (e.g. to restore them from a checkpoint).
  [[nodiscard]] auto& decoder_states() noexcept
    requires StatefulDecoder<Comp, S>
  {
    return decoder_states_;
  }

 private:
  static constexpr bool stateful_decoder = StatefulDecoder<Comp, S>;

  Vector<S> params_;
  ServerOptions opts_;
  Agg agg_;
  SOpt sopt_;
  Comp comp_;
  server_state_t<SOpt, S> sopt_state_;
  Evaluator eval_;
  BatchTransform transform_;
  EvalResult last_eval_;
  Vector<S> scratch_, update_, backup_, aux_scratch_;
  std::vector<std::pair<ClientId, Vector<S>>> deferred_aux_;  // aux of accepted replies, when observing after a transform
  typename detail::DecoderStatesOf<Comp, S, stateful_decoder>::type decoder_states_;
  std::optional<typename detail::DecoderStatesOf<Comp, S, stateful_decoder>::state> decoder_scratch_;
  std::uint64_t round_ = 0;
};

}  // namespace fedpp
