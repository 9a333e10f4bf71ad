#pragma once
/// @file no_attack.hpp
/// The absence of an attack: Byzantine clients behave honestly.

#include "fedpp/core/concepts.hpp"

namespace fedpp {

/// Leaves every update as it is.
struct NoAttack {
  /// Does nothing.
  template <typename S>
  void corrupt(UpdateBatch<S>& /*byz*/, const UpdateBatch<S>& /*honest*/, const AttackContext& /*ctx*/,
               Rng& /*rng*/) const noexcept {}
};

static_assert(Attack<NoAttack, float> && Attack<NoAttack, double>);

}  // namespace fedpp
