// Tests of fedpp::GeometricMedian: ByzFL golden value, an independent long double Weiszfeld,
// known medians, weighting, tolerance, breakdown bound, equivariance, errors, thread identity.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "fedpp/aggregators/geometric_median.hpp"
#include "fedpp/aggregators/weighted_mean.hpp"
#include "fedpp/core/rng.hpp"
#include "support/aggregator_inputs.hpp"
#include "support/aggregator_isas.hpp"
#include "support/checks.hpp"

using namespace fedpp;
using namespace fedpp_test;

namespace {

// Independent smoothed Weiszfeld in long double, straight from the definition.
template <typename S>
std::vector<long double> ref_weiszfeld(const Matrix<S>& x, const std::vector<double>& alpha, double nu, Index iters,
                                       bool from_mean) {
  const Index d = x.rows(), n = x.cols();
  std::vector<long double> z(static_cast<std::size_t>(d), 0.0L);
  if (from_mean)
    for (Index j = 0; j < d; ++j)
      for (Index i = 0; i < n; ++i) z[static_cast<std::size_t>(j)] += alpha[static_cast<std::size_t>(i)] * x(j, i);
  for (Index t = 0; t < iters; ++t) {
    std::vector<long double> beta(static_cast<std::size_t>(n));
    long double sb = 0;
    for (Index i = 0; i < n; ++i) {
      long double s = 0;
      for (Index j = 0; j < d; ++j) {
        const long double u = x(j, i) - z[static_cast<std::size_t>(j)];
        s += u * u;
      }
      beta[static_cast<std::size_t>(i)] = alpha[static_cast<std::size_t>(i)] / std::max<long double>(nu, std::sqrt(s));
      sb += beta[static_cast<std::size_t>(i)];
    }
    for (Index j = 0; j < d; ++j) {
      long double acc = 0;
      for (Index i = 0; i < n; ++i) acc += beta[static_cast<std::size_t>(i)] * x(j, i);
      z[static_cast<std::size_t>(j)] = acc / sb;
    }
  }
  return z;
}

}  // namespace

TEMPLATE_TEST_CASE("GeometricMedian reproduces ByzFL's golden value", "[aggregators][GeometricMedian]", float,
                   double) {
  using S = TestType;
  Matrix<S> x = byzfl_x<S>();
  Vector<S> out;
  const auto info = GeometricMedian::byzfl(0.1, 3).solve(UpdateBatch<S>(x), out);
  CHECK(info.iterations == 3);
  CHECK_FALSE(info.converged);
  const double golden[3] = {3.78788764, 4.78788764, 5.78788764};
  for (int k = 0; k < 3; ++k) CHECK(out(k) == Approx(golden[k]).epsilon(1e-7));
  // The default mode converges to the true geometric median of three collinear points: the middle one.
  GeometricMedian(1e-9, 1000, 1e-14).aggregate(UpdateBatch<S>(x), out);
  for (int k = 0; k < 3; ++k) CHECK(out(k) == Approx(4.0 + k).epsilon(1e-5));
}

TEMPLATE_TEST_CASE("GeometricMedian matches an independent long double Weiszfeld", "[aggregators][GeometricMedian]",
                   float, double) {
  using S = TestType;
  const Index n = GENERATE(1, 2, 7, 20);
  const Index d = GENERATE(as<Index>{}, 1, 9, 3 * detail::sweep_chunk + 5);
  const Matrix<S> x = cloud<S>(d, n, 0.5, 1.0, static_cast<std::uint64_t>(31 * n + d));
  std::vector<double> w(static_cast<std::size_t>(n));
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = 1.0 + static_cast<double>(i % 3);
  const UpdateBatch<S> batch(x, w);
  const double wsum = std::accumulate(w.begin(), w.end(), 0.0);
  for (Weighting weighting : {Weighting::uniform, Weighting::by_weight}) {
    std::vector<double> alpha(static_cast<std::size_t>(n));
    for (std::size_t i = 0; i < alpha.size(); ++i) alpha[i] = weighting == Weighting::uniform ? 1.0 / static_cast<double>(n) : w[i] / wsum;
    for (bool from_mean : {true, false}) {
      const Index iters = 6;
      const GeometricMedian gm(1e-3, iters, 0.0, weighting,
                               from_mean ? GeometricMedianStart::mean : GeometricMedianStart::zero);
      Vector<S> out;
      const auto info = gm.solve(batch, out);
      CHECK(info.iterations == iters);
      const auto ref = ref_weiszfeld(x, alpha, 1e-3, iters, from_mean);
      Index bad = 0;
      for (Index j = 0; j < d; ++j) {
        const long double r = ref[static_cast<std::size_t>(j)];
        const long double tol = std::is_same_v<S, float> ? 1e-6L * (1.0L + std::fabs(r)) : 1e-11L * (1.0L + std::fabs(r));
        if (std::fabs(static_cast<long double>(out(j)) - r) > tol) ++bad;
      }
      CAPTURE(n, d, from_mean, weighting == Weighting::uniform);
      CHECK(bad == 0);
    }
  }
}

TEST_CASE("GeometricMedian finds known medians", "[aggregators][GeometricMedian]") {
  Vector<double> out;
  SECTION("1-D: the median of an odd number of points") {
    Matrix<double> x(1, 5);
    x << 0, 1, 2, 10, 100;
    GeometricMedian(1e-12, 10000, 1e-15).aggregate(UpdateBatch<double>(x), out);
    CHECK(out(0) == Approx(2.0).margin(1e-6));
  }
  SECTION("2-D: the center of a square and of a symmetric star") {
    Matrix<double> sq(2, 4);
    sq << 1, -1, -1, 1,  //
        1, 1, -1, -1;
    GeometricMedian(1e-9, 200, 1e-15).aggregate(UpdateBatch<double>(sq), out);
    CHECK(out.norm() <= 1e-12);  // the mean start is already the median
    Matrix<double> tri(2, 3);    // an acute triangle: the Fermat point, where the unit vectors sum to 0
    tri << 0, 4, 1,              //
        0, 0, 3;
    GeometricMedian(1e-12, 5000, 1e-16).aggregate(UpdateBatch<double>(tri), out);
    Eigen::Vector2d g = Eigen::Vector2d::Zero();
    for (Index i = 0; i < 3; ++i) g += (tri.col(i) - out).normalized();
    CHECK(g.norm() <= 1e-6);
  }
}

TEMPLATE_TEST_CASE("GeometricMedian by_weight: an integer weight counts like copies", "[aggregators][GeometricMedian]",
                   float, double) {
  using S = TestType;
  const Index d = 50, n = 6;
  const Matrix<S> x = cloud<S>(d, n, 0.0, 1.0, 8);
  Matrix<S> dup(d, n + 2);
  dup << x, x.col(2), x.col(2);
  std::vector<double> w(static_cast<std::size_t>(n), 1.0);
  w[2] = 3.0;
  const GeometricMedian weighted(1e-6, 30, 0.0, Weighting::by_weight);
  const GeometricMedian plain(1e-6, 30, 0.0, Weighting::uniform);
  Vector<S> a, b, c;
  weighted.aggregate(UpdateBatch<S>(x, w), a);
  plain.aggregate(UpdateBatch<S>(dup), b);
  const S tol = std::is_same_v<S, float> ? S(1e-5) : S(1e-12);
  CHECK((a - b).cwiseAbs().maxCoeff() <= tol);
  plain.aggregate(UpdateBatch<S>(x, w), c);  // uniform ignores the weights
  CHECK((c - b).cwiseAbs().maxCoeff() > S(1e-3));
  CHECK(message_of([&] { weighted.aggregate(UpdateBatch<S>(x, std::vector<double>(6, 0.0)), a); }) ==
        "fedpp::GeometricMedian::aggregate: the sum of the weights must be finite and > 0, got 0");
}

TEMPLATE_TEST_CASE("GeometricMedian tolerance, iteration cap and starting points", "[aggregators][GeometricMedian]",
                   float, double) {
  using S = TestType;
  const Matrix<S> x = cloud<S>(2000, 15, 1.0, 0.5, 12);
  const UpdateBatch<S> batch(x);
  Vector<S> out, mean;
  auto info = GeometricMedian(1e-6, 500, 1e-8).solve(batch, out);
  CHECK(info.converged);
  CHECK(info.iterations < 500);
  CHECK(info.iterations > 1);
  info = GeometricMedian(1e-6, 7, 0.0).solve(batch, out);
  CHECK(info.iterations == 7);
  CHECK_FALSE(info.converged);
  // No iteration: the start (the mean, in double; or zero).
  info = GeometricMedian(1e-6, 0).solve(batch, out);
  CHECK(info.iterations == 0);
  WeightedMean(Weighting::uniform).aggregate(batch, mean);
  const S tol = std::is_same_v<S, float> ? S(1e-6) : S(1e-14);
  CHECK((out - mean).cwiseAbs().maxCoeff() <= tol);
  if constexpr (!detail::madd_is_fused) CHECK(same_bits(out, mean));  // the same multiply-then-add sequence
  GeometricMedian(1e-6, 0, 0.0, Weighting::uniform, GeometricMedianStart::zero).aggregate(batch, out);
  CHECK(out.isZero(0));
}

TEMPLATE_TEST_CASE("GeometricMedian stops on the relative change, so scaling by 2^k changes nothing but the scale",
                   "[aggregators][GeometricMedian]", float, double) {
  using S = TestType;
  // Multiplying every update by 2^k multiplies the start, every distance, the objective and every
  // iterate by exactly 2^k (no rounding changes; nu is far below every distance), and leaves the
  // relative stopping test |f_prev - f| <= tol * f unchanged: the same iteration count, the same
  // bits up to the scale. An absolute test would stop at another iteration for k = +-20.
  const Index d = 40, n = 9;
  const Matrix<S> x = cloud<S>(d, n, 0.5, 1.0, 77);
  const GeometricMedian gm(1e-30, 200, 1e-6);
  Vector<S> base;
  const auto info = gm.solve(UpdateBatch<S>(x), base);
  REQUIRE(info.converged);
  REQUIRE(info.iterations > 2);
  for (int k : {-20, 20}) {
    const S factor = static_cast<S>(std::ldexp(1.0, k));
    Vector<S> out;
    const auto scaled = gm.solve(UpdateBatch<S>(Matrix<S>(x * factor)), out);
    CAPTURE(k);
    CHECK(scaled.iterations == info.iterations);
    CHECK(scaled.converged);
    CHECK(same_bits(out, Vector<S>(base * factor)));
  }
}

TEMPLATE_TEST_CASE("GeometricMedian moves boundedly under f < n/2 huge attackers",
                   "[aggregators][GeometricMedian][breakdown]", float, double) {
  using S = TestType;
  const Index d = 300, n = 21;
  for (Index f : {Index{1}, Index{5}, Index{10}}) {
    Matrix<S> x = cloud<S>(d, n, 0.0, 1.0, static_cast<std::uint64_t>(100 + f));
    // Honest reference: the mean of the honest updates and their largest distance to it.
    const Vector<double> c = x.leftCols(n - f).template cast<double>().rowwise().mean();
    double r = 0;
    for (Index i = 0; i < n - f; ++i) r = std::max(r, (x.col(i).template cast<double>() - c).norm());
    for (Index a = n - f; a < n; ++a) x.col(a).setConstant(S(1e6));
    Vector<S> out, mean;
    GeometricMedian(1e-6, 300, 1e-10).aggregate(UpdateBatch<S>(x), out);
    WeightedMean(Weighting::uniform).aggregate(UpdateBatch<S>(x), mean);
    // ||GM - c|| <= 2 (n - f) / (n - 2f) * max_honest ||x_i - c|| (compare the objective at the
    // median and at c: (n - f)(2r - R) + f R >= 0), for the exact median; 1 % slack for smoothing.
    const double bound = 2.0 * static_cast<double>(n - f) / static_cast<double>(n - 2 * f) * r;
    const double moved = (out.template cast<double>() - c).norm();
    CAPTURE(f, moved, bound);
    CHECK(moved <= bound * 1.01);
    CHECK((mean.template cast<double>() - c).norm() > 1e4);  // the mean does not survive
  }
}

TEMPLATE_TEST_CASE("GeometricMedian: translation equivariance and permutation invariance up to rounding",
                   "[aggregators][GeometricMedian]", float, double) {
  using S = TestType;
  const Index d = 400, n = 12;
  const Matrix<S> x = cloud<S>(d, n, 0.0, 1.0, 77);
  const GeometricMedian gm(1e-6, 50, 0.0);
  Vector<S> base, shifted, permuted;
  gm.aggregate(UpdateBatch<S>(x), base);
  Matrix<S> y = x;
  y.array() += S(3);
  gm.aggregate(UpdateBatch<S>(y), shifted);
  const S tol = std::is_same_v<S, float> ? S(2e-5) : S(1e-12);
  CHECK((shifted.array() - S(3) - base.array()).abs().maxCoeff() <= tol);
  Matrix<S> p(d, n);
  for (Index i = 0; i < n; ++i) p.col(i) = x.col((i * 5) % n);
  gm.aggregate(UpdateBatch<S>(p), permuted);
  CHECK((permuted - base).cwiseAbs().maxCoeff() <= tol);
}

TEST_CASE("GeometricMedian errors", "[aggregators][GeometricMedian]") {
  CHECK(message_of([] { GeometricMedian(0.0); }) == "fedpp::GeometricMedian: nu must be finite and > 0, got 0");
  CHECK(message_of([] { GeometricMedian(1e-6, -1); }) == "fedpp::GeometricMedian: max_iter must be >= 0, got -1");
  CHECK(message_of([] { GeometricMedian(1e-6, 5, -0.5); }) ==
        "fedpp::GeometricMedian: tol must be finite and >= 0, got -0.5");
  Vector<float> out;
  CHECK(message_of([&] { GeometricMedian().aggregate(UpdateBatch<float>(3), out); }) ==
        "fedpp::GeometricMedian::aggregate: the batch holds no client updates");
  const GeometricMedian g = GeometricMedian::byzfl();
  CHECK(g.nu() == 0.1);
  CHECK(g.max_iter() == 3);
  CHECK(g.tol() == 0.0);
  CHECK(g.start() == GeometricMedianStart::zero);
}

TEMPLATE_TEST_CASE("GeometricMedian is bit-identical on 1, 2, 3 threads and with every kernel",
                   "[aggregators][GeometricMedian][threads]", float, double) {
  using S = TestType;
  ThreadGuard guard;
  const UpdateBatch<S> batch(cloud<S>(30 * detail::sweep_chunk + 3, 11, 0.2, 1.0, 5));
  std::vector<std::vector<double>> zs;
  for (int t : {1, 2, 3}) {
    set_max_threads(t);
    for (auto isa : all_dist_isas) {
      if (!dist_isa_runs(isa)) continue;
      std::vector<double> z;
      detail::weiszfeld(batch, 1e-6, 5, 1e-9, Weighting::uniform, GeometricMedianStart::mean, z, isa);
      zs.push_back(z);
    }
  }
  for (const auto& z : zs) CHECK(std::memcmp(z.data(), zs.front().data(), z.size() * sizeof(double)) == 0);
}
