#pragma once
/// @file sampling.hpp
/// Seeded client sampling for a round.

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "fedpp/core/error.hpp"
#include "fedpp/core/rng.hpp"
#include "fedpp/core/types.hpp"

namespace fedpp {

/// Number of clients per round: `count` when > 0, else max(1, round(fraction * total)).
/// @throws InvalidArgument for fraction outside (0, 1], count > total, or total == 0.
inline std::size_t clients_per_round(std::size_t total, double fraction, std::size_t count) {
  constexpr std::string_view who = "fedpp::clients_per_round";
  require(total >= 1, who, "the federation must have at least one client", total);
  if (count > 0) {
    require(count <= total, who, "clients per round must be <= the number of clients " + std::to_string(total), count);
    return count;
  }
  require(std::isfinite(fraction) && fraction > 0.0 && fraction <= 1.0, who, "fraction must be in (0, 1]", fraction);
  const auto m = static_cast<std::size_t>(std::llround(fraction * static_cast<double>(total)));
  return std::clamp<std::size_t>(m, 1, total);
}

/// Draws `m` distinct ids from [0, total) uniformly (partial Fisher-Yates), in draw order.
/// The draw order is the rank order of over-selection (the first m valid replies in it are kept).
inline std::vector<ClientId> sample_clients_ranked(std::size_t total, std::size_t m, Rng& rng) {
  require(m <= total, "fedpp::sample_clients", "m must be <= total " + std::to_string(total), m);
  std::vector<ClientId> ids(total);
  std::iota(ids.begin(), ids.end(), ClientId{0});
  for (std::size_t i = 0; i < m; ++i) std::swap(ids[i], ids[i + rng.uniform_index(total - i)]);
  ids.resize(m);
  return ids;
}

/// Draws `m` distinct ids from [0, total) uniformly (partial Fisher-Yates), returned sorted.
inline std::vector<ClientId> sample_clients(std::size_t total, std::size_t m, Rng& rng) {
  std::vector<ClientId> ids = sample_clients_ranked(total, m, rng);
  std::sort(ids.begin(), ids.end());
  return ids;
}

}  // namespace fedpp
