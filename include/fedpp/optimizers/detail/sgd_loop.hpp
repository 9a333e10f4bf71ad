#pragma once
/// @file sgd_loop.hpp
/// The mini-batch SGD loop shared by every local optimizer (private helper): LocalSgd, FedProx,
/// Sam, FedDyn, FedSpeed and Scaffold differ only in the per-step terms they plug into it.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "fedpp/core/concepts.hpp"
#include "fedpp/core/dataset.hpp"
#include "fedpp/core/messages.hpp"
#include "fedpp/core/rng.hpp"
#include "fedpp/core/types.hpp"

namespace fedpp::detail {

/// What one run of sgd_loop does (already validated by the calling optimizer).
struct SgdLoopSettings {
  double lr = 0.05;           ///< this round's learning rate (after decay)
  int epochs = 1;             ///< epochs when steps == 0
  Index steps = 0;            ///< mini-batch steps when > 0
  Index batch_size = 32;      ///< mini-batch size
  double weight_decay = 0.0;  ///< L2 coefficient
  double momentum = 0.0;      ///< heavy-ball coefficient (0 = off)
  bool nesterov = false;      ///< Nesterov variant of the momentum step
  double clip_norm = 0.0;     ///< bound on the global norm of the clipped gradient (0 = off)
};

/// Fisher-Yates shuffle of `v` from `rng`.
inline void sgd_shuffle(std::vector<std::uint32_t>& v, Rng& rng) {
  for (std::size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.uniform_index(i)]);
}

/// The model's mini-batch loss gradient at w (the plain SGD gradient).
struct PlainGradient {
  /// g <- grad L_B(w); returns L_B(w).
  template <Model M>
  double operator()(const M& model, const Vector<typename M::Scalar>& w, const Matrix<typename M::Scalar>& X,
                    std::span<const Label> y, Vector<typename M::Scalar>& g) const {
    return model.loss_and_gradient(as_span(w), X, y, as_span(g));
  }
};

/// A per-step term that adds nothing.
struct NoTerm {
  /// Leaves g as it is.
  template <typename G, typename W>
  void operator()(G& /*g*/, const W& /*w*/) const noexcept {}
};

/// The three places where an optimizer changes the SGD step of scalar S (see sgd_loop).
/**
 * - `gradient(model, w, X, y, g)` writes the step's base gradient into g and returns the loss
 *   it reports (plain: the model's gradient at w; SAM: the gradient at the perturbed point);
 * - `linear`, when not null, is a vector added to it every step and clipped with it (SCAFFOLD's
 *   c - c_i, FedDyn's lambda (h_i - x_t): both constant over a round);
 * - `prox(g, w)` adds terms after clipping and weight decay (FedProx's mu (w - x_t)).
 */
template <typename S, typename Grad = PlainGradient, typename Prox = NoTerm>
struct StepTerms {
  Grad gradient{};                   ///< base gradient
  const Vector<S>* linear = nullptr; ///< constant term clipped with it (null: none)
  Prox prox{};                       ///< terms added after clipping and weight decay
  /// Whether prox adds anything.
  static constexpr bool has_prox = !std::is_same_v<Prox, NoTerm>;
};

/// Runs the mini-batch SGD loop on `params`.
/**
 * Per step, with (X, y) the next mini-batch of the epoch's shuffled order:
 *   loss = terms.gradient(model, w, X, y, g)   (plain: g = grad L_B(w))
 *   g <- g + *terms.linear                      (when not null)
 *   g <- g * min(1, clip_norm / ||g||)        (only when clip_norm > 0 and ||g|| > clip_norm)
 *   g <- g + weight_decay * w                 (only when weight_decay != 0)
 *   terms.prox(g, w)
 *   v <- momentum * v + g;  d = nesterov ? g + momentum * v : v   (only when momentum != 0)
 *   w <- w - lr * d
 * Each epoch (or, with `steps`, each pass of ceil(n / batch) batches) reshuffles from `rng`.
 * Without momentum and prox terms the last four lines run as one pass over the parameters
 * (the same operations in the same order per element, so the same bits as the unfused form).
 * @param momentum_buf the heavy-ball buffer (resized to zero when its size differs from params).
 */
template <Model M, typename Terms>
LocalResult sgd_loop(const M& model, Vector<typename M::Scalar>& params,
                     const DatasetView<typename M::Scalar>& data, const SgdLoopSettings& o,
                     Vector<typename M::Scalar>& momentum_buf, Rng& rng, Terms&& terms) {
  using S = typename M::Scalar;
  LocalResult res;
  const Index n = data.size();
  if (n == 0) return res;
  const Index bs = std::min(o.batch_size, n);
  const Index batches_per_epoch = (n + bs - 1) / bs;
  const Index total = o.steps > 0 ? o.steps : batches_per_epoch * o.epochs;

  std::vector<std::uint32_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), 0u);
  Matrix<S> X;
  std::vector<Label> y;
  Vector<S> grad(params.size());
  const S lr = static_cast<S>(o.lr);
  const S wd = static_cast<S>(o.weight_decay);
  const S beta = static_cast<S>(o.momentum);
  const bool use_momentum = o.momentum != 0.0;
  if (use_momentum && momentum_buf.size() != params.size()) momentum_buf = Vector<S>::Zero(params.size());
  double loss_sum = 0.0;

  for (Index step = 0; step < total; ++step) {
    const Index b = step % batches_per_epoch;
    if (b == 0) sgd_shuffle(order, rng);
    const Index first = b * bs;
    const Index count = std::min(bs, n - first);
    data.gather(std::span<const std::uint32_t>(order).subspan(static_cast<std::size_t>(first),
                                                              static_cast<std::size_t>(count)),
                X, y);
    loss_sum += terms.gradient(model, std::as_const(params), std::as_const(X), std::span<const Label>(y), grad);
    const Vector<S>* c = terms.linear;
    S scale(1);
    bool clipped = false;
    if (o.clip_norm > 0.0) {
      const double norm = c ? static_cast<double>((grad + *c).norm()) : static_cast<double>(grad.norm());
      if (norm > o.clip_norm) {
        scale = static_cast<S>(o.clip_norm / norm);
        clipped = true;
      }
    }
    res.samples += count;
    if (!use_momentum && !std::remove_cvref_t<Terms>::has_prox) {
      // w <- w - lr (scale (g + c) + wd w), one pass.
      if (c && wd != S(0)) params -= lr * (scale * (grad + *c) + wd * params);
      else if (c) params -= lr * (scale * (grad + *c));
      else if (wd != S(0)) params -= lr * (scale * grad + wd * params);
      else params -= lr * (scale * grad);
      continue;
    }
    if (c) grad += *c;
    if (clipped) grad *= scale;
    if (wd != S(0)) grad += wd * params;
    terms.prox(grad, std::as_const(params));
    if (use_momentum) {
      momentum_buf = beta * momentum_buf + grad;
      if (o.nesterov) {
        grad += beta * momentum_buf;
        params -= lr * grad;
      } else {
        params -= lr * momentum_buf;
      }
    } else {
      params -= lr * grad;
    }
  }
  res.steps = total;
  res.train_loss = loss_sum / static_cast<double>(total);
  return res;
}

}  // namespace fedpp::detail
