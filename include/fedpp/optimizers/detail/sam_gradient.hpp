#pragma once
/// @file sam_gradient.hpp
/// The sharpness-aware gradient of SAM/ASAM with FedSpeed's quasi-gradient mixing (private helper
/// of Sam and FedSpeed, plugged into sgd_loop as the step's base gradient).

#include <cmath>
#include <span>
#include <string_view>

#include "fedpp/core/concepts.hpp"
#include "fedpp/core/error.hpp"
#include "fedpp/core/types.hpp"

namespace fedpp::detail {

/// Settings of the perturbed gradient (validated by the owning optimizer).
struct SamSettings {
  double rho = 0.05;     ///< perturbation radius
  bool adaptive = false; ///< ASAM scaling by |w|
  double alpha = 1.0;    ///< weight of the perturbed gradient in the mix (1 = pure SAM)
  double eps = 1e-7;     ///< added to the perturbation's normaliser
};

/// Validates SamSettings, naming `who` in the messages.
inline void check_sam_settings(const SamSettings& s, std::string_view who) {
  require(std::isfinite(s.rho) && s.rho >= 0, who, "rho must be finite and >= 0", s.rho);
  require(std::isfinite(s.alpha) && s.alpha >= 0 && s.alpha <= 1, who, "alpha must be in [0, 1]", s.alpha);
  require(std::isfinite(s.eps) && s.eps >= 0, who, "eps must be finite and >= 0", s.eps);
}

/// g = (1 - alpha) grad L_B(w) + alpha grad L_B(w + e), e the SAM (or ASAM) ascent step.
/**
 * With g1 = grad L_B(w) (loss gradient only: no weight decay, no correction terms):
 *   SAM:  e = rho g1 / (||g1|| + eps)                         (Foret et al., ICLR 2021)
 *   ASAM: e = rho w^2 g1 / (||w g1|| + eps), products elementwise  (Kwon et al., ICML 2021)
 * norms global over all parameters. With rho = 0 or alpha = 0, or a zero or non-finite normaliser,
 * g = g1 without a second pass. Returns L_B(w), the loss at the unperturbed point.
 * Scratch (the perturbed point, and g1 when alpha < 1) is sized on first use and reused across steps.
 */
template <typename S>
struct SamGradient {
  SamSettings settings;  ///< radius, ASAM, mixing
  Vector<S> g1;          ///< gradient at w (scratch)
  Vector<S> point;       ///< w + e (scratch)

  /// g <- the mixed gradient at w; returns L_B(w).
  template <Model M>
    requires std::same_as<typename M::Scalar, S>
  double operator()(const M& model, const Vector<S>& w, const Matrix<S>& X, std::span<const Label> y,
                    Vector<S>& g) {
    if (settings.rho == 0.0 || settings.alpha == 0.0) return model.loss_and_gradient(as_span(w), X, y, as_span(g));
    // g1 is needed after the second pass only for the mix; with alpha = 1 it lives in g itself,
    // which keeps one vector fewer in cache (the values are the same).
    const bool mix = settings.alpha != 1.0;
    Vector<S>& first = mix ? g1 : g;
    first.resize(w.size());
    const double loss = model.loss_and_gradient(as_span(w), X, y, as_span(first));
    const double norm = settings.adaptive ? static_cast<double>(w.cwiseAbs().cwiseProduct(first).norm())
                                          : static_cast<double>(first.norm());
    const double denom = norm + settings.eps;
    if (!(denom > 0.0) || !std::isfinite(denom)) {
      if (mix) g = g1;  // no ascent direction: the perturbed gradient is the plain one
      return loss;
    }
    const S scale = static_cast<S>(settings.rho / denom);
    if (settings.adaptive)
      point = w + scale * w.cwiseProduct(w).cwiseProduct(first);
    else
      point = w + scale * first;
    model.loss_and_gradient(as_span(std::as_const(point)), X, y, as_span(g));
    if (mix) {
      const S a = static_cast<S>(settings.alpha);
      g = (S(1) - a) * g1 + a * g;
    }
    return loss;
  }
};

}  // namespace fedpp::detail
