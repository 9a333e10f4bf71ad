// Tests of fedpp::SignFlip: ByzFL golden value, exact own-update flips, the honest-mean source
// against a brute-force mean, the effect on the plain mean (when c = 1 does not break it),
// empty batches, errors and thread-count bit identity.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "fedpp/attacks/sign_flip.hpp"
#include "fedpp/core/rng.hpp"
#include "support/attack_batches.hpp"
#include "support/checks.hpp"

using namespace fedpp;
using namespace fedpp_test;

static_assert(Attack<SignFlip, float> && Attack<SignFlip, double>);

TEMPLATE_TEST_CASE("SignFlip::byzfl reproduces ByzFL's SignFlipping golden value", "[attacks][SignFlip]", float,
                   double) {
  using S = TestType;
  const auto honest = byzfl_input<S>();
  auto byz = normal_batch<S>(3, 2, 1, {.scale = 3.0, .shift = 0.5, .first_id = 10});
  Rng rng(0);
  SignFlip::byzfl().corrupt(byz, honest, AttackContext{0, 5, 2}, rng);
  for (Index c = 0; c < 2; ++c) {
    CHECK(byz.column(c)[0] == S(-4));
    CHECK(byz.column(c)[1] == S(-5));
    CHECK(byz.column(c)[2] == S(-6));
  }
  CHECK(byz.ids()[0] == 10);
  CHECK(byz.ids()[1] == 11);
}

TEMPLATE_TEST_CASE("SignFlip (own) multiplies each update by -c exactly", "[attacks][SignFlip]", float, double) {
  using S = TestType;
  const double c = GENERATE(1.0, 4.0, 10.0, 0.3);
  const auto orig = normal_batch<S>(37, 5, 2, {.scale = 3.0, .shift = 0.5});
  auto byz = orig;
  const UpdateBatch<S> honest;  // not needed by the own source
  Rng rng(0);
  SignFlip attack(c);
  CHECK(attack.scale() == c);
  CHECK(attack.source() == SignFlipSource::own);
  attack.corrupt(byz, honest, AttackContext{}, rng);
  for (Index i = 0; i < 5; ++i)
    for (Index j = 0; j < 37; ++j)
      REQUIRE(byz.column(i)[static_cast<std::size_t>(j)] ==
              static_cast<S>(-c * static_cast<double>(orig.column(i)[static_cast<std::size_t>(j)])));
  if (c == 1.0) {
    for (std::size_t j = 0; j < 37; ++j) CHECK(byz.column(0)[j] == -orig.column(0)[j]);
  }
}

TEST_CASE("SignFlip default is Garfield's reverse attack (c = 10, own update)", "[attacks][SignFlip]") {
  const SignFlip a;
  CHECK(a.scale() == 10.0);
  CHECK(a.source() == SignFlipSource::own);
  const SignFlip b = SignFlip::byzfl();
  CHECK(b.scale() == 1.0);
  CHECK(b.source() == SignFlipSource::honest_mean);
}

TEMPLATE_TEST_CASE("SignFlip (honest_mean) writes -c times the brute-force honest mean", "[attacks][SignFlip]", float,
                   double) {
  using S = TestType;
  const auto honest = normal_batch<S>(4100, 9, 3, {.scale = 3.0, .shift = 0.5});  // more than one coordinate block
  auto byz = normal_batch<S>(4100, 3, 4, {.scale = 3.0, .shift = 0.5, .first_id = 100});
  Rng rng(0);
  SignFlip(2.5, SignFlipSource::honest_mean).corrupt(byz, honest, AttackContext{3, 12, 3}, rng);
  for (Index j = 0; j < 4100; ++j) {
    double sum = 0.0;
    for (Index i = 0; i < 9; ++i) sum += static_cast<double>(honest.column(i)[static_cast<std::size_t>(j)]);
    const S want = static_cast<S>(-2.5 * (sum / 9.0));
    for (Index c = 0; c < 3; ++c) REQUIRE(byz.column(c)[static_cast<std::size_t>(j)] == want);
  }
}

TEST_CASE("SignFlip: the plain mean flips only when c > (n - f) / f", "[attacks][SignFlip]") {
  // n = 20 clients, f = 4 Byzantine, every client's honest update equal to g = (1, -2, 0.5).
  // By hand: mean = (16 g - 4 c g) / 20 = (0.8 - 0.2 c) g, so c = 1 shrinks the step to 0.6 g,
  // c = 4 cancels it and c = 10 reverses it to -1.2 g.
  const Index n = 20, f = 4, d = 3;
  Vector<double> g(d);
  g << 1.0, -2.0, 0.5;
  struct Case {
    double c;
    double want[3];
  };
  for (const Case& k : {Case{1.0, {0.6, -1.2, 0.3}}, Case{4.0, {0.0, 0.0, 0.0}}, Case{10.0, {-1.2, 2.4, -0.6}}}) {
    UpdateBatch<double> byz(d), honest(d);
    for (Index i = 0; i < f; ++i) byz.push_back(static_cast<ClientId>(i), 1.0, as_span(g));
    for (Index i = f; i < n; ++i) honest.push_back(static_cast<ClientId>(i), 1.0, as_span(g));
    Rng rng(0);
    SignFlip(k.c).corrupt(byz, honest, AttackContext{0, n, f}, rng);
    // Each Byzantine column is exactly -c g (-c times a small integer or a half is exact).
    for (Index i = 0; i < f; ++i)
      for (Index j = 0; j < d; ++j) CHECK(byz.column(i)[static_cast<std::size_t>(j)] == -k.c * g(j));
    Vector<double> mean = Vector<double>::Zero(d);
    for (Index i = 0; i < f; ++i) mean += as_map(byz.column(i));
    for (Index i = 0; i < n - f; ++i) mean += as_map(honest.column(i));
    mean /= static_cast<double>(n);
    CAPTURE(k.c);
    for (Index j = 0; j < d; ++j) CHECK(std::fabs(mean(j) - k.want[j]) < 1e-12);
  }
}

TEMPLATE_TEST_CASE("SignFlip leaves an empty Byzantine batch alone", "[attacks][SignFlip]", float, double) {
  using S = TestType;
  UpdateBatch<S> byz(5);
  const UpdateBatch<S> honest(5);  // empty too: no error since there is nothing to write
  Rng rng(0);
  SignFlip(3.0, SignFlipSource::honest_mean).corrupt(byz, honest, AttackContext{}, rng);
  SignFlip().corrupt(byz, honest, AttackContext{}, rng);
  CHECK(byz.empty());
}

TEST_CASE("SignFlip validates its settings and inputs", "[attacks][SignFlip]") {
  CHECK(message_of([] { SignFlip(-1.0); }) == "fedpp::SignFlip: scale must be finite and > 0, got -1");
  CHECK(message_of([] { SignFlip(0.0); }) == "fedpp::SignFlip: scale must be finite and > 0, got 0");
  CHECK_THROWS_AS(SignFlip(std::numeric_limits<double>::infinity()), InvalidArgument);
  CHECK_THROWS_AS(SignFlip(std::numeric_limits<double>::quiet_NaN()), InvalidArgument);
  CHECK(message_of([] { SignFlip(std::numeric_limits<double>::infinity()); }) ==
        "fedpp::SignFlip: scale must be finite and > 0, got inf");
  CHECK(message_of([] { SignFlip(std::numeric_limits<double>::quiet_NaN(), SignFlipSource::honest_mean); }) ==
        "fedpp::SignFlip: scale must be finite and > 0, got nan");

  auto byz = normal_batch<float>(4, 2, 1, {.scale = 3.0, .shift = 0.5});
  Rng rng(0);
  const SignFlip mean_flip(1.0, SignFlipSource::honest_mean);
  CHECK(message_of([&] { mean_flip.corrupt(byz, UpdateBatch<float>(4), AttackContext{}, rng); }) ==
        "fedpp::SignFlip::corrupt: needs at least 1 honest update (source honest_mean), got 0");
  const auto wrong_dim = normal_batch<float>(5, 2, 2, {.scale = 3.0, .shift = 0.5});
  CHECK_THROWS_AS(mean_flip.corrupt(byz, wrong_dim, AttackContext{}, rng), DimensionError);
  CHECK(message_of([&] { mean_flip.corrupt(byz, wrong_dim, AttackContext{}, rng); }) ==
        "fedpp::SignFlip::corrupt: honest updates must have the dimension of the Byzantine updates (4), got 5");
}

TEMPLATE_TEST_CASE("SignFlip gives the same bits with 1 and 2 threads", "[attacks][SignFlip]", float, double) {
  using S = TestType;
  const auto honest = normal_batch<S>(100003, 7, 5, {.scale = 3.0, .shift = 0.5});
  const auto byz0 = normal_batch<S>(100003, 3, 6, {.scale = 3.0, .shift = 0.5, .first_id = 50});
  for (auto source : {SignFlipSource::own, SignFlipSource::honest_mean}) {
    const auto a = corrupted_on_threads(SignFlip(10.0, source), byz0, honest, AttackContext{0, 10, 3}, 9, 1);
    const auto b = corrupted_on_threads(SignFlip(10.0, source), byz0, honest, AttackContext{0, 10, 3}, 9, 2);
    CHECK(same_bits(a, b));
    CHECK_FALSE(same_bits(a, byz0));
  }
}
