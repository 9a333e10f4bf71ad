#pragma once
/// @file server_sgd.hpp
/// The plain server step: global += server_lr * aggregated update (FedAvg with server learning rate).

#include <cmath>
#include <string>

#include "fedpp/core/concepts.hpp"
#include "fedpp/core/error.hpp"

namespace fedpp {

/// Settings of ServerSgd.
struct ServerSgdOptions {
  double lr = 1.0;  ///< server learning rate (1 = plain FedAvg), > 0
};

/// Applies the aggregated update with a server learning rate: x <- x + lr * update.
/**
 * With lr = 1 this is FedAvg (McMahan et al., 2017); other values are the "server learning
 * rate" of Reddi et al., 2021 (arXiv:2003.00295). No state.
 * @throws InvalidArgument for lr <= 0 or non-finite.
 */
class ServerSgd {
 public:
  /// Settings type.
  using Options = ServerSgdOptions;
  /// Server state: none.
  struct State {};

  /// Builds the optimizer, validating the learning rate.
  explicit ServerSgd(Options o = {}) : o_(o) {
    require(std::isfinite(o.lr) && o.lr > 0, "fedpp::ServerSgd", "lr must be finite and > 0", o.lr);
  }

  /// The settings.
  [[nodiscard]] const Options& options() const noexcept { return o_; }

  /// Creates the (empty) server state.
  template <typename S>
  [[nodiscard]] State make_state(Index /*dim*/) const noexcept {
    return {};
  }

  /// x <- x + lr * update.
  /** @throws DimensionError if the update's size differs from the model's (the model is unchanged). */
  template <typename S>
  void step(Vector<S>& params, const Vector<S>& update, State& /*state*/, std::uint64_t /*round*/) const {
    if (update.size() != params.size())
      fail<DimensionError>("fedpp::ServerSgd::step", "update size must equal the model size " +
                                                         std::to_string(params.size()), update.size());
    if (o_.lr == 1.0)
      params += update;
    else
      params += static_cast<S>(o_.lr) * update;
  }

 private:
  Options o_;
};

static_assert(ServerOptimizer<ServerSgd, float> && ServerOptimizer<ServerSgd, double>);

}  // namespace fedpp
