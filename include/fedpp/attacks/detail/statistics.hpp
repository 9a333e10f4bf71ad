#pragma once
/// @file statistics.hpp
/// Private helpers of the attacks: the standard normal quantile, a fixed multiply-add,
/// block-parallel loops and coordinate-wise moments (mean, unbiased standard deviation) of the
/// columns of an UpdateBatch.
///
/// Determinism: every coordinate goes through the same arithmetic whatever the thread count:
/// sums run over the columns in column order in double, blocks only decide which thread does
/// the work. Multiply-adds go through attack_madd (one rounding behaviour fixed at compile
/// time), so the compiler cannot contract one copy of a loop body and not another.

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <limits>
#include <numbers>
#include <string>
#include <string_view>

#include "fedpp/core/config.hpp"
#include "fedpp/core/error.hpp"
#include "fedpp/core/types.hpp"
#include "fedpp/core/update_batch.hpp"

namespace fedpp::detail {

/// True when attack_madd() is a fused multiply-add on this target.
#if defined(__FP_FAST_FMA) || defined(FP_FAST_FMA) || defined(__FMA__) || defined(__ARM_FEATURE_FMA)
inline constexpr bool attack_madd_is_fused = true;
#else
inline constexpr bool attack_madd_is_fused = false;
#endif

/// a * b + c with one rounding behaviour fixed at compile time (std::fma where the target has
/// a hardware FMA, a multiply then an add where it has none, so no contraction can occur).
inline double attack_madd(double a, double b, double c) noexcept {
  if constexpr (attack_madd_is_fused) {
    return std::fma(a, b, c);
  } else {
    return a * b + c;
  }
}

/// Standard normal distribution function Phi(x) = erfc(-x / sqrt(2)) / 2.
inline double normal_cdf(double x) noexcept { return 0.5 * std::erfc(-x / std::numbers::sqrt2); }

/// Standard normal quantile Phi^{-1}(p): -inf at 0, +inf at 1, NaN outside [0, 1].
/**
 * P. J. Acklam's rational approximations (2003; relative error below 1.15e-9: a central
 * rational function on [0.02425, 0.97575] and a tail function of sqrt(-2 log q) outside),
 * refined by one Halley step on Phi(x) - p = 0 with Phi computed through std::erfc. The step
 * roughly cubes the relative error, so the result is within a few ulp of the exact quantile:
 * at most 3 ulp (4.6e-16 relative) from Boost.Math's quantile over 2e6 random p in
 * [1e-300, 1), and Phi(Phi^{-1}(p)) = p to 4e-16 max(1, x^2) relative (the tests check both).
 * The residual is formed so that it keeps full precision near p = 1/2 (through erf) and
 * near p = 1 (as (1 - p) - Q(x), Q(x) = erfc(x/sqrt 2)/2).
 */
inline double normal_quantile(double p) noexcept {
  if (std::isnan(p) || p < 0.0 || p > 1.0) return std::numeric_limits<double>::quiet_NaN();
  if (p == 0.0) return -std::numeric_limits<double>::infinity();
  if (p == 1.0) return std::numeric_limits<double>::infinity();

  // Coefficients of Acklam's approximation.
  constexpr double a[6] = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                           1.383577518672690e+02,  -3.066479806614716e+01, 2.506628277459239e+00};
  constexpr double b[5] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                           6.680131188771972e+01,  -1.328068155288572e+01};
  constexpr double c[6] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                           -2.549732539343734e+00, 4.374664141464968e+00,  2.938163982698783e+00};
  constexpr double d[4] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                           3.754408661907416e+00};
  constexpr double p_low = 0.02425;

  const double q_up = 1.0 - p;  // exact for p >= 0.5 (Sterbenz)
  double x;
  if (p < p_low) {
    const double q = std::sqrt(-2.0 * std::log(p));
    x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
        ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0);
  } else if (p <= 1.0 - p_low) {
    const double q = p - 0.5;
    const double r = q * q;
    x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
        (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1.0);
  } else {
    const double q = std::sqrt(-2.0 * std::log(q_up));
    x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
        ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0);
  }

  // One Halley step: e = Phi(x) - p, u = e / phi(x), x <- x - u / (1 + x u / 2). The residual
  // is formed where it is accurate: near the centre as erf(x/sqrt 2)/2 - (p - 1/2) (p - 1/2 is
  // exact for p in [1/4, 1]), in the lower tail as Phi(x) - p, in the upper one as (1 - p) - Q(x).
  double e;
  if (p >= 0.25 && p <= 0.75) {
    e = 0.5 * std::erf(x / std::numbers::sqrt2) - (p - 0.5);
  } else if (p < 0.5) {
    e = 0.5 * std::erfc(-x / std::numbers::sqrt2) - p;
  } else {
    e = q_up - 0.5 * std::erfc(x / std::numbers::sqrt2);
  }
  const double u = e * std::sqrt(2.0 * std::numbers::pi) * std::exp(0.5 * x * x);
  if (std::isfinite(u)) x = x - u / (1.0 + 0.5 * x * u);
  return x;
}

/// Elements per block in block_loop (and coordinates per block in coordinate_moments).
inline constexpr Index attack_block = 2048;

/// Calls fn(lo, hi) for consecutive blocks [lo, hi) of [0, count), `block` elements each
/// (the last may be shorter); in parallel (static schedule) when there are several blocks and
/// `work` (an estimate of the element operations) is large enough to pay for the threads.
template <typename Fn>
void block_loop(Index count, Index block, Index work, Fn&& fn) {
  if (count <= 0) return;
  const Index nblocks = (count + block - 1) / block;
  if (nblocks == 1 || work < (Index{1} << 17)) {
    for (Index k = 0; k < nblocks; ++k) fn(k * block, std::min(count, (k + 1) * block));
    return;
  }
  FEDPP_OMP_PARALLEL_FOR
  for (Index k = 0; k < nblocks; ++k) fn(k * block, std::min(count, (k + 1) * block));
}

/// Coordinate-wise mean and (optionally) unbiased standard deviation of the batch's columns.
/**
 * For each block [lo, lo + len) of coordinates calls `emit(lo, len, mean, sd)` with `mean[k]`
 * and `sd[k]` the statistics of coordinate lo + k (`sd` all zeros unless `with_sd`), possibly
 * from several threads at once (blocks are disjoint; `emit` must not throw).
 * Arithmetic per coordinate j, in double: `s = sum_i x_i[j]` in column order, `mean = s / n`;
 * `ss = sum_i (x_i[j] - mean)^2` in column order (two passes, no cancellation),
 * `sd = sqrt(ss / (n - 1))`, and `sd = 0` when n = 1. The batch must hold at least one column.
 * Memory: two arrays of attack_block doubles on each thread's stack.
 */
template <typename S, typename Emit>
void coordinate_moments(const UpdateBatch<S>& x, bool with_sd, Emit&& emit) {
  const Index d = x.dim();
  const Index n = x.size();
  const S* data = x.data();
  const auto nd = static_cast<double>(n);
  block_loop(d, attack_block, d * n, [&](Index lo, Index hi) {
    const Index len = hi - lo;
    std::array<double, static_cast<std::size_t>(attack_block)> mean{};
    std::array<double, static_cast<std::size_t>(attack_block)> sd{};
    for (Index i = 0; i < n; ++i) {
      const S* col = data + i * d + lo;
      for (Index k = 0; k < len; ++k) mean[static_cast<std::size_t>(k)] += static_cast<double>(col[k]);
    }
    for (Index k = 0; k < len; ++k) mean[static_cast<std::size_t>(k)] /= nd;
    if (with_sd && n > 1) {
      for (Index i = 0; i < n; ++i) {
        const S* col = data + i * d + lo;
        for (Index k = 0; k < len; ++k) {
          const auto kk = static_cast<std::size_t>(k);
          const double dev = static_cast<double>(col[k]) - mean[kk];
          sd[kk] = attack_madd(dev, dev, sd[kk]);
        }
      }
      for (Index k = 0; k < len; ++k) {
        const auto kk = static_cast<std::size_t>(k);
        sd[kk] = std::sqrt(sd[kk] / (nd - 1.0));
      }
    }
    emit(lo, len, mean.data(), sd.data());
  });
}

/// Throws unless `honest` holds at least `min_count` updates of the dimension of `byz`.
/**
 * Messages: "`where`: needs at least `min_count` honest update(s) (`why`), got N" and
 * "`where`: honest updates must have the dimension of the Byzantine updates (d), got d'".
 */
template <typename S>
void check_honest(std::string_view where, const UpdateBatch<S>& honest, const UpdateBatch<S>& byz, Index min_count,
                  std::string_view why) {
  if (honest.size() < min_count) {
    std::string what = "needs at least " + std::to_string(min_count) +
                       (min_count == 1 ? " honest update" : " honest updates");
    if (!why.empty()) {
      what += " (";
      what += why;
      what += ")";
    }
    fail(where, what, honest.size());
  }
  if (honest.dim() != byz.dim())
    fail<DimensionError>(where,
                         "honest updates must have the dimension of the Byzantine updates (" +
                             std::to_string(byz.dim()) + ")",
                         honest.dim());
}

}  // namespace fedpp::detail
