#pragma once
/// @file concepts.hpp
/// C++20 concepts for every policy kind. Each states the expressions a policy must support;
/// every built-in policy is followed by a `static_assert` of its concept.

#include <concepts>
#include <functional>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "fedpp/core/dataset.hpp"
#include "fedpp/core/layout.hpp"
#include "fedpp/core/messages.hpp"
#include "fedpp/core/payload.hpp"
#include "fedpp/core/rng.hpp"
#include "fedpp/core/types.hpp"
#include "fedpp/core/update_batch.hpp"

namespace fedpp {

/// A differentiable classifier over a flat parameter vector.
/**
 * Required, for `const M m` with `S = M::Scalar`, parameters `p` (span<const S>), gradient
 * `g` (span<S>), inputs `X` (d_in x m, one column per sample) and labels `y`:
 * - `m.num_params()`, `m.input_dim()`, `m.num_classes()`, `m.layout()` (a ParameterLayout);
 * - `m.init_params(v, rng)` resizes `v` and fills it with initial values;
 * - `m.loss_and_gradient(p, X, y, g)` returns the mean loss over the batch and writes its gradient;
 * - `m.evaluate(p, X, y)` returns an EvalResult (loss sum, correct count, count).
 * All const members must be safe to call concurrently.
 */
template <typename M>
concept Model = std::copy_constructible<M> && requires { typename M::Scalar; } &&
    requires(const M& m, Vector<typename M::Scalar>& v, std::span<const typename M::Scalar> p,
             std::span<typename M::Scalar> g, const Eigen::Ref<const Matrix<typename M::Scalar>>& X,
             std::span<const Label> y, Rng& rng) {
      { m.num_params() } -> std::convertible_to<Index>;
      { m.input_dim() } -> std::convertible_to<Index>;
      { m.num_classes() } -> std::convertible_to<int>;
      { m.layout() } -> std::convertible_to<ParameterLayout>;
      { m.init_params(v, rng) } -> std::same_as<void>;
      { m.loss_and_gradient(p, X, y, g) } -> std::convertible_to<double>;
      { m.evaluate(p, X, y) } -> std::same_as<EvalResult>;
    };

/// Merges one round of client updates into a single update.
/**
 * Required: `a.aggregate(batch, out)` with `batch` an UpdateBatch<S>; it resizes `out` to
 * `batch.dim()`, throws InvalidArgument (naming the class) when its requirements on the batch
 * are violated, and gives a result that does not depend on column order beyond the documented
 * id-ordered reduction. Stateful rules keep their state in the object (hence non-const).
 */
template <typename A, typename S = float>
concept Aggregator = std::copy_constructible<A> && requires(A& a, const UpdateBatch<S>& batch, Vector<S>& out) {
  { a.aggregate(batch, out) } -> std::same_as<void>;
};

/// An Aggregator whose rule uses the round (randomised rules: Bucketing).
/**
 * Required: `a.aggregate(batch, out, ctx)` with `const AggregationContext& ctx`. The server's
 * round pipeline calls this form when it exists (see detail::aggregate_in_context), so the draws
 * depend on (seed, round) only, never on how many rounds the object has seen.
 */
template <typename A, typename S = float>
concept ContextAggregator =
    Aggregator<A, S> && requires(A& a, const UpdateBatch<S>& batch, Vector<S>& out, const AggregationContext& ctx) {
      { a.aggregate(batch, out, ctx) } -> std::same_as<void>;
    };

namespace detail {
/// Calls `a.aggregate(batch, out, ctx)` when A is a ContextAggregator, else `a.aggregate(batch, out)`.
template <typename A, typename S>
void aggregate_in_context(A& a, const UpdateBatch<S>& batch, Vector<S>& out, const AggregationContext& ctx) {
  if constexpr (ContextAggregator<A, S>)
    a.aggregate(batch, out, ctx);
  else
    a.aggregate(batch, out);
}
}  // namespace detail

/// An Aggregator with state kept across rounds that a checkpoint must carry (CenteredClipping's centre).
/**
 * Required: `a.state()` returning a reference to a copyable object with a cereal `serialize`
 * member (saved and restored by the server's checkpoint). Pre-aggregation compositions forward
 * their inner rule's state.
 */
template <typename A>
concept StatefulAggregator = requires(A& a, const A& ca) {
  a.state();
  ca.state();
  requires std::copy_constructible<std::remove_cvref_t<decltype(a.state())>>;
};

/// Rewrites a round's batch before aggregation (NNM, ARC, norm clipping, bucketing, DP noise).
/**
 * Required: `t.transform(batch, ctx)` with `const UpdateBatch<S>& batch` and
 * `const AggregationContext& ctx`, returning the new UpdateBatch<S> (same dimension; the number
 * of columns may change, as with bucketing). Compose transforms with an aggregator through
 * `PreAggregated` / `pre_aggregate(t..., agg)` (aggregators/pre_aggregated.hpp).
 */
template <typename T, typename S = float>
concept BatchTransform = std::copy_constructible<T> &&
    requires(const T& t, const UpdateBatch<S>& batch, const AggregationContext& ctx) {
      { t.transform(batch, ctx) } -> std::same_as<UpdateBatch<S>>;
    };

/// An Aggregator that can also consume updates one at a time with O(d) memory.
/**
 * Required: a nested `A::Accumulator<S>` constructible from `(const A&, Index dim)` with
 * `acc.add(update, weight)` and `acc.finish(out)`. Adding the columns of a batch in order and
 * finishing gives bit-for-bit the result of `aggregate` on that batch.
 */
template <typename A, typename S = float>
concept StreamingAggregator =
    Aggregator<A, S> && std::constructible_from<typename A::template Accumulator<S>, const A&, Index> &&
    requires(typename A::template Accumulator<S>& acc, std::span<const S> x, double w, Vector<S>& out) {
      { acc.add(x, w) } -> std::same_as<void>;
      { acc.finish(out) } -> std::same_as<void>;
    };

/// Per-client state type of compressor C for scalar S.
template <typename C, typename S>
using compressor_state_t = decltype(std::declval<const C&>().template make_state<S>(Index{}));

/// Encodes a client update into wire bytes and decodes it on the server.
/**
 * Required, for `const C c`: `c.make_state<S>(dim)` returns the per-client state (error
 * memory etc., an empty struct when none); `c.encode(x, state, rng)` returns a Payload for the
 * update `x` (span<const S>); `c.decode(payload, out)` writes the decoded update into `out`
 * (span<S> of the model dimension) and throws DecodeError on malformed input.
 *
 * Optional, detected by the runtime (see CompressorWithContext and StatefulDecoder below):
 * - `c.encode(x, state, rng, ctx)` with `const RoundContext& ctx`: the round-aware overload.
 *   Client calls it instead of the 3-argument form when it exists, with the RoundContext of the
 *   round (global round index, run seed, client id), e.g. for a warm-up schedule that follows
 *   the global round rather than the client's own participation count.
 * - `c.make_decoder_state<S>(dim)` and `c.decode(payload, out, decoder_state)`: a server-side
 *   decoder state (EF21's g_i). Server then keeps one decoder state per client id, created on
 *   that client's first accepted payload and kept across rounds; a rejected payload leaves it
 *   unchanged.
 * Serialisable state (checkpoints): per-client state structs provide
 * `template <class Archive> void serialize(Archive& ar)` listing their fields (no cereal include
 * needed); empty state structs may omit it.
 */
template <typename C, typename S = float>
concept Compressor = std::copy_constructible<C> &&
    requires(const C& c, Index d) { c.template make_state<S>(d); } &&
    requires(const C& c, compressor_state_t<C, S>& st, std::span<const S> x, Rng& rng, const Payload& p,
             std::span<S> out) {
      { c.encode(x, st, rng) } -> std::same_as<Payload>;
      { c.decode(p, out) } -> std::same_as<void>;
    };

/// A Compressor that also provides the round-aware `encode(x, state, rng, ctx)` overload.
/**
 * Client prefers this overload when it exists and passes the RoundContext of the round;
 * otherwise it calls `encode(x, state, rng)`. Both overloads must give the same payload format.
 */
template <typename C, typename S = float>
concept CompressorWithContext =
    Compressor<C, S> && requires(const C& c, compressor_state_t<C, S>& st, std::span<const S> x, Rng& rng,
                                 const RoundContext& ctx) {
      { c.encode(x, st, rng, ctx) } -> std::same_as<Payload>;
    };

/// Server-side decoder state type of compressor C for scalar S (see StatefulDecoder).
template <typename C, typename S>
using decoder_state_t = decltype(std::declval<const C&>().template make_decoder_state<S>(Index{}));

/// A Compressor whose decoding keeps per-client state on the server (e.g. EF21's g_i).
/**
 * Required in addition to Compressor: `c.make_decoder_state<S>(dim)` (copyable) and
 * `c.decode(payload, out, decoder_state)`, which writes the client's update into `out`, updates
 * `decoder_state` and throws DecodeError on malformed input. Server keeps one decoder state per
 * client id (O(d) memory per client seen), decodes into a scratch copy and commits it only when
 * the update is accepted.
 */
template <typename C, typename S = float>
concept StatefulDecoder =
    Compressor<C, S> && requires(const C& c, Index d) { c.template make_decoder_state<S>(d); } &&
    std::copyable<decoder_state_t<C, S>> &&
    requires(const C& c, const Payload& p, std::span<S> out, decoder_state_t<C, S>& dst) {
      { c.decode(p, out, dst) } -> std::same_as<void>;
    };

/// Per-client state type of local optimizer O for model M.
template <typename O, typename M>
using local_state_t = decltype(std::declval<const O&>().make_state(std::declval<const M&>()));

/// Trains a model locally on one client's data, starting from the global parameters.
/**
 * Required, for `const O o` and a Model `m`: `o.make_state(m)` returns the per-client state
 * (momentum buffers, control variates; an empty struct when none), created on the client's
 * first participation and kept across rounds; `o.train(m, params, data, state, ctx, rng)`
 * updates `params` (Vector<S>, the global model on entry) in place and returns a LocalResult.
 *
 * Optional, detected by the runtime:
 * - `o.train(m, params, data, state, ctx, rng, exchange)` with a `LocalExchange<S>&` (see
 *   ExchangingLocalOptimizer): Client calls it instead of the 6-argument form, handing over the
 *   server optimizer's broadcast and sending back `exchange.reply` (SCAFFOLD).
 * - `o.paired_server()`: the ServerOptimizer the algorithm needs on the server (SCAFFOLD's,
 *   FedDyn's); Simulation::run uses it when no server optimizer is given.
 */
template <typename O, typename M>
concept LocalOptimizer = Model<M> && std::copy_constructible<O> &&
    requires(const O& o, const M& m) { o.make_state(m); } &&
    requires(const O& o, const M& m, Vector<typename M::Scalar>& params,
             const DatasetView<typename M::Scalar>& data, local_state_t<O, M>& st, const RoundContext& ctx,
             Rng& rng) {
      { o.train(m, params, data, st, ctx, rng) } -> std::same_as<LocalResult>;
    };

/// A LocalOptimizer that also exchanges vectors with its server optimizer (SCAFFOLD's control variates).
/**
 * Required in addition: `o.train(m, params, data, state, ctx, rng, exchange)` with
 * `LocalExchange<S>& exchange`; `exchange.received` is RoundRequest::aux, and a non-empty
 * `exchange.reply` (of the model's dimension) goes back in Reply::aux, dense in S.
 */
template <typename O, typename M>
concept ExchangingLocalOptimizer =
    LocalOptimizer<O, M> &&
    requires(const O& o, const M& m, Vector<typename M::Scalar>& params, const DatasetView<typename M::Scalar>& data,
             local_state_t<O, M>& st, const RoundContext& ctx, Rng& rng, LocalExchange<typename M::Scalar>& ex) {
      { o.train(m, params, data, st, ctx, rng, ex) } -> std::same_as<LocalResult>;
    };

/// Server state type of server optimizer O for scalar S.
template <typename O, typename S>
using server_state_t = decltype(std::declval<const O&>().template make_state<S>(Index{}));

/// Applies the aggregated client update to the global model.
/**
 * Required, for `const O o`: `o.make_state<S>(dim)` returns the server-side state (moments;
 * empty when none), and one of
 * - `o.step(params, update, state, round)` with `std::uint64_t round`, or
 * - `o.step(params, update, state, ctx)` with `const ServerContext& ctx` (round, number of
 *   clients N, accepted updates; see ServerOptimizerWithContext), preferred when both exist,
 * which moves `params` given the aggregated update (local - global, averaged by the aggregator).
 *
 * Optional, detected by Server:
 * - `o.observe(state, u)` with `const ClientUpdateView<S>& u` (ObservingServerOptimizer): called
 *   once per accepted update of a round, in client-id order, before step() — also in a round whose
 *   quorum fails (step() is then skipped), since the clients' own state has moved on.
 * - `o.needs_aux()` returning true: each reply must carry a Reply::aux of the model's dimension
 *   with finite values, else the update is rejected; observe() then sees it in `u.aux`.
 * - `o.broadcast(state)` returning something convertible to `std::span<const S>`
 *   (BroadcastingServerOptimizer): sent to every participant with the model (RoundRequest::aux).
 */
template <typename O, typename S = float>
concept ServerOptimizer = std::copy_constructible<O> &&
    requires(const O& o, Index d) { o.template make_state<S>(d); } &&
    (requires(const O& o, Vector<S>& params, const Vector<S>& update, server_state_t<O, S>& st, std::uint64_t round) {
      { o.step(params, update, st, round) } -> std::same_as<void>;
    } || requires(const O& o, Vector<S>& params, const Vector<S>& update, server_state_t<O, S>& st,
                  const ServerContext& ctx) {
      { o.step(params, update, st, ctx) } -> std::same_as<void>;
    });

/// A ServerOptimizer whose step takes the round's ServerContext (it needs N or the accepted count).
template <typename O, typename S = float>
concept ServerOptimizerWithContext =
    ServerOptimizer<O, S> && requires(const O& o, Vector<S>& params, const Vector<S>& update,
                                      server_state_t<O, S>& st, const ServerContext& ctx) {
      { o.step(params, update, st, ctx) } -> std::same_as<void>;
    };

/// A ServerOptimizer that sees every accepted client update (FedDyn's dual sum, SCAFFOLD's c).
template <typename O, typename S = float>
concept ObservingServerOptimizer =
    ServerOptimizer<O, S> && requires(const O& o, server_state_t<O, S>& st, const ClientUpdateView<S>& u) {
      { o.observe(st, u) } -> std::same_as<void>;
    };

/// A ServerOptimizer that sends a vector to the participants with the model (SCAFFOLD's c).
template <typename O, typename S = float>
concept BroadcastingServerOptimizer =
    ServerOptimizer<O, S> && requires(const O& o, const server_state_t<O, S>& st) {
      { o.broadcast(st) } -> std::convertible_to<std::span<const S>>;
    };

namespace detail {

/// Whether server optimizer O requires each reply's Reply::aux (its `needs_aux()` returns true).
template <typename O>
constexpr bool server_needs_aux(const O& o) {
  if constexpr (requires { { o.needs_aux() } -> std::convertible_to<bool>; })
    return o.needs_aux();
  else
    return false;
}

/// Calls the ServerContext form of `o.step` when it exists, else the round form.
template <typename O, typename S>
void server_step(const O& o, Vector<S>& params, const Vector<S>& update, server_state_t<O, S>& st,
                 const ServerContext& ctx) {
  if constexpr (ServerOptimizerWithContext<O, S>)
    o.step(params, update, st, ctx);
  else
    o.step(params, update, st, ctx.round);
}

}  // namespace detail

/// Byzantine behaviour in simulation: rewrites the updates of the Byzantine participants.
/**
 * Required: `a.corrupt(byz, honest, ctx, rng)` replaces the columns of `byz` (the Byzantine
 * clients' own honest-looking updates on entry) given the honest updates of the round.
 * A data-level attack may also provide `a.label_map(num_classes)` (see DataAttack).
 */
template <typename A, typename S = float>
concept Attack = std::copy_constructible<A> &&
    requires(A& a, UpdateBatch<S>& byz, const UpdateBatch<S>& honest, const AttackContext& ctx, Rng& rng) {
      { a.corrupt(byz, honest, ctx, rng) } -> std::same_as<void>;
    };

/// An attack that poisons a Byzantine client's labels: `a.label_map(num_classes)` gives y -> y'.
template <typename A>
concept DataAttack = requires(const A& a, int num_classes) {
  { a.label_map(num_classes) } -> std::convertible_to<std::vector<Label>>;
};

/// Callback through which a transport delivers replies to the server (see runtime/transport.hpp).
using ReplySink = std::function<void(Reply&&)>;

// The Transport concepts live in fedpp/runtime/transport.hpp (with the clock and adapters they need).

}  // namespace fedpp
