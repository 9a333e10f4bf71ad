#pragma once
/// @file server_momentum.hpp
/// FedAvgM: server momentum over the aggregated client update (Hsu, Qi, Brown 2019, arXiv:1909.06335).

#include <cmath>
#include <cstdint>
#include <string_view>

#include "fedpp/core/concepts.hpp"
#include "fedpp/core/config.hpp"
#include "fedpp/core/error.hpp"
#include "fedpp/core/types.hpp"

namespace fedpp {

/// Settings of ServerMomentum.
struct ServerMomentumOptions {
  double lr = 1.0;        ///< server learning rate, finite and > 0
  double momentum = 0.9;  ///< momentum coefficient beta, in [0, 1)
  bool nesterov = false;  ///< Nesterov form: x <- x + lr * (beta * v + update)
};

/// Server momentum (FedAvgM): v <- beta * v + update; x <- x + lr * v.
/**
 * Hsu, Qi, Brown, "Measuring the effects of non-identical data distribution for federated
 * visual classification", 2019 (arXiv:1909.06335). `update` is the aggregated client delta
 * (local - global), so with beta = 0 and lr = 1 this is FedAvg. With `nesterov` the step uses
 * the look-ahead x <- x + lr * (beta * v + update) after updating v.
 *
 * The velocity is kept in double whatever S is (8 bytes per parameter); each element is
 * computed in double and rounded to S once. The loop is elementwise with a static OpenMP
 * partition, so the result does not depend on the thread count.
 * @throws InvalidArgument for lr <= 0, momentum outside [0, 1), or non-finite values.
 */
class ServerMomentum {
 public:
  /// Settings type.
  using Options = ServerMomentumOptions;

  /// Server state: the velocity and the number of steps taken.
  struct State {
    Vector<double> velocity;  ///< v, one entry per parameter (zero initially)
    std::uint64_t steps = 0;  ///< number of step() calls applied

    /// Lists the fields for cereal.
    template <class Archive>
    void serialize(Archive& ar) {
      ar(velocity, steps);
    }
  };

  /// Builds the optimizer, validating the settings.
  explicit ServerMomentum(Options o = {}) : o_(o) {
    require(std::isfinite(o.lr) && o.lr > 0, where, "lr must be finite and > 0", o.lr);
    require(std::isfinite(o.momentum) && o.momentum >= 0 && o.momentum < 1, where, "momentum must be in [0, 1)",
            o.momentum);
  }

  /// The settings.
  [[nodiscard]] const Options& options() const noexcept { return o_; }

  /// Creates the server state: a zero velocity of `dim` entries.
  /** @throws InvalidArgument if dim < 0. */
  template <typename S>
  [[nodiscard]] State make_state(Index dim) const {
    require(dim >= 0, where, "dim must be >= 0", dim);
    return State{Vector<double>::Zero(dim), 0};
  }

  /// v <- beta * v + update; x <- x + lr * v (or lr * (beta * v + update) with Nesterov).
  /** @throws DimensionError if params, update and state sizes differ. */
  template <typename S>
  void step(Vector<S>& params, const Vector<S>& update, State& state, std::uint64_t /*round*/) const {
    require<DimensionError>(update.size() == params.size(), where, "update size must equal the model size",
                            update.size());
    require<DimensionError>(state.velocity.size() == params.size(), where,
                            "state size must equal the model size", state.velocity.size());
    const double lr = o_.lr;
    const double beta = o_.momentum;
    const bool nesterov = o_.nesterov;
    const Index n = params.size();
    S* x = params.data();
    const S* u = update.data();
    double* v = state.velocity.data();
    FEDPP_OMP_PARALLEL_FOR
    for (Index i = 0; i < n; ++i) {
      const double d = static_cast<double>(u[i]);
      const double vi = beta * v[i] + d;
      v[i] = vi;
      const double dir = nesterov ? beta * vi + d : vi;
      x[i] = static_cast<S>(static_cast<double>(x[i]) + lr * dir);
    }
    ++state.steps;
  }

 private:
  static constexpr std::string_view where = "fedpp::ServerMomentum";
  Options o_;
};

static_assert(ServerOptimizer<ServerMomentum, float> && ServerOptimizer<ServerMomentum, double>);

}  // namespace fedpp
