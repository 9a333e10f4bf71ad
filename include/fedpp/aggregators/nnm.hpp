#pragma once
/// @file nnm.hpp
/// Nearest-neighbour mixing (NNM): the batch transform NnmMixing replaces each update by the mean
/// of its n - f nearest neighbours; Nnm<A> hands the mixed batch to any aggregator.

#include <algorithm>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "fedpp/aggregators/detail/dist_mix.hpp"
#include "fedpp/aggregators/detail/pairwise.hpp"
#include "fedpp/aggregators/pre_aggregated.hpp"
#include "fedpp/aggregators/weighted_mean.hpp"
#include "fedpp/core/concepts.hpp"
#include "fedpp/core/error.hpp"
#include "fedpp/core/messages.hpp"
#include "fedpp/core/types.hpp"
#include "fedpp/core/update_batch.hpp"

namespace fedpp {

/// Nearest-neighbour mixing as a batch transform: x_i -> mean of its n - f nearest neighbours.
/**
 * Allouah, Farhadkhani, Guerraoui, Gupta, Pinot, Stephan, 2023, "Fixing by Mixing: A Recipe
 * for Optimal Byzantine ML under Heterogeneity", AISTATS (arXiv:2302.01772).
 * The neighbours of x_i are itself first, then the others by (squared distance, column index):
 * the first n - f of them. Each mixed update is their mean, summed in ascending column order in
 * double (the bits of WeightedMean(Weighting::uniform) on those columns). The mixed batch keeps
 * the ids and weights of the input. Requires n > f. ByzFL's NNM(f) gives the same mixed batch
 * (up to its unspecified tie order). Deterministic: the AggregationContext is not used.
 * Inputs must be finite. Speed: squared distances from the Gram matrix (detail/pairwise.hpp),
 * then n means of n - f columns each (O(n (n - f) d) additions, vectorised, in cache-sized
 * coordinate blocks, parallel over coordinates); bit-identical on any thread count.
 * Memory: a mixed copy of the batch (n * d values) plus the n x n distance matrices.
 * Nnm<A> is this transform in front of A; compose it with others through PreAggregated.
 */
class NnmMixing {
 public:
  /// NNM for f declared Byzantine updates (f >= 0).
  /// @throws InvalidArgument if f < 0.
  explicit NnmMixing(Index f = 0) : NnmMixing(f, {"fedpp::NnmMixing", "fedpp::NnmMixing::transform"}) {}
  /// As NnmMixing(f), reporting errors under `names` (used by Nnm<A>).
  NnmMixing(Index f, detail::ErrorNames names) : names_(names), f_(require(f >= 0, names.cls, "f must be >= 0", f)) {}

  /// Declared number of Byzantine updates.
  [[nodiscard]] Index f() const noexcept { return f_; }

  /// For each column i, the n - f columns averaged into its mixed update (ascending).
  /// @throws InvalidArgument on an empty batch or when n <= f.
  template <typename S>
  [[nodiscard]] std::vector<std::vector<Index>> neighborhoods(const UpdateBatch<S>& batch) const {
    batch.check_nonempty(names_.transform);
    const Index n = batch.size();
    if (n <= f_)
      fail(names_.transform, "requires n > f (n = " + std::to_string(n) + ", f = " + std::to_string(f_) + ")",
           "n = " + std::to_string(n));
    Matrix<double> D;
    detail::pairwise_sq_distances(batch.data(), batch.dim(), n, D);
    const auto k = static_cast<std::size_t>(n - f_);
    std::vector<std::vector<Index>> lists(static_cast<std::size_t>(n));
    std::vector<Index> order(static_cast<std::size_t>(n));
    for (Index i = 0; i < n; ++i) {
      std::iota(order.begin(), order.end(), Index{0});
      std::swap(order[0], order[static_cast<std::size_t>(i)]);  // itself first
      std::sort(order.begin() + 1, order.end(), [&](Index a, Index b) {
        return D(i, a) < D(i, b) || (D(i, a) == D(i, b) && a < b);
      });
      std::vector<Index>& l = lists[static_cast<std::size_t>(i)];
      l.assign(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k));
      std::sort(l.begin(), l.end());
    }
    return lists;
  }

  /// The mixed batch (same ids and weights, column i = mean of neighborhoods()[i]); ctx is not used.
  /// @throws InvalidArgument on an empty batch or when n <= f.
  template <typename S>
  [[nodiscard]] UpdateBatch<S> transform(const UpdateBatch<S>& batch, const AggregationContext& /*ctx*/ = {}) const {
    const auto lists = neighborhoods(batch);
    UpdateBatch<S> out = batch;
    detail::mix_columns(batch.data(), batch.dim(), batch.size(), lists, out.matrix().data());
    return out;
  }

 private:
  detail::ErrorNames names_;
  Index f_;
};

static_assert(BatchTransform<NnmMixing, float> && BatchTransform<NnmMixing, double>);

/// Nearest-neighbour mixing before an inner rule: PreAggregated<A, NnmMixing>.
/**
 * See NnmMixing for the rule. The mixed batch goes to the inner rule: `Nnm<TrimmedMean>`,
 * `Nnm<Krum>`, ... (default: WeightedMean). Requires n > f; the inner rule adds its own
 * requirements. Errors name fedpp::Nnm. Forwards the inner rule's state() when it has one.
 * @tparam A inner aggregator (any Aggregator).
 */
template <typename A = WeightedMean>
class Nnm : public PreAggregated<A, NnmMixing> {
  using Base = PreAggregated<A, NnmMixing>;

 public:
  /// NNM for f declared Byzantine updates (f >= 0) in front of `inner`.
  /// @throws InvalidArgument if f < 0.
  explicit Nnm(Index f = 0, A inner = A())
      : Base(std::move(inner), NnmMixing(f, {"fedpp::Nnm", "fedpp::Nnm::transform"})) {}

  /// Declared number of Byzantine updates.
  [[nodiscard]] Index f() const noexcept { return this->template transform_at<0>().f(); }

  /// For each column i, the n - f columns averaged into its mixed update (ascending).
  /// @throws InvalidArgument on an empty batch or when n <= f.
  template <typename S>
  [[nodiscard]] std::vector<std::vector<Index>> neighborhoods(const UpdateBatch<S>& batch) const {
    return this->template transform_at<0>().neighborhoods(batch);
  }

  using Base::transform;
  /// The mixed batch (same ids and weights, column i = mean of neighborhoods()[i]).
  template <typename S>
  [[nodiscard]] UpdateBatch<S> transform(const UpdateBatch<S>& batch) const {
    return Base::transform(batch, AggregationContext{});
  }
};

static_assert(Aggregator<Nnm<>, float> && Aggregator<Nnm<>, double> && ContextAggregator<Nnm<>, float>);

}  // namespace fedpp
