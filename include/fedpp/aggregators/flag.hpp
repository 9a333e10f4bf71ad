#pragma once
/// @file flag.hpp
/// Flag aggregator (FA): robust aggregation by the flag median of the normalised client updates,
/// solved by IRLS on the batch's Gram matrix.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "fedpp/aggregators/detail/flag_gram.hpp"
#include "fedpp/aggregators/detail/flag_irls.hpp"
#include "fedpp/aggregators/detail/weighted_sum.hpp"
#include "fedpp/core/concepts.hpp"
#include "fedpp/core/config.hpp"
#include "fedpp/core/error.hpp"
#include "fedpp/core/rng.hpp"
#include "fedpp/core/types.hpp"
#include "fedpp/core/update_batch.hpp"

namespace fedpp {

/// Preset of FlagAggregator settings.
enum class FlagMode {
  reference,  ///< exactly the published implementation's computation (one IRLS step from a random start)
  standard    ///< fedpp's default: IRLS to convergence from the batch's top subspace, median-norm scale
};

/// Scale of the Flag aggregate.
enum class FlagScale {
  reference,             ///< (1/m) Y Y^T sum_i x_i, as the published code (norm <= n/m, not a gradient scale)
  rescale_to_mean_norm,  ///< the reference direction, rescaled to the norm of the plain mean (not robust)
  median_norm            ///< median_i ||g_i|| * (1/n) sum_i Y Y^T x_i (robust: bounded by the median norm)
};

/// Start of the IRLS iteration.
enum class FlagStart {
  random,       ///< a fixed pseudo-random orthonormal d x m matrix (the reference's start; see random_start())
  top_subspace  ///< the top-m left singular subspace of the normalised batch (unweighted flag mean)
};

/// Settings of FlagAggregator (see FlagAggregator for their meaning).
struct FlagOptions {
  Index m = 1;                          ///< subspace dimension (the reference's `r_col`), >= 1
  double lambda = 0.0;                  ///< pairwise regularisation (the reference's `lambda_`), >= 0
  int max_iters = 1;                    ///< most IRLS steps, >= 0
  double tolerance = 1e-10;             ///< stop when the objective decrease (or the objective) is <= this
  bool relative_tolerance = false;      ///< compare the decrease with tolerance * objective (not tolerance)
  double eps = 1e-7;                    ///< added to |1 - ratio| in the IRLS weights, > 0
  FlagStart start = FlagStart::random;  ///< start of the iteration (an explicit start overrides it)
  FlagScale scale = FlagScale::reference;  ///< output scale
  std::uint64_t seed = 1;               ///< seed of the random start (the reference seeds 1)

  /// The published implementation's settings: 1 step, tolerance 1e-10, random start, reference scale.
  static FlagOptions reference(Index m, double lambda = 0.0) {
    FlagOptions o;
    o.m = m;
    o.lambda = lambda;
    return o;
  }
  /// fedpp's default: up to 20 steps, relative tolerance 1e-6, top-subspace start, median-norm scale.
  static FlagOptions standard(Index m, double lambda = 0.0) {
    FlagOptions o;
    o.m = m;
    o.lambda = lambda;
    o.max_iters = 20;
    o.tolerance = 1e-6;
    o.relative_tolerance = true;
    o.start = FlagStart::top_subspace;
    o.scale = FlagScale::median_norm;
    return o;
  }
  /// The preset of `mode`.
  static FlagOptions preset(FlagMode mode, Index m, double lambda = 0.0) {
    return mode == FlagMode::reference ? reference(m, lambda) : standard(m, lambda);
  }
};

/// What the last FlagAggregator::aggregate() call found.
struct FlagReport {
  int steps = 0;                   ///< IRLS steps computed
  std::vector<double> objective;   ///< sum_i sqrt(max(0, 1 - ||Y^T x_i||^2)) at the start and after each step
  bool returned_start = false;     ///< the start was returned (no step taken, or the first step did not decrease the objective)
  Index rank = 0;                  ///< dimension of the returned subspace (< m only for rank-deficient batches)
  std::vector<double> ratios;      ///< reconstruction ratio ||Y^T x_i||^2 of each client (batch order), in [0, 1]
  double scale = 1.0;              ///< factor applied to the reference-scale output
};

/// Flag aggregator: the flag median of the normalised updates, found by IRLS (Almasi et al.).
/**
 * Almasi, Mishra, Vamanan, Ravi, "Flag Aggregator: Scalable Distributed Training under Failures
 * and Augmented Losses using Convex Optimization", ICLR 2024, arXiv:2302.05865.
 *
 * With x_i = g_i / max(||g_i||, 1e-12) the unit-normalised updates, FA looks for an orthonormal
 * Y (d x m) that minimises sum_i sqrt(1 - ||Y^T x_i||^2) (every client's update should be well
 * reconstructed by the subspace; outliers get less say than in a least-squares fit), plus, with
 * lambda > 0, pair terms on x_i - x_j. Each IRLS step is a weighted flag mean: the top-m left
 * singular vectors of A = [w_i x_i | w_ij (x_i - x_j)], with w_i = (|1 - ||Y^T x_i||^2| + eps)^-1/4
 * and w_ij = (|1 - ||Y^T (x_i - x_j)||^2| + eps)^-1/4 * lambda / (n (n-1)). The aggregate is
 * (1/m) Y Y^T sum_i x_i, optionally rescaled (FlagScale).
 *
 * Modes (FlagOptions presets): FlagMode::reference reproduces the published code (one step from
 * a random start, the objective-decrease test, the reference output scale) exactly up to rounding
 * given the same start; the start is fedpp's own fixed stream (random_start()), because torch's
 * generator cannot be reproduced, or an explicit one (set_start()). FlagMode::standard (default)
 * starts from the top-m subspace of the batch, iterates to convergence and scales the output to
 * the median client norm. See docs/aggregators/flag.md.
 *
 * Requirements: 1 <= m <= min(n, d) (checked in aggregate()). FA does not use f. Client weights
 * are ignored (unweighted, as in the reference). Inputs are assumed finite (the Server rejects
 * non-finite updates); a zero update stays zero (it has ratio 0 and adds nothing). Huge finite
 * entries whose products overflow S are handled exactly (the Gram is recomputed on a copy with
 * columns scaled by powers of two: d x n more memory, only then); entries so small that their
 * squares underflow S (|g| below about 1e-19 in float) count as zero in the norms. When the batch
 * spans fewer than m dimensions the subspace is its whole span (the directions an SVD would add
 * are orthogonal to every update and change neither the objective nor the aggregate).
 *
 * Algorithm (no SVD of a d x K matrix): one pass over the batch computes the Gram matrix of
 * [g_1..g_n | start columns] (float lanes, double accumulation; detail/flag_gram.hpp); every
 * IRLS step is then n x n algebra on it (K = n^2 pair columns reduce to an n x n Cholesky
 * factor; detail/flag_irls.hpp); a second pass forms out = sum_i c_i g_i. Deterministic: the
 * same batch gives the same bits on any thread count (fixed panel, chunk and reduction order).
 * Memory: the Gram chunk partials (at most 32 MiB, about 64 (n+m)^2 doubles for large d) plus
 * O(n^2) for the solver; the random start is generated on the fly, never stored.
 */
class FlagAggregator {
 public:
  /// FA with subspace size m, pairwise weight lambda and the preset of `mode`.
  /** @throws InvalidArgument if m < 1 or lambda is negative or not finite. */
  explicit FlagAggregator(Index m, double lambda = 0.0, FlagMode mode = FlagMode::standard)
      : FlagAggregator(FlagOptions::preset(mode, m, lambda)) {}

  /// FA with explicit settings.
  /** @throws InvalidArgument for m < 1, lambda < 0, max_iters < 0, tolerance < 0, eps <= 0 (or non-finite). */
  explicit FlagAggregator(const FlagOptions& options) : options_(checked(options)) {}

  /// The settings.
  [[nodiscard]] const FlagOptions& options() const noexcept { return options_; }
  /// Subspace dimension m.
  [[nodiscard]] Index m() const noexcept { return options_.m; }
  /// Pairwise regularisation lambda.
  [[nodiscard]] double lambda() const noexcept { return options_.lambda; }

  /// Replaces the settings (validated as in the constructor).
  void set_options(const FlagOptions& options) { options_ = checked(options); }

  /// Uses the span of the columns of `y0` (d x m, linearly independent, finite) as the start.
  /**
   * Overrides options().start until clear_start(). The columns need not be orthonormal: the
   * start is their span (orthonormalised internally). Checked against the batch in aggregate().
   * @throws InvalidArgument if y0 has a non-finite entry.
   */
  void set_start(Matrix<double> y0) {
    if (!y0.allFinite()) fail(name, "the start must be finite");
    start_ = std::move(y0);
    has_start_ = true;
  }
  /// Forgets an explicit start (options().start applies again).
  void clear_start() noexcept {
    start_.resize(0, 0);
    has_start_ = false;
  }
  /// True when an explicit start is set.
  [[nodiscard]] bool has_explicit_start() const noexcept { return has_start_; }

  /// What the last aggregate() call found (iterations, objective, reconstruction ratios).
  [[nodiscard]] const FlagReport& report() const noexcept { return report_; }

  /// Writes the Flag aggregate of the batch into `out` (resized to `batch.dim()`).
  /**
   * @throws InvalidArgument if the batch is empty, has dimension 0 (DimensionError), m > min(n, d),
   * or the start's columns are linearly dependent; DimensionError if an explicit start is not d x m.
   * `out` is left untouched when it throws.
   */
  template <typename S>
  void aggregate(const UpdateBatch<S>& batch, Vector<S>& out) {
    static_assert(std::is_same_v<S, float> || std::is_same_v<S, double>, "FlagAggregator: S must be float or double");
    batch.check_nonempty(agg_name);
    const Index n = batch.size(), d = batch.dim(), m = options_.m;
    if (m > n || m > d)
      fail(agg_name,
           "requires m <= min(n, d) (m = " + std::to_string(m) + ", n = " + std::to_string(n) +
               ", d = " + std::to_string(d) + ")",
           m > n ? "n = " + std::to_string(n) : "d = " + std::to_string(d));
    if (has_start_ && (start_.rows() != d || start_.cols() != m))
      fail<DimensionError>(agg_name,
                           "the explicit start must be d x m = " + std::to_string(d) + " x " + std::to_string(m),
                           std::to_string(start_.rows()) + " x " + std::to_string(start_.cols()));

    // Start columns: explicit (converted to S), random (generated on the fly) or none.
    Matrix<S> start_s;
    detail::FlagColumns<S> cols{batch.data(), d, n, 0, nullptr, 0};
    if (has_start_) {
      start_s = start_.template cast<S>();
      cols.m = m;
      cols.extra = start_s.data();
    } else if (options_.start == FlagStart::random) {
      cols.m = m;
      cols.key = start_key(options_.seed);
    }
    Matrix<double> G;
    detail::flag_gram(cols, G);
    // Products of huge (finite) entries can overflow S in the Gram lanes (|g| >~ 1e18 in float):
    // then recompute it on a copy whose columns are scaled by exact powers of two.
    Vector<double> scale = Vector<double>::Ones(n);
    if (!G.allFinite()) {
      Matrix<S> scaled = batch.matrix();
      for (Index i = 0; i < n; ++i) {
        const double mx = static_cast<double>(scaled.col(i).cwiseAbs().maxCoeff());
        if (!(mx > 0.0)) continue;
        scale(i) = std::ldexp(1.0, std::ilogb(mx) + 1);  // 2^e > max |g_i|
        scaled.col(i) *= static_cast<S>(1.0 / scale(i));
      }
      cols.batch = scaled.data();
      detail::flag_gram(cols, G);
    }

    detail::FlagSolveSettings s;
    s.m = m;
    s.lambda = options_.lambda;
    s.max_iters = options_.max_iters;
    s.tolerance = options_.tolerance;
    s.relative = options_.relative_tolerance;
    s.eps = options_.eps;
    s.rank_tol = rank_tolerance<S>(n);
    s.start_tol = rank_tolerance<S>(m);
    detail::FlagSolution sol;
    if (!detail::flag_solve(G, n, scale, s, sol)) fail(agg_name, "the start's columns must be linearly independent");

    // Output scale (a factor on the reference-scale aggregate, whose norm is projected_norm / m).
    double factor = 1.0;
    if (options_.scale == FlagScale::rescale_to_mean_norm) {
      double total = 0.0;  // ||sum_i g_i||^2 = 1^T G 1
      for (Index j = 0; j < n; ++j)
        for (Index i = 0; i < n; ++i) total += G(i, j) * scale(i) * scale(j);
      const double mean_norm = std::sqrt(std::max(total, 0.0)) / static_cast<double>(n);
      const double ref_norm = sol.projected_norm / static_cast<double>(m);
      factor = ref_norm > 0.0 ? mean_norm / ref_norm : 0.0;
    } else if (options_.scale == FlagScale::median_norm) {
      factor = static_cast<double>(m) / static_cast<double>(n) * median(sol.norms);
    }

    out.resize(d);
    if (sol.returned_start) {
      const Vector<double> e = sol.start_coef * factor;
      if (has_start_) {
        combine_columns(start_s.data(), d, m, e, out.data());
      } else if (cols.m > 0) {
        random_combination(start_key(options_.seed), d, e, out.data());
      }
    } else {
      const Vector<double> c = sol.batch_coef * factor;
      detail::weighted_mean_blocked<4>(batch.data(), d, n, c.data(), 1.0, out.data());
    }

    report_.steps = sol.steps;
    report_.objective = std::move(sol.objective);
    report_.returned_start = sol.returned_start;
    report_.rank = sol.rank;
    report_.ratios.assign(sol.ratios.data(), sol.ratios.data() + n);
    report_.scale = factor;
  }

  /// The start FlagStart::random uses for dimension d, subspace m and `seed`: d x m, orthonormal.
  /**
   * Its columns span the pseudo-random columns z_k drawn as in detail::flag_start_stream (values
   * U[0,1) - 0.5, stream key make_rng(seed, 0, server_stream, Purpose::aggregation)()); returned
   * orthonormalised as Z L^-T with Z^T Z = L L^T (computed in double). For tests and inspection;
   * aggregate() never forms it.
   * @throws InvalidArgument unless 1 <= m <= d.
   */
  static Matrix<double> random_start(Index d, Index m, std::uint64_t seed = 1) {
    if (m < 1 || m > d) fail("fedpp::FlagAggregator::random_start", "requires 1 <= m <= d (d = " + std::to_string(d) + ")", m);
    const std::uint64_t key = start_key(seed);
    Matrix<double> Z(d, m);
    std::vector<double> buf(static_cast<std::size_t>(detail::flag_panel));
    for (Index p = 0; p * detail::flag_panel < d; ++p) {
      const Index k0 = p * detail::flag_panel, len = std::min(detail::flag_panel, d - k0);
      for (Index j = 0; j < m; ++j) {
        detail::flag_start_panel(key, p, j, len, buf.data());
        for (Index k = 0; k < len; ++k) Z(k0 + k, j) = buf[static_cast<std::size_t>(k)];
      }
    }
    Matrix<double> ZtZ(m, m), L;
    for (Index j = 0; j < m; ++j)
      for (Index i = 0; i < m; ++i) ZtZ(i, j) = Z.col(i).dot(Z.col(j));
    if (!detail::flag_cholesky(ZtZ, L)) fail("fedpp::FlagAggregator::random_start", "the random columns are dependent", d);
    // Y = Z L^-T: solve Y L^T = Z column by column.
    Matrix<double> Y(d, m);
    for (Index j = 0; j < m; ++j) {
      Vector<double> col = Z.col(j);
      for (Index q = 0; q < j; ++q) col -= L(j, q) * Y.col(q);
      Y.col(j) = col / L(j, j);
    }
    return Y;
  }

 private:
  static constexpr const char* name = "fedpp::FlagAggregator";
  static constexpr const char* agg_name = "fedpp::FlagAggregator::aggregate";

  static FlagOptions checked(const FlagOptions& o) {
    require(o.m >= 1, name, "m must be >= 1", o.m);
    require(std::isfinite(o.lambda) && o.lambda >= 0.0, name, "lambda must be finite and >= 0", o.lambda);
    require(o.max_iters >= 0, name, "max_iters must be >= 0", o.max_iters);
    require(std::isfinite(o.tolerance) && o.tolerance >= 0.0, name, "tolerance must be finite and >= 0", o.tolerance);
    require(std::isfinite(o.eps) && o.eps > 0.0, name, "eps must be finite and > 0", o.eps);
    return o;
  }

  /// Key of the random start stream for `seed`.
  static std::uint64_t start_key(std::uint64_t seed) noexcept {
    Rng rng = make_rng(seed, 0, server_stream, Purpose::aggregation);
    return rng();
  }

  /// Relative eigenvalue threshold of the solver: 8 n u_S (u_S the unit roundoff of S).
  template <typename S>
  static double rank_tolerance(Index n) noexcept {
    return 8.0 * static_cast<double>(n) * static_cast<double>(std::numeric_limits<S>::epsilon()) / 2.0;
  }

  /// Median of a vector (mean of the two middle values for an even count).
  static double median(const Vector<double>& v) {
    std::vector<double> s(v.data(), v.data() + v.size());
    std::sort(s.begin(), s.end());
    const std::size_t k = s.size() / 2;
    return s.size() % 2 ? s[k] : 0.5 * (s[k - 1] + s[k]);
  }

  /// out[k] = S(sum_j e_j z_j[k]) for the d x m column-major z (in double, column order).
  template <typename S>
  static void combine_columns(const S* z, Index d, Index m, const Vector<double>& e, S* out) {
    detail::weighted_mean_blocked<4>(z, d, m, e.data(), 1.0, out);
  }

  /// out[k] = S(sum_j e_j z_j[k]) for the random start columns z_j, regenerated panel by panel.
  template <typename S>
  static void random_combination(std::uint64_t key, Index d, const Vector<double>& e, S* out) {
    const Index m = e.size(), panels = (d + detail::flag_panel - 1) / detail::flag_panel;
    if (e.isZero(0.0)) {
      std::fill(out, out + d, S(0));
      return;
    }
    FEDPP_OMP_PARALLEL_FOR
    for (Index p = 0; p < panels; ++p) {
      const Index k0 = p * detail::flag_panel, len = std::min(detail::flag_panel, d - k0);
      std::vector<double> acc(static_cast<std::size_t>(len), 0.0), z(static_cast<std::size_t>(len));
      for (Index j = 0; j < m; ++j) {
        detail::flag_start_panel(key, p, j, len, z.data());
        for (Index k = 0; k < len; ++k) acc[static_cast<std::size_t>(k)] += e(j) * z[static_cast<std::size_t>(k)];
      }
      for (Index k = 0; k < len; ++k) out[k0 + k] = static_cast<S>(acc[static_cast<std::size_t>(k)]);
    }
  }

  FlagOptions options_;
  Matrix<double> start_;
  bool has_start_ = false;
  FlagReport report_;
};

static_assert(Aggregator<FlagAggregator, float> && Aggregator<FlagAggregator, double>);

}  // namespace fedpp
