#pragma once
/// @file update_batch.hpp
/// A batch of client updates: a d x n matrix with one column per client, plus per-client
/// weights and ids. The input of every aggregator.

#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "fedpp/core/error.hpp"
#include "fedpp/core/types.hpp"

namespace fedpp {

/// d x n client updates (column i belongs to client `ids()[i]`, weighted by `weights()[i]`).
/**
 * Columns are stored contiguously (column-major), so one client's update is one contiguous
 * span and a coordinate block of all clients is a strided set of short contiguous runs.
 * Weights are FedAvg weights (usually local sample counts); they need not sum to one.
 * @tparam S scalar type of the updates (float or double).
 */
template <typename S>
class UpdateBatch {
 public:
  /// Scalar type of the updates.
  using Scalar = S;

  /// An empty batch of dimension 0.
  UpdateBatch() = default;

  /// An empty batch for updates of dimension `dim`, with room for `capacity` columns.
  explicit UpdateBatch(Index dim, Index capacity = 0) : dim_(dim) {
    require(dim >= 0, "fedpp::UpdateBatch", "dim must be >= 0", dim);
    data_.reserve(static_cast<std::size_t>(dim * std::max<Index>(capacity, 0)));
  }

  /// A batch holding the columns of `updates`; weights default to 1, ids to 0..n-1.
  explicit UpdateBatch(const Matrix<S>& updates, std::vector<double> weights = {}, std::vector<ClientId> ids = {})
      : dim_(updates.rows()), data_(updates.data(), updates.data() + updates.size()) {
    const auto n = static_cast<std::size_t>(updates.cols());
    if (weights.empty()) weights.assign(n, 1.0);
    if (ids.empty()) {
      ids.resize(n);
      std::iota(ids.begin(), ids.end(), ClientId{0});
    }
    if (weights.size() != n)
      fail<DimensionError>("fedpp::UpdateBatch", "weights must have one entry per column (" + std::to_string(n) + ")",
                           weights.size());
    if (ids.size() != n)
      fail<DimensionError>("fedpp::UpdateBatch", "ids must have one entry per column (" + std::to_string(n) + ")",
                           ids.size());
    for (double w : weights) check_weight(w);
    weights_ = std::move(weights);
    ids_ = std::move(ids);
  }

  /// Appends one client's update; throws DimensionError on a wrong size, InvalidArgument on a bad weight.
  void push_back(ClientId id, double weight, std::span<const S> update) {
    if (static_cast<Index>(update.size()) != dim_)
      fail<DimensionError>("fedpp::UpdateBatch::push_back", "update size must equal dim " + std::to_string(dim_),
                           update.size());
    check_weight(weight);
    data_.insert(data_.end(), update.begin(), update.end());
    weights_.push_back(weight);
    ids_.push_back(id);
  }

  /// Appends an uninitialised column for client `id` with `weight` and returns it to be filled in place
  /// (saves a copy when decoding straight into the batch); throws InvalidArgument on a bad weight.
  std::span<S> append_column(ClientId id, double weight) {
    check_weight(weight);
    data_.resize(data_.size() + static_cast<std::size_t>(dim_));
    weights_.push_back(weight);
    ids_.push_back(id);
    return column(size() - 1);
  }

  /// Removes the last column (no-op on an empty batch).
  void pop_back() noexcept {
    if (ids_.empty()) return;
    data_.resize(data_.size() - static_cast<std::size_t>(dim_));
    weights_.pop_back();
    ids_.pop_back();
  }

  /// Removes all columns, keeping the dimension and the allocation.
  void clear() noexcept {
    data_.clear();
    weights_.clear();
    ids_.clear();
  }

  /// Dimension of each update (rows).
  [[nodiscard]] Index dim() const noexcept { return dim_; }
  /// Number of client updates (columns).
  [[nodiscard]] Index size() const noexcept { return static_cast<Index>(ids_.size()); }
  /// True when the batch has no columns.
  [[nodiscard]] bool empty() const noexcept { return ids_.empty(); }

  /// The updates as a read-only d x n Eigen matrix view.
  [[nodiscard]] Eigen::Map<const Matrix<S>> matrix() const noexcept { return {data_.data(), dim_, size()}; }
  /// The updates as a mutable d x n Eigen matrix view.
  [[nodiscard]] Eigen::Map<Matrix<S>> matrix() noexcept { return {data_.data(), dim_, size()}; }
  /// Column i (client `ids()[i]`) as a read-only span.
  [[nodiscard]] std::span<const S> column(Index i) const noexcept {
    return {data_.data() + i * dim_, static_cast<std::size_t>(dim_)};
  }
  /// Column i as a mutable span.
  [[nodiscard]] std::span<S> column(Index i) noexcept { return {data_.data() + i * dim_, static_cast<std::size_t>(dim_)}; }
  /// Pointer to the contiguous column-major storage.
  [[nodiscard]] const S* data() const noexcept { return data_.data(); }
  /// Per-client weights.
  [[nodiscard]] std::span<const double> weights() const noexcept { return weights_; }
  /// Per-client ids.
  [[nodiscard]] std::span<const ClientId> ids() const noexcept { return ids_; }

  /// Removes the columns i for which `pred(i)` is true, keeping the order of the others.
  template <typename Pred>
  void remove_columns_if(Pred pred) {
    const auto d = static_cast<std::size_t>(dim_);
    std::size_t kept = 0;
    const std::size_t n = ids_.size();
    for (std::size_t i = 0; i < n; ++i) {
      if (pred(static_cast<Index>(i))) continue;
      if (kept != i) {
        std::copy_n(data_.begin() + static_cast<std::ptrdiff_t>(i * d), d, data_.begin() + static_cast<std::ptrdiff_t>(kept * d));
        weights_[kept] = weights_[i];
        ids_[kept] = ids_[i];
      }
      ++kept;
    }
    data_.resize(kept * d);
    weights_.resize(kept);
    ids_.resize(kept);
  }

  /// Sorts columns by client id (stable), so aggregation order does not depend on arrival order.
  void sort_by_id() {
    if (std::is_sorted(ids_.begin(), ids_.end())) return;
    std::vector<std::size_t> perm(ids_.size());
    std::iota(perm.begin(), perm.end(), std::size_t{0});
    std::stable_sort(perm.begin(), perm.end(), [&](std::size_t a, std::size_t b) { return ids_[a] < ids_[b]; });
    Storage data(data_.size());
    std::vector<double> w(weights_.size());
    std::vector<ClientId> ids(ids_.size());
    const auto d = static_cast<std::size_t>(dim_);
    for (std::size_t k = 0; k < perm.size(); ++k) {
      std::copy_n(data_.begin() + static_cast<std::ptrdiff_t>(perm[k] * d), d, data.begin() + static_cast<std::ptrdiff_t>(k * d));
      w[k] = weights_[perm[k]];
      ids[k] = ids_[perm[k]];
    }
    data_ = std::move(data);
    weights_ = std::move(w);
    ids_ = std::move(ids);
  }

  /// Throws unless the batch is usable by an aggregator: at least one column and dimension > 0.
  /// `where` names the caller in the message (e.g. "fedpp::WeightedMean::aggregate").
  void check_nonempty(std::string_view where) const {
    if (empty()) fail(where, "the batch holds no client updates");
    if (dim_ == 0) fail<DimensionError>(where, "updates have dimension 0");
  }

 private:
  static void check_weight(double w) {
    if (!(std::isfinite(w) && w >= 0.0))
      fail("fedpp::UpdateBatch", "weights must be finite and >= 0", w);
  }

  Index dim_ = 0;
  /// Allocator that leaves new elements uninitialised on resize (append_column's caller fills them).
  template <typename T>
  struct DefaultInit : std::allocator<T> {
    template <typename U>
    struct rebind {
      using other = DefaultInit<U>;
    };
    DefaultInit() = default;
    template <typename U>
    DefaultInit(const DefaultInit<U>& /*other*/) noexcept {}
    template <typename U>
    void construct(U* p) noexcept(std::is_nothrow_default_constructible_v<U>) {
      ::new (static_cast<void*>(p)) U;
    }
    template <typename U, typename... Args>
    void construct(U* p, Args&&... args) {
      ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
    }
  };
  using Storage = std::vector<S, DefaultInit<S>>;
  Storage data_;
  std::vector<double> weights_;
  std::vector<ClientId> ids_;
};

}  // namespace fedpp
