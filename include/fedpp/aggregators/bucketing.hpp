#pragma once
/// @file bucketing.hpp
/// Bucketing: the batch transform BucketMeans averages the updates in random buckets of size s;
/// Bucketing<A> hands the bucket means to any aggregator.

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <utility>
#include <vector>

#include "fedpp/aggregators/detail/dist_mix.hpp"
#include "fedpp/aggregators/pre_aggregated.hpp"
#include "fedpp/aggregators/weighted_mean.hpp"
#include "fedpp/core/concepts.hpp"
#include "fedpp/core/error.hpp"
#include "fedpp/core/messages.hpp"
#include "fedpp/core/rng.hpp"
#include "fedpp/core/types.hpp"
#include "fedpp/core/update_batch.hpp"

namespace fedpp {

/// Bucketing as a batch transform: random buckets of s updates are replaced by their means.
/**
 * Karimireddy, He, Jaggi, 2022, "Byzantine-Robust Learning on Heterogeneous Datasets via
 * Bucketing", ICLR (arXiv:2006.09365). Each call draws a uniform random permutation of the n
 * columns (Fisher-Yates on an Rng), cuts it into ceil(n / s) buckets of s consecutive entries
 * (the last one holds the n mod s left over, as ByzFL), and replaces each bucket by the mean of
 * its members, summed in ascending column order in double (WeightedMean(Weighting::uniform)'s
 * bits on those columns). The bucket means form a new batch (ids 0..m-1, weight = member count,
 * so WeightedMean(by_weight) after bucketing is the plain mean).
 *
 * Randomness: `transform(batch, ctx)` draws the permutation from rng_for(ctx) =
 * `make_rng(ctx.seed ^ mix64(seed) ^ mix64(0), ctx.round, server_stream, Purpose::aggregation)`
 * (mix64: detail::mix64, the SplitMix64 finaliser; seed: the constructor's). The key is ctx.seed
 * itself for seed 0 (the stream AggregationContext documents), and it is a bijection of the run
 * seed for a fixed constructor seed and of the constructor seed for a fixed run seed, so both
 * matter. The draws depend on (run seed, round, constructor seed) only: the same context gives
 * the same buckets at every call, and a resumed run draws what the uninterrupted one drew.
 * `transform(batch, rng)` draws from a stream you pass instead. The object keeps no state.
 * Inputs must be finite. Memory: the bucket means (ceil(n / s) * d values).
 * Bucketing<A> is this transform in front of A; compose it with others through PreAggregated.
 */
class BucketMeans {
 public:
  /// Buckets of s (>= 1) updates; `seed` enters the key of every context's stream.
  /// @throws InvalidArgument if s < 1.
  explicit BucketMeans(Index s = 2, std::uint64_t seed = 0)
      : BucketMeans(s, seed, {"fedpp::BucketMeans", "fedpp::BucketMeans::transform"}) {}
  /// As BucketMeans(s, seed), reporting errors under `names` (used by Bucketing<A>).
  BucketMeans(Index s, std::uint64_t seed, detail::ErrorNames names)
      : names_(names), s_(require(s >= 1, names.cls, "s must be >= 1", s)), seed_(seed) {}

  /// Bucket size.
  [[nodiscard]] Index s() const noexcept { return s_; }
  /// The constructor seed.
  [[nodiscard]] std::uint64_t seed() const noexcept { return seed_; }

  /// The stream a call in `ctx` draws its permutation from (see the class comment for the key).
  [[nodiscard]] Rng rng_for(const AggregationContext& ctx) const noexcept {
    const std::uint64_t key = ctx.seed ^ detail::mix64(seed_) ^ detail::mix64(0);
    return make_rng(key, ctx.round, server_stream, Purpose::aggregation);
  }

  /// The buckets (ascending column indices each) for n updates, drawn from `rng`.
  [[nodiscard]] std::vector<std::vector<Index>> buckets(Index n, Rng& rng) const {
    std::vector<Index> perm(static_cast<std::size_t>(n));
    std::iota(perm.begin(), perm.end(), Index{0});
    for (std::size_t k = perm.size(); k > 1; --k) std::swap(perm[k - 1], perm[rng.uniform_index(k)]);
    std::vector<std::vector<Index>> out;
    for (Index b = 0; b < n; b += s_) {
      std::vector<Index> l(perm.begin() + b, perm.begin() + std::min(b + s_, n));
      std::sort(l.begin(), l.end());
      out.push_back(std::move(l));
    }
    return out;
  }

  /// The bucket means, drawing the permutation from `rng`.
  /// @throws InvalidArgument on an empty batch.
  template <typename S>
  [[nodiscard]] UpdateBatch<S> transform(const UpdateBatch<S>& batch, Rng& rng) const {
    batch.check_nonempty(names_.transform);
    const auto lists = buckets(batch.size(), rng);
    const auto m = static_cast<Index>(lists.size());
    Matrix<S> means(batch.dim(), m);
    detail::mix_columns(batch.data(), batch.dim(), batch.size(), lists, means.data());
    std::vector<double> w(lists.size());
    std::vector<ClientId> ids(lists.size());
    for (std::size_t b = 0; b < lists.size(); ++b) {
      w[b] = static_cast<double>(lists[b].size());
      ids[b] = static_cast<ClientId>(b);
    }
    return UpdateBatch<S>(means, std::move(w), std::move(ids));
  }

  /// The bucket means, drawing the permutation from rng_for(ctx).
  /// @throws InvalidArgument on an empty batch.
  template <typename S>
  [[nodiscard]] UpdateBatch<S> transform(const UpdateBatch<S>& batch, const AggregationContext& ctx) const {
    Rng rng = rng_for(ctx);
    return transform(batch, rng);
  }

 private:
  detail::ErrorNames names_;
  Index s_;
  std::uint64_t seed_;
};

static_assert(BatchTransform<BucketMeans, float> && BatchTransform<BucketMeans, double>);

/// Bucketing before an inner rule: PreAggregated<A, BucketMeans> plus a stream for standalone calls.
/**
 * See BucketMeans for the rule. The bucket means go to the inner rule (default: WeightedMean).
 * Errors name fedpp::Bucketing.
 * - `aggregate(batch, out, ctx)` (what the server calls) and `transform(batch, ctx)` draw from
 *   BucketMeans::rng_for(ctx): the same buckets for the same (run seed, round, seed), however
 *   many calls came before.
 * - `aggregate(batch, out)` and `transform(batch)` (standalone use, no round) draw from a
 *   stream kept in the object: seeded in the constructor from
 *   make_rng(seed, 0, server_stream, Purpose::aggregation) and advanced by every such call, so a
 *   sequence of calls is reproducible and a copy continues the same sequence. The context-free
 *   aggregate calls the inner rule's context-free aggregate.
 * Forwards the inner rule's state() when it has one.
 * @tparam A inner aggregator (any Aggregator).
 */
template <typename A = WeightedMean>
class Bucketing : public PreAggregated<A, BucketMeans> {
  using Base = PreAggregated<A, BucketMeans>;

 public:
  /// Buckets of s (>= 1) updates, random streams seeded by `seed`, in front of `inner`.
  /// @throws InvalidArgument if s < 1.
  explicit Bucketing(Index s = 2, std::uint64_t seed = 0, A inner = A())
      : Base(std::move(inner), BucketMeans(s, seed, {"fedpp::Bucketing", "fedpp::Bucketing::transform"})),
        rng_(make_rng(seed, 0, server_stream, Purpose::aggregation)) {}

  /// Bucket size.
  [[nodiscard]] Index s() const noexcept { return means().s(); }
  /// The constructor seed.
  [[nodiscard]] std::uint64_t seed() const noexcept { return means().seed(); }
  /// The random stream the next context-free call draws from.
  [[nodiscard]] const Rng& rng() const noexcept { return rng_; }

  /// The buckets (ascending column indices each) for n updates, drawn from `rng`.
  [[nodiscard]] std::vector<std::vector<Index>> buckets(Index n, Rng& rng) const { return means().buckets(n, rng); }

  using Base::transform;
  /// The bucket means, drawing the permutation from `rng` (the object's stream is untouched).
  /// @throws InvalidArgument on an empty batch.
  template <typename S>
  [[nodiscard]] UpdateBatch<S> transform(const UpdateBatch<S>& batch, Rng& rng) const {
    return means().transform(batch, rng);
  }
  /// The bucket means, drawing the permutation from the object's stream (advancing it).
  /// @throws InvalidArgument on an empty batch.
  template <typename S>
  [[nodiscard]] UpdateBatch<S> transform(const UpdateBatch<S>& batch) {
    return means().transform(batch, rng_);
  }

  /// Buckets the batch with the keyed stream of `ctx`, then aggregates the means with the inner rule in `ctx`.
  template <typename S>
    requires Aggregator<A, S>
  void aggregate(const UpdateBatch<S>& batch, Vector<S>& out, const AggregationContext& ctx) {
    Base::aggregate(batch, out, ctx);
  }
  /// Buckets the batch with the object's stream (advancing it), then aggregates the means with the inner rule.
  template <typename S>
    requires Aggregator<A, S>
  void aggregate(const UpdateBatch<S>& batch, Vector<S>& out) {
    this->inner().aggregate(transform(batch), out);
  }

 private:
  // The transform (s, seed, the keyed stream).
  const BucketMeans& means() const noexcept { return this->template transform_at<0>(); }

  Rng rng_;
};

static_assert(Aggregator<Bucketing<>, float> && Aggregator<Bucketing<>, double> &&
              ContextAggregator<Bucketing<>, float>);

}  // namespace fedpp
