#pragma once
/// @file bucketing.hpp
/// Bucketing: a pre-aggregator that averages the updates in random buckets of size s, then
/// hands the bucket means to any aggregator.

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <utility>
#include <vector>

#include "fedpp/aggregators/detail/dist_mix.hpp"
#include "fedpp/aggregators/weighted_mean.hpp"
#include "fedpp/core/concepts.hpp"
#include "fedpp/core/error.hpp"
#include "fedpp/core/rng.hpp"
#include "fedpp/core/types.hpp"
#include "fedpp/core/update_batch.hpp"

namespace fedpp {

/// Bucketing before an inner rule: random buckets of s updates are replaced by their means.
/**
 * Karimireddy, He, Jaggi, 2022, "Byzantine-Robust Learning on Heterogeneous Datasets via
 * Bucketing", ICLR (arXiv:2006.09365). Each call draws a uniform random permutation of the n
 * columns (Fisher-Yates on an Rng), cuts it into ceil(n / s) buckets of s consecutive entries
 * (the last one holds the n mod s left over, as ByzFL), and replaces each bucket by the mean of
 * its members, summed in ascending column order in double (WeightedMean(Weighting::uniform)'s
 * bits on those columns). The bucket means form a new batch (ids 0..m-1, weight = member count,
 * so WeightedMean(by_weight) after bucketing is the plain mean) for the inner rule
 * (default: WeightedMean). The random state lives in the object: seeded in the constructor from
 * make_rng(seed, 0, server_stream, Purpose::aggregation) and advanced by every call, so a run is
 * reproducible; a copy continues the same sequence. Inputs must be finite.
 * Memory: the bucket means (ceil(n / s) * d values).
 * @tparam A inner aggregator (any Aggregator).
 */
template <typename A = WeightedMean>
class Bucketing {
 public:
  /// Buckets of s (>= 1) updates, random stream seeded by `seed`, in front of `inner`.
  /// @throws InvalidArgument if s < 1.
  explicit Bucketing(Index s = 2, std::uint64_t seed = 0, A inner = A())
      : s_(require(s >= 1, name, "s must be >= 1", s)),
        rng_(make_rng(seed, 0, server_stream, Purpose::aggregation)),
        inner_(std::move(inner)) {}

  /// Bucket size.
  [[nodiscard]] Index s() const noexcept { return s_; }
  /// The inner rule.
  [[nodiscard]] const A& inner() const noexcept { return inner_; }
  /// The inner rule (mutable).
  [[nodiscard]] A& inner() noexcept { return inner_; }
  /// The random stream the next call draws from.
  [[nodiscard]] const Rng& rng() const noexcept { return rng_; }

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

  /// The bucket means, drawing the permutation from `rng` (the object's stream is untouched).
  /// @throws InvalidArgument on an empty batch.
  template <typename S>
  [[nodiscard]] UpdateBatch<S> transform(const UpdateBatch<S>& batch, Rng& rng) const {
    batch.check_nonempty("fedpp::Bucketing::transform");
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

  /// The bucket means, drawing the permutation from the object's stream (advancing it).
  template <typename S>
  [[nodiscard]] UpdateBatch<S> transform(const UpdateBatch<S>& batch) {
    return transform(batch, rng_);
  }

  /// Buckets the batch, then aggregates the bucket means with the inner rule.
  template <typename S>
  void aggregate(const UpdateBatch<S>& batch, Vector<S>& out) {
    inner_.aggregate(transform(batch), out);
  }

 private:
  static constexpr const char* name = "fedpp::Bucketing";
  Index s_;
  Rng rng_;
  A inner_;
};

static_assert(Aggregator<Bucketing<>, float> && Aggregator<Bucketing<>, double>);

}  // namespace fedpp
