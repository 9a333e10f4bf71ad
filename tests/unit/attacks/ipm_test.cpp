// Tests of fedpp::Ipm: ByzFL golden value, the brute-force honest mean, the inner-product
// identity <mean_all, mu> = ||mu||^2 - (f/n)(1 + eps)||mu||^2, when it turns negative, empty
// batches, errors and thread-count bit identity.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "fedpp/attacks/ipm.hpp"
#include "fedpp/core/rng.hpp"
#include "support/attack_batches.hpp"
#include "support/checks.hpp"

using namespace fedpp;
using namespace fedpp_test;

namespace {

}  // namespace

static_assert(Attack<Ipm, float> && Attack<Ipm, double>);

TEMPLATE_TEST_CASE("Ipm::byzfl reproduces ByzFL's InnerProductManipulation golden value", "[attacks][Ipm]", float,
                   double) {
  using S = TestType;
  const auto honest = byzfl_input<S>();
  auto byz = normal_batch<S>(3, 3, 1, {.shift = 0.3});
  Rng rng(0);
  const Ipm ipm = Ipm::byzfl();
  CHECK(ipm.epsilon() == 2.0);
  ipm.corrupt(byz, honest, AttackContext{0, 6, 3}, rng);
  for (Index c = 0; c < 3; ++c) {
    CHECK(byz.column(c)[0] == S(-8));
    CHECK(byz.column(c)[1] == S(-10));
    CHECK(byz.column(c)[2] == S(-12));
  }
}

TEMPLATE_TEST_CASE("Ipm writes -epsilon times the brute-force honest mean", "[attacks][Ipm]", float, double) {
  using S = TestType;
  const auto honest = normal_batch<S>(5000, 11, 2, {.shift = 0.3});
  auto byz = normal_batch<S>(5000, 2, 3, {.shift = 0.3});
  Rng rng(0);
  const Ipm ipm;  // default epsilon 0.1
  CHECK(ipm.epsilon() == 0.1);
  ipm.corrupt(byz, honest, AttackContext{0, 13, 2}, rng);
  for (std::size_t j = 0; j < 5000; ++j) {
    double sum = 0.0;
    for (Index i = 0; i < 11; ++i) sum += static_cast<double>(honest.column(i)[j]);
    const S want = static_cast<S>(-0.1 * (sum / 11.0));
    REQUIRE(byz.column(0)[j] == want);
    REQUIRE(byz.column(1)[j] == want);
  }
}

TEST_CASE("Ipm lowers <mean_all, mu> by (f/n)(1 + eps)||mu||^2", "[attacks][Ipm]") {
  const Index d = 1000, nh = 16, f = 4, n = nh + f;
  const auto honest = normal_batch<double>(d, nh, 4, {.shift = 0.3});
  Vector<double> mu = Vector<double>::Zero(d);
  for (Index i = 0; i < nh; ++i) mu += as_map(honest.column(i));
  mu /= static_cast<double>(nh);
  const double mu2 = mu.squaredNorm();
  for (double eps : {0.1, 0.5, 3.0, 10.0}) {
    auto byz = normal_batch<double>(d, f, 5, {.shift = 0.3});
    Rng rng(0);
    Ipm(eps).corrupt(byz, honest, AttackContext{0, n, f}, rng);
    Vector<double> mean_all = Vector<double>::Zero(d);
    for (Index i = 0; i < nh; ++i) mean_all += as_map(honest.column(i));
    for (Index i = 0; i < f; ++i) mean_all += as_map(byz.column(i));
    mean_all /= static_cast<double>(n);
    const double drop = mu2 - mean_all.dot(mu);  // relative to the honest-only mean (<mu, mu>)
    CAPTURE(eps);
    CHECK(drop == Approx(static_cast<double>(f) / static_cast<double>(n) * (1.0 + eps) * mu2).epsilon(1e-12));
    // The mean stops being a descent direction exactly when eps > (n - f) / f = 4.
    CHECK((mean_all.dot(mu) < 0.0) == (eps > 4.0));
  }
}

TEMPLATE_TEST_CASE("Ipm leaves an empty Byzantine batch alone", "[attacks][Ipm]", float, double) {
  using S = TestType;
  UpdateBatch<S> byz(4);
  Rng rng(0);
  Ipm().corrupt(byz, UpdateBatch<S>(4), AttackContext{}, rng);
  CHECK(byz.empty());
}

TEST_CASE("Ipm validates its settings and inputs", "[attacks][Ipm]") {
  CHECK(message_of([] { Ipm(0.0); }) == "fedpp::Ipm: epsilon must be finite and > 0, got 0");
  CHECK(message_of([] { Ipm(-0.5); }) == "fedpp::Ipm: epsilon must be finite and > 0, got -0.5");
  CHECK_THROWS_AS(Ipm(std::numeric_limits<double>::quiet_NaN()), InvalidArgument);
  CHECK_THROWS_AS(Ipm(std::numeric_limits<double>::infinity()), InvalidArgument);
  CHECK(message_of([] { Ipm(std::numeric_limits<double>::quiet_NaN()); }) ==
        "fedpp::Ipm: epsilon must be finite and > 0, got nan");
  CHECK(message_of([] { Ipm(std::numeric_limits<double>::infinity()); }) ==
        "fedpp::Ipm: epsilon must be finite and > 0, got inf");
  auto byz = normal_batch<float>(4, 2, 1, {.shift = 0.3});
  Rng rng(0);
  CHECK(message_of([&] { Ipm().corrupt(byz, UpdateBatch<float>(4), AttackContext{}, rng); }) ==
        "fedpp::Ipm::corrupt: needs at least 1 honest update (the honest mean), got 0");
  CHECK(message_of([&] { Ipm().corrupt(byz, normal_batch<float>(3, 2, 2, {.shift = 0.3}), AttackContext{}, rng); }) ==
        "fedpp::Ipm::corrupt: honest updates must have the dimension of the Byzantine updates (4), got 3");
}

TEMPLATE_TEST_CASE("Ipm gives the same bits with 1 and 2 threads", "[attacks][Ipm]", float, double) {
  using S = TestType;
  const auto honest = normal_batch<S>(100003, 9, 5, {.shift = 0.3});
  const auto byz0 = normal_batch<S>(100003, 3, 6, {.shift = 0.3});
  const auto a = corrupted_on_threads(Ipm(), byz0, honest, AttackContext{0, 12, 3}, 0, 1);
  const auto b = corrupted_on_threads(Ipm(), byz0, honest, AttackContext{0, 12, 3}, 0, 2);
  CHECK(same_bits(a, b));
  CHECK_FALSE(same_bits(a, byz0));
}
