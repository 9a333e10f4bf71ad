#pragma once
/// @file partition.hpp
/// Splitting a shared data set over clients: IID, two Dirichlet label-skew schemes, label shards,
/// plus Gamma/Dirichlet sampling and statistics of a partition. Needs only fedpp core (no zlib).
///
/// Every partitioner takes a seed and draws from make_rng(seed, 0, server_stream, Purpose::partition),
/// so the same seed gives the same split on every machine and thread count. Each returns one
/// DatasetView per client over the same shared data set, its indices in random order.
///
/// Which Dirichlet scheme?
/// - dirichlet_split (Hsu et al. 2019, arXiv:1909.06335; Yurochkin et al. 2019, arXiv:1905.12022): each class is split
///   over the clients by a Dirichlet(alpha) draw. Every sample is used exactly once; client sizes vary.
///   This is the "hetero-dir" split of NIID-Bench and FedLab.
/// - dirichlet_prior_split (FL-Simulator / FedDyn code): each client gets a class prior from
///   Dirichlet(alpha) and equal size N / num_clients, filled by sampling classes from its prior.
///   When a class runs out its samples are reused, so some samples appear in several clients and
///   others in none.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "fedpp/core/dataset.hpp"
#include "fedpp/core/error.hpp"
#include "fedpp/core/rng.hpp"
#include "fedpp/core/types.hpp"

namespace fedpp {

// ---------------------------------------------------------------------------------------------
// Gamma and Dirichlet draws
// ---------------------------------------------------------------------------------------------

/// Natural log of a Gamma(alpha, 1) draw (Marsaglia & Tsang 2000), accurate for tiny alpha.
/**
 * For alpha < 1 it uses Gamma(alpha) = Gamma(alpha + 1) * U^(1/alpha) in log space, so the result
 * stays finite where the draw itself would underflow to 0 (it is -inf only when alpha is so small
 * that log(U)/alpha overflows). Uses rng.normal() and rng.uniform() only: portable and deterministic.
 * @throws InvalidArgument if alpha is not finite and > 0.
 */
inline double log_gamma_sample(Rng& rng, double alpha) {
  require(std::isfinite(alpha) && alpha > 0.0, "fedpp::log_gamma_sample", "alpha must be finite and > 0", alpha);
  const bool boost = alpha < 1.0;
  const double a = boost ? alpha + 1.0 : alpha;
  const double d = a - 1.0 / 3.0;
  const double c = 1.0 / std::sqrt(9.0 * d);
  double g = 0.0;
  for (;;) {
    double x = 0.0, v = 0.0;
    do {
      x = rng.normal();
      v = 1.0 + c * x;
    } while (v <= 0.0);
    v = v * v * v;
    const double u = rng.uniform();
    const double x2 = x * x;
    if (u < 1.0 - 0.0331 * x2 * x2 || std::log(u) < 0.5 * x2 + d * (1.0 - v + std::log(v))) {
      g = d * v;
      break;
    }
  }
  double lg = std::log(g);
  if (boost) lg += std::log(1.0 - rng.uniform()) / alpha;  // U in (0, 1]
  return lg;
}

/// A Gamma(alpha, 1) draw (can underflow to 0 for alpha well below 1; see log_gamma_sample).
inline double gamma_sample(Rng& rng, double alpha) { return std::exp(log_gamma_sample(rng, alpha)); }

/// A draw from the symmetric Dirichlet(alpha, ..., alpha) on k categories.
/**
 * p_i = x_i / sum(x) with x_i ~ Gamma(alpha), computed from log draws as exp(l_i - max l), so
 * small alpha never gives an all-zero vector: the entries sum to 1 and the largest is > 0. In the
 * limit case where every log draw is -inf (alpha around 1e-300), the draw is repeated and, after 16
 * tries, a one-hot vector at a uniform position is returned (the alpha -> 0 limit).
 * @throws InvalidArgument if alpha is not finite and > 0 or k == 0.
 */
inline std::vector<double> dirichlet_sample(Rng& rng, double alpha, std::size_t k) {
  constexpr std::string_view where = "fedpp::dirichlet_sample";
  require(std::isfinite(alpha) && alpha > 0.0, where, "alpha must be finite and > 0", alpha);
  require(k >= 1, where, "k must be >= 1", k);
  std::vector<double> p(k);
  for (int attempt = 0; attempt < 16; ++attempt) {
    double mx = -std::numeric_limits<double>::infinity();
    for (auto& v : p) {
      v = log_gamma_sample(rng, alpha);
      mx = std::max(mx, v);
    }
    if (!std::isfinite(mx)) continue;
    double s = 0.0;
    for (auto& v : p) s += (v = std::exp(v - mx));
    for (auto& v : p) v /= s;
    return p;
  }
  std::fill(p.begin(), p.end(), 0.0);
  p[static_cast<std::size_t>(rng.uniform_index(k))] = 1.0;
  return p;
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

namespace detail {

/// The partition stream of a seed.
inline Rng partition_rng(std::uint64_t seed) noexcept { return make_rng(seed, 0, server_stream, Purpose::partition); }

/// Fisher-Yates shuffle driven by an Rng (the same on every platform, unlike std::shuffle).
inline void partition_shuffle(std::vector<std::uint32_t>& v, Rng& rng) noexcept {
  for (std::size_t i = v.size(); i > 1; --i) {
    const auto j = static_cast<std::size_t>(rng.uniform_index(i));
    std::swap(v[i - 1], v[j]);
  }
}

/// 0, 1, ..., n-1.
inline std::vector<std::uint32_t> partition_iota(std::size_t n) {
  std::vector<std::uint32_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint32_t>(i);
  return v;
}

/// Checks the data set and the client count shared by all partitioners.
template <typename S>
void partition_check_args(const std::shared_ptr<const Dataset<S>>& ds, Index num_clients, std::string_view where) {
  if (!ds) fail(where, "dataset must not be null");
  if (static_cast<Index>(ds->labels.size()) != ds->size())
    fail<DimensionError>(where, "dataset labels must have one entry per feature column (" +
                                    std::to_string(ds->size()) + ")", ds->labels.size());
  require(ds->num_classes >= 1, where, "dataset num_classes must be >= 1", ds->num_classes);
  require(ds->size() <= static_cast<Index>(std::numeric_limits<std::uint32_t>::max()), where,
          "dataset must have fewer than 2^32 samples", ds->size());
  require(num_clients >= 1 && num_clients <= ds->size(), where,
          "num_clients must be in [1, " + std::to_string(ds->size()) + "] (the number of samples)", num_clients);
  for (Label y : ds->labels)
    if (y < 0 || y >= ds->num_classes)
      fail(where, "dataset labels must be in [0, " + std::to_string(ds->num_classes) + ")", y);
}

inline void partition_check_alpha(double alpha, std::string_view where) {
  require(std::isfinite(alpha) && alpha > 0.0, where, "alpha must be finite and > 0", alpha);
}

/// Sample indices of each class, ascending (or in the order of `order` when given).
template <typename S>
std::vector<std::vector<std::uint32_t>> partition_by_class(const Dataset<S>& ds, const std::vector<std::uint32_t>* order = nullptr) {
  std::vector<std::vector<std::uint32_t>> out(static_cast<std::size_t>(ds.num_classes));
  const auto n = static_cast<std::size_t>(ds.size());
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint32_t s = order ? (*order)[i] : static_cast<std::uint32_t>(i);
    out[static_cast<std::size_t>(ds.labels[s])].push_back(s);
  }
  return out;
}

/// Wraps per-client index lists into views over `ds`.
template <typename S>
std::vector<DatasetView<S>> partition_views(const std::shared_ptr<const Dataset<S>>& ds,
                                       std::vector<std::vector<std::uint32_t>>&& parts) {
  std::vector<DatasetView<S>> views(parts.size());
  for (std::size_t c = 0; c < parts.size(); ++c) {
    views[c].base = ds;
    views[c].indices = std::move(parts[c]);
  }
  return views;
}

/// Scheme (a) filling loop: clients drawn uniformly, each slot filled with a class drawn from the
/// client's prior (cumulative `cum`, one row per client), reusing a class when it runs out.
inline std::vector<std::vector<std::uint32_t>> partition_fill_from_priors(const std::vector<std::vector<std::uint32_t>>& by_class,
                                                                std::vector<Index> sizes,
                                                                const std::vector<std::vector<double>>& cum, Rng& rng) {
  const std::size_t n = sizes.size();
  const std::size_t C = by_class.size();
  std::vector<std::vector<std::uint32_t>> parts(n);
  Index total = 0;
  for (std::size_t c = 0; c < n; ++c) {
    parts[c].resize(static_cast<std::size_t>(sizes[c]));
    total += sizes[c];
  }
  std::vector<std::size_t> remaining(C);
  for (std::size_t k = 0; k < C; ++k) remaining[k] = by_class[k].size();
  while (total > 0) {
    const auto c = static_cast<std::size_t>(rng.uniform_index(n));
    if (sizes[c] <= 0) continue;
    --sizes[c];
    --total;
    const std::vector<double>& row = cum[c];
    for (;;) {
      // First class with u < cum[k]: classes with zero prior are never chosen.
      const double u = rng.uniform();
      auto it = std::upper_bound(row.begin(), row.end(), u);
      std::size_t k;
      if (it != row.end()) {
        k = static_cast<std::size_t>(it - row.begin());
      } else {  // u >= cum[C-1] (rounding below 1): the last class with positive prior
        k = C - 1;
        while (k > 0 && row[k] == row[k - 1]) --k;
      }
      if (remaining[k] == 0) {  // class exhausted: refill it (samples are reused) and redraw
        remaining[k] = by_class[k].size();
        continue;
      }
      --remaining[k];
      parts[c][static_cast<std::size_t>(sizes[c])] = by_class[k][remaining[k]];
      break;
    }
  }
  return parts;
}

/// Cumulative prior rows with empty classes removed (uniform over non-empty classes if nothing is left).
inline std::vector<std::vector<double>> partition_cumulative_priors(std::vector<std::vector<double>> priors,
                                                          const std::vector<std::vector<std::uint32_t>>& by_class) {
  const std::size_t C = by_class.size();
  bool any_empty = false;
  for (const auto& b : by_class) any_empty = any_empty || b.empty();
  for (auto& p : priors) {
    if (any_empty) {
      double s = 0.0;
      for (std::size_t k = 0; k < C; ++k) {
        if (by_class[k].empty()) p[k] = 0.0;
        s += p[k];
      }
      if (s <= 0.0) {
        for (std::size_t k = 0; k < C; ++k) p[k] = by_class[k].empty() ? 0.0 : 1.0;
        s = 0.0;
        for (double v : p) s += v;
      }
      for (double& v : p) v /= s;
    }
    for (std::size_t k = 1; k < C; ++k) p[k] += p[k - 1];
  }
  return priors;
}

/// The shared body of the prior-based splits: shuffle, equal slots (client 0 takes the
/// remainder), one class prior per client from `make_prior(rng, C)`, then fill the slots.
template <typename S, typename MakePrior>
std::vector<DatasetView<S>> partition_prior_split(const std::shared_ptr<const Dataset<S>>& ds, Index num_clients,
                                                  std::uint64_t seed, MakePrior make_prior) {
  Rng rng = detail::partition_rng(seed);
  const Index N = ds->size();
  const auto n = static_cast<std::size_t>(num_clients);
  const auto C = static_cast<std::size_t>(ds->num_classes);
  std::vector<std::uint32_t> perm = detail::partition_iota(static_cast<std::size_t>(N));
  detail::partition_shuffle(perm, rng);
  const auto by_class = detail::partition_by_class(*ds, &perm);
  std::vector<Index> sizes(n, N / num_clients);
  sizes[0] += N - (N / num_clients) * num_clients;
  std::vector<std::vector<double>> priors(n);
  for (auto& q : priors) q = make_prior(rng, C);
  return partition_views(ds, partition_fill_from_priors(by_class, std::move(sizes),
                                                         partition_cumulative_priors(std::move(priors), by_class), rng));
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Partitioners
// ---------------------------------------------------------------------------------------------

/// IID split: a random permutation cut into num_clients parts whose sizes differ by at most 1.
/**
 * @param ds          data set shared by the views
 * @param num_clients number of parts, in [1, N]
 * @param seed        partition seed
 * @throws InvalidArgument if num_clients is out of range or ds is null or inconsistent.
 */
template <typename S>
std::vector<DatasetView<S>> iid_split(std::shared_ptr<const Dataset<S>> ds, Index num_clients, std::uint64_t seed) {
  detail::partition_check_args(ds, num_clients, "fedpp::iid_split");
  Rng rng = detail::partition_rng(seed);
  const Index N = ds->size();
  std::vector<std::uint32_t> perm = detail::partition_iota(static_cast<std::size_t>(N));
  detail::partition_shuffle(perm, rng);
  std::vector<std::vector<std::uint32_t>> parts(static_cast<std::size_t>(num_clients));
  for (Index c = 0; c < num_clients; ++c) {
    const Index b = c * N / num_clients, e = (c + 1) * N / num_clients;
    parts[static_cast<std::size_t>(c)].assign(perm.begin() + b, perm.begin() + e);
  }
  return detail::partition_views(ds, std::move(parts));
}

/// Dirichlet label skew with unequal client sizes ("hetero-dir"; Hsu, Qi, Brown 2019, arXiv:1909.06335).
/**
 * For each class k: shuffle its samples, draw p ~ Dirichlet(alpha * 1_n) over the n clients, set
 * p_c = 0 for clients that already hold >= N/n samples (balancing step), renormalise, and cut the
 * class at floor(cumsum(p) * |class k|). If some client ends with fewer than `min_size` samples
 * the whole split is redrawn, at most `max_retries` times (NIID-Bench / FedLab procedure).
 * Every sample is used exactly once. Small alpha gives few classes per client, large alpha
 * approaches the global label distribution. If the balancing step leaves no mass (possible only
 * through underflow at tiny alpha) p is redrawn, falling back to uniform over non-full clients.
 * @param alpha       concentration, finite and > 0
 * @param min_size    smallest acceptable client size; -1 = min(num_classes, N / num_clients)
 * @param max_retries attempts before giving up
 * @throws InvalidArgument for alpha <= 0 or not finite, num_clients outside [1, N], min_size >
 *         N / num_clients, max_retries < 1, or when no attempt reaches min_size.
 */
template <typename S>
std::vector<DatasetView<S>> dirichlet_split(std::shared_ptr<const Dataset<S>> ds, Index num_clients, double alpha,
                                            std::uint64_t seed, Index min_size = -1, int max_retries = 1000) {
  constexpr std::string_view where = "fedpp::dirichlet_split";
  detail::partition_check_args(ds, num_clients, where);
  detail::partition_check_alpha(alpha, where);
  const Index N = ds->size();
  const auto n = static_cast<std::size_t>(num_clients);
  const Index cap = N / num_clients;
  if (min_size < 0) min_size = std::min<Index>(ds->num_classes, cap);
  require(min_size <= cap, where,
          "min_size must be <= N / num_clients = " + std::to_string(cap) + " (or -1 for the default)", min_size);
  require(max_retries >= 1, where, "max_retries must be >= 1", max_retries);

  Rng rng = detail::partition_rng(seed);
  const auto by_class = detail::partition_by_class(*ds);
  std::vector<std::vector<std::uint32_t>> parts(n);
  std::vector<double> p;
  for (int attempt = 0; attempt < max_retries; ++attempt) {
    for (auto& v : parts) v.clear();
    for (const auto& cls : by_class) {
      std::vector<std::uint32_t> idx = cls;
      detail::partition_shuffle(idx, rng);
      p = dirichlet_sample(rng, alpha, n);
      if (idx.empty()) continue;
      // Balancing: clients holding >= N/n samples get no more (size * n >= N <=> size >= N/n).
      double s = 0.0;
      for (int t = 0;; ++t) {
        s = 0.0;
        for (std::size_t c = 0; c < n; ++c) {
          if (static_cast<Index>(parts[c].size()) * num_clients >= N) p[c] = 0.0;
          s += p[c];
        }
        if (s > 0.0) break;
        if (t < 64) {
          p = dirichlet_sample(rng, alpha, n);
          continue;
        }
        for (std::size_t c = 0; c < n; ++c) p[c] = static_cast<Index>(parts[c].size()) * num_clients >= N ? 0.0 : 1.0;
      }
      const auto m = static_cast<double>(idx.size());
      double cum = 0.0;
      std::size_t start = 0;
      for (std::size_t c = 0; c < n; ++c) {
        cum += p[c] / s;
        std::size_t end = idx.size();
        if (c + 1 < n) end = std::min(idx.size(), static_cast<std::size_t>(std::floor(cum * m)));
        end = std::max(end, start);
        parts[c].insert(parts[c].end(), idx.begin() + static_cast<std::ptrdiff_t>(start),
                        idx.begin() + static_cast<std::ptrdiff_t>(end));
        start = end;
      }
    }
    Index smallest = N;
    for (const auto& v : parts) smallest = std::min(smallest, static_cast<Index>(v.size()));
    if (smallest >= min_size) {
      for (auto& v : parts) detail::partition_shuffle(v, rng);
      return detail::partition_views(ds, std::move(parts));
    }
  }
  fail(where, "could not give every client >= " + std::to_string(min_size) + " samples (alpha " +
                  detail::to_text(alpha) + ", " + std::to_string(num_clients) + " clients, " + std::to_string(N) +
                  " samples); raise alpha, lower min_size, use fewer clients or raise max_retries",
       max_retries);
}

/// Dirichlet class priors with equal client sizes (scheme of the FL-Simulator and FedDyn code).
/**
 * Shuffles the data, gives every client floor(N/n) slots (client 0 also takes the N mod n
 * remainder, as the reference code does), draws a class prior q_c ~ Dirichlet(alpha * 1_C) per
 * client, then repeatedly picks a uniform random client with a free slot and fills it with the
 * next unused sample of a class drawn from q_c. A class that runs out is refilled: its samples are
 * REUSED. So sizes are equal (exactly, when n divides N), but samples may appear in several
 * clients and some in none; use dirichlet_split when each sample must be used once.
 * @throws InvalidArgument for alpha <= 0 or not finite, num_clients outside [1, N].
 */
template <typename S>
std::vector<DatasetView<S>> dirichlet_prior_split(std::shared_ptr<const Dataset<S>> ds, Index num_clients,
                                                  double alpha, std::uint64_t seed) {
  constexpr std::string_view where = "fedpp::dirichlet_prior_split";
  detail::partition_check_args(ds, num_clients, where);
  detail::partition_check_alpha(alpha, where);
  return detail::partition_prior_split(ds, num_clients, seed, [alpha](Rng& rng, std::size_t C) {
    return dirichlet_sample(rng, alpha, C);
  });
}

/// Pathological prior split: like dirichlet_prior_split, but each client's prior is uniform over
/// `classes_per_client` random classes (FL-Simulator rule "Pathological").
/**
 * @throws InvalidArgument if classes_per_client is outside [1, num_classes] or num_clients outside [1, N].
 */
template <typename S>
std::vector<DatasetView<S>> pathological_prior_split(std::shared_ptr<const Dataset<S>> ds, Index num_clients,
                                                     int classes_per_client, std::uint64_t seed) {
  constexpr std::string_view where = "fedpp::pathological_prior_split";
  detail::partition_check_args(ds, num_clients, where);
  require(classes_per_client >= 1 && classes_per_client <= ds->num_classes, where,
          "classes_per_client must be in [1, " + std::to_string(ds->num_classes) + "]", classes_per_client);
  return detail::partition_prior_split(ds, num_clients, seed, [classes_per_client](Rng& rng, std::size_t C) {
    std::vector<std::uint32_t> cls = detail::partition_iota(C);
    detail::partition_shuffle(cls, rng);
    std::vector<double> q(C, 0.0);
    for (int j = 0; j < classes_per_client; ++j) q[cls[static_cast<std::size_t>(j)]] = 1.0 / classes_per_client;
    return q;
  });
}

/// Label shards (McMahan et al. 2017, arXiv:1602.05629): sort by label, cut into
/// num_clients * shards_per_client shards, give each client shards_per_client random shards.
/**
 * Ties within a label are broken by a random shuffle, so shard contents are random. Shard sizes
 * differ by at most 1 and every sample is used exactly once. A client holds at most
 * shards_per_client classes when every class size is a multiple of the shard size (e.g.
 * Fashion-MNIST, 100 clients x 2 shards of 300); otherwise a shard can straddle two labels.
 * @throws InvalidArgument if shards_per_client < 1 or num_clients * shards_per_client > N.
 */
template <typename S>
std::vector<DatasetView<S>> shard_split(std::shared_ptr<const Dataset<S>> ds, Index num_clients,
                                        Index shards_per_client, std::uint64_t seed) {
  constexpr std::string_view where = "fedpp::shard_split";
  detail::partition_check_args(ds, num_clients, where);
  const Index N = ds->size();
  require(shards_per_client >= 1 && shards_per_client <= N / num_clients, where,
          "shards_per_client must be in [1, N / num_clients = " + std::to_string(N / num_clients) + "]",
          shards_per_client);
  Rng rng = detail::partition_rng(seed);
  std::vector<std::uint32_t> order = detail::partition_iota(static_cast<std::size_t>(N));
  detail::partition_shuffle(order, rng);
  std::stable_sort(order.begin(), order.end(), [&](std::uint32_t a, std::uint32_t b) { return ds->labels[a] < ds->labels[b]; });
  const Index shards = num_clients * shards_per_client;
  std::vector<std::uint32_t> shard_ids = detail::partition_iota(static_cast<std::size_t>(shards));
  detail::partition_shuffle(shard_ids, rng);
  std::vector<std::vector<std::uint32_t>> parts(static_cast<std::size_t>(num_clients));
  for (Index c = 0; c < num_clients; ++c) {
    auto& v = parts[static_cast<std::size_t>(c)];
    for (Index j = 0; j < shards_per_client; ++j) {
      const Index s = shard_ids[static_cast<std::size_t>(c * shards_per_client + j)];
      v.insert(v.end(), order.begin() + s * N / shards, order.begin() + (s + 1) * N / shards);
    }
    detail::partition_shuffle(v, rng);
  }
  return detail::partition_views(ds, std::move(parts));
}

// Overloads for non-const data sets (template deduction does not convert shared_ptr<T> to shared_ptr<const T>).

/// iid_split for a mutable shared data set.
template <typename S>
std::vector<DatasetView<S>> iid_split(std::shared_ptr<Dataset<S>> ds, Index num_clients, std::uint64_t seed) {
  return iid_split(std::shared_ptr<const Dataset<S>>(std::move(ds)), num_clients, seed);
}
/// dirichlet_split for a mutable shared data set.
template <typename S>
std::vector<DatasetView<S>> dirichlet_split(std::shared_ptr<Dataset<S>> ds, Index num_clients, double alpha,
                                            std::uint64_t seed, Index min_size = -1, int max_retries = 1000) {
  return dirichlet_split(std::shared_ptr<const Dataset<S>>(std::move(ds)), num_clients, alpha, seed, min_size,
                         max_retries);
}
/// dirichlet_prior_split for a mutable shared data set.
template <typename S>
std::vector<DatasetView<S>> dirichlet_prior_split(std::shared_ptr<Dataset<S>> ds, Index num_clients, double alpha,
                                                  std::uint64_t seed) {
  return dirichlet_prior_split(std::shared_ptr<const Dataset<S>>(std::move(ds)), num_clients, alpha, seed);
}
/// pathological_prior_split for a mutable shared data set.
template <typename S>
std::vector<DatasetView<S>> pathological_prior_split(std::shared_ptr<Dataset<S>> ds, Index num_clients,
                                                     int classes_per_client, std::uint64_t seed) {
  return pathological_prior_split(std::shared_ptr<const Dataset<S>>(std::move(ds)), num_clients, classes_per_client,
                                  seed);
}
/// shard_split for a mutable shared data set.
template <typename S>
std::vector<DatasetView<S>> shard_split(std::shared_ptr<Dataset<S>> ds, Index num_clients, Index shards_per_client,
                                        std::uint64_t seed) {
  return shard_split(std::shared_ptr<const Dataset<S>>(std::move(ds)), num_clients, shards_per_client, seed);
}

// ---------------------------------------------------------------------------------------------
// Statistics of a partition
// ---------------------------------------------------------------------------------------------

/// Samples per class in a view, after its label map (num_classes entries).
template <typename S>
std::vector<Index> label_histogram(const DatasetView<S>& view) {
  std::vector<Index> h(static_cast<std::size_t>(view.num_classes()), 0);
  for (Index k = 0; k < view.size(); ++k) ++h[static_cast<std::size_t>(view.label(k))];
  return h;
}

/// Samples per class in a data set (num_classes entries).
template <typename S>
std::vector<Index> label_histogram(const Dataset<S>& ds) {
  std::vector<Index> h(static_cast<std::size_t>(ds.num_classes), 0);
  for (Label y : ds.labels) ++h[static_cast<std::size_t>(y)];
  return h;
}

/// Number of samples of each view.
template <typename S>
std::vector<Index> client_sizes(const std::vector<DatasetView<S>>& views) {
  std::vector<Index> s(views.size());
  for (std::size_t c = 0; c < views.size(); ++c) s[c] = views[c].size();
  return s;
}

/// Fewest classes whose samples make up at least `fraction` of the histogram's total (0 if empty).
inline Index classes_to_cover(std::span<const Index> hist, double fraction = 0.9) {
  std::vector<Index> h(hist.begin(), hist.end());
  std::sort(h.begin(), h.end(), [](Index a, Index b) { return a > b; });
  Index total = 0;
  for (Index v : h) total += v;
  if (total == 0) return 0;
  const double target = fraction * static_cast<double>(total);
  Index cum = 0, k = 0;
  for (Index v : h) {
    if (static_cast<double>(cum) >= target) break;
    cum += v;
    ++k;
  }
  return k;
}

/// Total-variation distance 0.5 * sum |a/|a| - b/|b|| between two histograms of the same length.
/** @throws DimensionError if the lengths differ; InvalidArgument if either histogram is empty (sum 0). */
inline double total_variation(std::span<const Index> a, std::span<const Index> b) {
  constexpr std::string_view where = "fedpp::total_variation";
  if (a.size() != b.size()) fail<DimensionError>(where, "histograms must have the same length (" + std::to_string(a.size()) + ")", b.size());
  Index sa = 0, sb = 0;
  for (Index v : a) sa += v;
  for (Index v : b) sb += v;
  require(sa > 0 && sb > 0, where, "histograms must have a positive total", std::min(sa, sb));
  double tv = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i)
    tv += std::abs(static_cast<double>(a[i]) / static_cast<double>(sa) - static_cast<double>(b[i]) / static_cast<double>(sb));
  return 0.5 * tv;
}

/// Summary statistics of a partition (label skew and size spread).
struct PartitionSummary {
  Index clients = 0;                   ///< number of views
  Index min_size = 0;                  ///< smallest view
  Index max_size = 0;                  ///< largest view
  double mean_size = 0.0;              ///< mean view size
  double mean_classes_to_cover = 0.0;  ///< mean over non-empty views of classes_to_cover(hist, cover)
  double mean_tv = 0.0;                ///< mean over non-empty views of the TV distance to the base's label distribution
};

/// Label-skew statistics of a partition: sizes, classes needed to cover `cover` of each client's
/// data, and TV distance of each client's label distribution to its base data set's.
template <typename S>
PartitionSummary summarize_partition(const std::vector<DatasetView<S>>& views, double cover = 0.9) {
  PartitionSummary r;
  r.clients = static_cast<Index>(views.size());
  if (views.empty()) return r;
  r.min_size = std::numeric_limits<Index>::max();
  const Dataset<S>* last_base = nullptr;
  std::vector<Index> global;
  Index nonempty = 0;
  double sum_size = 0.0;
  for (const auto& v : views) {
    r.min_size = std::min(r.min_size, v.size());
    r.max_size = std::max(r.max_size, v.size());
    sum_size += static_cast<double>(v.size());
    if (v.size() == 0) continue;
    if (v.base.get() != last_base) {
      last_base = v.base.get();
      global = label_histogram(*v.base);
    }
    const auto h = label_histogram(v);
    r.mean_classes_to_cover += static_cast<double>(classes_to_cover(h, cover));
    r.mean_tv += total_variation(h, global);
    ++nonempty;
  }
  r.mean_size = sum_size / static_cast<double>(views.size());
  if (nonempty > 0) {
    r.mean_classes_to_cover /= static_cast<double>(nonempty);
    r.mean_tv /= static_cast<double>(nonempty);
  }
  return r;
}

}  // namespace fedpp
