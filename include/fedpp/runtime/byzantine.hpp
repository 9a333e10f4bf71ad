#pragma once
/// @file byzantine.hpp
/// Simulated Byzantine corruption as a round-pipeline stage: the attack rewrites the Byzantine
/// participants' updates after validation and before aggregation.

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "fedpp/core/concepts.hpp"
#include "fedpp/core/error.hpp"
#include "fedpp/core/rng.hpp"
#include "fedpp/core/update_batch.hpp"

namespace fedpp {

/// Pipeline stage in which `attack` rewrites the columns of the Byzantine clients (the omniscient attacker).
/**
 * The round's batch (validated, in client-id order) is split into the honest and the Byzantine
 * columns (ids in `byzantine`, sorted); the attack's `corrupt(byz, honest, ctx, rng)` rewrites
 * the Byzantine ones, seeing the honest ones, with rng = make_rng(ctx.seed, ctx.round,
 * server_stream, Purpose::attack); the results go back into their columns. The pipeline then
 * validates them like received updates. Use with RoundPipeline::set_stage / Server::set_stage.
 * @tparam A an Attack
 * @tparam S scalar type
 */
template <typename A, typename S>
  requires Attack<A, S>
class ByzantineStage {
 public:
  /// `attack` controls the clients in `byzantine` (any order; sorted here).
  ByzantineStage(A attack, std::vector<ClientId> byzantine) : attack_(std::move(attack)), byz_(std::move(byzantine)) {
    std::sort(byz_.begin(), byz_.end());
  }

  /// Rewrites the Byzantine columns of `batch`.
  /// @throws DimensionError when the attack changes the number or dimension of the Byzantine updates.
  void operator()(UpdateBatch<S>& batch, const AggregationContext& ctx) {
    const Index d = batch.dim();
    UpdateBatch<S> honest(d, batch.size()), byz(d, static_cast<Index>(byz_.size()));
    std::vector<Index> byz_cols;
    for (Index i = 0; i < batch.size(); ++i) {
      const ClientId id = batch.ids()[static_cast<std::size_t>(i)];
      const double w = batch.weights()[static_cast<std::size_t>(i)];
      if (std::binary_search(byz_.begin(), byz_.end(), id)) {
        byz.push_back(id, w, batch.column(i));
        byz_cols.push_back(i);
      } else {
        honest.push_back(id, w, batch.column(i));
      }
    }
    if (byz.empty()) return;
    const AttackContext actx{ctx.round, batch.size(), byz.size()};
    Rng rng = make_rng(ctx.seed, ctx.round, server_stream, Purpose::attack);
    attack_.corrupt(byz, std::as_const(honest), actx, rng);
    if (byz.size() != static_cast<Index>(byz_cols.size()))
      fail<DimensionError>(name, "an attack must keep the number of Byzantine updates " + std::to_string(byz_cols.size()),
                           byz.size());
    if (byz.dim() != d) fail<DimensionError>(name, "an attack must keep the dimension " + std::to_string(d), byz.dim());
    for (std::size_t k = 0; k < byz_cols.size(); ++k) {
      const auto src = byz.column(static_cast<Index>(k));
      std::copy(src.begin(), src.end(), batch.column(byz_cols[k]).begin());
    }
  }

  /// cereal: the attack's own state when it has any (a `serialize` member, e.g. Mimic's
  /// heuristic), so a checkpoint carries it; the Byzantine ids are configuration.
  template <class Archive>
  void serialize(Archive& ar) {
    if constexpr (requires { attack_.serialize(ar); }) ar(attack_);
  }

  /// The attack.
  [[nodiscard]] const A& attack() const noexcept { return attack_; }
  /// The Byzantine client ids (sorted).
  [[nodiscard]] const std::vector<ClientId>& byzantine() const noexcept { return byz_; }

 private:
  static constexpr const char* name = "fedpp::ByzantineStage";
  A attack_;
  std::vector<ClientId> byz_;
};

}  // namespace fedpp
