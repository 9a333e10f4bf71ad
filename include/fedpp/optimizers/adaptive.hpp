#pragma once
/// @file adaptive.hpp
/// Adaptive server optimizers FedAdagrad, FedYogi and FedAdam (Reddi et al., ICLR 2021,
/// "Adaptive Federated Optimization", arXiv:2003.00295, Algorithm 2).

#include <cmath>
#include <cstdint>
#include <string_view>

#include "fedpp/core/concepts.hpp"
#include "fedpp/core/config.hpp"
#include "fedpp/core/error.hpp"
#include "fedpp/core/types.hpp"

namespace fedpp {

/// Settings shared by FedAdagrad, FedYogi and FedAdam.
struct AdaptiveServerOptions {
  double lr = 1e-2;              ///< server learning rate eta, finite and > 0
  double beta1 = 0.9;            ///< first-moment decay, in [0, 1)
  double beta2 = 0.99;           ///< second-moment decay, in [0, 1) (unused by FedAdagrad)
  double tau = 1e-3;             ///< adaptivity tau (added to sqrt(v); v starts at tau^2), finite and > 0
  bool bias_correction = false;  ///< divide m by 1 - beta1^t and (Adam/Yogi) v by 1 - beta2^t
};

/// Which second-moment rule an AdaptiveServer uses.
enum class AdaptiveRule {
  adagrad,  ///< v <- v + d^2
  yogi,     ///< v <- v - (1 - beta2) d^2 sign(v - d^2)
  adam,     ///< v <- beta2 v + (1 - beta2) d^2
};

/// Adaptive server step of Reddi et al. 2021 (arXiv:2003.00295), Algorithm 2.
/**
 * With d the aggregated client update (local - global):
 *   m <- beta1 m + (1 - beta1) d;  v <- rule(v, d^2);  x <- x + lr m / (sqrt(v) + tau).
 * v starts at tau^2 (the paper requires v_{-1} >= tau^2 and uses that value); m starts at 0.
 * With `bias_correction` (not in the paper) m is divided by 1 - beta1^t and, for Adam and Yogi,
 * v by 1 - beta2^t, t the 1-based step count.
 *
 * State m and v are double whatever S is (16 bytes per parameter); each element is computed in
 * double and rounded to S once. The loop is elementwise with a static OpenMP partition, so the
 * result does not depend on the thread count.
 * @tparam R the second-moment rule.
 * @throws InvalidArgument for lr <= 0, beta1/beta2 outside [0, 1), tau <= 0 or non-finite values.
 */
template <AdaptiveRule R>
class AdaptiveServer {
 public:
  /// Settings type.
  using Options = AdaptiveServerOptions;

  /// Server state: first and second moments and the step count.
  struct State {
    Vector<double> m;         ///< first moment (zero initially)
    Vector<double> v;         ///< second moment (tau^2 initially)
    std::uint64_t steps = 0;  ///< number of step() calls applied

    /// Lists the fields for cereal.
    template <class Archive>
    void serialize(Archive& ar) {
      ar(m, v, steps);
    }
  };

  /// Class name used in error messages ("fedpp::FedAdam" etc.).
  static constexpr std::string_view name = R == AdaptiveRule::adagrad ? "fedpp::FedAdagrad"
                                           : R == AdaptiveRule::yogi  ? "fedpp::FedYogi"
                                                                      : "fedpp::FedAdam";

  /// Builds the optimizer, validating the settings.
  explicit AdaptiveServer(Options o = {}) : o_(o) {
    require(std::isfinite(o.lr) && o.lr > 0, name, "lr must be finite and > 0", o.lr);
    require(std::isfinite(o.beta1) && o.beta1 >= 0 && o.beta1 < 1, name, "beta1 must be in [0, 1)", o.beta1);
    require(std::isfinite(o.beta2) && o.beta2 >= 0 && o.beta2 < 1, name, "beta2 must be in [0, 1)", o.beta2);
    require(std::isfinite(o.tau) && o.tau > 0, name, "tau must be finite and > 0", o.tau);
  }

  /// The settings.
  [[nodiscard]] const Options& options() const noexcept { return o_; }

  /// Creates the server state: m = 0, v = tau^2, `dim` entries each.
  /** @throws InvalidArgument if dim < 0. */
  template <typename S>
  [[nodiscard]] State make_state(Index dim) const {
    require(dim >= 0, name, "dim must be >= 0", dim);
    return State{Vector<double>::Zero(dim), Vector<double>::Constant(dim, o_.tau * o_.tau), 0};
  }

  /// One server step: updates m and v from `update`, then x <- x + lr m / (sqrt(v) + tau).
  /** @throws DimensionError if params, update and state sizes differ. */
  template <typename S>
  void step(Vector<S>& params, const Vector<S>& update, State& state, std::uint64_t /*round*/) const {
    require<DimensionError>(update.size() == params.size(), name, "update size must equal the model size",
                            update.size());
    require<DimensionError>(state.m.size() == params.size() && state.v.size() == params.size(), name,
                            "state size must equal the model size", state.m.size());
    const std::uint64_t t = state.steps + 1;
    const double b1 = o_.beta1;
    const double b2 = o_.beta2;
    const double lr = o_.lr;
    const double tau = o_.tau;
    double mscale = 1.0;
    double vscale = 1.0;
    if (o_.bias_correction) {
      mscale = 1.0 / (1.0 - std::pow(b1, static_cast<double>(t)));
      if constexpr (R != AdaptiveRule::adagrad) vscale = 1.0 / (1.0 - std::pow(b2, static_cast<double>(t)));
    }
    const Index n = params.size();
    S* x = params.data();
    const S* u = update.data();
    double* m = state.m.data();
    double* v = state.v.data();
    FEDPP_OMP_PARALLEL_FOR
    for (Index i = 0; i < n; ++i) {
      const double d = static_cast<double>(u[i]);
      const double d2 = d * d;
      const double mi = b1 * m[i] + (1.0 - b1) * d;
      double vi = v[i];
      if constexpr (R == AdaptiveRule::adagrad) {
        vi = vi + d2;
      } else if constexpr (R == AdaptiveRule::yogi) {
        const double s = vi > d2 ? 1.0 : (vi < d2 ? -1.0 : 0.0);
        vi = vi - (1.0 - b2) * d2 * s;
      } else {
        vi = b2 * vi + (1.0 - b2) * d2;
      }
      m[i] = mi;
      v[i] = vi;
      x[i] = static_cast<S>(static_cast<double>(x[i]) + lr * (mi * mscale) / (std::sqrt(vi * vscale) + tau));
    }
    state.steps = t;
  }

 private:
  Options o_;
};

/// FedAdagrad (Reddi et al. 2021, arXiv:2003.00295): v <- v + d^2.
using FedAdagrad = AdaptiveServer<AdaptiveRule::adagrad>;
/// FedYogi (Reddi et al. 2021, arXiv:2003.00295): v <- v - (1 - beta2) d^2 sign(v - d^2).
using FedYogi = AdaptiveServer<AdaptiveRule::yogi>;
/// FedAdam (Reddi et al. 2021, arXiv:2003.00295): v <- beta2 v + (1 - beta2) d^2.
using FedAdam = AdaptiveServer<AdaptiveRule::adam>;
/// Settings of FedAdagrad, FedYogi and FedAdam.
using FedAdamOptions = AdaptiveServerOptions;

static_assert(ServerOptimizer<FedAdagrad, float> && ServerOptimizer<FedAdagrad, double>);
static_assert(ServerOptimizer<FedYogi, float> && ServerOptimizer<FedYogi, double>);
static_assert(ServerOptimizer<FedAdam, float> && ServerOptimizer<FedAdam, double>);

}  // namespace fedpp
