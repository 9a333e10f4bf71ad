#pragma once
/// @file bulyan.hpp
/// Bulyan: a Krum-based selection of n - 2f updates followed by a coordinate-wise trimmed
/// average around the median.

#include <algorithm>
#include <cstring>
#include <limits>
#include <numeric>
#include <span>
#include <string>
#include <vector>

#include "fedpp/aggregators/detail/coordinate_blocks.hpp"
#include "fedpp/aggregators/detail/dist_mix.hpp"
#include "fedpp/aggregators/detail/pairwise.hpp"
#include "fedpp/aggregators/krum.hpp"
#include "fedpp/core/concepts.hpp"
#include "fedpp/core/error.hpp"
#include "fedpp/core/types.hpp"
#include "fedpp/core/update_batch.hpp"

namespace fedpp {

/// Which published form of Bulyan to compute.
enum class BulyanConvention {
  /// El Mhamdi et al. (and Flower): theta = n - 2f updates chosen one at a time by Krum on the
  /// remaining set R (max(1, |R| - f - 2) neighbours as Flower: the last rounds have fewer than
  /// 2f + 3 candidates; sum of squared distances), then per coordinate the mean of the
  /// beta = theta - 2f values closest to the median (midpoint of the two middle values for even theta).
  paper,
  /// Garfield / AggregaThor "Bulyan over Multi-Krum": each update's n - f - 2 nearest
  /// neighbours are fixed once; t = n - 2f - 2 selections, the k-th (from 0) being the average of
  /// the min(m, n - f - 2 - k) remaining updates with the lowest score, where a score is the sum
  /// of the squared distances to the update's fixed nearest neighbours that are still remaining;
  /// the lowest-scoring update is then removed. Then per coordinate the mean of the b = t - 2f
  /// values closest to the upper middle value (rank t / 2, as Garfield's nth_element).
  /// Garfield subtracts the removed distance from each score; fedpp re-sums the remaining ones
  /// (ascending), the same value without the rounding that turns exact ties into arbitrary order.
  garfield
};

/// Bulyan: Krum-based selection, then a coordinate-wise average around the median.
/**
 * El Mhamdi, Guerraoui, Rouault, 2018, "The Hidden Vulnerability of Distributed Learning in
 * Byzantium", ICML (arXiv:1802.07927). Requires n >= 4f + 3 (both conventions).
 * Conventions (see BulyanConvention): `paper` (default; also Flower's Bulyan) and `garfield`
 * (Garfield's native Bulyan, m = the Multi-Krum size, default n - f - 2).
 * Ties: Krum choices go to the lowest column index; on equal distance to the median the smaller
 * value is kept. The coordinate phase sums the kept values in double in ascending order, so the
 * result depends only on the selected multiset and is bit-identical on any thread count.
 * Unweighted (client weights ignored); inputs must be finite.
 * Speed: squared distances from the Gram matrix (detail/pairwise.hpp), then the coordinate
 * phase on cache-sized tiles of coordinates ordered by SIMD sorting networks
 * (detail/coordinate_blocks.hpp, shared with the median and trimmed mean).
 * Memory: the n x n distance matrices, one tile of theta x 32 keys per thread; the garfield
 * convention also holds its t averaged updates (t * d values).
 */
class Bulyan {
 public:
  /// Bulyan for f declared Byzantine updates (f >= 0); m (garfield only; 0: n - f - 2) is the
  /// Multi-Krum size of each selection.
  /// @throws InvalidArgument if f < 0 or m < 0.
  explicit Bulyan(Index f = 0, BulyanConvention convention = BulyanConvention::paper, Index m = 0)
      : f_(require(f >= 0, name, "f must be >= 0", f)),
        convention_(convention),
        m_(require(m >= 0, name, "m must be >= 0 (0: n - f - 2)", m)) {}

  /// Declared number of Byzantine updates.
  [[nodiscard]] Index f() const noexcept { return f_; }
  /// The convention.
  [[nodiscard]] BulyanConvention convention() const noexcept { return convention_; }
  /// The Multi-Krum size as given (garfield; 0: n - f - 2).
  [[nodiscard]] Index m() const noexcept { return m_; }
  /// Smallest batch size accepted: 4f + 3.
  [[nodiscard]] Index min_clients() const noexcept { return 4 * f_ + 3; }
  /// Number of selections for n updates: n - 2f (paper) or n - 2f - 2 (garfield).
  [[nodiscard]] Index num_selected(Index n) const noexcept {
    return convention_ == BulyanConvention::paper ? n - 2 * f_ : n - 2 * f_ - 2;
  }
  /// Values averaged per coordinate: num_selected(n) - 2f.
  [[nodiscard]] Index num_kept(Index n) const noexcept { return num_selected(n) - 2 * f_; }

  /// The paper convention's selected columns, in the order Krum chose them.
  /// @throws InvalidArgument on an empty batch or n < 4f + 3.
  template <typename S>
  [[nodiscard]] std::vector<Index> select(const UpdateBatch<S>& batch) const {
    const Matrix<double> D = distances(batch);
    return select_paper(D, batch.size());
  }

  /// Writes the Bulyan aggregate into `out` (resized to batch.dim()).
  /// @throws InvalidArgument on an empty batch, n < 4f + 3, or (garfield) m > n - f - 2.
  template <typename S>
  void aggregate(const UpdateBatch<S>& batch, Vector<S>& out) const {
    const Matrix<double> D = distances(batch);
    const Index n = batch.size(), d = batch.dim();
    out.resize(d);
    if (convention_ == BulyanConvention::paper) {
      const std::vector<Index> sel = select_paper(D, n);
      detail::coordinate_mean_around_median(batch.data(), d, std::span<const Index>(sel), num_kept(n),
                                            /*average=*/true, out.data());
      return;
    }
    const std::vector<std::vector<Index>> groups = select_garfield(D, n);
    const auto t = static_cast<Index>(groups.size());
    Matrix<S> avg(d, t);
    detail::mix_columns(batch.data(), d, n, groups, avg.data());
    upper_median_window(avg.data(), d, t, num_kept(n), out.data());
  }

 private:
  static constexpr const char* name = "fedpp::Bulyan";
  static constexpr const char* agg_name = "fedpp::Bulyan::aggregate";

  template <typename S>
  Matrix<double> distances(const UpdateBatch<S>& batch) const {
    batch.check_nonempty(agg_name);
    const Index n = batch.size();
    if (n < 4 * f_ + 3)
      fail(agg_name, "requires n >= 4f + 3 (n = " + std::to_string(n) + ", f = " + std::to_string(f_) + ")",
           "n = " + std::to_string(n));
    Matrix<double> D;
    detail::pairwise_sq_distances(batch.data(), batch.dim(), n, D);
    return D;
  }

  // theta rounds of Krum on the remaining set; returns the chosen columns in order.
  std::vector<Index> select_paper(const Matrix<double>& D, Index n) const {
    std::vector<Index> remaining(static_cast<std::size_t>(n)), chosen;
    std::iota(remaining.begin(), remaining.end(), Index{0});
    const Index theta = num_selected(n);
    for (Index k = 0; k < theta; ++k) {
      const auto r = static_cast<Index>(remaining.size());
      const Index nb = std::max<Index>(1, r - f_ - 2);  // Flower's max(1, .); never 1 when n >= 4f + 3
      const std::vector<double> sc = detail::krum_scores(D, remaining, nb, KrumScore::sum);
      const auto best = static_cast<std::size_t>(detail::krum_order(sc).front());  // remaining is ascending
      chosen.push_back(remaining[best]);
      remaining.erase(remaining.begin() + static_cast<std::ptrdiff_t>(best));
    }
    return chosen;
  }

  // Garfield's Bulyan over Multi-Krum: the t groups whose averages are the selected vectors
  // (each ascending, for a deterministic summation order).
  std::vector<std::vector<Index>> select_garfield(const Matrix<double>& D, Index n) const {
    const Index k_nb = n - f_ - 2, t = num_selected(n);
    const Index m = m_ == 0 ? k_nb : m_;
    if (m > k_nb)
      fail(agg_name, "requires m <= n - f - 2 (m = " + std::to_string(m) + ", n = " + std::to_string(n) +
                         ", f = " + std::to_string(f_) + ")",
           "m = " + std::to_string(m));
    // Each update's k_nb nearest neighbours (ties to the lower index), fixed once.
    std::vector<std::vector<Index>> near(static_cast<std::size_t>(n));
    for (Index i = 0; i < n; ++i) {
      std::vector<Index>& o = near[static_cast<std::size_t>(i)];
      for (Index j = 0; j < n; ++j)
        if (j != i) o.push_back(j);
      std::stable_sort(o.begin(), o.end(), [&](Index a, Index b) { return D(i, a) < D(i, b); });
      o.resize(static_cast<std::size_t>(k_nb));
    }
    std::vector<bool> removed(static_cast<std::size_t>(n), false);
    std::vector<double> score(static_cast<std::size_t>(n)), vals;
    std::vector<std::vector<Index>> groups;
    for (Index k = 0; k < t; ++k) {
      std::vector<Index> order;
      for (Index i = 0; i < n; ++i) {
        if (removed[static_cast<std::size_t>(i)]) continue;
        order.push_back(i);
        vals.clear();  // the remaining fixed neighbours' distances, summed in ascending order
        for (Index j : near[static_cast<std::size_t>(i)])
          if (!removed[static_cast<std::size_t>(j)]) vals.push_back(D(i, j));
        std::sort(vals.begin(), vals.end());
        double s = 0.0;
        for (double v : vals) s += v;
        score[static_cast<std::size_t>(i)] = s;
      }
      std::stable_sort(order.begin(), order.end(), [&](Index a, Index b) {
        return score[static_cast<std::size_t>(a)] < score[static_cast<std::size_t>(b)];
      });
      const Index take = std::min(m, k_nb - k);
      std::vector<Index> g(order.begin(), order.begin() + take);
      std::sort(g.begin(), g.end());
      groups.push_back(std::move(g));
      removed[static_cast<std::size_t>(order.front())] = true;
    }
    return groups;
  }

  // Per coordinate over the t columns of avg: the mean of the k values closest to the upper
  // middle value (rank t / 2), ties to the smaller value, summed in double in ascending order.
  template <typename S>
  static void upper_median_window(const S* avg, Index d, Index t, Index k, S* out) {
    const std::vector<Index> cols = detail::all_columns(t);
    const detail::ComparatorNetwork net = detail::ComparatorNetwork::sorter(t);
    const Index mid = t / 2;
    const double kd = static_cast<double>(k);
    detail::for_each_sorted_tile<S>(
        avg, d, std::span<const Index>(cols), net,
        [out, mid, t, k, kd](const detail::SortedTile<S>& tile) FEDPP_TILE_CALLBACK {
          constexpr Index W = detail::SortedTile<S>::lanes;
          Index s[W] = {};
          for (Index r = 0; r + k < t; ++r)
            for (Index l = 0; l < W; ++l) {
              const double c = static_cast<double>(tile.value(mid, l));
              const double below = c - static_cast<double>(tile.value(r, l));
              const double above = static_cast<double>(tile.value(r + k, l)) - c;
              s[l] += below > above ? 1 : 0;
            }
          double acc[W] = {};
          for (Index r = 0; r < t; ++r)
            for (Index l = 0; l < W; ++l)
              acc[l] += (r >= s[l] && r < s[l] + k) ? static_cast<double>(tile.value(r, l)) : 0.0;
          S v[W];
          for (Index l = 0; l < W; ++l) v[l] = static_cast<S>(acc[l] / kd);
          std::memcpy(out + tile.first, v, static_cast<std::size_t>(tile.count) * sizeof(S));
        });
  }

  Index f_;
  BulyanConvention convention_;
  Index m_;
};

static_assert(Aggregator<Bulyan, float> && Aggregator<Bulyan, double>);

}  // namespace fedpp
