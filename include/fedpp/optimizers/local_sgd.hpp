#pragma once
/// @file local_sgd.hpp
/// Plain mini-batch SGD as a client's local optimizer (the local step of FedAvg).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "fedpp/core/archetypes.hpp"
#include "fedpp/core/concepts.hpp"
#include "fedpp/core/error.hpp"

namespace fedpp {

/// Settings of LocalSgd (designated-initialiser friendly: `LocalSgd({.lr = 0.05, .epochs = 1})`).
struct LocalSgdOptions {
  double lr = 0.05;           ///< learning rate, > 0
  int epochs = 1;             ///< local epochs over the client's data (used when steps == 0)
  Index steps = 0;            ///< when > 0: exactly this many mini-batch steps instead of epochs
  Index batch_size = 32;      ///< mini-batch size (the last batch of an epoch may be smaller)
  double weight_decay = 0.0;  ///< L2 coefficient added to the gradient: g + wd * w
};

/// Mini-batch SGD over the client's shard, reshuffled every epoch from the client's stream.
/**
 * Runs `epochs` passes (or `steps` mini-batch steps, cycling through reshuffled epochs) of
 * w <- w - lr * (grad + weight_decay * w). McMahan et al., 2017 (arXiv:1602.05629), ClientUpdate.
 * Stateless across rounds (its per-client state is empty).
 * @throws InvalidArgument for lr <= 0, epochs < 1 (with steps == 0), steps < 0, batch_size < 1,
 *         weight_decay < 0 or any non-finite value.
 */
class LocalSgd {
 public:
  /// Settings type.
  using Options = LocalSgdOptions;
  /// Per-client state: none.
  struct State {};

  /// Builds the optimizer, validating every setting.
  explicit LocalSgd(Options o = {}) : o_(check(o)) {}

  /// The settings.
  [[nodiscard]] const Options& options() const noexcept { return o_; }

  /// Creates the (empty) per-client state.
  template <Model M>
  [[nodiscard]] State make_state(const M& /*model*/) const noexcept {
    return {};
  }

  /// Trains `params` in place on `data`; returns the mean mini-batch loss and step counts.
  template <Model M>
  LocalResult train(const M& model, Vector<typename M::Scalar>& params, const DatasetView<typename M::Scalar>& data,
                    State& /*state*/, const RoundContext& /*ctx*/, Rng& rng) const {
    using S = typename M::Scalar;
    LocalResult res;
    const Index n = data.size();
    if (n == 0) return res;
    const Index bs = std::min(o_.batch_size, n);
    const Index batches_per_epoch = (n + bs - 1) / bs;
    const Index total = o_.steps > 0 ? o_.steps : batches_per_epoch * o_.epochs;

    std::vector<std::uint32_t> order(static_cast<std::size_t>(n));
    std::iota(order.begin(), order.end(), 0u);
    Matrix<S> X;
    std::vector<Label> y;
    Vector<S> grad(params.size());
    const S lr = static_cast<S>(o_.lr);
    const S wd = static_cast<S>(o_.weight_decay);
    double loss_sum = 0.0;

    for (Index step = 0; step < total; ++step) {
      const Index b = step % batches_per_epoch;
      if (b == 0) shuffle(order, rng);
      const Index first = b * bs;
      const Index count = std::min(bs, n - first);
      data.gather(std::span<const std::uint32_t>(order).subspan(static_cast<std::size_t>(first),
                                                                static_cast<std::size_t>(count)),
                  X, y);
      loss_sum += model.loss_and_gradient(as_span(std::as_const(params)), X, y, as_span(grad));
      if (wd != S(0)) grad += wd * params;
      params -= lr * grad;
      res.samples += count;
    }
    res.steps = total;
    res.train_loss = loss_sum / static_cast<double>(total);
    return res;
  }

 private:
  static void shuffle(std::vector<std::uint32_t>& v, Rng& rng) {
    for (std::size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.uniform_index(i)]);
  }

  static Options check(const Options& o) {
    constexpr std::string_view who = "fedpp::LocalSgd";
    require(std::isfinite(o.lr) && o.lr > 0, who, "lr must be finite and > 0", o.lr);
    require(o.steps >= 0, who, "steps must be >= 0", o.steps);
    if (o.steps == 0) require(o.epochs >= 1, who, "epochs must be >= 1 when steps == 0", o.epochs);
    require(o.batch_size >= 1, who, "batch_size must be >= 1", o.batch_size);
    require(std::isfinite(o.weight_decay) && o.weight_decay >= 0, who, "weight_decay must be finite and >= 0",
            o.weight_decay);
    return o;
  }

  Options o_;
};

static_assert(LocalOptimizer<LocalSgd, archetypes::ModelArchetype<float>> &&
              LocalOptimizer<LocalSgd, archetypes::ModelArchetype<double>>);

}  // namespace fedpp
