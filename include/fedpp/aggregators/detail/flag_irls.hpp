#pragma once
/// @file flag_irls.hpp
/// Private solver of the Flag aggregator: the IRLS iteration of Almasi et al. (flag median with
/// pairwise terms) carried out entirely on the Gram matrix of the batch, so no d-sized vector is
/// touched after the Gram pass. See docs/aggregators/flag.md for the derivation.
///
/// Notation: g_i the batch columns, nu_i = max(||g_i||, 1e-12), x_i = g_i / nu_i,
/// Gh = [x_i . x_j] (n x n). An iterate Y (d x k, orthonormal) is represented by its projections
/// P = Y^T X (k x n), and, when Y lies in span{x_i}, by coefficients B (n x k) with Y = X B.
/// One IRLS step from P:
///   w_i^2 = (|1 - ||P_i||^2| + eps)^(-1/2)                       (data columns)
///   C = diag(w^2) + 2 sum_{i<j} w_ij^2 (e_i - e_j)(e_i - e_j)^T,  (pair columns, lambda > 0)
///   w_ij^2 = (|1 - ||P_i - P_j||^2| + eps)^(-1/2) (lambda / (n (n-1)))^2
///   C = L L^T (Cholesky; L = diag(w) when lambda = 0),  K = L^T Gh L = V S^2 V^T
///   Y = X L V_k S_k^-1  (the top-k left singular vectors of A = [w_i x_i, w_ij (x_i - x_j)]),
///   P = S_k^-1 V_k^T L^T Gh,  B = L V_k S_k^-1.
/// All products are explicit loops in a fixed order (no Eigen GEMM, whose OpenMP blocking could
/// depend on the thread count). Only the top k <= m eigenpairs of K are needed: for n > 32 they come
/// from Eigen's Householder tridiagonalisation and implicit-QR eigenvalues (O(n^3 4/3 + n^2)),
/// inverse iteration on the tridiagonal matrix for the k eigenvectors and the back-transformation
/// (O(n^2 k)), instead of the full eigenvector accumulation (about 6 n^3 more); all sequential.

#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "fedpp/core/types.hpp"

namespace fedpp::detail {

/// Settings of one Flag IRLS solve.
struct FlagSolveSettings {
  Index m = 1;               ///< subspace size
  double lambda = 0.0;       ///< pairwise regularisation
  int max_iters = 1;         ///< most IRLS steps
  double tolerance = 1e-10;  ///< stop when the objective decrease or the objective is <= this
  bool relative = false;     ///< compare the decrease with tolerance * objective instead of tolerance
  double eps = 1e-7;         ///< added to |1 - ratio| in the weights
  double rank_tol = 1e-12;   ///< eigenvalues <= rank_tol * largest count as zero
  double start_tol = 1e-12;  ///< start columns are dependent when a Cholesky pivot is <= start_tol * its diagonal
  double norm_floor = 1e-12; ///< nu_i = max(||g_i||, norm_floor)
};

/// Result of a solve: the aggregate is out = sum_i batch_coef_i g_i + sum_k start_coef_k z_k
/// (z_k the start columns), at the reference scale (1/m) Y Y^T sum_i x_i.
struct FlagSolution {
  Vector<double> batch_coef;       ///< n coefficients on the batch columns
  Vector<double> start_coef;       ///< coefficients on the start columns (empty without them)
  bool returned_start = false;     ///< the start iterate was returned (no step decreased the objective)
  int steps = 0;                   ///< IRLS steps computed
  std::vector<double> objective;   ///< objective of the start and of each step
  Index rank = 0;                  ///< columns of the returned subspace (< m only when rank deficient)
  Vector<double> ratios;           ///< ||Y^T x_i||^2 of the returned subspace
  Vector<double> norms;            ///< ||g_i|| from the Gram diagonal
  double projected_norm = 0.0;     ///< ||Y^T sum_i x_i||; the reference output has norm projected_norm / m
};

/// One iterate: projections P (k x n) and, unless it is the start columns, Y = X B (B n x k).
struct FlagIterate {
  Matrix<double> P;
  Matrix<double> B;
  bool is_start = false;
};

/// Cholesky A = L L^T of a symmetric positive definite matrix (lower triangle read); false when a
/// pivot is <= rel_tol times its diagonal entry (not positive definite to that tolerance).
inline bool flag_cholesky(const Matrix<double>& A, Matrix<double>& L, double rel_tol = 0.0) {
  const Index n = A.rows();
  L.setZero(n, n);
  for (Index j = 0; j < n; ++j) {
    double s = A(j, j);
    for (Index k = 0; k < j; ++k) s -= L(j, k) * L(j, k);
    if (!(s > rel_tol * A(j, j)) || !(s > 0.0) || !std::isfinite(s)) return false;
    const double ljj = std::sqrt(s);
    L(j, j) = ljj;
    for (Index i = j + 1; i < n; ++i) {
      double t = A(i, j);
      for (Index k = 0; k < j; ++k) t -= L(i, k) * L(j, k);
      L(i, j) = t / ljj;
    }
  }
  return true;
}

/// Top-k eigenpairs of a symmetric tridiagonal-reducible matrix K (lower triangle read), k <= n.
/**
 * values(r) is the r-th largest eigenvalue, vectors.col(r) a unit eigenvector for it. `all` gets
 * every eigenvalue, ascending (to choose k). For n <= 32 this is Eigen's full solver; above, the
 * eigenvalues come from the tridiagonal QR and the k vectors from inverse iteration on the
 * tridiagonal matrix T (LU with partial pivoting, as LAPACK's dgttrf/dstein; each iterate is
 * orthogonalised against the vectors already found, so clusters give orthonormal bases),
 * then y = Q x with the Householder reflectors of the tridiagonalisation.
 */
class FlagTopEigen {
 public:
  /// Eigenvalues of K (ascending); call before vectors().
  explicit FlagTopEigen(const Matrix<double>& K) : n_(K.rows()) {
    if (n_ <= 32) {
      full_.compute(K);
      values_ = full_.eigenvalues();
      return;
    }
    tri_.compute(K);
    diag_ = tri_.diagonal();
    sub_ = tri_.subDiagonal();
    Eigen::SelfAdjointEigenSolver<Matrix<double>> ev;
    ev.computeFromTridiagonal(diag_, sub_, Eigen::EigenvaluesOnly);
    values_ = ev.eigenvalues();
  }

  /// All eigenvalues, ascending.
  [[nodiscard]] const Vector<double>& values() const noexcept { return values_; }

  /// Unit eigenvectors of the k largest eigenvalues (column r for the r-th largest).
  [[nodiscard]] Matrix<double> vectors(Index k) const {
    Matrix<double> V(n_, k);
    if (n_ <= 32) {
      for (Index r = 0; r < k; ++r) V.col(r) = full_.eigenvectors().col(n_ - 1 - r);
      return V;
    }
    const Index n = n_;
    double tnorm = 0.0;  // max row sum of |T|
    for (Index i = 0; i < n; ++i) {
      double row = std::fabs(diag_(i));
      if (i > 0) row += std::fabs(sub_(i - 1));
      if (i + 1 < n) row += std::fabs(sub_(i));
      tnorm = std::max(tnorm, row);
    }
    const double eps = std::numeric_limits<double>::epsilon();
    const double tiny = std::max(tnorm, std::numeric_limits<double>::min()) * eps;
    std::vector<double> dl(static_cast<std::size_t>(n)), d(static_cast<std::size_t>(n)),
        du(static_cast<std::size_t>(n)), du2(static_cast<std::size_t>(n)), x(static_cast<std::size_t>(n));
    std::vector<char> swap(static_cast<std::size_t>(n));
    Matrix<double> X(n, k);  // eigenvectors of T
    for (Index r = 0; r < k; ++r) {
      const double mu = values_(n - 1 - r);
      // LU of T - mu I with partial pivoting (dgttrf); tiny pivots are replaced by +-tiny.
      for (Index i = 0; i < n; ++i) {
        const auto u = static_cast<std::size_t>(i);
        d[u] = diag_(i) - mu;
        dl[u] = i + 1 < n ? sub_(i) : 0.0;
        du[u] = i + 1 < n ? sub_(i) : 0.0;
        du2[u] = 0.0;
        swap[u] = 0;
      }
      for (Index i = 0; i + 1 < n; ++i) {
        const auto u = static_cast<std::size_t>(i);
        if (std::fabs(d[u]) >= std::fabs(dl[u])) {
          const double fact = d[u] != 0.0 ? dl[u] / d[u] : 0.0;
          dl[u] = fact;
          d[u + 1] -= fact * du[u];
        } else {
          const double fact = d[u] / dl[u];
          d[u] = dl[u];
          dl[u] = fact;
          const double t = du[u];
          du[u] = d[u + 1];
          d[u + 1] = t - fact * d[u + 1];
          if (i + 2 < n) {
            du2[u] = du[u + 1];
            du[u + 1] = -fact * du[u + 1];
          }
          swap[u] = 1;
        }
      }
      for (auto& p : d)
        if (std::fabs(p) < tiny) p = p < 0.0 ? -tiny : tiny;
      // Deterministic start with components of both signs and varied sizes.
      for (Index i = 0; i < n; ++i)
        x[static_cast<std::size_t>(i)] = 1.0 + 0.5 * std::sin(static_cast<double>(3 * i + 1) + static_cast<double>(r));
      for (int it = 0; it < 8; ++it) {
        // Solve L U y = x in place (dgttrs).
        for (Index i = 0; i + 1 < n; ++i) {
          const auto u = static_cast<std::size_t>(i);
          if (swap[u]) {
            const double t = x[u] - dl[u] * x[u + 1];
            x[u] = x[u + 1];
            x[u + 1] = t;
          } else {
            x[u + 1] -= dl[u] * x[u];
          }
        }
        const auto last = static_cast<std::size_t>(n - 1);
        x[last] /= d[last];
        x[last - 1] = (x[last - 1] - du[last - 1] * x[last]) / d[last - 1];
        for (Index i = n - 3; i >= 0; --i) {
          const auto u = static_cast<std::size_t>(i);
          x[u] = (x[u] - du[u] * x[u + 1] - du2[u] * x[u + 2]) / d[u];
        }
        // Orthogonalise against the vectors already found (twice, for clusters), normalise.
        for (int pass = 0; pass < 2; ++pass)
          for (Index q = 0; q < r; ++q) {
            double dot = 0.0;
            for (Index i = 0; i < n; ++i) dot += X(i, q) * x[static_cast<std::size_t>(i)];
            for (Index i = 0; i < n; ++i) x[static_cast<std::size_t>(i)] -= dot * X(i, q);
          }
        double nrm = 0.0;
        for (double v : x) nrm += v * v;
        nrm = std::sqrt(nrm);
        if (!(nrm > 0.0) || !std::isfinite(nrm)) {  // cannot happen for a finite K; restart from e_r
          std::fill(x.begin(), x.end(), 0.0);
          x[static_cast<std::size_t>(r % n)] = 1.0;
          nrm = 1.0;
        }
        for (double& v : x) v /= nrm;
        // Converged when the residual ||T x - mu x|| is at rounding level.
        double res = 0.0;
        for (Index i = 0; i < n; ++i) {
          const auto u = static_cast<std::size_t>(i);
          double t = (diag_(i) - mu) * x[u];
          if (i > 0) t += sub_(i - 1) * x[u - 1];
          if (i + 1 < n) t += sub_(i) * x[u + 1];
          res += t * t;
        }
        if (it >= 1 && std::sqrt(res) <= 8.0 * static_cast<double>(n) * eps * tnorm) break;
      }
      for (Index i = 0; i < n; ++i) X(i, r) = x[static_cast<std::size_t>(i)];
    }
    // y = Q x = H_0 H_1 ... H_{n-2} x, H_j = I - tau_j v_j v_j^T acting on rows j+1..n-1,
    // v_j = [1; packed(j+2.., j)] (Eigen's householderQ(): length n-1, shift 1).
    const Matrix<double>& H = tri_.packedMatrix();
    const Vector<double>& tau = tri_.householderCoefficients();
    for (Index j = n - 2; j >= 0; --j) {
      const double t = tau(j);
      if (t == 0.0) continue;
      for (Index r = 0; r < k; ++r) {
        double dot = X(j + 1, r);
        for (Index i = j + 2; i < n; ++i) dot += H(i, j) * X(i, r);
        const double s = t * dot;
        X(j + 1, r) -= s;
        for (Index i = j + 2; i < n; ++i) X(i, r) -= s * H(i, j);
      }
    }
    V = X;
    return V;
  }

 private:
  Index n_;
  Vector<double> values_;
  Eigen::SelfAdjointEigenSolver<Matrix<double>> full_;
  Eigen::Tridiagonalization<Matrix<double>> tri_;
  Vector<double> diag_, sub_;
};

/// The data term of the objective: sum_i sqrt(max(0, 1 - ||P_i||^2)).
inline double flag_objective(const Matrix<double>& P, Index n) {
  double err = 0.0;
  for (Index i = 0; i < n; ++i) {
    double r = 0.0;
    for (Index k = 0; k < P.rows(); ++k) r += P(k, i) * P(k, i);
    err += std::sqrt(std::max(0.0, 1.0 - r));
  }
  return err;
}

/// Top-k eigenpairs of K (symmetric, lower triangle read) and the iterate they define, for
/// L lower triangular (dense) or diagonal (w given, L empty), and T = L^T Gh.
inline FlagIterate flag_iterate_from(const Matrix<double>& K, const Matrix<double>& T, const Matrix<double>& L,
                                     const Vector<double>& w, const FlagSolveSettings& s) {
  const Index n = K.rows();
  const FlagTopEigen es(K);
  const Vector<double>& ev = es.values();  // ascending
  const double top = n > 0 ? ev(n - 1) : 0.0;
  Index k = 0;
  if (top > 0.0 && std::isfinite(top))
    while (k < s.m && k < n && ev(n - 1 - k) > s.rank_tol * top) ++k;
  const Matrix<double> V = es.vectors(k);  // column r: the r-th largest
  FlagIterate it;
  it.P.setZero(k, n);
  it.B.setZero(n, k);
  for (Index r = 0; r < k; ++r) {
    const double sr = std::sqrt(ev(n - 1 - r));
    for (Index i = 0; i < n; ++i) {
      double p = 0.0;
      for (Index j = 0; j < n; ++j) p += V(j, r) * T(j, i);
      it.P(r, i) = p / sr;
    }
    if (L.size() == 0) {
      for (Index i = 0; i < n; ++i) it.B(i, r) = w(i) * V(i, r) / sr;
    } else {
      for (Index i = 0; i < n; ++i) {
        double b = 0.0;
        for (Index j = 0; j <= i; ++j) b += L(i, j) * V(j, r);
        it.B(i, r) = b / sr;
      }
    }
  }
  return it;
}

/// The unweighted flag mean of the x_i: the top-m left singular subspace of [x_1 ... x_n].
inline FlagIterate flag_top_subspace(const Matrix<double>& Gh, const FlagSolveSettings& s) {
  const Vector<double> ones = Vector<double>::Ones(Gh.rows());
  return flag_iterate_from(Gh, Gh, Matrix<double>(), ones, s);
}

/// One IRLS step (weighted flag mean) from the projections P of the current iterate.
inline FlagIterate flag_step(const Matrix<double>& Gh, const Matrix<double>& P, const FlagSolveSettings& s) {
  const Index n = Gh.rows(), k = P.rows();
  Vector<double> w2(n);
  for (Index i = 0; i < n; ++i) {
    double r = 0.0;
    for (Index q = 0; q < k; ++q) r += P(q, i) * P(q, i);
    w2(i) = 1.0 / std::sqrt(std::fabs(1.0 - r) + s.eps);
  }
  Matrix<double> T(n, n), K(n, n);
  if (!(s.lambda > 0.0) || n < 2) {
    const Vector<double> w = w2.cwiseSqrt();
    for (Index j = 0; j < n; ++j)
      for (Index i = 0; i < n; ++i) T(i, j) = w(i) * Gh(i, j);
    for (Index j = 0; j < n; ++j)
      for (Index i = 0; i < n; ++i) K(i, j) = T(i, j) * w(j);
    return flag_iterate_from(K, T, Matrix<double>(), w, s);
  }
  // C = diag(w^2) + pair terms (both orders (i, j) and (j, i) carry the same weight).
  const double c = s.lambda / (static_cast<double>(n) * static_cast<double>(n - 1));
  const double c2 = c * c;
  Matrix<double> C = w2.asDiagonal();
  for (Index j = 0; j < n; ++j)
    for (Index i = j + 1; i < n; ++i) {
      double r = 0.0;
      for (Index q = 0; q < k; ++q) {
        const double dq = P(q, i) - P(q, j);
        r += dq * dq;
      }
      const double v = 2.0 * c2 / std::sqrt(std::fabs(1.0 - r) + s.eps);
      C(i, i) += v;
      C(j, j) += v;
      C(i, j) -= v;
      C(j, i) -= v;
    }
  Matrix<double> L;
  flag_cholesky(C, L);  // C >= diag(w^2) > 0: always positive definite
  // T = L^T Gh, K = T L (lower triangle used by the eigensolver).
  for (Index j = 0; j < n; ++j)
    for (Index i = 0; i < n; ++i) {
      double t = 0.0;
      for (Index q = i; q < n; ++q) t += L(q, i) * Gh(q, j);
      T(i, j) = t;
    }
  for (Index j = 0; j < n; ++j)
    for (Index i = 0; i < n; ++i) {
      double t = 0.0;
      for (Index q = j; q < n; ++q) t += T(i, q) * L(q, j);
      K(i, j) = t;
    }
  return flag_iterate_from(K, T, L, Vector<double>(), s);
}

/// Runs the IRLS iteration on the Gram matrix G of [g_1 / scale_1 .. g_n / scale_n | z_1 .. z_ms]
/// (N = n + ms; scale_i > 0 are exact column scalings used when the unscaled Gram overflows, else 1).
/**
 * With ms > 0 the start is span{z_k} (orthonormalised through the Cholesky factor of their
 * Gram block); with ms == 0 it is the unweighted flag mean (flag_top_subspace). The loop and its
 * stopping rule are those of the reference `irls_flag`: at most max_iters steps, stop when the
 * objective decrease (relative: the decrease divided by the objective) or the objective is
 * <= tolerance, and return the previous iterate when the last step did not decrease the objective.
 * @return false when the start columns are linearly dependent (their Gram block is not PD).
 */
inline bool flag_solve(const Matrix<double>& G, Index n, const Vector<double>& scale, const FlagSolveSettings& s,
                       FlagSolution& sol) {
  const Index N = G.rows(), ms = N - n;
  sol = FlagSolution{};
  sol.norms.resize(n);
  Vector<double> nu(n), snu(n);  // nu_i = max(||g_i||, floor); snu_i = nu_i / scale_i (the Gram's own scale)
  for (Index i = 0; i < n; ++i) {
    const double sn = std::sqrt(std::max(G(i, i), 0.0));
    sol.norms(i) = sn * scale(i);
    nu(i) = std::max(sol.norms(i), s.norm_floor);
    snu(i) = sol.norms(i) >= s.norm_floor ? sn : s.norm_floor / scale(i);
  }
  Matrix<double> Gh(n, n);
  for (Index j = 0; j < n; ++j)
    for (Index i = 0; i < n; ++i) Gh(i, j) = G(i, j) / snu(i) / snu(j);

  FlagIterate cur;
  Matrix<double> Lz;  // start columns: Gzz = Lz Lz^T
  if (ms > 0) {
    if (!flag_cholesky(G.bottomRightCorner(ms, ms), Lz, s.start_tol)) return false;
    // P0 = Lz^-1 Gzx D^-1 (forward substitution, column by column).
    cur.P.resize(ms, n);
    for (Index i = 0; i < n; ++i)
      for (Index r = 0; r < ms; ++r) {
        double t = G(n + r, i) / snu(i);
        for (Index q = 0; q < r; ++q) t -= Lz(r, q) * cur.P(q, i);
        cur.P(r, i) = t / Lz(r, r);
      }
    cur.is_start = true;
  } else {
    cur = flag_top_subspace(Gh, s);
  }

  double err = flag_objective(cur.P, n);
  sol.objective.push_back(err);
  FlagIterate prev;
  double diff = std::numeric_limits<double>::infinity();
  for (int itr = 1; itr <= s.max_iters && diff > (s.relative ? s.tolerance * err : s.tolerance) && err > s.tolerance;
       ++itr) {
    prev = std::move(cur);
    cur = flag_step(Gh, prev.P, s);
    ++sol.steps;
    const double e = flag_objective(cur.P, n);
    sol.objective.push_back(e);
    diff = err - e;
    err = e;
  }
  if (!(diff > 0.0)) cur = std::move(prev);

  // v = Y^T sum_i x_i = P 1; reference output (1/m) Y v.
  const Index k = cur.P.rows();
  Vector<double> v = Vector<double>::Zero(k);
  for (Index i = 0; i < n; ++i)
    for (Index r = 0; r < k; ++r) v(r) += cur.P(r, i);
  sol.projected_norm = v.norm();
  sol.rank = k;
  sol.returned_start = cur.is_start;
  sol.ratios.resize(n);
  for (Index i = 0; i < n; ++i) {
    double r = 0.0;
    for (Index q = 0; q < k; ++q) r += cur.P(q, i) * cur.P(q, i);
    sol.ratios(i) = r;
  }
  const double inv_m = 1.0 / static_cast<double>(s.m);
  sol.batch_coef.setZero(n);
  sol.start_coef.setZero(ms);
  if (cur.is_start) {
    // Y = Z Lz^-T: coefficients Lz^-T v / m (back substitution).
    for (Index r = ms - 1; r >= 0; --r) {
      double t = v(r);
      for (Index q = r + 1; q < ms; ++q) t -= Lz(q, r) * sol.start_coef(q);
      sol.start_coef(r) = t / Lz(r, r);
    }
    sol.start_coef *= inv_m;
  } else {
    for (Index i = 0; i < n; ++i) {
      double a = 0.0;
      for (Index r = 0; r < k; ++r) a += cur.B(i, r) * v(r);
      sol.batch_coef(i) = a * inv_m / nu(i);
    }
  }
  return true;
}

}  // namespace fedpp::detail
