// Tests of the synthetic generators: shapes, determinism, class balance, the geometry of the
// Gaussian mixture (exact mean distances, sample moments, Bayes accuracy) and the linear teacher.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "fedpp/core/config.hpp"
#include "fedpp/data/synthetic.hpp"
#include "support/checks.hpp"

using namespace fedpp;

namespace {

std::vector<Index> class_counts(const Dataset<float>& ds) {
  std::vector<Index> h(static_cast<std::size_t>(ds.num_classes), 0);
  for (Label y : ds.labels) ++h.at(static_cast<std::size_t>(y));
  return h;
}

// Standard normal CDF.
double phi(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }

}  // namespace

TEST_CASE("GaussianMixture generates balanced, valid, reproducible data", "[data][synthetic]") {
  const GaussianMixture mix(7, 12, 3.0, 42);
  const auto ds = mix.generate(1003, 1);
  REQUIRE(ds->dim() == 12);
  REQUIRE(ds->size() == 1003);
  CHECK(ds->num_classes == 7);
  CHECK_NOTHROW(ds->validate());
  const auto h = class_counts(*ds);
  CHECK(*std::max_element(h.begin(), h.end()) - *std::min_element(h.begin(), h.end()) <= 1);
  // Labels come in a random order, not 0, 1, 2, ...
  Index in_place = 0;
  for (Index j = 0; j < ds->size(); ++j) in_place += ds->labels[static_cast<std::size_t>(j)] == j % 7;
  CHECK(in_place < 300);

  // Same mixture seed and sample seed: identical; another sample seed: a different sample of the
  // same mixture; another mixture seed: other means.
  const auto again = GaussianMixture(7, 12, 3.0, 42).generate(1003, 1);
  CHECK(again->features == ds->features);
  CHECK(again->labels == ds->labels);
  const auto other = mix.generate(1003, 2);
  CHECK(other->features != ds->features);
  CHECK(GaussianMixture(7, 12, 3.0, 43).means() != mix.means());
  CHECK(GaussianMixture(7, 12, 3.0, 42).means() == mix.means());

  // The float sample is the double sample rounded.
  const auto d = mix.generate<double>(1003, 1);
  CHECK(d->labels == ds->labels);
  CHECK(d->features.cast<float>() == ds->features);
  CHECK(mix.generate(0, 1)->size() == 0);
}

TEST_CASE("GaussianMixture means are exactly `separation` apart when classes <= dim", "[data][synthetic]") {
  const double sep = GENERATE(0.5, 2.0, 6.0);
  const GaussianMixture mix(10, 10, sep, 5);
  const auto& mu = mix.means();
  REQUIRE(mu.rows() == 10);
  REQUIRE(mu.cols() == 10);
  for (Index a = 0; a < 10; ++a) {
    CHECK(mu.col(a).norm() == Approx(sep / std::sqrt(2.0)).epsilon(1e-12));
    for (Index b = a + 1; b < 10; ++b) CHECK((mu.col(a) - mu.col(b)).norm() == Approx(sep).epsilon(1e-12));
  }
  // More classes than dimensions: means on the sphere of the same radius.
  const GaussianMixture wide(5, 2, sep, 5);
  for (Index a = 0; a < 5; ++a) CHECK(wide.means().col(a).norm() == Approx(sep / std::sqrt(2.0)).epsilon(1e-12));
  CHECK(wide.separation() == sep);
  CHECK(wide.num_classes() == 5);
  CHECK(wide.dim() == 2);
}

TEST_CASE("GaussianMixture samples have the class means and the noise variance", "[data][synthetic]") {
  const double noise = 0.7;
  const GaussianMixture mix(3, 4, 5.0, 8, noise);
  const auto ds = mix.generate<double>(30000, 3);
  Matrix<double> sum = Matrix<double>::Zero(4, 3);
  std::vector<double> cnt(3, 0.0);
  for (Index j = 0; j < ds->size(); ++j) {
    const auto y = static_cast<Index>(ds->labels[static_cast<std::size_t>(j)]);
    sum.col(y) += ds->features.col(j);
    cnt[static_cast<std::size_t>(y)] += 1.0;
  }
  double ss = 0.0;
  for (Index k = 0; k < 3; ++k) {
    const Vector<double> m = sum.col(k) / cnt[static_cast<std::size_t>(k)];
    // Each coordinate's sample mean has standard error noise / sqrt(10000).
    for (Index r = 0; r < 4; ++r) CHECK(m(r) == Approx(mix.means()(r, k)).margin(5.0 * noise / 100.0));
  }
  for (Index j = 0; j < ds->size(); ++j)
    ss += (ds->features.col(j) - mix.means().col(ds->labels[static_cast<std::size_t>(j)])).squaredNorm();
  CHECK(ss / (4.0 * static_cast<double>(ds->size())) == Approx(noise * noise).epsilon(0.02));
}

TEST_CASE("a two-class GaussianMixture has Bayes accuracy Phi(separation / 2)", "[data][synthetic]") {
  const double sep = GENERATE(1.0, 2.0, 3.0);
  const GaussianMixture mix(2, 6, sep, 11);
  const auto ds = mix.generate<double>(40000, 12);
  Index correct = 0;
  for (Index j = 0; j < ds->size(); ++j) {
    const double d0 = (ds->features.col(j) - mix.means().col(0)).squaredNorm();
    const double d1 = (ds->features.col(j) - mix.means().col(1)).squaredNorm();
    correct += (d1 < d0 ? 1 : 0) == ds->labels[static_cast<std::size_t>(j)];
  }
  const double acc = static_cast<double>(correct) / static_cast<double>(ds->size());
  INFO("separation " << sep << " accuracy " << acc << " expected " << phi(sep / 2.0));
  CHECK(acc == Approx(phi(sep / 2.0)).margin(0.012));  // 5 standard errors
}

TEST_CASE("synthetic data do not depend on the thread count", "[data][synthetic]") {
  const GaussianMixture mix(4, 9, 2.0, 1);
  const LinearTeacher teacher(4, 9, 1);
  fedpp_test::ThreadGuard guard;
  set_max_threads(1);
  const auto a = mix.generate(5000, 7);
  const auto ta = teacher.generate(5000, 7);
  set_max_threads(std::max(2, guard.saved));
  const auto b = mix.generate(5000, 7);
  const auto tb = teacher.generate(5000, 7);
  CHECK(a->features == b->features);
  CHECK(a->labels == b->labels);
  CHECK(ta->features == tb->features);
  CHECK(ta->labels == tb->labels);
}

TEST_CASE("LinearTeacher labels are the argmax of its linear map", "[data][synthetic]") {
  const LinearTeacher teacher(5, 8, 3);
  REQUIRE(teacher.weights().rows() == 5);
  REQUIRE(teacher.weights().cols() == 8);
  const auto ds = teacher.generate<double>(4000, 2);
  REQUIRE(ds->dim() == 8);
  REQUIRE(ds->size() == 4000);
  CHECK_NOTHROW(ds->validate());
  std::vector<Index> h(5, 0);
  for (Index j = 0; j < ds->size(); ++j) {
    const Vector<double> x = ds->features.col(j);
    const Vector<double> scores = teacher.weights() * x;
    const Label y = ds->labels[static_cast<std::size_t>(j)];
    REQUIRE(y == teacher.classify(x));
    for (Index k = 0; k < 5; ++k) REQUIRE(scores(k) <= scores(y));
    ++h[static_cast<std::size_t>(y)];
  }
  for (Index c : h) CHECK(c > 200);  // every class occurs (balanced in expectation)
  // Inputs are standard normal.
  CHECK(std::abs(ds->features.mean()) < 0.03);
  CHECK((ds->features.array().square().mean()) == Approx(1.0).epsilon(0.04));
  // Determinism, and float = double rounded with the same labels.
  const auto f = teacher.generate<float>(4000, 2);
  CHECK(f->labels == ds->labels);
  CHECK(f->features == ds->features.cast<float>());
  CHECK(LinearTeacher(5, 8, 3).generate(100, 9)->labels == teacher.generate(100, 9)->labels);
  CHECK(teacher.generate(100, 10)->features != teacher.generate(100, 9)->features);
  CHECK_THROWS_AS(teacher.classify(Vector<double>::Zero(7)), DimensionError);
}

TEST_CASE("LinearTeacher label noise flips the expected fraction of labels", "[data][synthetic]") {
  const double noise = 0.3;
  const LinearTeacher noisy(4, 6, 5, noise);
  const auto ds = noisy.generate<double>(20000, 1);
  Index changed = 0;
  for (Index j = 0; j < ds->size(); ++j)
    changed += ds->labels[static_cast<std::size_t>(j)] != noisy.classify(ds->features.col(j));
  // A replaced label equals the teacher's with probability 1/4.
  const double frac = static_cast<double>(changed) / static_cast<double>(ds->size());
  CHECK(frac == Approx(noise * 0.75).margin(0.015));
  CHECK(noisy.label_noise() == noise);
}

TEST_CASE("synthetic generators validate their arguments", "[data][synthetic]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_WITH(GaussianMixture(0, 3, 1.0, 1), Catch::Contains("fedpp::GaussianMixture: num_classes must be >= 1, got 0"));
  CHECK_THROWS_AS(GaussianMixture(2, 0, 1.0, 1), InvalidArgument);
  CHECK_THROWS_AS(GaussianMixture(2, 3, -1.0, 1), InvalidArgument);
  CHECK_THROWS_AS(GaussianMixture(2, 3, nan, 1), InvalidArgument);
  CHECK_THROWS_AS(GaussianMixture(2, 3, 1.0, 1, -0.1), InvalidArgument);
  CHECK_THROWS_AS(GaussianMixture(2, 3, 1.0, 1).generate(-1, 1), InvalidArgument);
  CHECK_THROWS_AS(LinearTeacher(1, 3, 1), InvalidArgument);
  CHECK_THROWS_AS(LinearTeacher(3, 0, 1), InvalidArgument);
  CHECK_THROWS_WITH(LinearTeacher(3, 2, 1, 1.5), Catch::Contains("fedpp::LinearTeacher: label_noise must be in [0, 1], got 1.5"));
  CHECK_THROWS_AS(LinearTeacher(3, 2, 1, nan), InvalidArgument);
}

TEST_CASE("GaussianMixture noise is isotropic: uncorrelated coordinates of variance noise^2", "[data][synthetic]") {
  // Odd dimension, so the last coordinate comes from an unpaired Box-Muller draw.
  const double noise = 0.5;
  const GaussianMixture mix(2, 5, 1.0, 4, noise);
  const auto ds = mix.generate<double>(20000, 6);
  Matrix<double> cov = Matrix<double>::Zero(5, 5);
  for (Index j = 0; j < ds->size(); ++j) {
    const Vector<double> z = ds->features.col(j) - mix.means().col(ds->labels[static_cast<std::size_t>(j)]);
    cov += z * z.transpose();
  }
  cov /= static_cast<double>(ds->size());
  // Each entry of the sample covariance has standard error about noise^2 / sqrt(n) = 0.0018.
  for (Index a = 0; a < 5; ++a)
    for (Index b = 0; b < 5; ++b) {
      CAPTURE(a, b);
      CHECK(cov(a, b) == Approx(a == b ? noise * noise : 0.0).margin(0.012));
    }
}

TEST_CASE("LinearTeacher with label_noise 1 draws every label uniformly", "[data][synthetic]") {
  // Every label is replaced by a uniform class: each of the 4 classes holds 5000 +- 5 sd
  // (sd = sqrt(20000 * 1/4 * 3/4) = 61) of 20000 samples, whatever the teacher says.
  const LinearTeacher t(4, 3, 8, 1.0);
  const auto ds = t.generate(20000, 2);
  const auto h = class_counts(*ds);
  for (Index c : h) CHECK(std::abs(c - 5000) < 310);
  // Without noise the labels are the teacher's.
  const LinearTeacher clean(4, 3, 8);
  const auto dc = clean.generate<double>(500, 2);
  for (Index j = 0; j < dc->size(); ++j) REQUIRE(dc->labels[static_cast<std::size_t>(j)] == clean.classify(dc->features.col(j)));
}

TEST_CASE("GaussianMixture labels are i mod C before the shuffle", "[data][synthetic]") {
  // n = 2C + 3 samples: classes 0..2 get 3 samples, the others 2.
  const GaussianMixture mix(5, 2, 1.0, 1);
  const auto h = class_counts(*mix.generate(13, 3));
  CHECK(h == std::vector<Index>{3, 3, 3, 2, 2});
}

TEST_CASE("synthetic generator errors name the class, the parameter and the value", "[data][synthetic]") {
  const GaussianMixture mix(2, 3, 1.0, 1);
  const Index too_many = (Index{1} << 32) + 1;
  CHECK_THROWS_WITH(mix.generate(too_many, 1), "fedpp::GaussianMixture::generate: n must be in [0, 2^32], got 4294967297");
  CHECK_THROWS_WITH(mix.generate(-1, 1), "fedpp::GaussianMixture::generate: n must be in [0, 2^32], got -1");
  const LinearTeacher t(3, 2, 1);
  CHECK_THROWS_WITH(t.generate(too_many, 1), "fedpp::LinearTeacher::generate: n must be in [0, 2^32], got 4294967297");
  CHECK_THROWS_WITH(t.generate(-3, 1), "fedpp::LinearTeacher::generate: n must be in [0, 2^32], got -3");
  CHECK_THROWS_WITH(t.classify(Vector<double>::Zero(3)), "fedpp::LinearTeacher: x must have dim() entries (2), got 3");
  CHECK_THROWS_WITH(GaussianMixture(2, 0, 1.0, 1), "fedpp::GaussianMixture: dim must be >= 1, got 0");
  CHECK_THROWS_WITH(GaussianMixture(2, 3, -1.0, 1), "fedpp::GaussianMixture: separation must be finite and >= 0, got -1");
  CHECK_THROWS_WITH(GaussianMixture(2, 3, 1.0, 1, -0.5), "fedpp::GaussianMixture: noise must be finite and >= 0, got -0.5");
  CHECK_THROWS_AS(GaussianMixture(2, 3, 1.0, 1, std::numeric_limits<double>::infinity()), InvalidArgument);
  CHECK_THROWS_WITH(LinearTeacher(1, 3, 1), "fedpp::LinearTeacher: num_classes must be >= 2, got 1");
  CHECK_THROWS_WITH(LinearTeacher(3, 0, 1), "fedpp::LinearTeacher: dim must be >= 1, got 0");
  CHECK_THROWS_WITH(LinearTeacher(3, 2, 1, -0.1), "fedpp::LinearTeacher: label_noise must be in [0, 1], got -0.1");
  CHECK_NOTHROW(GaussianMixture(1, 1, 0.0, 1, 0.0));
  CHECK_NOTHROW(LinearTeacher(2, 1, 1, 1.0));
}
