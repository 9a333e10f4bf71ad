#pragma once
/// @file pipeline.hpp
/// The round pipeline every server kind reuses: decode -> validate -> collect -> observe, one
/// reply at a time, then commit (stage, aggregate, server step, roll back a non-finite step).
/// Its whole state is one serialisable ServerState.

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <numeric>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "fedpp/compressors/identity.hpp"
#include "fedpp/core/concepts.hpp"
#include "fedpp/core/error.hpp"
#include "fedpp/core/update_batch.hpp"
#include "fedpp/runtime/round_stats.hpp"

namespace fedpp {

namespace detail {
/// Per-client decoder states of a StatefulDecoder compressor, or an empty placeholder.
template <typename C, typename S, bool Stateful>
struct DecoderStatesOf {
  struct type {
    template <class Archive>
    void serialize(Archive& /*ar*/) {}
  };
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

/// An empty state (aggregators and server optimizers without one) that serialises as nothing.
struct NoState {
  template <class Archive>
  void serialize(Archive& /*ar*/) {}
};

/// The state type of aggregator A (StatefulAggregator), or NoState.
template <typename A, bool Stateful = StatefulAggregator<A>>
struct AggregatorStateOf {
  using type = NoState;
};
template <typename A>
struct AggregatorStateOf<A, true> {
  using type = std::remove_cvref_t<decltype(std::declval<A&>().state())>;
};
}  // namespace detail

/// Everything a server must keep to continue a run: one serialisable object.
/**
 * round (rounds committed so far), the global parameters, the server optimizer's state
 * (FedAdam's moments, SCAFFOLD's c, FedDyn's h), the per-client decoder states of a stateful
 * decoder (EF21), and the aggregator's own state (CenteredClipping's centre). Written by
 * fedpp/runtime/checkpoint.hpp; `serialize` is a cereal member (empty parts write nothing).
 */
template <typename S, typename Agg, typename SOpt, typename Comp>
struct ServerState {
  /// Per-client decoder states (a map for a StatefulDecoder, else an empty placeholder).
  using DecoderStates = typename detail::DecoderStatesOf<Comp, S, StatefulDecoder<Comp, S>>::type;
  /// The aggregator's state type (detail::NoState when it has none).
  using AggregatorState = typename detail::AggregatorStateOf<Agg>::type;

  std::uint64_t round = 0;                  ///< rounds committed so far (the next round's index)
  Vector<S> params;                         ///< global parameters
  server_state_t<SOpt, S> optimizer;        ///< server optimizer state
  DecoderStates decoders{};                 ///< per-client decoder states
  AggregatorState aggregator{};             ///< the aggregator's state

  /// cereal: round, params, then each non-empty part.
  template <class Archive>
  void serialize(Archive& ar) {
    ar(round, params);
    if constexpr (!std::is_empty_v<server_state_t<SOpt, S>>) ar(optimizer);
    if constexpr (!std::is_empty_v<DecoderStates>) ar(decoders);
    if constexpr (!std::is_empty_v<AggregatorState>) ar(aggregator);
  }
};

/// What RoundPipeline::accept did with one reply (each outcome is a RoundStats counter).
enum class Verdict : std::uint8_t {
  accepted,   ///< decoded, valid, collected
  failed,     ///< the client reported an error
  dropped,    ///< the client went away or the round was cancelled for it
  timed_out,  ///< no reply by the deadline (a timeout failure reply)
  malformed,  ///< did not decode, or failed its integrity check
  nonfinite,  ///< NaN/infinity in the update or aux, or a bad weight
  late,       ///< answered an earlier round
  duplicate,  ///< the participant had already answered this round
  unexpected, ///< not a participant of this round (or a round that has not started)
};

/// The round pipeline: one reply at a time (accept), then commit; reused by every server kind.
/**
 * begin(ranked participants, target m) opens round `state().round`. accept(reply), in any
 * order: counts its bytes; drops a reply for another round (late/unexpected), from a
 * non-participant (unexpected) or repeated (duplicate); counts failures by reason; verifies
 * Reply::checksum when present; decodes (with the client's decoder state for a StatefulDecoder,
 * committed only when the update is valid), checks finiteness and the weight; then collects:
 * streaming into the aggregator's O(d) accumulator when it has one, no stage is set and there is
 * no over-selection (observing server optimizers then see the update at once), else into a
 * batch. commit(): participants without a reply are timed out (or surplus, see below); the
 * batch keeps, with over-selection, the first m valid replies in rank order (the participants'
 * order given to begin(), i.e. the sampling draw order) and is put in client-id order; the stage
 * (e.g. simulated Byzantine corruption) rewrites it, non-finite columns are removed; observing
 * optimizers see it in id order; if at least min_updates remain, the aggregator (with the
 * AggregationContext {round, seed}) and the server step run, and a non-finite step is rolled
 * back. Results depend only on the set of accepted replies, not on their arrival order, except
 * for streaming collection and observation, which follow acceptance order (the servers feed the
 * pipeline through an Ordered adapter, giving id order).
 */
template <typename S, typename Agg, typename SOpt, typename Comp>
  requires Aggregator<Agg, S> && ServerOptimizer<SOpt, S> && Compressor<Comp, S>
class RoundPipeline {
 public:
  /// The serialisable server state.
  using State = ServerState<S, Agg, SOpt, Comp>;
  /// A batch stage run at commit before aggregation (simulated attacks); it may rewrite columns.
  using Stage = std::function<void(UpdateBatch<S>&, const AggregationContext&)>;

  /// A pipeline starting at round 0 from `initial` parameters.
  RoundPipeline(Vector<S> initial, std::size_t min_updates, std::uint64_t seed, Agg agg = Agg(), SOpt sopt = SOpt(),
                Comp comp = Comp())
      : agg_(std::move(agg)), sopt_(std::move(sopt)), comp_(std::move(comp)), min_updates_(min_updates), seed_(seed) {
    constexpr std::string_view who = "fedpp::RoundPipeline";
    require(initial.size() > 0, who, "the initial model must not be empty", initial.size());
    require(initial.allFinite(), who, "the initial model must be finite", "non-finite values");
    require(min_updates_ >= 1, who, "min_updates must be >= 1", min_updates_);
    state_.optimizer = sopt_.template make_state<S>(initial.size());
    state_.params = std::move(initial);
    sync_aggregator_state();
  }

  /// Sets the stage run on the round's batch at commit (forces batch collection); empty to remove.
  void set_stage(Stage s) { stage_ = std::move(s); }
  /// Whether a stage is set.
  [[nodiscard]] bool has_stage() const noexcept { return static_cast<bool>(stage_); }

  /// The request for the next round: an owned copy of the model and the optimizer's broadcast.
  [[nodiscard]] RoundRequest<S> request() const {
    Vector<S> aux;
    if constexpr (BroadcastingServerOptimizer<SOpt, S>) {
      const std::span<const S> b(sopt_.broadcast(state_.optimizer));
      if (!b.empty() && static_cast<Index>(b.size()) != dim())
        fail<DimensionError>("fedpp::RoundPipeline::request", "the server optimizer's broadcast must have the model's " +
                                                                  std::to_string(dim()) + " entries", b.size());
      aux = as_map(b);
    }
    return RoundRequest<S>::shared(state_.round, seed_, state_.params, std::move(aux));
  }

  /// Opens round state().round for `ranked` participants (distinct ids, in rank order), wanting `target` updates.
  /**
   * target = 0 means all of them. With target < participants (over-selection) the first
   * `target` valid replies in rank order are kept and the batch is collected even for a
   * streaming aggregator.
   * @throws InvalidArgument on a repeated id or target > participants.
   */
  void begin(std::span<const ClientId> ranked, std::size_t target = 0) {
    constexpr std::string_view who = "fedpp::RoundPipeline::begin";
    if (target == 0) target = ranked.size();
    require(target <= ranked.size(), who, "target must be <= the participants " + std::to_string(ranked.size()), target);
    const Index d = dim();
    st_ = RoundStats{};
    st_.round = state_.round;
    st_.participants = ranked.size();
    st_.target = target;
    target_ = target;
    ranked_.assign(ranked.begin(), ranked.end());
    sorted_.resize(ranked_.size());
    std::iota(sorted_.begin(), sorted_.end(), std::size_t{0});
    std::sort(sorted_.begin(), sorted_.end(), [&](std::size_t a, std::size_t b) { return ranked_[a] < ranked_[b]; });
    for (std::size_t k = 1; k < sorted_.size(); ++k)
      if (ranked_[sorted_[k]] == ranked_[sorted_[k - 1]]) fail(who, "participants must be distinct; repeated id", ranked_[sorted_[k]]);
    slot_.assign(ranked_.size(), Slot::pending);
    scan_ = 0;
    scan_valid_ = 0;
    open_ = true;
    loss_sum_ = weight_sum_ = 0.0;
    stream_ = can_stream && !stage_ && target_ == ranked_.size();
    acc_.reset();
    if constexpr (can_stream) {
      if (stream_) acc_.emplace(agg_, d);
    }
    // The batch keeps its allocation from round to round (a fresh d x m buffer costs page faults).
    if (batch_.dim() == d)
      batch_.clear();
    else
      batch_ = UpdateBatch<S>(d, stream_ ? 0 : static_cast<Index>(ranked_.size()));
    cols_.clear();
    aux_.clear();
    scratch_.resize(d);
    needs_aux_ = detail::server_needs_aux(sopt_);
    if (needs_aux_) aux_scratch_.resize(d);
  }

  /// Statistics of the open (or last committed) round.
  [[nodiscard]] const RoundStats& stats() const noexcept { return st_; }
  /// Mutable statistics (a server adds bytes_down, availability and timings).
  [[nodiscard]] RoundStats& stats() noexcept { return st_; }
  /// Whether a round is open (begin() called, commit() not yet).
  [[nodiscard]] bool is_open() const noexcept { return open_; }

  /// Takes one reply of any round, in any order; returns what happened to it.
  Verdict accept(const Reply& r) {
    st_.bytes_up += r.payload.bytes() + r.aux.bytes();
    if (r.round < state_.round) return count(Verdict::late);
    if (!open_) return count(Verdict::unexpected);
    if (r.round > state_.round) return count(Verdict::unexpected);
    const auto it = std::lower_bound(sorted_.begin(), sorted_.end(), r.client,
                                     [&](std::size_t i, ClientId id) { return ranked_[i] < id; });
    if (it == sorted_.end() || ranked_[*it] != r.client) return count(Verdict::unexpected);
    const std::size_t rank = *it;
    if (slot_[rank] != Slot::pending) return count(Verdict::duplicate);
    const Verdict v = validate(r, rank);
    slot_[rank] = v == Verdict::accepted ? Slot::valid : Slot::invalid;
    advance_scan();
    return count(v);
  }

  /// Whether the outcome of the round is decided: every participant answered, or (over-selection)
  /// the first `target` valid replies in rank order are known.
  [[nodiscard]] bool settled() const noexcept { return scan_ == ranked_.size() || scan_valid_ >= target_; }
  /// Whether every participant has answered.
  [[nodiscard]] bool complete() const noexcept {
    return std::none_of(slot_.begin(), slot_.end(), [](Slot s) { return s == Slot::pending; });
  }

  /// Closes the round: counts missing replies, stages, observes, aggregates and steps (see the class comment).
  /**
   * `on_aggregate(stats, aggregate)` is called with the aggregate before the server step.
   * Returns the round's statistics; state().round advances by one in every case.
   * @throws InvalidArgument when no round is open; DimensionError when the stage changes the dimension.
   */
  template <typename OnAggregate>
  const RoundStats& commit(OnAggregate&& on_aggregate) {
    require(open_, "fedpp::RoundPipeline::commit", "no round is open (call begin first)", state_.round);
    open_ = false;
    const Index d = dim();
    // Participants without a reply: not needed once the kept set was decided, else timed out.
    std::size_t valid_seen = 0;
    for (std::size_t k = 0; k < ranked_.size(); ++k) {
      const bool needed = valid_seen < target_;
      if (slot_[k] == Slot::valid) {
        if (needed) ++valid_seen;
      } else if (slot_[k] == Slot::pending) {
        if (needed) ++st_.timed_out; else ++st_.surplus;
      }
    }
    if (!stream_) finish_batch(d);
    if (weight_sum_ > 0) st_.train_loss = loss_sum_ / weight_sum_;
    const AggregationContext actx{state_.round, seed_};
    if (stage_ && !batch_.empty()) {
      stage_(batch_, actx);
      if (batch_.dim() != d)
        fail<DimensionError>("fedpp::RoundPipeline::commit", "a stage must keep the dimension " + std::to_string(d),
                             batch_.dim());
      // Whatever the stage produced is validated like a received update (UpdateBatch refuses bad weights).
      std::vector<bool> bad(static_cast<std::size_t>(batch_.size()));
      for (Index i = 0; i < batch_.size(); ++i) bad[static_cast<std::size_t>(i)] = !all_finite(std::as_const(batch_).column(i));
      std::vector<Vector<S>> kept_aux;
      for (std::size_t i = 0; i < bad.size(); ++i)
        if (!bad[i] && needs_aux_) kept_aux.push_back(std::move(aux_[i]));
      const Index before = batch_.size();
      batch_.remove_columns_if([&](Index i) { return bad[static_cast<std::size_t>(i)]; });
      aux_ = std::move(kept_aux);
      const auto removed = static_cast<std::size_t>(before - batch_.size());
      st_.rejected_nonfinite += removed;
      st_.accepted -= std::min(st_.accepted, removed);
    }
    if constexpr (ObservingServerOptimizer<SOpt, S>) {
      if (!stream_)
        for (Index i = 0; i < batch_.size(); ++i)
          sopt_.observe(state_.optimizer,
                        ClientUpdateView<S>{batch_.ids()[static_cast<std::size_t>(i)],
                                            batch_.weights()[static_cast<std::size_t>(i)], batch_.column(i),
                                            needs_aux_ ? as_span(std::as_const(aux_[static_cast<std::size_t>(i)]))
                                                       : std::span<const S>()});
    }
    st_.quorum_met = st_.accepted >= min_updates_;
    if (st_.quorum_met) {
      bool finished = false;
      if constexpr (can_stream) {
        if (stream_) {
          acc_->finish(update_);
          finished = true;
        }
      }
      if (!finished) detail::aggregate_in_context(agg_, std::as_const(batch_), update_, actx);
      if (update_.size() == d && all_finite(update_)) {
        st_.update_norm = static_cast<double>(update_.template cast<double>().norm());
        on_aggregate(std::as_const(st_), as_span(std::as_const(update_)));
        backup_ = state_.params;
        detail::server_step(sopt_, state_.params, update_, state_.optimizer,
                            ServerContext{state_.round, num_clients_, st_.accepted});
        st_.applied = all_finite(state_.params);
        if (!st_.applied) {
          state_.params.swap(backup_);  // never let a non-finite step reach the model
          st_.rolled_back = true;
        }
      }
    }
    acc_.reset();
    ++state_.round;
    sync_aggregator_state();
    return st_;
  }

  /// commit() without an on_aggregate hook.
  const RoundStats& commit() {
    return commit([](const RoundStats&, std::span<const S>) {});
  }

  /// The number of clients N that server steps are told (ServerContext::num_clients).
  void set_num_clients(std::size_t n) noexcept { num_clients_ = n; }

  /// The whole state (round, parameters, optimizer, decoder and aggregator states).
  [[nodiscard]] const State& state() const noexcept { return state_; }
  /// Replaces the whole state (resume); the aggregator's state is restored into the aggregator.
  /// @throws DimensionError when the parameters do not have the current dimension; InvalidArgument while a round is open.
  void restore(State s) {
    require(!open_, "fedpp::RoundPipeline::restore", "cannot restore while a round is open", s.round);
    if (s.params.size() != dim())
      fail<DimensionError>("fedpp::RoundPipeline::restore", "the state's model must have dimension " +
                                                                std::to_string(dim()), s.params.size());
    if constexpr (StatefulAggregator<Agg>) agg_.state() = s.aggregator;
    state_ = std::move(s);
  }

  /// Current global parameters.
  [[nodiscard]] const Vector<S>& params() const noexcept { return state_.params; }
  /// Rounds committed so far.
  [[nodiscard]] std::uint64_t round() const noexcept { return state_.round; }
  /// Model dimension.
  [[nodiscard]] Index dim() const noexcept { return state_.params.size(); }
  /// Run seed (aggregation contexts).
  [[nodiscard]] std::uint64_t seed() const noexcept { return seed_; }
  /// Quorum.
  [[nodiscard]] std::size_t min_updates() const noexcept { return min_updates_; }
  /// The aggregator.
  [[nodiscard]] Agg& aggregator() noexcept { return agg_; }
  /// The aggregator, read-only.
  [[nodiscard]] const Agg& aggregator() const noexcept { return agg_; }
  /// The server optimizer.
  [[nodiscard]] const SOpt& server_optimizer() const noexcept { return sopt_; }
  /// The server optimizer's state.
  [[nodiscard]] server_state_t<SOpt, S>& server_state() noexcept { return state_.optimizer; }
  /// The server optimizer's state, read-only.
  [[nodiscard]] const server_state_t<SOpt, S>& server_state() const noexcept { return state_.optimizer; }
  /// The compressor used to decode payloads.
  [[nodiscard]] const Comp& compressor() const noexcept { return comp_; }
  /// Per-client decoder states (StatefulDecoder only).
  [[nodiscard]] auto& decoder_states() noexcept { return state_.decoders; }
  /// Per-client decoder states, read-only.
  [[nodiscard]] const auto& decoder_states() const noexcept { return state_.decoders; }

 private:
  static constexpr bool can_stream = StreamingAggregator<Agg, S>;
  static constexpr bool stateful_decoder = StatefulDecoder<Comp, S>;
  enum class Slot : std::uint8_t { pending, valid, invalid };
  struct Column {
    std::size_t rank;
    double loss;
  };

  Verdict count(Verdict v) {
    switch (v) {
      case Verdict::accepted: ++st_.accepted; break;
      case Verdict::failed: ++st_.failed; break;
      case Verdict::dropped: ++st_.dropped; break;
      case Verdict::timed_out: ++st_.timed_out; break;
      case Verdict::malformed: ++st_.rejected_malformed; break;
      case Verdict::nonfinite: ++st_.rejected_nonfinite; break;
      case Verdict::late: ++st_.late; break;
      case Verdict::duplicate: ++st_.duplicates; break;
      case Verdict::unexpected: ++st_.unexpected; break;
    }
    return v;
  }

  void advance_scan() {
    while (scan_ < ranked_.size() && scan_valid_ < target_ && slot_[scan_] != Slot::pending) {
      if (slot_[scan_] == Slot::valid) ++scan_valid_;
      ++scan_;
    }
  }

  Verdict validate(const Reply& r, std::size_t rank) {
    if (r.status != ReplyStatus::ok) {
      switch (r.reason) {
        case FailureReason::timeout: return Verdict::timed_out;
        case FailureReason::malformed: return Verdict::malformed;
        case FailureReason::disconnected:
        case FailureReason::cancelled: return Verdict::dropped;
        case FailureReason::client_error: return Verdict::failed;
        case FailureReason::none: break;
      }
      return r.status == ReplyStatus::failed ? Verdict::failed : Verdict::dropped;
    }
    if (r.checksum && *r.checksum != reply_digest(r.payload, r.aux)) return Verdict::malformed;
    if (!std::isfinite(r.weight) || r.weight < 0) return Verdict::nonfinite;
    // Batch collection decodes straight into a new column of the batch (no copy); streaming into scratch.
    const std::span<S> out = stream_ ? as_span(scratch_) : batch_.append_column(r.client, r.weight);
    try {
      if constexpr (stateful_decoder) {
        // Decode with a scratch copy of the client's state; committed below only on acceptance.
        const auto known = state_.decoders.find(r.client);
        if (known == state_.decoders.end())
          decoder_scratch_ = comp_.template make_decoder_state<S>(dim());
        else if (decoder_scratch_)
          *decoder_scratch_ = known->second;  // reuses the scratch's buffers
        else
          decoder_scratch_.emplace(known->second);
        comp_.decode(r.payload, out, *decoder_scratch_);
      } else {
        comp_.decode(r.payload, out);
      }
      if (needs_aux_) Identity().decode(r.aux, as_span(aux_scratch_));
    } catch (const Error&) {
      if (!stream_) batch_.pop_back();
      return Verdict::malformed;
    }
    if (!all_finite(std::span<const S>(out)) || (needs_aux_ && !all_finite(aux_scratch_))) {
      if (!stream_) batch_.pop_back();
      return Verdict::nonfinite;
    }
    if constexpr (stateful_decoder) {
      const auto known = state_.decoders.find(r.client);
      if (known != state_.decoders.end())
        std::swap(known->second, *decoder_scratch_);  // the old state becomes next scratch
      else
        state_.decoders.emplace(r.client, std::move(*decoder_scratch_));
    }
    const double loss = r.local.train_loss;
    if (stream_) {
      if constexpr (can_stream) acc_->add(as_span(std::as_const(scratch_)), r.weight);
      if constexpr (ObservingServerOptimizer<SOpt, S>) {
        const std::span<const S> aux = needs_aux_ ? as_span(std::as_const(aux_scratch_)) : std::span<const S>();
        sopt_.observe(state_.optimizer, ClientUpdateView<S>{r.client, r.weight, as_span(std::as_const(scratch_)), aux});
      }
      if (std::isfinite(loss)) {
        loss_sum_ += r.weight * loss;
        weight_sum_ += r.weight;
      }
    } else {
      cols_.push_back(Column{rank, loss});
      if (needs_aux_) aux_.push_back(aux_scratch_);
    }
    return Verdict::accepted;
  }

  /// Keeps the first target_ valid columns in rank order, puts them in id order, sums the losses.
  void finish_batch(Index d) {
    const auto n = static_cast<std::size_t>(batch_.size());
    std::vector<std::size_t> order(n);
    std::iota(order.begin(), order.end(), std::size_t{0});
    if (n > target_) {
      std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return cols_[a].rank < cols_[b].rank; });
      const std::size_t extra = n - target_;
      order.resize(target_);
      st_.surplus += extra;
      st_.accepted -= extra;
    }
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      return batch_.ids()[a] < batch_.ids()[b];
    });
    bool identity = order.size() == n;
    for (std::size_t k = 0; identity && k < n; ++k) identity = order[k] == k;
    if (!identity) {
      if (spare_.dim() == d)
        spare_.clear();
      else
        spare_ = UpdateBatch<S>(d, static_cast<Index>(order.size()));
      std::vector<Column> cols;
      std::vector<Vector<S>> aux;
      for (std::size_t k : order) {
        spare_.push_back(batch_.ids()[k], batch_.weights()[k], batch_.column(static_cast<Index>(k)));
        cols.push_back(cols_[k]);
        if (needs_aux_) aux.push_back(std::move(aux_[k]));
      }
      std::swap(batch_, spare_);
      cols_ = std::move(cols);
      aux_ = std::move(aux);
    }
    for (std::size_t k = 0; k < cols_.size(); ++k)
      if (std::isfinite(cols_[k].loss)) {
        loss_sum_ += batch_.weights()[k] * cols_[k].loss;
        weight_sum_ += batch_.weights()[k];
      }
  }

  void sync_aggregator_state() {
    if constexpr (StatefulAggregator<Agg>) state_.aggregator = std::as_const(agg_).state();
  }

  Agg agg_;
  SOpt sopt_;
  Comp comp_;
  std::size_t min_updates_;
  std::uint64_t seed_;
  std::size_t num_clients_ = 0;
  State state_;
  Stage stage_;
  // The open round.
  RoundStats st_;
  bool open_ = false, stream_ = false, needs_aux_ = false;
  std::size_t target_ = 0, scan_ = 0, scan_valid_ = 0;
  std::vector<ClientId> ranked_;
  std::vector<std::size_t> sorted_;  // rank positions in ascending id order
  std::vector<Slot> slot_;
  std::optional<typename detail::AccumulatorOf<Agg, S, can_stream>::type> acc_;
  UpdateBatch<S> batch_, spare_;  // the round's batch; the buffer it is re-sorted into
  std::vector<Column> cols_;
  std::vector<Vector<S>> aux_;
  double loss_sum_ = 0.0, weight_sum_ = 0.0;
  Vector<S> scratch_, update_, backup_, aux_scratch_;
  std::optional<typename detail::DecoderStatesOf<Comp, S, stateful_decoder>::state> decoder_scratch_;
};

}  // namespace fedpp
