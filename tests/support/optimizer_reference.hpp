#pragma once
// Independent references for the optimizer tests, written from the documented formulas in plain
// loops over doubles (never through fedpp's sgd_loop, SamGradient or any optimizer):
// - FieldRecorder and to_ld for the server-optimizer tests (state fields, long-double references);
// - the mini-batch schedule of an epoch-reshuffling loop, the gradient of a quadratic mini-batch,
//   the SAM/ASAM perturbed gradient and the local step (correction, clipping, weight decay,
//   proximal term, heavy-ball / Nesterov momentum) for the local-optimizer tests;
// - comparison helpers.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fedpp/core/rng.hpp"
#include "fedpp/core/types.hpp"

namespace fedpp_test {

/// An archive stand-in that records the address of every field serialize() hands it, in order.
struct FieldRecorder {
  std::vector<const void*> fields;  ///< the addresses of the listed fields
  /// Records the address of each field.
  template <class... T>
  void operator()(T&... t) {
    (fields.push_back(static_cast<const void*>(&t)), ...);
  }
};

/// The entries of a, converted to long double.
template <typename S>
std::vector<long double> to_ld(const fedpp::Vector<S>& a) {
  std::vector<long double> out(static_cast<std::size_t>(a.size()));
  for (fedpp::Index i = 0; i < a.size(); ++i) out[static_cast<std::size_t>(i)] = static_cast<long double>(a[i]);
  return out;
}

/// A plain vector of doubles (the references never use Eigen arithmetic).
using RefVec = std::vector<double>;

/// The entries of a as a RefVec.
inline RefVec to_ref(const fedpp::Vector<double>& a) {
  RefVec out(static_cast<std::size_t>(a.size()));
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = a[static_cast<fedpp::Index>(i)];
  return out;
}

/// max_i |a_i - b_i| / max(1, max_i |b_i|): the error of a against the reference b.
inline double rel_error(const fedpp::Vector<double>& a, const RefVec& b) {
  if (static_cast<std::size_t>(a.size()) != b.size()) return INFINITY;
  double err = 0, scale = 1;
  for (std::size_t i = 0; i < b.size(); ++i) {
    err = std::max(err, std::abs(a[static_cast<fedpp::Index>(i)] - b[i]));
    scale = std::max(scale, std::abs(b[i]));
  }
  return err / scale;
}

/// Euclidean norm, summed in index order.
inline double ref_norm(const RefVec& a) {
  double s = 0;
  for (double x : a) s += x * x;
  return std::sqrt(s);
}

/// The sample indices of each of `total` mini-batch steps over n samples in batches of `batch`.
/**
 * The documented schedule: a pass is ceil(n / batch) batches over the current order (the last one
 * smaller when batch does not divide n); every pass starts by shuffling the order in place with
 * Fisher-Yates from `rng` (for i = n-1 down to 1, swap entries i and uniform_index(i + 1)); the
 * order starts as 0, 1, ..., n-1.
 */
inline std::vector<std::vector<std::uint32_t>> ref_batches(std::size_t n, std::size_t batch, std::size_t total,
                                                           fedpp::Rng& rng) {
  std::vector<std::uint32_t> order(n);
  for (std::size_t i = 0; i < n; ++i) order[i] = static_cast<std::uint32_t>(i);
  const std::size_t per_pass = (n + batch - 1) / batch;
  std::vector<std::vector<std::uint32_t>> out;
  for (std::size_t s = 0; s < total; ++s) {
    const std::size_t k = s % per_pass;
    if (k == 0 && n > 1)
      for (std::size_t i = n - 1; i >= 1; --i) std::swap(order[i], order[rng.uniform_index(i + 1)]);
    const std::size_t lo = k * batch;
    const std::size_t hi = std::min(n, lo + batch);
    out.emplace_back(order.begin() + static_cast<std::ptrdiff_t>(lo), order.begin() + static_cast<std::ptrdiff_t>(hi));
  }
  return out;
}

/// Loss and gradient of f_B(w) = (1/|B|) sum_{j in B} 0.5 a_j ||w - x_j||^2 (fedpp_test::Quadratic's objective).
/** Column j of `pts` holds x_j in rows 0..d-1 and a_j in row d (the layout of quadratic_points). */
inline double ref_quadratic_batch(const fedpp::Matrix<double>& pts, const std::vector<std::uint32_t>& batch,
                                  const RefVec& w, RefVec& g) {
  const std::size_t d = w.size();
  g.assign(d, 0.0);
  double loss = 0;
  for (std::uint32_t j : batch) {
    const auto col = static_cast<fedpp::Index>(j);
    const double a = pts(static_cast<fedpp::Index>(d), col);
    double sq = 0;
    for (std::size_t k = 0; k < d; ++k) {
      const double r = w[k] - pts(static_cast<fedpp::Index>(k), col);
      sq += r * r;
      g[k] += a * r;
    }
    loss += 0.5 * a * sq;
  }
  const auto m = static_cast<double>(batch.size());
  for (double& x : g) x /= m;
  return loss / m;
}

/// The SAM / ASAM / FedSpeed base gradient on a quadratic mini-batch; returns f_B(w).
/**
 * g1 = grad f_B(w); n = ||g1|| (ASAM: || |w| * g1 ||, elementwise product); when rho = 0, alpha = 0,
 * or n + eps is not a positive finite number, g = g1; else e = rho / (n + eps) * g1 (ASAM:
 * rho / (n + eps) * w * w * g1), g2 = grad f_B(w + e) and g = (1 - alpha) g1 + alpha g2.
 */
inline double ref_sam_batch(const fedpp::Matrix<double>& pts, const std::vector<std::uint32_t>& batch, const RefVec& w,
                            double rho, bool adaptive, double alpha, double eps, RefVec& g) {
  RefVec g1;
  const double loss = ref_quadratic_batch(pts, batch, w, g1);
  g = g1;
  if (rho == 0.0 || alpha == 0.0) return loss;
  double sq = 0;
  for (std::size_t k = 0; k < w.size(); ++k) {
    const double t = adaptive ? std::abs(w[k]) * g1[k] : g1[k];
    sq += t * t;
  }
  const double denom = std::sqrt(sq) + eps;
  if (!(denom > 0.0) || !std::isfinite(denom)) return loss;
  RefVec point(w.size()), g2;
  for (std::size_t k = 0; k < w.size(); ++k)
    point[k] = w[k] + rho / denom * (adaptive ? w[k] * w[k] * g1[k] : g1[k]);
  ref_quadratic_batch(pts, batch, point, g2);
  for (std::size_t k = 0; k < w.size(); ++k) g[k] = (1.0 - alpha) * g1[k] + alpha * g2[k];
  return loss;
}

/// Settings of ref_local_step.
struct RefStepSettings {
  double lr = 0.1;         ///< this round's learning rate
  double wd = 0.0;         ///< weight decay (added after clipping)
  double momentum = 0.0;   ///< heavy-ball beta (0 = none)
  bool nesterov = false;   ///< Nesterov direction
  double clip = 0.0;       ///< clipping bound on ||g + lin|| (0 = none)
  double mu = 0.0;         ///< proximal coefficient around `anchor` (added after clipping)
};

/// One local step as the optimizers document it, from the base gradient g; returns whether it clipped.
/**
 *   u = g + lin                                      (lin empty: no correction)
 *   u <- u * clip / ||u||    when clip > 0 and ||u|| > clip
 *   u <- u + wd w + mu (w - anchor)
 *   beta > 0: v <- beta v + u and d = v (Nesterov: d = u + beta v); else d = u
 *   w <- w - lr d
 */
inline bool ref_local_step(RefVec& w, RefVec& v, RefVec u, const RefVec& lin, const RefVec& anchor,
                           const RefStepSettings& s) {
  const std::size_t d = w.size();
  if (!lin.empty())
    for (std::size_t k = 0; k < d; ++k) u[k] += lin[k];
  bool clipped = false;
  if (s.clip > 0) {
    const double norm = ref_norm(u);
    if (norm > s.clip) {
      clipped = true;
      for (double& x : u) x *= s.clip / norm;
    }
  }
  for (std::size_t k = 0; k < d; ++k) {
    u[k] += s.wd * w[k];
    if (s.mu != 0.0) u[k] += s.mu * (w[k] - anchor[k]);
  }
  if (s.momentum != 0.0) {
    if (v.size() != d) v.assign(d, 0.0);
    for (std::size_t k = 0; k < d; ++k) {
      v[k] = s.momentum * v[k] + u[k];
      const double dir = s.nesterov ? u[k] + s.momentum * v[k] : v[k];
      w[k] -= s.lr * dir;
    }
  } else {
    for (std::size_t k = 0; k < d; ++k) w[k] -= s.lr * u[k];
  }
  return clipped;
}

/// Steps of a round: `steps` when > 0, else epochs * ceil(n / batch).
inline std::size_t ref_total_steps(std::size_t n, std::size_t batch, int epochs, std::size_t steps) {
  return steps > 0 ? steps : static_cast<std::size_t>(epochs) * ((n + batch - 1) / batch);
}

/// What one reference round did.
struct RefRound {
  double mean_loss = 0;     ///< mean of the losses `base` reported
  std::size_t steps = 0;    ///< steps taken
  std::size_t samples = 0;  ///< samples visited
  std::size_t clipped = 0;  ///< steps whose direction was clipped
};

/// Runs `total` reference steps over n samples: the ref_batches schedule from `rng`, and per step
/// base(batch, w, g) (which writes the base gradient and returns the loss) then ref_local_step.
template <class Base>
RefRound ref_round(RefVec& w, RefVec& v, std::size_t n, std::size_t batch, std::size_t total, fedpp::Rng& rng,
                   const RefVec& lin, const RefVec& anchor, const RefStepSettings& s, Base&& base) {
  RefRound r;
  double loss_sum = 0;
  RefVec g;
  for (const auto& b : ref_batches(n, batch, total, rng)) {
    loss_sum += base(b, w, g);
    if (ref_local_step(w, v, g, lin, anchor, s)) ++r.clipped;
    ++r.steps;
    r.samples += b.size();
  }
  r.mean_loss = r.steps > 0 ? loss_sum / static_cast<double>(r.steps) : 0.0;
  return r;
}

}  // namespace fedpp_test
