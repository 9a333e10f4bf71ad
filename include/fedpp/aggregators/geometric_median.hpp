#pragma once
/// @file geometric_median.hpp
/// Geometric median of client updates by smoothed Weiszfeld iterations (RFA).

#include <cmath>
#include <limits>
#include <vector>

#include "fedpp/aggregators/detail/dist_sweep.hpp"
#include "fedpp/aggregators/weighted_mean.hpp"
#include "fedpp/core/concepts.hpp"
#include "fedpp/core/error.hpp"
#include "fedpp/core/types.hpp"
#include "fedpp/core/update_batch.hpp"

namespace fedpp {

/// Where the Weiszfeld iterations of GeometricMedian start.
enum class GeometricMedianStart {
  mean,  ///< the (weighted or plain) mean of the updates: one pass, usually close already
  zero   ///< the zero vector (ByzFL)
};

/// What a GeometricMedian::solve call did.
struct GeometricMedianInfo {
  Index iterations = 0;    ///< Weiszfeld updates performed
  bool converged = false;  ///< true when the tolerance test stopped the iterations before max_iter
};

namespace detail {

/// Smoothed Weiszfeld iterations over a batch; z (resized to d) receives the estimate in double.
/**
 * alpha_i = 1/n (uniform) or w_i / sum w (by_weight). Each update:
 * beta_i = alpha_i / max(nu, ||x_i - z||), z <- sum_i beta_i x_i / sum_i beta_i, one sweep pass
 * that also measures the distances to the new z (skipped after the last update). With tol > 0
 * the iterations stop when |F(z_prev) - F(z)| <= tol * F(z), F(z) = sum_i alpha_i ||x_i - z||.
 */
template <typename S>
GeometricMedianInfo weiszfeld(const UpdateBatch<S>& batch, double nu, Index max_iter, double tol, Weighting weighting,
                              GeometricMedianStart start, std::vector<double>& z, DistIsa isa = DistIsa::best) {
  const Index n = batch.size(), d = batch.dim();
  const auto nn = static_cast<std::size_t>(n);
  std::vector<double> alpha(nn), beta(nn), dist2, wts(nn);
  double sum_w = 0.0;
  for (std::size_t i = 0; i < nn; ++i) {
    wts[i] = weighting == Weighting::uniform ? 1.0 : batch.weights()[i];
    sum_w += wts[i];
  }
  if (!(sum_w > 0.0 && std::isfinite(sum_w)))
    fail("fedpp::GeometricMedian::aggregate", "the sum of the weights must be finite and > 0", sum_w);
  for (std::size_t i = 0; i < nn; ++i) alpha[i] = wts[i] / sum_w;

  const Index chunks = sweep_num_chunks(d);
  std::vector<double> partial(static_cast<std::size_t>(chunks * n));
  z.assign(static_cast<std::size_t>(d), 0.0);
  GeometricMedianInfo info;
  SweepPass<S> p;
  p.data = batch.data();
  p.d = d;
  p.n = n;
  p.partial = max_iter > 0 ? partial.data() : nullptr;
  if (start == GeometricMedianStart::mean) {
    p.center = z.data();
    p.update = true;
    p.w = wts.data();
    p.denom = sum_w;
  } else {
    if (max_iter == 0) return info;
    p.center = nullptr;  // distances to the zero vector
  }
  sweep_pass(p, isa);
  if (max_iter == 0) return info;

  auto measure = [&] {  // objective at the current z, from the partials of the last pass
    sweep_sum_partials(partial, n, chunks, dist2);
    double f = 0.0;
    for (std::size_t i = 0; i < nn; ++i) {
      dist2[i] = std::sqrt(dist2[i]);
      f += alpha[i] * dist2[i];
    }
    return f;
  };
  double f_prev = measure();
  for (Index t = 1; t <= max_iter; ++t) {
    double denom = 0.0;
    for (std::size_t i = 0; i < nn; ++i) {
      beta[i] = alpha[i] / std::max(nu, dist2[i]);
      denom += beta[i];
    }
    const bool last = t == max_iter;
    p.center = z.data();
    p.update = true;
    p.w = beta.data();
    p.denom = denom;
    p.a = 0.0;
    p.partial = last ? nullptr : partial.data();
    sweep_pass(p, isa);
    info.iterations = t;
    if (last) break;
    const double f = measure();
    if (tol > 0.0 && std::fabs(f_prev - f) <= tol * f) {
      info.converged = true;
      break;
    }
    f_prev = f;
  }
  return info;
}

}  // namespace detail

/// Geometric median argmin_z sum_i alpha_i ||x_i - z|| by smoothed Weiszfeld iterations (RFA).
/**
 * Pillutla, Kakade, Harchaoui, 2019, "Robust Aggregation for Federated Learning",
 * arXiv:1912.13075. Each iteration sets beta_i = alpha_i / max(nu, ||x_i - z||) and
 * z <- sum_i beta_i x_i / sum_i beta_i; nu > 0 smooths the objective near the data points
 * (no division by zero). alpha_i = 1/n by default (unweighted, as ByzFL and most robust rules);
 * Weighting::by_weight uses the batch's weights (RFA's alpha_i). Breakdown point 1/2: fewer
 * than n/2 arbitrary updates move the result by a bounded amount.
 *
 * Default mode: start at the mean (same weighting), at most max_iter updates, stop when the
 * objective's relative change |F_prev - F| <= tol * F (tol = 0: always max_iter updates).
 * ByzFL mode (GeometricMedian::byzfl(nu, T)): start at z = 0, exactly T updates, alpha = 1/n;
 * it reproduces ByzFL's GeometricMedian (on X = [[1,2,3],[4,5,6],[7,8,9]], nu = 0.1, T = 3:
 * [3.78788764, 4.78788764, 5.78788764]).
 *
 * Speed: one pass over the batch per iteration; the pass computes the new z for a block of
 * coordinates and, while the block is in cache, the n partial distances to it (see
 * detail/dist_sweep.hpp). Arithmetic in double whatever S; bit-identical on any thread count
 * and with either compiled kernel. Inputs must be finite (the Server rejects others).
 * Memory: d doubles for z plus n * ceil(d / 1024) doubles of distance partials.
 */
class GeometricMedian {
 public:
  /// Smoothed Weiszfeld with the given settings.
  /**
   * @param nu smoothing (> 0, finite): distances below nu count as nu.
   * @param max_iter most Weiszfeld updates (>= 0; 0 returns the starting point).
   * @param tol relative change of the objective that stops the iterations (>= 0; 0: never stop early).
   * @param weighting uniform (alpha_i = 1/n) or by_weight (alpha_i proportional to the weights).
   * @param start the mean (default) or zero.
   * @throws InvalidArgument on a setting outside its range.
   */
  explicit GeometricMedian(double nu = 1e-6, Index max_iter = 100, double tol = 1e-6,
                           Weighting weighting = Weighting::uniform,
                           GeometricMedianStart start = GeometricMedianStart::mean)
      : nu_(require(nu > 0.0 && std::isfinite(nu), name, "nu must be finite and > 0", nu)),
        max_iter_(require(max_iter >= 0, name, "max_iter must be >= 0", max_iter)),
        tol_(require(tol >= 0.0 && std::isfinite(tol), name, "tol must be finite and >= 0", tol)),
        weighting_(weighting),
        start_(start) {}

  /// ByzFL's GeometricMedian(nu, T): start at 0, exactly T updates, unweighted.
  [[nodiscard]] static GeometricMedian byzfl(double nu = 0.1, Index iterations = 3) {
    return GeometricMedian(nu, iterations, 0.0, Weighting::uniform, GeometricMedianStart::zero);
  }

  /// Smoothing nu.
  [[nodiscard]] double nu() const noexcept { return nu_; }
  /// Most Weiszfeld updates.
  [[nodiscard]] Index max_iter() const noexcept { return max_iter_; }
  /// Relative objective change that stops the iterations (0: never early).
  [[nodiscard]] double tol() const noexcept { return tol_; }
  /// Client weighting.
  [[nodiscard]] Weighting weighting() const noexcept { return weighting_; }
  /// Starting point.
  [[nodiscard]] GeometricMedianStart start() const noexcept { return start_; }

  /// Writes the geometric median estimate into `out` (resized to batch.dim()).
  /// @throws InvalidArgument on an empty batch or (by_weight) weights summing to 0.
  template <typename S>
  void aggregate(const UpdateBatch<S>& batch, Vector<S>& out) const {
    (void)solve(batch, out);
  }

  /// As aggregate(), and reports the iterations performed and whether the tolerance was met.
  template <typename S>
  GeometricMedianInfo solve(const UpdateBatch<S>& batch, Vector<S>& out) const {
    batch.check_nonempty(agg_name);
    std::vector<double> z;
    const GeometricMedianInfo info = detail::weiszfeld(batch, nu_, max_iter_, tol_, weighting_, start_, z);
    out.resize(batch.dim());
    for (Index j = 0; j < batch.dim(); ++j) out(j) = static_cast<S>(z[static_cast<std::size_t>(j)]);
    return info;
  }

 private:
  static constexpr const char* name = "fedpp::GeometricMedian";
  static constexpr const char* agg_name = "fedpp::GeometricMedian::aggregate";

  double nu_;
  Index max_iter_;
  double tol_;
  Weighting weighting_;
  GeometricMedianStart start_;
};

static_assert(Aggregator<GeometricMedian, float> && Aggregator<GeometricMedian, double>);

}  // namespace fedpp
