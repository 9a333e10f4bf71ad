#pragma once
/// @file krum.hpp
/// Krum and Multi-Krum: select the update(s) with the smallest sum of squared distances to
/// their nearest neighbours.

#include <algorithm>
#include <cstring>
#include <numeric>
#include <span>
#include <string>
#include <vector>

#include "fedpp/aggregators/detail/pairwise.hpp"
#include "fedpp/aggregators/detail/weighted_sum.hpp"
#include "fedpp/core/concepts.hpp"
#include "fedpp/core/error.hpp"
#include "fedpp/core/types.hpp"
#include "fedpp/core/update_batch.hpp"

namespace fedpp {

/// How many nearest neighbours a Krum score sums over.
enum class KrumNeighbors {
  n_minus_f_minus_2,  ///< k = n - f - 2 (Blanchard et al., Flower, Garfield); requires n >= 2f + 3
  n_minus_f_minus_1   ///< k = n - f - 1 (ByzFL); requires n >= 2f + 1 and n >= f + 2
};

/// How a Krum score combines the k nearest squared distances.
enum class KrumScore {
  sum,  ///< their sum (Blanchard et al., Flower, Garfield)
  mean  ///< their mean (ByzFL); the same ranking up to rounding ties
};

namespace detail {

/// Krum's neighbour count for a set of n updates (may be < 1: the caller checks).
inline Index krum_neighbor_count(KrumNeighbors nb, Index n, Index f) noexcept {
  return nb == KrumNeighbors::n_minus_f_minus_2 ? n - f - 2 : n - f - 1;
}

/// Smallest set size the neighbour convention accepts for f Byzantine updates.
inline Index krum_min_clients(KrumNeighbors nb, Index f) noexcept {
  return nb == KrumNeighbors::n_minus_f_minus_2 ? 2 * f + 3 : std::max(2 * f + 1, f + 2);
}

/// Throws InvalidArgument unless a set of n updates meets the convention's requirement.
inline void krum_check(KrumNeighbors nb, Index n, Index f, const std::string& where) {
  if (n >= krum_min_clients(nb, f)) return;
  const std::string values = " (n = " + std::to_string(n) + ", f = " + std::to_string(f) + ")";
  if (nb == KrumNeighbors::n_minus_f_minus_2)
    fail(where, "requires n >= 2f + 3" + values, "n = " + std::to_string(n));
  fail(where, "requires n >= 2f + 1 and n >= f + 2" + values, "n = " + std::to_string(n));
}

/// Krum scores of `members` (indices into D) over the other members: the k smallest squared
/// distances, summed in ascending order (then divided by k for KrumScore::mean). k is capped at
/// the number of other members (a single member scores 0).
inline std::vector<double> krum_scores(const Matrix<double>& D, std::span<const Index> members, Index k,
                                       KrumScore score) {
  std::vector<double> out(members.size(), 0.0), row;
  k = std::min<Index>(k, static_cast<Index>(members.size()) - 1);
  if (k <= 0) return out;
  row.reserve(members.size());
  for (std::size_t a = 0; a < members.size(); ++a) {
    row.clear();
    for (std::size_t b = 0; b < members.size(); ++b)
      if (b != a) row.push_back(D(members[a], members[b]));
    const auto kk = static_cast<std::ptrdiff_t>(k);
    std::nth_element(row.begin(), row.begin() + (kk - 1), row.end());
    std::sort(row.begin(), row.begin() + kk);
    double s = 0.0;
    for (std::ptrdiff_t t = 0; t < kk; ++t) s += row[static_cast<std::size_t>(t)];
    out[a] = score == KrumScore::mean ? s / static_cast<double>(k) : s;
  }
  return out;
}

/// Positions 0..size-1 ordered by (score, position): the lowest score first, ties to the lower position.
inline std::vector<Index> krum_order(const std::vector<double>& scores) {
  std::vector<Index> order(scores.size());
  std::iota(order.begin(), order.end(), Index{0});
  std::stable_sort(order.begin(), order.end(), [&](Index a, Index b) {
    return scores[static_cast<std::size_t>(a)] < scores[static_cast<std::size_t>(b)];
  });
  return order;
}

/// Settings and checks shared by Krum and MultiKrum.
struct KrumSettings {
  Index f = 0;                                              ///< declared Byzantine updates
  KrumNeighbors neighbors = KrumNeighbors::n_minus_f_minus_2;  ///< neighbour convention
  KrumScore score = KrumScore::sum;                         ///< score convention

  /// Squared distances of the batch and the scores of every column (after the requirement check).
  template <typename S>
  std::vector<double> scores(const UpdateBatch<S>& batch, const std::string& where, DistIsa isa) const {
    batch.check_nonempty(where);
    const Index n = batch.size();
    krum_check(neighbors, n, f, where);
    Matrix<double> D;
    pairwise_sq_distances(batch.data(), batch.dim(), n, D, nullptr, isa);
    std::vector<Index> all(static_cast<std::size_t>(n));
    std::iota(all.begin(), all.end(), Index{0});
    return krum_scores(D, all, krum_neighbor_count(neighbors, n, f), score);
  }
};

}  // namespace detail

/// Krum: the update whose k nearest neighbours are closest (smallest sum of squared distances).
/**
 * Blanchard, El Mhamdi, Guerraoui, Stainer, 2017, "Machine Learning with Adversaries:
 * Byzantine Tolerant Gradient Descent", NeurIPS (arXiv:1703.02757).
 * score_i = sum of the k smallest ||x_i - x_j||^2 over j != i; the result is x_i for the lowest
 * score (ties: the lowest column index). k = n - f - 2 by default (requires n >= 2f + 3);
 * KrumNeighbors::n_minus_f_minus_1 with KrumScore::mean is ByzFL's convention (Krum::byzfl(f),
 * requires n >= 2f + 1 and n >= f + 2). Unweighted (client weights are ignored); inputs must be
 * finite. Squared distances come from the Gram matrix (detail/pairwise.hpp: double sums,
 * blocked, vectorised, bit-identical on any thread count).
 * Memory: two n x n double matrices plus, per thread, 8 KiB per column it reads.
 */
class Krum {
 public:
  /// Krum for f declared Byzantine updates (f >= 0) with the given conventions.
  /// @throws InvalidArgument if f < 0.
  explicit Krum(Index f = 0, KrumNeighbors neighbors = KrumNeighbors::n_minus_f_minus_2,
                KrumScore score = KrumScore::sum)
      : s_{require(f >= 0, name, "f must be >= 0", f), neighbors, score} {}

  /// ByzFL's Krum(f): k = n - f - 1 neighbours, mean score.
  [[nodiscard]] static Krum byzfl(Index f) { return Krum(f, KrumNeighbors::n_minus_f_minus_1, KrumScore::mean); }

  /// Declared number of Byzantine updates.
  [[nodiscard]] Index f() const noexcept { return s_.f; }
  /// Neighbour convention.
  [[nodiscard]] KrumNeighbors neighbors() const noexcept { return s_.neighbors; }
  /// Score convention.
  [[nodiscard]] KrumScore score() const noexcept { return s_.score; }
  /// Smallest batch size accepted.
  [[nodiscard]] Index min_clients() const noexcept { return detail::krum_min_clients(s_.neighbors, s_.f); }

  /// Krum score of every column of the batch.
  /// @throws InvalidArgument on an empty batch or when n is below min_clients().
  template <typename S>
  [[nodiscard]] std::vector<double> scores(const UpdateBatch<S>& batch,
                                           detail::DistIsa isa = detail::DistIsa::best) const {
    return s_.scores(batch, agg_name, isa);
  }

  /// Column index of the selected update (lowest score, ties to the lowest index).
  template <typename S>
  [[nodiscard]] Index select(const UpdateBatch<S>& batch) const {
    return detail::krum_order(scores(batch)).front();
  }

  /// Copies the selected update into `out` (resized to batch.dim()).
  /// @throws InvalidArgument on an empty batch or when n is below min_clients().
  template <typename S>
  void aggregate(const UpdateBatch<S>& batch, Vector<S>& out) const {
    const Index i = select(batch);
    out.resize(batch.dim());
    const auto col = batch.column(i);
    std::memcpy(out.data(), col.data(), col.size() * sizeof(S));
  }

 private:
  static constexpr const char* name = "fedpp::Krum";
  static constexpr const char* agg_name = "fedpp::Krum::aggregate";
  detail::KrumSettings s_;
};

/// Multi-Krum: the mean of the m updates with the lowest Krum scores.
/**
 * Blanchard et al., 2017 (see Krum), and El Mhamdi et al., 2018 (arXiv:1802.07927).
 * m = n - f by default (as ByzFL's MultiKrum); the m lowest scores are chosen by (score,
 * column index) and averaged unweighted in column order, in double, with the arithmetic of
 * WeightedMean(Weighting::uniform) on the chosen columns (the same bits). Requirements as Krum
 * for the neighbour convention, and 1 <= m <= n. MultiKrum::byzfl(f) reproduces ByzFL.
 * Memory: as Krum plus one block accumulator per thread.
 */
class MultiKrum {
 public:
  /// Multi-Krum for f declared Byzantine updates, averaging m (0: n - f) updates.
  /// @throws InvalidArgument if f < 0 or m < 0.
  explicit MultiKrum(Index f = 0, Index m = 0, KrumNeighbors neighbors = KrumNeighbors::n_minus_f_minus_2,
                     KrumScore score = KrumScore::sum)
      : s_{require(f >= 0, name, "f must be >= 0", f), neighbors, score},
        m_(require(m >= 0, name, "m must be >= 0 (0: n - f)", m)) {}

  /// ByzFL's MultiKrum(f): k = n - f - 1 neighbours, mean score, m = n - f.
  [[nodiscard]] static MultiKrum byzfl(Index f) {
    return MultiKrum(f, 0, KrumNeighbors::n_minus_f_minus_1, KrumScore::mean);
  }

  /// Declared number of Byzantine updates.
  [[nodiscard]] Index f() const noexcept { return s_.f; }
  /// Number averaged as given (0: n - f).
  [[nodiscard]] Index m() const noexcept { return m_; }
  /// Number averaged for a batch of n updates.
  [[nodiscard]] Index num_selected(Index n) const noexcept { return m_ == 0 ? n - s_.f : m_; }
  /// Neighbour convention.
  [[nodiscard]] KrumNeighbors neighbors() const noexcept { return s_.neighbors; }
  /// Score convention.
  [[nodiscard]] KrumScore score() const noexcept { return s_.score; }
  /// Smallest batch size accepted (m permitting).
  [[nodiscard]] Index min_clients() const noexcept { return detail::krum_min_clients(s_.neighbors, s_.f); }

  /// Krum score of every column of the batch.
  template <typename S>
  [[nodiscard]] std::vector<double> scores(const UpdateBatch<S>& batch,
                                           detail::DistIsa isa = detail::DistIsa::best) const {
    return s_.scores(batch, agg_name, isa);
  }

  /// The column indices averaged, ascending.
  /// @throws InvalidArgument on an empty batch, n below min_clients(), or m > n.
  template <typename S>
  [[nodiscard]] std::vector<Index> select(const UpdateBatch<S>& batch) const {
    const std::vector<double> sc = scores(batch);
    const Index n = batch.size(), m = num_selected(n);
    if (m > n)
      fail(agg_name, "requires m <= n (m = " + std::to_string(m) + ", n = " + std::to_string(n) + ")",
           "n = " + std::to_string(n));
    std::vector<Index> order = detail::krum_order(sc);
    order.resize(static_cast<std::size_t>(m));
    std::sort(order.begin(), order.end());
    return order;
  }

  /// Writes the mean of the selected updates into `out` (resized to batch.dim()).
  template <typename S>
  void aggregate(const UpdateBatch<S>& batch, Vector<S>& out) const {
    const std::vector<Index> sel = select(batch);
    std::vector<double> w(static_cast<std::size_t>(batch.size()), 0.0);
    for (Index i : sel) w[static_cast<std::size_t>(i)] = 1.0;
    out.resize(batch.dim());
    // Weight 0 adds exactly +0 to the double accumulator, so this equals the mean of the chosen columns.
    detail::weighted_mean_blocked<4>(batch.data(), batch.dim(), batch.size(), w.data(),
                                     static_cast<double>(sel.size()), out.data());
  }

 private:
  static constexpr const char* name = "fedpp::MultiKrum";
  static constexpr const char* agg_name = "fedpp::MultiKrum::aggregate";
  detail::KrumSettings s_;
  Index m_;
};

static_assert(Aggregator<Krum, float> && Aggregator<Krum, double>);
static_assert(Aggregator<MultiKrum, float> && Aggregator<MultiKrum, double>);

}  // namespace fedpp
