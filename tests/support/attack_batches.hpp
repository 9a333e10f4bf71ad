#pragma once
// Seeded update batches for the attack tests: batches of mapped standard-normal draws (drawn column
// by column from make_rng(seed, 0, 0, Purpose::user)), ByzFL's 3 x 3 attack test input, and an attack
// run with a given OpenMP thread count.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fedpp/core/messages.hpp"
#include "fedpp/core/rng.hpp"
#include "fedpp/core/types.hpp"
#include "fedpp/core/update_batch.hpp"
#include "support/checks.hpp"

namespace fedpp_test {

/// A d x n matrix with entry (j, i) = S(value(z, j)), z the next standard normal of
/// make_rng(seed, 0, 0, Purpose::user), drawn column by column.
template <typename S, typename F>
fedpp::Matrix<S> normal_draws(fedpp::Index d, fedpp::Index n, std::uint64_t seed, F value) {
  fedpp::Matrix<S> m(d, n);
  auto rng = fedpp::make_rng(seed, 0, 0, fedpp::Purpose::user);
  for (fedpp::Index i = 0; i < n; ++i)
    for (fedpp::Index j = 0; j < d; ++j) m(j, i) = static_cast<S>(value(rng.normal(), j));
  return m;
}

/// How normal_batch maps its draws and labels its columns.
struct NormalBatchOptions {
  double scale = 1.0;            ///< entry = scale * z + shift
  double shift = 0.0;            ///< see scale
  fedpp::ClientId first_id = 0;  ///< ids first_id, first_id + 1, ...
  double weight = 1.0;           ///< the weight of every column
};

/// A d x n batch with entries S(scale * z + shift) (z as in normal_draws), ids first_id, first_id + 1, ...
/// and every weight `weight` (the defaults: standard normal, ids 0..n-1, weights 1).
template <typename S>
fedpp::UpdateBatch<S> normal_batch(fedpp::Index d, fedpp::Index n, std::uint64_t seed, NormalBatchOptions o = {}) {
  const fedpp::Matrix<S> m = normal_draws<S>(d, n, seed, [&](double z, fedpp::Index) { return o.scale * z + o.shift; });
  std::vector<fedpp::ClientId> ids(static_cast<std::size_t>(n));
  for (fedpp::Index i = 0; i < n; ++i) ids[static_cast<std::size_t>(i)] = o.first_id + static_cast<fedpp::ClientId>(i);
  return fedpp::UpdateBatch<S>(m, std::vector<double>(static_cast<std::size_t>(n), o.weight), ids);
}

/// ByzFL's attack test input: rows [1,2,3], [4,5,6], [7,8,9] as three client updates.
template <typename S>
fedpp::UpdateBatch<S> byzfl_input() {
  fedpp::Matrix<S> m(3, 3);
  m << 1, 4, 7, 2, 5, 8, 3, 6, 9;
  return fedpp::UpdateBatch<S>(m);
}

/// byz corrupted by attack.corrupt(byz, honest, ctx, Rng(seed)) with `threads` OpenMP threads (the
/// previous count is restored after).
template <typename A, typename S>
fedpp::UpdateBatch<S> corrupted_on_threads(const A& attack, fedpp::UpdateBatch<S> byz,
                                           const fedpp::UpdateBatch<S>& honest, const fedpp::AttackContext& ctx,
                                           std::uint64_t seed, int threads) {
  ThreadGuard guard;
  fedpp::set_max_threads(threads);
  fedpp::Rng rng(seed);
  attack.corrupt(byz, honest, ctx, rng);
  return byz;
}

}  // namespace fedpp_test
