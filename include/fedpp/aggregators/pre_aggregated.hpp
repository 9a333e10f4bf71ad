#pragma once
/// @file pre_aggregated.hpp
/// PreAggregated: batch transforms (BatchTransform) applied in order, then an aggregation rule;
/// pre_aggregate(t..., agg) builds one. Nnm<A>, Arc<A>, NormClipping<A> and Bucketing<A> are
/// PreAggregated with one transform each.

#include <concepts>
#include <cstddef>
#include <tuple>
#include <type_traits>
#include <utility>

#include "fedpp/core/concepts.hpp"
#include "fedpp/core/messages.hpp"
#include "fedpp/core/types.hpp"
#include "fedpp/core/update_batch.hpp"

namespace fedpp {

namespace detail {

/// Empty base of every PreAggregated specialisation, hence of the wrappers built on it.
struct PreAggregatedTag {};

/// True for a PreAggregated specialisation or a class derived from one (Nnm<A>, Bucketing<A>, ...).
template <typename T>
concept PreAggregatedType = std::derived_from<T, PreAggregatedTag>;

/// The names a built-in transform reports in its errors; a wrapper (Nnm<A>, ...) passes its own.
struct ErrorNames {
  const char* cls;        ///< for constructor checks, e.g. "fedpp::Nnm"
  const char* transform;  ///< for call-time checks, e.g. "fedpp::Nnm::transform"
};

}  // namespace detail

/// Batch transforms Ts... applied in order, then the aggregation rule A.
/**
 * `aggregate(batch, out, ctx)` computes `b_1 = t_1.transform(batch, ctx)`, ...,
 * `b_k = t_k.transform(b_{k-1}, ctx)` and aggregates `b_k` with the inner rule through
 * detail::aggregate_in_context (so a ContextAggregator inner rule, e.g. another composition
 * holding a BucketMeans, gets the same ctx). With no transform the batch goes to the inner rule
 * uncopied.
 *
 * `aggregate(batch, out)` (standalone use, no round): the transforms get `AggregationContext{}`
 * (round 0, seed 0) and the inner rule is called through its own context-free
 * `aggregate(batch, out)`. A randomised transform therefore draws the same numbers at every
 * context-free call; pass a context to vary them by round.
 *
 * `transform(batch, ctx)` is the batch the inner rule would see, so a PreAggregated is itself a
 * BatchTransform. It is nevertheless not accepted in the transform list of another
 * PreAggregated, where its inner rule would be silently dropped: list its transforms instead
 * (`PreAggregated<Krum, NnmMixing, NormClip>`, not `PreAggregated<Krum, Nnm<>, NormClip>`).
 * A composition in the aggregator position is fine (`PreAggregated<Nnm<Krum>, BucketMeans>`).
 *
 * When A is a StatefulAggregator, `state()` forwards to the inner rule's state (a checkpoint
 * saves and restores it through the composition); otherwise the composition has no `state()`
 * and is not a StatefulAggregator. The transforms are const and keep no state.
 *
 * Requirements, checked where the class is named: A is an Aggregator for float or double, each T
 * a BatchTransform for float or double; the members used with scalar S further require
 * Aggregator<A, S> and BatchTransform<T, S> for each T.
 * @tparam A inner aggregator; @tparam Ts batch transforms, in the order they are applied.
 */
template <typename A, typename... Ts>
  requires(Aggregator<A, float> || Aggregator<A, double>) &&
          ((BatchTransform<Ts, float> || BatchTransform<Ts, double>) && ...) &&
          (!detail::PreAggregatedType<Ts> && ...)
class PreAggregated : public detail::PreAggregatedTag {
 public:
  /// Number of transforms.
  static constexpr std::size_t num_transforms = sizeof...(Ts);

  /// Default-constructed inner rule and transforms.
  PreAggregated()
    requires(std::default_initializable<A> && (std::default_initializable<Ts> && ...))
  = default;

  /// `transforms...` (applied in this order) in front of `inner`.
  explicit PreAggregated(A inner, Ts... transforms)
      : inner_(std::move(inner)), transforms_(std::move(transforms)...) {}

  /// The inner rule.
  [[nodiscard]] const A& inner() const noexcept { return inner_; }
  /// The inner rule (mutable, e.g. to reset its state).
  [[nodiscard]] A& inner() noexcept { return inner_; }
  /// The transforms, in the order they are applied.
  [[nodiscard]] const std::tuple<Ts...>& transforms() const noexcept { return transforms_; }
  /// The transforms (mutable, e.g. to replace one).
  [[nodiscard]] std::tuple<Ts...>& transforms() noexcept { return transforms_; }
  /// The I-th transform (from 0, in application order).
  template <std::size_t I>
  [[nodiscard]] const auto& transform_at() const noexcept {
    return std::get<I>(transforms_);
  }
  /// The I-th transform (mutable).
  template <std::size_t I>
  [[nodiscard]] auto& transform_at() noexcept {
    return std::get<I>(transforms_);
  }

  /// The inner rule's checkpointable state (only when A is a StatefulAggregator).
  decltype(auto) state()
    requires StatefulAggregator<A>
  {
    return inner_.state();
  }
  /// The inner rule's checkpointable state, read-only (only when A is a StatefulAggregator).
  decltype(auto) state() const
    requires StatefulAggregator<A>
  {
    return inner_.state();
  }

  /// The batch after every transform, applied in order, each given `ctx`.
  template <typename S>
    requires(BatchTransform<Ts, S> && ...)
  [[nodiscard]] UpdateBatch<S> transform(const UpdateBatch<S>& batch, const AggregationContext& ctx) const {
    if constexpr (sizeof...(Ts) == 0) {
      (void)ctx;
      return batch;
    } else {
      return apply_from<0>(batch, ctx);
    }
  }

  /// Transforms the batch (each transform given `ctx`), then aggregates it with the inner rule in `ctx`.
  template <typename S>
    requires Aggregator<A, S> && (BatchTransform<Ts, S> && ...)
  void aggregate(const UpdateBatch<S>& batch, Vector<S>& out, const AggregationContext& ctx) {
    if constexpr (sizeof...(Ts) == 0)
      detail::aggregate_in_context(inner_, batch, out, ctx);
    else
      detail::aggregate_in_context(inner_, apply_from<0>(batch, ctx), out, ctx);
  }

  /// Standalone form: transforms in AggregationContext{}, then the inner rule's context-free aggregate.
  template <typename S>
    requires Aggregator<A, S> && (BatchTransform<Ts, S> && ...)
  void aggregate(const UpdateBatch<S>& batch, Vector<S>& out) {
    if constexpr (sizeof...(Ts) == 0)
      inner_.aggregate(batch, out);
    else
      inner_.aggregate(apply_from<0>(batch, AggregationContext{}), out);
  }

 private:
  // Transforms I, I + 1, ..., k - 1 applied to `batch`.
  template <std::size_t I, typename S>
  UpdateBatch<S> apply_from(const UpdateBatch<S>& batch, const AggregationContext& ctx) const {
    UpdateBatch<S> next = std::get<I>(transforms_).transform(batch, ctx);
    if constexpr (I + 1 < sizeof...(Ts))
      return apply_from<I + 1>(next, ctx);
    else
      return next;
  }

  A inner_;
  std::tuple<Ts...> transforms_;
};

/// `PreAggregated<Agg, T1, ..., Tk>`: transforms `t1, ..., tk` (applied in this order), then the last argument.
/**
 * `pre_aggregate(NnmMixing(f), NormClip(2.0), Krum(f))` mixes, then clips, then runs Krum. The
 * arguments are copied (or moved); `pre_aggregate(agg)` alone wraps the rule with no transform.
 */
template <typename... Args>
  requires(sizeof...(Args) >= 1)
[[nodiscard]] auto pre_aggregate(Args... args) {
  constexpr std::size_t k = sizeof...(Args) - 1;
  using All = std::tuple<Args...>;
  All all(std::move(args)...);
  return [&all]<std::size_t... I>(std::index_sequence<I...>) {
    return PreAggregated<std::tuple_element_t<k, All>, std::tuple_element_t<I, All>...>(
        std::move(std::get<k>(all)), std::move(std::get<I>(all))...);
  }(std::make_index_sequence<k>{});
}

}  // namespace fedpp
