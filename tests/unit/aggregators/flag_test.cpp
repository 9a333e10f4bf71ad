// Tests of fedpp::FlagAggregator (Almasi et al., ICLR 2024): reference mode against an independent
// implementation of the published computation (explicit d x K matrix, Jacobi SVD), lambda = 0
// and > 0, several IRLS steps, the random start, rank deficiency, invariants, the standard mode,
// errors, the Gram kernel (instruction sets, chunks, random columns), thread-count bit identity,
// and a small robustness experiment (softmax regression with 3 of 15 workers sending uniform noise).
#include <catch2/catch.hpp>

#include <Eigen/SVD>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "fedpp/aggregators/flag.hpp"
#include "fedpp/core/rng.hpp"
#include "fedpp/models/softmax_regression.hpp"
#include "support/aggregator_isas.hpp"
#include "support/blobs.hpp"
#include "support/checks.hpp"

using namespace fedpp;
using namespace fedpp_test;
using MatD = Matrix<double>;
using VecD = Vector<double>;

namespace {

// d x n matrix of standard normals (column i scaled by 2^(i % 5 - 2)), fixed seed.
MatD graded_normals(Index d, Index n, std::uint64_t seed) {
  MatD m(d, n);
  Rng rng = make_rng(seed, 0, 0, Purpose::user);
  for (Index i = 0; i < n; ++i) {
    const double scale = std::ldexp(1.0, static_cast<int>(i % 5) - 2);
    for (Index k = 0; k < d; ++k) m(k, i) = scale * rng.normal();
  }
  return m;
}

// An orthonormal d x m matrix (Householder QR of a normal matrix).
MatD orthonormal(Index d, Index m, std::uint64_t seed) {
  const MatD a = graded_normals(d, m, seed);
  Eigen::HouseholderQR<MatD> qr(a);
  return qr.householderQ() * MatD::Identity(d, m);
}

template <typename S>
UpdateBatch<S> to_batch(const MatD& g) {
  return UpdateBatch<S>(Matrix<S>(g.cast<S>()));
}

template <typename S>
VecD run(FlagAggregator& fa, const UpdateBatch<S>& batch) {
  Vector<S> out;
  fa.aggregate(batch, out);
  return out.template cast<double>();
}

// ---- the published computation, from its definition ----------------------------------------
// aggregators/flag.py + center_algorithms_torch.py (irls_flag, flag_mean_iteration) as specified in
// the shared algorithm notes, section 1.2: explicit columns, Jacobi SVD, the same loop and test.
struct ReferenceResult {
  VecD out;
  bool returned_start = false;  // the last step did not decrease the objective: the previous iterate was returned
  std::vector<double> err;
  MatD Y;
};

double sine_error(const MatD& X, const MatD& Y) {
  double e = 0.0;
  for (Index i = 0; i < X.cols(); ++i) e += std::sqrt(std::max(0.0, 1.0 - (Y.transpose() * X.col(i)).squaredNorm()));
  return e;
}

ReferenceResult reference_fa(const MatD& g, Index m, double lambda, const MatD& Y0, int n_its = 1,
                             double tol = 1e-10, double eps = 1e-7, bool relative = false) {
  const Index d = g.rows(), n = g.cols();
  MatD X(d, n);
  for (Index i = 0; i < n; ++i) X.col(i) = g.col(i) / std::max(g.col(i).norm(), 1e-12);
  ReferenceResult r;
  MatD Y = Y0, Yprev = Y0;
  r.err.push_back(sine_error(X, Y));
  double diff = 1.0;  // the reference's literal start value
  for (int itr = 1; itr <= n_its && diff > (relative ? tol * r.err.back() : tol) && r.err.back() > tol; ++itr) {
    Yprev = Y;
    std::vector<VecD> cols;
    for (Index i = 0; i < n; ++i) {
      const double s = std::fabs(1.0 - (Yprev.transpose() * X.col(i)).squaredNorm());
      cols.push_back(std::pow(s + eps, -0.25) * X.col(i));
    }
    if (lambda > 0)
      for (Index i = 0; i < n; ++i)
        for (Index j = 0; j < n; ++j) {
          if (i == j) continue;
          const VecD dij = X.col(i) - X.col(j);
          const double s = std::fabs(1.0 - (Yprev.transpose() * dij).squaredNorm());
          const double w = std::pow(s + eps, -0.25) * lambda / static_cast<double>(n * (n - 1));
          cols.push_back(w * dij);
        }
    MatD A(d, static_cast<Index>(cols.size()));
    for (std::size_t k = 0; k < cols.size(); ++k) A.col(static_cast<Index>(k)) = cols[k];
    Eigen::JacobiSVD<MatD> svd(A, Eigen::ComputeThinU);
    Y = svd.matrixU().leftCols(std::min<Index>(m, svd.matrixU().cols()));
    r.err.push_back(sine_error(X, Y));
    diff = r.err[r.err.size() - 2] - r.err.back();
  }
  r.returned_start = !(diff > 0);
  if (r.returned_start) Y = Yprev;
  r.Y = Y;
  r.out = Y * (Y.transpose() * X.rowwise().sum()) / static_cast<double>(m);
  return r;
}

// max |a - b| / max(||b||_inf, floor)
double rel_diff(const VecD& a, const VecD& b, double floor = 1e-300) {
  return (a - b).cwiseAbs().maxCoeff() / std::max(b.cwiseAbs().maxCoeff(), floor);
}

// Output entries are about |Y^T s| / (m sqrt(d)); when Y^T s cancels (e.g. n = 2, large lambda: the top
// direction is x_1 - x_2, orthogonal to s = x_1 + x_2) the output is tiny and its relative error large.
// Comparisons use 1e-3 / sqrt(d) as the smallest scale.
double out_floor(Index d) { return 1e-3 / std::sqrt(static_cast<double>(d)); }

template <typename S>
double tol_for() {
  return std::is_same_v<S, float> ? 2e-4 : 1e-9;
}

}  // namespace

static_assert(Aggregator<FlagAggregator, float> && Aggregator<FlagAggregator, double>);

// ---- reference mode: exact against the definition ---------------------------------------------

TEMPLATE_TEST_CASE("FlagAggregator reference mode equals the published computation (lambda = 0)",
                   "[aggregators][FlagAggregator]", float, double) {
  using S = TestType;
  const Index n = GENERATE(1, 2, 5, 12, 40);  // n > 32: the tridiagonal + inverse-iteration eigensolver
  const Index d = GENERATE(as<Index>{}, 7, 300, 2500);
  for (Index m : {Index{1}, Index{2}, Index{4}, Index{8}}) {
    if (m > n || m > d) continue;
    CAPTURE(n, d, m);
    const MatD g = graded_normals(d, n, static_cast<std::uint64_t>(100 * n + d + m));
    const MatD Y0 = orthonormal(d, m, static_cast<std::uint64_t>(7 + d + m));
    const ReferenceResult ref = reference_fa(g, m, 0.0, Y0);
    FlagAggregator fa(m, 0.0, FlagMode::reference);
    fa.set_start(Y0);
    const VecD out = run(fa, to_batch<S>(g));
    CHECK(rel_diff(out, ref.out, out_floor(d)) < tol_for<S>());
    CHECK(fa.report().returned_start == ref.returned_start);
    CHECK(fa.report().steps == static_cast<int>(ref.err.size()) - 1);
    REQUIRE(fa.report().objective.size() == ref.err.size());
    for (std::size_t k = 0; k < ref.err.size(); ++k)
      CHECK(fa.report().objective[k] ==
            Approx(ref.err[k]).epsilon(1e-5).margin(static_cast<double>(n) * (std::is_same_v<S, float> ? 2e-3 : 1e-7)));
    // ||out|| <= n / m at the reference scale.
    CHECK(out.norm() <= static_cast<double>(n) / static_cast<double>(m) * (1 + 1e-6));
  }
}

TEMPLATE_TEST_CASE("FlagAggregator reference mode equals the published computation (lambda > 0)",
                   "[aggregators][FlagAggregator]", float, double) {
  using S = TestType;
  const Index n = GENERATE(2, 4, 7, 34);
  const Index d = GENERATE(as<Index>{}, 40, 1100);
  const double lambda = GENERATE(0.5, 8.0, 64.0);
  if (n == 34 && d == 1100) return;  // keeps the explicit 1100 x 1156 Jacobi SVD out of the test time
  for (Index m : {Index{1}, Index{3}}) {
    if (m > n) continue;
    CAPTURE(n, d, m, lambda);
    const MatD g = graded_normals(d, n, static_cast<std::uint64_t>(31 * n + d));
    const MatD Y0 = orthonormal(d, m, static_cast<std::uint64_t>(d + m));
    const ReferenceResult ref = reference_fa(g, m, lambda, Y0);
    FlagAggregator fa(m, lambda, FlagMode::reference);
    fa.set_start(Y0);
    const VecD out = run(fa, to_batch<S>(g));
    CHECK(rel_diff(out, ref.out, out_floor(d)) < tol_for<S>());
    CHECK(fa.report().returned_start == ref.returned_start);
    // The pair columns change the result (so the comparison above tests them).
    if (n > 2 && n < 30 && lambda >= 8.0) CHECK(rel_diff(out, reference_fa(g, m, 0.0, Y0).out) > 1e-3);
  }
}

TEST_CASE("FlagAggregator several IRLS steps follow the reference loop", "[aggregators][FlagAggregator]") {
  const Index d = 200, n = 9, m = 2;
  const MatD g = graded_normals(d, n, 5);
  const MatD Y0 = orthonormal(d, m, 6);
  for (double lambda : {0.0, 3.0}) {
    for (int iters : {2, 5, 30}) {
      CAPTURE(lambda, iters);
      const ReferenceResult ref = reference_fa(g, m, lambda, Y0, iters);
      FlagOptions o = FlagOptions::reference(m, lambda);
      o.max_iters = iters;
      FlagAggregator fa(o);
      fa.set_start(Y0);
      const VecD out = run(fa, to_batch<double>(g));
      CHECK(rel_diff(out, ref.out) < 1e-8);
      // fedpp reports whether the *start* was returned; the reference returns the previous iterate,
      // which is the start only after a single step.
      if (ref.err.size() == 2) CHECK(fa.report().returned_start == ref.returned_start);
      CHECK(fa.report().objective.size() == ref.err.size());
      const auto& obj = fa.report().objective;
      for (std::size_t k = 0; k < std::min(obj.size(), ref.err.size()); ++k)
        CHECK(obj[k] == Approx(ref.err[k]).epsilon(1e-9).margin(1e-6));
    }
  }
}

TEST_CASE("FlagAggregator random start: the documented stream, orthonormal, same as injecting it",
          "[aggregators][FlagAggregator]") {
  for (Index d : {Index{5}, Index{1500}}) {
    const Index m = 3;
    const MatD Y0 = FlagAggregator::random_start(d, m);
    CHECK((Y0.transpose() * Y0 - MatD::Identity(m, m)).cwiseAbs().maxCoeff() < 1e-12);
    // Its span is that of the documented raw columns.
    Rng key_rng = make_rng(1, 0, server_stream, Purpose::aggregation);
    const std::uint64_t key = key_rng();
    MatD Z(d, m);
    for (Index j = 0; j < m; ++j)
      for (Index k = 0; k < d; ++k) {
        Rng s = detail::flag_start_stream(key, k / detail::flag_panel, j);
        for (Index q = 0; q < k % detail::flag_panel; ++q) (void)s();
        Z(k, j) = static_cast<double>(s.uniform_float() - 0.5f);
      }
    CHECK((Z - Y0 * (Y0.transpose() * Z)).norm() < 1e-10 * Z.norm());
    CHECK(Z.cwiseAbs().maxCoeff() <= 0.5);
    // A different seed gives a different start.
    CHECK((FlagAggregator::random_start(d, m, 2) - Y0).norm() > 0.1);

    const Index n = 4;
    const MatD g = graded_normals(d, n, 44);
    FlagAggregator internal(m, 0.0, FlagMode::reference), injected(m, 0.0, FlagMode::reference);
    injected.set_start(Y0);
    const VecD a = run(internal, to_batch<double>(g)), b = run(injected, to_batch<double>(g));
    CHECK(rel_diff(a, b) < 1e-10);
    CHECK(rel_diff(a, reference_fa(g, m, 0.0, Y0).out) < 1e-9);
  }
}

TEMPLATE_TEST_CASE("FlagAggregator returns the start when no step is taken or none decreases the objective",
                   "[aggregators][FlagAggregator]", float, double) {
  using S = TestType;
  // A start inside the span of the updates has objective ~0 (<= tolerance): no step, the start is
  // returned, and the output is (1/m) Y0 Y0^T s = s / m.
  const Index d = 50, n = 2, m = 2;
  const MatD g = graded_normals(d, n, 3);
  FlagOptions o = FlagOptions::reference(m);
  o.tolerance = 1e-2;
  FlagAggregator fa(o);
  fa.set_start(g);  // not orthonormal: its span is used
  const VecD out = run(fa, to_batch<S>(g));
  CHECK(fa.report().returned_start);
  CHECK(fa.report().steps == 0);
  const VecD s = g.col(0).normalized() + g.col(1).normalized();
  CHECK(rel_diff(out, s / 2.0) < tol_for<S>());
  // The same through the random start (regenerated for the output): d = m, the start spans R^d.
  const MatD h = graded_normals(3, 5, 12);
  o.m = 3;
  FlagAggregator fr(o);
  const VecD outr = run(fr, to_batch<S>(h));
  CHECK(fr.report().returned_start);
  VecD sh = VecD::Zero(3);
  for (Index i = 0; i < 5; ++i) sh += h.col(i).normalized();
  CHECK(rel_diff(outr, sh / 3.0) < tol_for<S>());
  // All-zero batch: the step cannot decrease the objective (n), the random start is returned and
  // the output is exactly 0.
  FlagAggregator fz(2, 0.0, FlagMode::reference);
  const VecD z = run(fz, to_batch<S>(MatD::Zero(3000, 3)));
  CHECK(fz.report().returned_start);
  CHECK(fz.report().steps == 1);
  CHECK(z.isZero(0.0));
}

TEMPLATE_TEST_CASE("FlagAggregator rank-deficient batches use their whole span", "[aggregators][FlagAggregator]",
                   float, double) {
  using S = TestType;
  const Index d = 60;
  MatD base = graded_normals(d, 2, 9);
  MatD g(d, 5);
  g << base.col(0), 3.0 * base.col(1), base.col(0), -2.0 * base.col(1), 0.5 * base.col(0);  // rank 2
  const MatD Y0 = orthonormal(d, 3, 10);
  FlagAggregator fa(3, 0.0, FlagMode::reference);
  fa.set_start(Y0);
  const VecD out = run(fa, to_batch<S>(g));
  CHECK(fa.report().rank == 2);
  // Any completion of the SVD's 3rd vector is orthogonal to the data: the reference output is unique.
  CHECK(rel_diff(out, reference_fa(g, 3, 0.0, Y0).out) < tol_for<S>());
  VecD s = VecD::Zero(d);
  for (Index i = 0; i < 5; ++i) s += g.col(i).normalized();
  CHECK(rel_diff(out, s / 3.0) < tol_for<S>());
}

// ---- invariants ---------------------------------------------------------------------------------

TEMPLATE_TEST_CASE("FlagAggregator invariants: repeatable, permutation invariant, zero updates",
                   "[aggregators][FlagAggregator]", float, double) {
  using S = TestType;
  const Index d = 3000, n = 10, m = 4;
  const MatD g = graded_normals(d, n, 21);
  for (FlagMode mode : {FlagMode::reference, FlagMode::standard}) {
    CAPTURE(static_cast<int>(mode));
    FlagAggregator fa(m, 0.5, mode);
    const auto batch = to_batch<S>(g);
    Vector<S> a, b;
    fa.aggregate(batch, a);
    fa.aggregate(batch, b);
    CHECK(same_bits(a, b));
    FlagAggregator copy = fa;
    copy.aggregate(batch, b);
    CHECK(same_bits(a, b));

    // Column order changes only rounding.
    std::vector<Index> perm(static_cast<std::size_t>(n));
    std::iota(perm.begin(), perm.end(), Index{0});
    std::reverse(perm.begin(), perm.end());
    std::swap(perm[2], perm[5]);
    MatD gp(d, n);
    for (Index i = 0; i < n; ++i) gp.col(i) = g.col(perm[static_cast<std::size_t>(i)]);
    const VecD c = run(fa, to_batch<S>(gp));
    CHECK(rel_diff(c, a.template cast<double>()) < 10 * tol_for<S>());
  }
  // A zero update stays zero (no NaN) and, at the reference scale, changes nothing.
  MatD gz(d, n + 1);
  gz << g.leftCols(4), VecD::Zero(d), g.rightCols(n - 4);
  const MatD Y0 = orthonormal(d, m, 4);
  FlagAggregator fa(m, 0.0, FlagMode::reference), fb(m, 0.0, FlagMode::reference);
  fa.set_start(Y0);
  fb.set_start(Y0);
  const VecD with_zero = run(fa, to_batch<S>(gz)), without = run(fb, to_batch<S>(g));
  CHECK(with_zero.allFinite());
  CHECK(rel_diff(with_zero, without) < tol_for<S>());
  CHECK(fa.report().ratios[4] == 0.0);
  // All-zero batch: zero output in every mode.
  for (FlagMode mode : {FlagMode::reference, FlagMode::standard}) {
    FlagAggregator f(2, 1.0, mode);
    CHECK(run(f, to_batch<S>(MatD::Zero(100, 4))).isZero(0.0));
  }
}

TEMPLATE_TEST_CASE("FlagAggregator handles huge finite updates exactly (no overflow)", "[aggregators][FlagAggregator]",
                   float, double) {
  using S = TestType;
  const Index d = 1500, n = 6, m = 2;
  const MatD g = graded_normals(d, n, 90);
  const double huge = std::is_same_v<S, float> ? 1e30 : 1e200;  // squares overflow S
  MatD gh = g;
  gh.col(1) *= huge;
  gh.col(4) *= huge / 3.0;
  const MatD Y0 = orthonormal(d, m, 91);
  FlagAggregator fa(m, 2.0, FlagMode::reference), fb(m, 2.0, FlagMode::reference);
  fa.set_start(Y0);
  fb.set_start(Y0);
  const VecD with_huge = run(fa, to_batch<S>(gh)), plain = run(fb, to_batch<S>(g));
  CHECK(with_huge.allFinite());
  // FA normalises every update: at the reference scale the result does not depend on the norms.
  CHECK(rel_diff(with_huge, plain) < 10 * tol_for<S>());
  CHECK(fa.report().ratios[1] == Approx(fb.report().ratios[1]).margin(1e-4));
  // The standard mode's median norm is an ordinary one (4 of 6 updates are ordinary).
  FlagAggregator fs(m);
  const VecD st = run(fs, to_batch<S>(gh));
  CHECK(st.allFinite());
  std::vector<double> norms;
  for (Index i = 0; i < n; ++i) norms.push_back(gh.col(i).norm());
  std::sort(norms.begin(), norms.end());
  CHECK(st.norm() <= 0.5 * (norms[2] + norms[3]) * (1 + 1e-6));
}

TEMPLATE_TEST_CASE("FlagAggregator output scales", "[aggregators][FlagAggregator]", float, double) {
  using S = TestType;
  const Index d = 500, n = 8, m = 3;
  const MatD g = graded_normals(d, n, 77);
  const MatD Y0 = orthonormal(d, m, 78);
  FlagOptions o = FlagOptions::reference(m);
  FlagAggregator ref(o);
  ref.set_start(Y0);
  const VecD r = run(ref, to_batch<S>(g));
  o.scale = FlagScale::rescale_to_mean_norm;
  FlagAggregator mean_scaled(o);
  mean_scaled.set_start(Y0);
  const VecD a = run(mean_scaled, to_batch<S>(g));
  CHECK(a.norm() == Approx(g.rowwise().mean().norm()).epsilon(1e-5));
  CHECK(rel_diff(a / a.norm(), r / r.norm()) < 10 * tol_for<S>());
  o.scale = FlagScale::median_norm;
  FlagAggregator med(o);
  med.set_start(Y0);
  const VecD b = run(med, to_batch<S>(g));
  std::vector<double> norms;
  for (Index i = 0; i < n; ++i) norms.push_back(g.col(i).norm());
  std::sort(norms.begin(), norms.end());
  const double median = 0.5 * (norms[3] + norms[4]);
  CHECK(rel_diff(b, r * (median * static_cast<double>(m) / static_cast<double>(n))) < 10 * tol_for<S>());
  CHECK(b.norm() <= median * (1 + 1e-6));
}

// ---- standard (default) mode --------------------------------------------------------------------

TEMPLATE_TEST_CASE("FlagAggregator standard mode: IRLS from the top subspace to convergence",
                   "[aggregators][FlagAggregator]", float, double) {
  using S = TestType;
  const Index d = 400, n = 11, m = 3;
  const MatD g = graded_normals(d, n, 15);
  FlagAggregator fa(m);  // FlagMode::standard
  CHECK(fa.options().start == FlagStart::top_subspace);
  CHECK(fa.options().scale == FlagScale::median_norm);
  const VecD out = run(fa, to_batch<S>(g));
  const FlagReport& rep = fa.report();
  // The objective never increases along the returned path, and the iteration stopped early.
  for (std::size_t k = 1; k < rep.objective.size() - (rep.returned_start ? 1 : 0); ++k)
    CHECK(rep.objective[k] <= rep.objective[k - 1] + 1e-12);
  CHECK(rep.steps >= 2);
  CHECK(rep.steps < fa.options().max_iters);
  // Independent check: the reference loop started from the unweighted flag mean, then scaled.
  MatD X(d, n);
  for (Index i = 0; i < n; ++i) X.col(i) = g.col(i).normalized();
  Eigen::JacobiSVD<MatD> svd(X, Eigen::ComputeThinU);
  const MatD start = svd.matrixU().leftCols(m);
  CHECK(fa.options().relative_tolerance);
  const ReferenceResult ref = reference_fa(g, m, 0.0, start, fa.options().max_iters, fa.options().tolerance, 1e-7, true);
  std::vector<double> norms;
  for (Index i = 0; i < n; ++i) norms.push_back(g.col(i).norm());
  std::sort(norms.begin(), norms.end());
  const double scale = norms[static_cast<std::size_t>(n / 2)] * static_cast<double>(m) / static_cast<double>(n);
  CHECK(rel_diff(out, ref.out * scale) < (std::is_same_v<S, float> ? 1e-3 : 1e-6));
  // Scaling every update by 2 scales the aggregate by 2, exactly (all steps commute with it).
  const VecD out2 = run(fa, to_batch<S>(MatD(2.0 * g)));
  CHECK((out2 - 2.0 * out).cwiseAbs().maxCoeff() == 0.0);
}

TEMPLATE_TEST_CASE("FlagAggregator standard mode bounds Byzantine updates by the median norm",
                   "[aggregators][FlagAggregator]", float, double) {
  using S = TestType;
  const Index d = 2000, n = 15;
  const VecD shared = graded_normals(d, 1, 61).col(0);
  for (Index f : {Index{4}, Index{7}}) {
    CAPTURE(f);
    MatD g = graded_normals(d, n, 60);
    for (Index i = f; i < n; ++i) g.col(i) = g.col(i) * 0.3 + shared;  // honest: correlated
    for (Index i = 0; i < f; ++i) g.col(i) = 1e6 * VecD::Constant(d, 1.0 + static_cast<double>(i));  // huge
    double max_honest = 0;
    for (Index i = f; i < n; ++i) max_honest = std::max(max_honest, g.col(i).norm());
    FlagAggregator fa(4);
    const VecD out = run(fa, to_batch<S>(g));
    CHECK(out.allFinite());
    // f < n / 2: the median norm is an honest norm, and ||out|| <= median norm.
    CHECK(out.norm() <= max_honest * (1 + 1e-6));
    // With a minority of attackers it points along the honest consensus.
    if (f == 4) CHECK(out.dot(shared) / (out.norm() * shared.norm()) > 0.75);
  }
}

// ---- errors -------------------------------------------------------------------------------------

TEST_CASE("FlagAggregator rejects invalid settings and batches", "[aggregators][FlagAggregator]") {
  CHECK(message_of([] { FlagAggregator fa(0); }) == "fedpp::FlagAggregator: m must be >= 1, got 0");
  CHECK(message_of([] { FlagAggregator fa(2, -1.0); }) == "fedpp::FlagAggregator: lambda must be finite and >= 0, got -1");
  CHECK_THROWS_AS(FlagAggregator(2, std::numeric_limits<double>::quiet_NaN()), InvalidArgument);
  FlagOptions o = FlagOptions::standard(2);
  o.max_iters = -1;
  CHECK(message_of([&] { FlagAggregator fa(o); }) == "fedpp::FlagAggregator: max_iters must be >= 0, got -1");
  o = FlagOptions::standard(2);
  o.eps = 0.0;
  CHECK(message_of([&] { FlagAggregator fa(o); }) == "fedpp::FlagAggregator: eps must be finite and > 0, got 0");
  o = FlagOptions::standard(2);
  o.tolerance = -1e-3;
  CHECK_THROWS_AS(FlagAggregator(o), InvalidArgument);
  CHECK(message_of([&] { FlagAggregator fa(o); }) ==
        "fedpp::FlagAggregator: tolerance must be finite and >= 0, got -0.001");
  o.tolerance = std::numeric_limits<double>::infinity();
  CHECK(message_of([&] { FlagAggregator fa(o); }) == "fedpp::FlagAggregator: tolerance must be finite and >= 0, got inf");
  CHECK(message_of([] { FlagAggregator fa(2, std::numeric_limits<double>::quiet_NaN()); }) ==
        "fedpp::FlagAggregator: lambda must be finite and >= 0, got nan");

  Vector<float> out = Vector<float>::Constant(3, 7.0f);
  FlagAggregator fa(3);
  CHECK(message_of([&] { fa.aggregate(to_batch<float>(graded_normals(10, 2, 1)), out); }) ==
        "fedpp::FlagAggregator::aggregate: requires m <= min(n, d) (m = 3, n = 2, d = 10), got n = 2");
  CHECK(message_of([&] { fa.aggregate(to_batch<float>(graded_normals(2, 5, 1)), out); }) ==
        "fedpp::FlagAggregator::aggregate: requires m <= min(n, d) (m = 3, n = 5, d = 2), got d = 2");
  CHECK(out == Vector<float>::Constant(3, 7.0f));  // untouched
  CHECK_THROWS_AS(fa.aggregate(UpdateBatch<float>(10), out), InvalidArgument);
  CHECK(message_of([&] { fa.aggregate(UpdateBatch<float>(10), out); }) ==
        "fedpp::FlagAggregator::aggregate: the batch holds no client updates");
  CHECK_THROWS_AS(fa.aggregate(UpdateBatch<float>(Matrix<float>(0, 4)), out), DimensionError);
  CHECK(message_of([&] { fa.aggregate(UpdateBatch<float>(Matrix<float>(0, 4)), out); }) ==
        "fedpp::FlagAggregator::aggregate: updates have dimension 0");

  fa.set_start(MatD::Ones(10, 2));
  CHECK(message_of([&] { fa.aggregate(to_batch<float>(graded_normals(10, 5, 1)), out); }) ==
        "fedpp::FlagAggregator::aggregate: the explicit start must be d x m = 10 x 3, got 10 x 2");
  fa.set_start(MatD::Ones(10, 3));  // dependent columns
  CHECK(message_of([&] { fa.aggregate(to_batch<float>(graded_normals(10, 5, 1)), out); }) ==
        "fedpp::FlagAggregator::aggregate: the start's columns must be linearly independent");
  CHECK_THROWS_AS(fa.set_start(MatD::Constant(10, 3, std::numeric_limits<double>::infinity())), InvalidArgument);
  MatD nan_start = MatD::Ones(10, 3);
  nan_start(4, 1) = std::numeric_limits<double>::quiet_NaN();
  CHECK(message_of([&] { fa.set_start(nan_start); }) == "fedpp::FlagAggregator: the start must be finite");
  CHECK(fa.has_explicit_start());  // the rejected start did not replace the previous one
  CHECK(message_of([&] { fa.aggregate(to_batch<float>(graded_normals(10, 5, 1)), out); }) ==
        "fedpp::FlagAggregator::aggregate: the start's columns must be linearly independent");  // still the old one
  fa.clear_start();
  CHECK_FALSE(fa.has_explicit_start());
  CHECK_NOTHROW(fa.aggregate(to_batch<float>(graded_normals(10, 5, 1)), out));
  CHECK_THROWS_AS(FlagAggregator::random_start(3, 4), InvalidArgument);
  CHECK(message_of([] { (void)FlagAggregator::random_start(3, 4); }) ==
        "fedpp::FlagAggregator::random_start: requires 1 <= m <= d (d = 3), got 4");
  CHECK(message_of([] { (void)FlagAggregator::random_start(3, 0); }) ==
        "fedpp::FlagAggregator::random_start: requires 1 <= m <= d (d = 3), got 0");
  // Seed 7294523 is the first seed whose d = 1 start draws U[0,1) = 0.5 exactly, a zero column
  // (found by trying seeds 0, 1, ... once; about one seed in 2^24 does).
  CHECK(message_of([] { (void)FlagAggregator::random_start(1, 1, 7294523); }) ==
        "fedpp::FlagAggregator::random_start: the random columns are dependent, got 1");
  CHECK(FlagAggregator::random_start(1, 1, 7294524).cwiseAbs()(0, 0) == 1.0);  // the next seed is fine
}

// ---- the Gram kernel ----------------------------------------------------------------------------

TEMPLATE_TEST_CASE("Flag Gram kernel: accurate, equal across instruction sets, random columns as explicit ones",
                   "[aggregators][FlagAggregator][gram]", float, double) {
  using S = TestType;
  const Index n = GENERATE(1, 5, 13);
  const Index d = GENERATE(as<Index>{}, 1, 15, 17, 1024, 5000, 70001);
  const Index m = 3;
  CAPTURE(n, d);
  const Matrix<S> x = graded_normals(d, n, static_cast<std::uint64_t>(d + n)).cast<S>();
  const std::uint64_t key = 0x1234;
  // Explicit copies of the random columns.
  Matrix<S> z(d, m);
  for (Index p = 0; p * detail::flag_panel < d; ++p)
    for (Index j = 0; j < m; ++j)
      detail::flag_start_panel(key, p, j, std::min(detail::flag_panel, d - p * detail::flag_panel),
                               z.data() + j * d + p * detail::flag_panel);
  Matrix<S> xz(d, n + m);
  xz << x, z;
  const MatD exact = xz.template cast<double>().transpose() * xz.template cast<double>();

  MatD g_best, g_explicit;
  detail::flag_gram(detail::FlagColumns<S>{x.data(), d, n, m, nullptr, key}, g_best);
  detail::flag_gram(detail::FlagColumns<S>{x.data(), d, n, m, z.data(), 0}, g_explicit);
  CHECK(std::memcmp(g_best.data(), g_explicit.data(), sizeof(double) * static_cast<std::size_t>(g_best.size())) == 0);
  CHECK(g_best == g_best.transpose());
  // Error bound: about sqrt(64) rounding units of sum |z_p z_q|.
  const MatD absz = xz.template cast<double>().cwiseAbs();
  const MatD bound = absz.transpose() * absz * (std::numeric_limits<S>::epsilon() * 64.0);
  CHECK(((g_best - exact).cwiseAbs() - bound).maxCoeff() <= 0.0);
  for (auto isa : {detail::FlagGramIsa::portable, detail::FlagGramIsa::avx2, detail::FlagGramIsa::avx512}) {
    if (!flag_isa_runs(isa)) continue;
    MatD gi;
    detail::flag_gram(detail::FlagColumns<S>{x.data(), d, n, m, nullptr, key}, gi, isa);
    CHECK(((gi - exact).cwiseAbs() - bound).maxCoeff() <= 0.0);
    // The SIMD kernels (and the portable one where the build has a hardware FMA) give the same bits.
    if (isa != detail::FlagGramIsa::portable || detail::flag_madd_is_fused)
      CHECK(std::memcmp(gi.data(), g_best.data(), sizeof(double) * static_cast<std::size_t>(gi.size())) == 0);
  }
}

TEST_CASE("Flag top-k eigensolver: eigenpairs of distinct, clustered and low-rank spectra",
          "[aggregators][FlagAggregator][eigen]") {
  for (Index n : {Index{5}, Index{33}, Index{64}, Index{257}}) {
    for (int kind = 0; kind < 3; ++kind) {
      CAPTURE(n, kind);
      const MatD Q = orthonormal(n, n, static_cast<std::uint64_t>(n + kind));
      VecD lam(n);
      Rng rng = make_rng(3, static_cast<std::uint64_t>(n), static_cast<std::uint64_t>(kind), Purpose::user);
      for (Index i = 0; i < n; ++i) lam(i) = 1.0 + 10.0 * rng.uniform();
      if (kind == 1) lam.head(std::min<Index>(n, 4)).setConstant(20.0);  // a 4-fold top cluster
      if (kind == 2) lam.tail(n - std::min<Index>(n, 3)).setZero();      // rank 3 (PSD)
      const MatD K = Q * lam.asDiagonal() * Q.transpose();
      const detail::FlagTopEigen es(K);
      const Eigen::SelfAdjointEigenSolver<MatD> full(K);
      CHECK((es.values() - full.eigenvalues()).cwiseAbs().maxCoeff() < 1e-11 * lam.maxCoeff());
      const Index k = std::min<Index>(n, 6);
      const MatD V = es.vectors(k);
      CHECK((V.transpose() * V - MatD::Identity(k, k)).cwiseAbs().maxCoeff() < 1e-10);
      for (Index r = 0; r < k; ++r) {
        const double mu = es.values()(n - 1 - r);
        CHECK((K * V.col(r) - mu * V.col(r)).norm() < 1e-10 * lam.maxCoeff());
      }
      // The span of the top 4 (a whole cluster in kind 1; the top 3 for rank 3, whose 4th
      // eigenvalue 0 is degenerate) equals the full solver's.
      const Index t = std::min<Index>(n, kind == 2 ? 3 : 4);
      const MatD U = full.eigenvectors().rightCols(t);
      const MatD V4 = V.leftCols(t);
      CHECK((V4 - U * (U.transpose() * V4)).norm() < 1e-9);
    }
  }
}

TEMPLATE_TEST_CASE("FlagAggregator gives the same bits on 1 and 2 threads", "[aggregators][FlagAggregator]", float,
                   double) {
  using S = TestType;
  ThreadGuard guard;
  const Index d = 150001, n = 20;
  const auto batch = to_batch<S>(graded_normals(d, n, 8));
  for (FlagMode mode : {FlagMode::reference, FlagMode::standard}) {
    FlagAggregator fa(5, 2.0, mode);
    Vector<S> one, two;
    set_max_threads(1);
    fa.aggregate(batch, one);
    set_max_threads(2);
    fa.aggregate(batch, two);
    CHECK(same_bits(one, two));
  }
}

// ---- small robustness experiment ----------------------------------------------------------------

namespace {

// Coordinate-wise median (mean of the two middle values for even n).
Vector<float> coordinate_median(const UpdateBatch<float>& b) {
  Vector<float> out(b.dim());
  std::vector<float> v(static_cast<std::size_t>(b.size()));
  for (Index j = 0; j < b.dim(); ++j) {
    for (Index i = 0; i < b.size(); ++i) v[static_cast<std::size_t>(i)] = b.matrix()(j, i);
    std::sort(v.begin(), v.end());
    const std::size_t k = v.size() / 2;
    out(j) = v.size() % 2 ? v[k] : 0.5f * (v[k - 1] + v[k]);
  }
  return out;
}

enum class Rule { mean, median, flag_reference, flag_standard };

// Softmax regression on 10 Gaussian blobs (d_in = 50, 510 parameters), 15 workers with 100 samples
// each, 200 full-batch gradient steps with lr 0.1; workers 0..byz-1 send attack_scale * U[0,1)^d
// (the reference's `random` attack for attack_scale = 1). Returns the test accuracy.
double train_accuracy(Rule rule, int byz, float attack_scale) {
  const int classes = 10, workers = 15;
  const Index din = 50, per = 100;
  const auto train = fedpp_test::blobs<float>(workers * per, din, classes, 11, 1.0);
  const auto test = fedpp_test::blobs<float>(2000, din, classes, 12, 1.0);
  const SoftmaxRegression<float> model(din, classes);
  Vector<float> w;
  Rng init(5);
  model.init_params(w, init);
  FlagAggregator fa_ref(8, 0.0, FlagMode::reference), fa_std(8);
  Rng attack(9);
  Vector<float> g(model.num_params()), agg;
  for (int t = 0; t < 200; ++t) {
    UpdateBatch<float> batch(model.num_params(), workers);
    for (int c = 0; c < workers; ++c) {
      if (c < byz) {
        for (Index j = 0; j < g.size(); ++j) g(j) = attack_scale * attack.uniform_float();
      } else {
        const std::span<const Label> y(train->labels.data() + c * per, static_cast<std::size_t>(per));
        model.loss_and_gradient(as_span(std::as_const(w)), train->features.middleCols(c * per, per), y, as_span(g));
      }
      batch.push_back(static_cast<ClientId>(c), 1.0, as_span(std::as_const(g)));
    }
    switch (rule) {
      case Rule::mean: agg = batch.matrix().rowwise().mean(); break;
      case Rule::median: agg = coordinate_median(batch); break;
      case Rule::flag_reference:
        fa_ref.aggregate(batch, agg);
        REQUIRE(agg.norm() <= 15.0f / 8.0f * 1.0001f);  // ||FA|| <= p / r
        break;
      case Rule::flag_standard: fa_std.aggregate(batch, agg); break;
    }
    w -= 0.1f * agg;
  }
  const EvalResult r = model.evaluate(as_span(std::as_const(w)), test->features, test->labels);
  return static_cast<double>(r.correct) / static_cast<double>(r.count);
}

}  // namespace

TEST_CASE("FlagAggregator small experiment: 3 of 15 workers send uniform noise", "[aggregators][FlagAggregator]") {
  const double clean = train_accuracy(Rule::mean, 0, 1.0f);
  CHECK(clean > 0.6);  // well above chance (0.1)
  // The reference's `random` attack (U[0,1)^d). Softmax regression is invariant to the attack's
  // constant part (0.5 in every coordinate shifts all logits equally), so even the mean survives
  // it here; FA and the median stay near the clean accuracy.
  for (Rule rule : {Rule::median, Rule::flag_reference, Rule::flag_standard}) {
    CAPTURE(static_cast<int>(rule));
    CHECK(train_accuracy(rule, 3, 1.0f) > clean - 0.06);
  }
  // The same attack scaled by 100: the mean collapses to about chance; FA (which normalises every
  // update) and the median do not.
  CHECK(train_accuracy(Rule::mean, 3, 100.0f) < 0.3);
  for (Rule rule : {Rule::median, Rule::flag_reference, Rule::flag_standard}) {
    CAPTURE(static_cast<int>(rule));
    CHECK(train_accuracy(rule, 3, 100.0f) > clean - 0.06);
  }
}
