#pragma once
/// @file local_sgd.hpp
/// Plain mini-batch SGD as a client's local optimizer (the local step of FedAvg).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string_view>
#include <vector>

#include "fedpp/core/archetypes.hpp"
#include "fedpp/core/concepts.hpp"
#include "fedpp/core/error.hpp"
#include "fedpp/optimizers/detail/sgd_loop.hpp"

namespace fedpp {

/// Settings of LocalSgd (designated-initialiser friendly: `LocalSgd({.lr = 0.05, .epochs = 1})`).
struct LocalSgdOptions {
  double lr = 0.05;           ///< learning rate, > 0
  int epochs = 1;             ///< local epochs over the client's data (used when steps == 0)
  Index steps = 0;            ///< when > 0: exactly this many mini-batch steps instead of epochs
  Index batch_size = 32;      ///< mini-batch size (the last batch of an epoch may be smaller)
  double weight_decay = 0.0;  ///< L2 coefficient added to the gradient: g + wd * w
  double momentum = 0.0;      ///< heavy-ball coefficient beta in [0, 1) (0 = plain SGD)
  bool nesterov = false;      ///< Nesterov momentum (needs momentum > 0)
  bool reset_momentum_each_round = true;  ///< zero the momentum buffer at the start of every round
  double clip_norm = 0.0;     ///< clip the loss gradient to this global L2 norm (0 = off)
  double lr_decay = 1.0;      ///< per-round decay in (0, 1]: lr_round = lr * lr_decay^round
};

/// Per-client state of LocalSgd / FedProx: the heavy-ball buffer (empty without momentum).
template <typename S>
struct LocalSgdState {
  Vector<S> momentum;  ///< v, kept across rounds only with reset_momentum_each_round = false

  /// cereal: the momentum buffer.
  template <class Archive>
  void serialize(Archive& ar) {
    ar(momentum);
  }
};

namespace detail {

/// Validates LocalSgdOptions, naming `who` in the messages.
inline LocalSgdOptions check_local_sgd_options(const LocalSgdOptions& o, std::string_view who) {
  require(std::isfinite(o.lr) && o.lr > 0, who, "lr must be finite and > 0", o.lr);
  require(o.steps >= 0, who, "steps must be >= 0", o.steps);
  if (o.steps == 0) require(o.epochs >= 1, who, "epochs must be >= 1 when steps == 0", o.epochs);
  require(o.batch_size >= 1, who, "batch_size must be >= 1", o.batch_size);
  require(std::isfinite(o.weight_decay) && o.weight_decay >= 0, who, "weight_decay must be finite and >= 0",
          o.weight_decay);
  require(std::isfinite(o.momentum) && o.momentum >= 0 && o.momentum < 1, who, "momentum must be in [0, 1)",
          o.momentum);
  require(!o.nesterov || o.momentum > 0, who, "nesterov needs momentum > 0", o.momentum);
  require(std::isfinite(o.clip_norm) && o.clip_norm >= 0, who, "clip_norm must be finite and >= 0 (0 = off)",
          o.clip_norm);
  require(std::isfinite(o.lr_decay) && o.lr_decay > 0 && o.lr_decay <= 1, who, "lr_decay must be in (0, 1]",
          o.lr_decay);
  return o;
}

/// The loop settings of one round: lr * lr_decay^round and the rest of `o`.
inline SgdLoopSettings sgd_round_settings(const LocalSgdOptions& o, std::uint64_t round) {
  const double lr = o.lr_decay == 1.0 ? o.lr : o.lr * std::pow(o.lr_decay, static_cast<double>(round));
  return {.lr = lr,
          .epochs = o.epochs,
          .steps = o.steps,
          .batch_size = o.batch_size,
          .weight_decay = o.weight_decay,
          .momentum = o.momentum,
          .nesterov = o.nesterov,
          .clip_norm = o.clip_norm};
}

/// A fresh momentum buffer for `o`: d zeros when momentum > 0, else empty.
template <typename S>
Vector<S> momentum_buffer(const LocalSgdOptions& o, Index d) {
  return o.momentum != 0.0 ? Vector<S>::Zero(d) : Vector<S>();
}

/// A fresh LocalSgdState for `o` over d parameters.
template <typename S>
LocalSgdState<S> fresh_sgd_state(const LocalSgdOptions& o, Index d) {
  return {momentum_buffer<S>(o, d)};
}

/// Applies the momentum-reset convention to a client's momentum buffer before a round.
template <typename S>
void begin_sgd_round(const LocalSgdOptions& o, Vector<S>& momentum) {
  if (o.momentum == 0.0) return;
  if (o.reset_momentum_each_round) momentum.setZero();
}

/// Applies the momentum-reset convention to a client's state before a round.
template <typename S>
void begin_sgd_round(const LocalSgdOptions& o, LocalSgdState<S>& st) {
  begin_sgd_round(o, st.momentum);
}

}  // namespace detail

/// Mini-batch SGD over the client's shard, reshuffled every epoch from the client's stream.
/**
 * Runs `epochs` passes (or `steps` mini-batch steps, cycling through reshuffled epochs) of
 * w <- w - lr_t * d with g = clip(grad) + weight_decay * w and d = g (plain), d = v with
 * v <- momentum * v + g (heavy ball), or d = g + momentum * v (Nesterov), where
 * clip(grad) = grad * min(1, clip_norm / ||grad||) and lr_t = lr * lr_decay^round.
 * McMahan et al., 2017 (arXiv:1602.05629), ClientUpdate; momentum as in PyTorch's SGD.
 * Momentum convention: the buffer lives in the per-client state; by default
 * (reset_momentum_each_round = true) it is zeroed at the start of each round, as in FedAvg
 * implementations that build a fresh client optimizer every round (e.g. FL-Simulator); with
 * false it carries over between the client's participations.
 * @throws InvalidArgument for lr <= 0, epochs < 1 (with steps == 0), steps < 0, batch_size < 1,
 *         weight_decay < 0, momentum outside [0, 1), nesterov without momentum, clip_norm < 0,
 *         lr_decay outside (0, 1] or any non-finite value.
 */
class LocalSgd {
 public:
  /// Settings type.
  using Options = LocalSgdOptions;
  /// Per-client state for scalar S: the momentum buffer.
  template <typename S>
  using State = LocalSgdState<S>;

  /// Builds the optimizer, validating every setting.
  explicit LocalSgd(Options o = {}) : o_(detail::check_local_sgd_options(o, "fedpp::LocalSgd")) {}

  /// The settings.
  [[nodiscard]] const Options& options() const noexcept { return o_; }

  /// Creates the per-client state (a zero momentum buffer when momentum > 0, else empty).
  template <Model M>
  [[nodiscard]] State<typename M::Scalar> make_state(const M& model) const {
    return detail::fresh_sgd_state<typename M::Scalar>(o_, model.num_params());
  }

  /// Trains `params` in place on `data`; returns the mean mini-batch loss and step counts.
  template <Model M>
  LocalResult train(const M& model, Vector<typename M::Scalar>& params, const DatasetView<typename M::Scalar>& data,
                    State<typename M::Scalar>& state, const RoundContext& ctx, Rng& rng) const {
    detail::begin_sgd_round(o_, state);
    return detail::sgd_loop(model, params, data, detail::sgd_round_settings(o_, ctx.round), state.momentum, rng,
                            detail::StepTerms<typename M::Scalar>{});
  }

 private:
  Options o_;
};

static_assert(LocalOptimizer<LocalSgd, archetypes::ModelArchetype<float>> &&
              LocalOptimizer<LocalSgd, archetypes::ModelArchetype<double>>);

}  // namespace fedpp
