// Tests of fedpp::Alie and of the normal quantile it uses: quantile against high-precision
// values, round trips Phi(Phi^{-1}(p)) = p, symmetry, Boost.Math when installed; z_max worked
// values and requirements; ByzFL golden value; the attack against a brute-force reference;
// single honest update; errors; thread-count bit identity.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "fedpp/attacks/alie.hpp"
#include "fedpp/core/rng.hpp"
#include "support/attack_batches.hpp"
#include "support/checks.hpp"

#if __has_include(<boost/math/distributions/normal.hpp>)
#include <boost/math/distributions/normal.hpp>
#define FEDPP_TEST_HAS_BOOST_MATH 1
#else
#define FEDPP_TEST_HAS_BOOST_MATH 0
#endif

using namespace fedpp;
using namespace fedpp_test;
using detail::normal_cdf;
using detail::normal_quantile;

namespace {

// A d x n batch of 2 z - 1 + 0.1 (j % 7) at coordinate j (z standard normal): per-coordinate means differ.
template <typename S>
UpdateBatch<S> alie_batch(Index d, Index n, std::uint64_t seed) {
  return UpdateBatch<S>(normal_draws<S>(d, n, seed, [](double z, Index j) {
    return 2.0 * z - 1.0 + 0.1 * static_cast<double>(j % 7);
  }));
}

double rel_err(double got, double want) { return std::abs(got - want) / std::max(std::abs(want), 1e-300); }

// The documented arithmetic, written out plainly: per coordinate, the mean of the honest values
// (double, column order), the unbiased std by a second pass, b = S(madd(shift, sd, mean)).
template <typename S>
std::vector<S> reference_alie(const UpdateBatch<S>& honest, double shift) {
  const Index d = honest.dim(), n = honest.size();
  std::vector<S> out(static_cast<std::size_t>(d));
  for (Index j = 0; j < d; ++j) {
    double s = 0.0;
    for (Index i = 0; i < n; ++i) s += static_cast<double>(honest.column(i)[static_cast<std::size_t>(j)]);
    const double mean = s / static_cast<double>(n);
    double ss = 0.0;
    for (Index i = 0; i < n; ++i) {
      const double dev = static_cast<double>(honest.column(i)[static_cast<std::size_t>(j)]) - mean;
      ss = detail::attack_madd(dev, dev, ss);
    }
    const double sd = n > 1 ? std::sqrt(ss / static_cast<double>(n - 1)) : 0.0;
    out[static_cast<std::size_t>(j)] = static_cast<S>(detail::attack_madd(shift, sd, mean));
  }
  return out;
}

}  // namespace

static_assert(Attack<Alie, float> && Attack<Alie, double>);

TEST_CASE("normal_quantile matches high-precision values", "[attacks][Alie][normal_quantile]") {
  // Reference values: the root of Phi(x) = p in 50-digit arithmetic (mpmath), p as the double shown.
  struct Case {
    double p, x;
  };
  const Case cases[] = {
      {0.975, 1.9599639845400538556},     {0.05, -1.644853626951472688},       {1e-10, -6.3613409024040561991},
      {0.3, -0.52440051270804081597},     {0.02425, -1.9729610513118848376},   {0.97575, 1.9729610513118849594},
      {0.999, 3.0902323061678132778},     {1e-300, -37.047096299361199237},    {0.6, 0.25334710313579974132},
      {1.0 - 1e-12, 7.0344869100478352057}};
  for (const auto& c : cases) {
    CAPTURE(c.p);
    CHECK(rel_err(normal_quantile(c.p), c.x) < 4e-15);
  }
  CHECK(normal_quantile(0.5) == 0.0);
  CHECK(normal_quantile(0.0) == -std::numeric_limits<double>::infinity());
  CHECK(normal_quantile(1.0) == std::numeric_limits<double>::infinity());
  CHECK(std::isnan(normal_quantile(-0.1)));
  CHECK(std::isnan(normal_quantile(1.1)));
  CHECK(std::isnan(normal_quantile(std::numeric_limits<double>::quiet_NaN())));
}

TEST_CASE("normal_quantile inverts Phi and is odd about 1/2", "[attacks][Alie][normal_quantile]") {
  // Lower half, 1e-300 .. 0.5 on a log grid: Phi(q(p)) = p. A relative error dx/x in the
  // quantile shows as about x^2 dx/x in Phi, so the bound is 2e-15 max(1, x^2) (a few ulp).
  for (double e = -300.0; e <= std::log10(0.5); e += 0.037) {
    const double p = std::pow(10.0, e);
    const double x = normal_quantile(p);
    CAPTURE(p, x);
    REQUIRE(rel_err(normal_cdf(x), p) < 2e-15 * std::max(1.0, x * x));
  }
  // Upper half, 1 - p with p = 1e-16 .. 0.5: the complement Q(q(1 - p)) = p.
  for (double e = -16.0; e <= std::log10(0.5); e += 0.11) {
    const double p = std::pow(10.0, e);
    const double x = normal_quantile(1.0 - p);
    const double tail = 0.5 * std::erfc(x / std::sqrt(2.0));
    const double exact_p = 1.0 - (1.0 - p);  // the p actually represented by the double 1 - p
    CAPTURE(p, x);
    REQUIRE(rel_err(tail, exact_p) < 2e-15 * std::max(1.0, x * x));
  }
  // q(1 - p) = -q(p) where 1 - p is exact (p = k / 1024).
  for (int k = 1; k < 1024; ++k) {
    const double p = k / 1024.0;
    REQUIRE(std::abs(normal_quantile(1.0 - p) + normal_quantile(p)) <= 4e-16 * std::max(1.0, std::abs(normal_quantile(p))));
  }
  // Monotone on a fine grid across the region boundaries of the approximation.
  double prev = -std::numeric_limits<double>::infinity();
  for (double p = 0.0240; p < 0.0245; p += 1e-6) {
    const double x = normal_quantile(p);
    REQUIRE(x > prev);
    prev = x;
  }
}

#if FEDPP_TEST_HAS_BOOST_MATH
TEST_CASE("normal_quantile agrees with Boost.Math", "[attacks][Alie][normal_quantile]") {
  const boost::math::normal_distribution<double> N(0.0, 1.0);
  auto rng = make_rng(3, 0, 0, Purpose::user);
  for (int k = 0; k < 200000; ++k) {
    const double p = k % 2 ? rng.uniform() : std::pow(10.0, -300.0 * rng.uniform());
    if (p <= 0.0) continue;
    CAPTURE(p);
    REQUIRE(rel_err(normal_quantile(p), boost::math::quantile(N, p)) < 2e-15);  // within a few ulp
  }
}
#else
TEST_CASE("normal_quantile agrees with Boost.Math", "[attacks][Alie][normal_quantile]") {
  WARN("skipped: <boost/math/distributions/normal.hpp> not found (libboost-dev), so normal_quantile is not "
       "compared with Boost.Math; the worked values below still check it");
}
#endif

TEST_CASE("Alie::z_max reproduces the worked values of both variants", "[attacks][Alie]") {
  struct Case {
    Index n, f;
    double a, b;       // 4-digit worked values
    double a_exact, b_exact;  // 20-digit values (mpmath)
  };
  const Case cases[] = {
      {15, 3, 0.2104, 0.4307, 0.21042839424792472332, 0.43072729929545749021},
      {20, 4, 0.1573, 0.3853, 0.15731068461017069552, 0.38532046640756762381},
      {50, 12, 0.3360, 0.5828, 0.33603814037182308733, 0.58284150727121621869},
      {25, 5, 0.2533, 0.4677, 0.2533471031357997988, 0.46769879911450821441}};
  for (const auto& c : cases) {
    CAPTURE(c.n, c.f);
    const double za = Alie::z_max(c.n, c.f, AlieVariant::a);
    const double zb = Alie::z_max(c.n, c.f, AlieVariant::b);
    CHECK(std::abs(za - c.a) < 5e-5);
    CHECK(std::abs(zb - c.b) < 5e-5);
    CHECK(rel_err(za, c.a_exact) < 1e-13);
    CHECK(rel_err(zb, c.b_exact) < 1e-13);
  }
  CHECK(Alie::z_max(15, 3) == Alie::z_max(15, 3, AlieVariant::a));  // default variant
  CHECK(std::round(Alie::z_max(15, 3) * 100.0) / 100.0 == 0.21);     // Garfield's hard-coded z
  // Variant A is negative when f is small: n = 20, f = 1 -> Phi^{-1}(9/19).
  CHECK(rel_err(Alie::z_max(20, 1, AlieVariant::a), -0.066011812375840661031) < 1e-12);
  CHECK(Alie::z_max(20, 1, AlieVariant::b) == 0.0);  // (20 - 10) / 20 = 1/2
  // Smallest valid settings.
  CHECK(std::isfinite(Alie::z_max(3, 1, AlieVariant::a)));
  CHECK(Alie::z_max(2, 1, AlieVariant::b) == 0.0);
}

TEST_CASE("Alie::z_max states its requirements on n and f", "[attacks][Alie]") {
  CHECK(message_of([] { (void)Alie::z_max(0, 0); }) == "fedpp::Alie::z_max: requires n >= 1 (n = 0, f = 0), got n = 0");
  CHECK(message_of([] { (void)Alie::z_max(5, -1); }) ==
        "fedpp::Alie::z_max: requires 0 <= f <= n (n = 5, f = -1), got f = -1");
  CHECK(message_of([] { (void)Alie::z_max(5, 6); }) ==
        "fedpp::Alie::z_max: requires 0 <= f <= n (n = 5, f = 6), got f = 6");
  CHECK(message_of([] { (void)Alie::z_max(5, 3); }) ==
        "fedpp::Alie::z_max: requires s = floor(n/2 + 1) - f >= 1, i.e. f <= floor(n/2) (n = 5, f = 3), got s = 0");
  CHECK_NOTHROW(Alie::z_max(5, 2));
  CHECK(message_of([] { (void)Alie::z_max(2, 1, AlieVariant::a); }) ==
        "fedpp::Alie::z_max: variant a requires n >= 3 (n = 2, f = 1), got n = 2");
  CHECK(message_of([] { (void)Alie::z_max(2, 0, AlieVariant::b); }) ==
        "fedpp::Alie::z_max: variant b requires s = floor(n/2 + 1) - f < n (n = 2, f = 0), got s = 2");
  CHECK_THROWS_AS(Alie::z_max(1, 0, AlieVariant::b), InvalidArgument);
  CHECK(message_of([] { (void)Alie::z_max(1, 0, AlieVariant::b); }) ==
        "fedpp::Alie::z_max: variant b requires s = floor(n/2 + 1) - f < n (n = 1, f = 0), got s = 1");
}

TEMPLATE_TEST_CASE("Alie::byzfl reproduces ByzFL's ALittleIsEnough golden value", "[attacks][Alie]", float, double) {
  using S = TestType;
  const auto honest = byzfl_input<S>();
  auto byz = alie_batch<S>(3, 2, 1);
  Rng rng(0);
  const Alie a = Alie::byzfl();
  REQUIRE(a.fixed_z());
  CHECK(*a.fixed_z() == 1.5);
  CHECK(a.sign() == AlieSign::plus);
  a.corrupt(byz, honest, AttackContext{0, 5, 2}, rng);
  for (Index c = 0; c < 2; ++c) {
    CHECK(byz.column(c)[0] == S(8.5));
    CHECK(byz.column(c)[1] == S(9.5));
    CHECK(byz.column(c)[2] == S(10.5));
  }
}

TEMPLATE_TEST_CASE("Alie matches the brute-force reference in every mode", "[attacks][Alie]", float, double) {
  using S = TestType;
  const Index d = 4099, nh = 12, f = 3;  // several coordinate blocks, ragged last block
  const auto honest = alie_batch<S>(d, nh, 7);
  const AttackContext ctx{4, nh + f, f};
  struct Mode {
    Alie attack;
    double shift;
  };
  const double za = Alie::z_max(nh + f, f, AlieVariant::a);
  const double zb = Alie::z_max(nh + f, f, AlieVariant::b);
  const Mode modes[] = {{Alie(), -za},
                        {Alie(AlieVariant::a, AlieSign::plus), za},
                        {Alie(AlieVariant::b), -zb},
                        {Alie::fixed(1.0), -1.0},
                        {Alie::fixed(0.0), 0.0},
                        {Alie::byzfl(2.5), 2.5}};
  for (const auto& m : modes) {
    auto byz = alie_batch<S>(d, f, 8);
    Rng rng(0);
    CHECK(m.attack.z_for(ctx) == std::abs(m.shift));
    m.attack.corrupt(byz, honest, ctx, rng);
    const auto want = reference_alie(honest, m.shift);
    for (Index c = 0; c < f; ++c)
      REQUIRE(std::memcmp(byz.column(c).data(), want.data(), want.size() * sizeof(S)) == 0);
  }
  // A sanity check of the reference itself on coordinate 0 (long double, one-pass formula).
  long double s = 0, s2 = 0;
  for (Index i = 0; i < nh; ++i) {
    const long double x = honest.column(i)[0];
    s += x;
    s2 += x * x;
  }
  const long double mean = s / nh, sd = std::sqrt((s2 - s * s / nh) / (nh - 1));
  CHECK(static_cast<double>(reference_alie(honest, -za)[0]) ==
        Approx(static_cast<double>(mean - static_cast<long double>(za) * sd)).epsilon(1e-5));
}

TEMPLATE_TEST_CASE("Alie with a single honest update sends it (sigma = 0)", "[attacks][Alie]", float, double) {
  using S = TestType;
  const auto honest = alie_batch<S>(40, 1, 3);
  auto byz = alie_batch<S>(40, 2, 4);
  Rng rng(0);
  Alie::fixed(3.0).corrupt(byz, honest, AttackContext{0, 3, 2}, rng);
  for (Index c = 0; c < 2; ++c)
    CHECK(std::memcmp(byz.column(c).data(), honest.column(0).data(), 40 * sizeof(S)) == 0);
}

TEST_CASE("Alie shifts every coordinate by z standard deviations toward the chosen side", "[attacks][Alie]") {
  const auto honest = alie_batch<double>(500, 16, 9);
  auto minus = alie_batch<double>(500, 4, 10), plus = minus;
  Rng rng(0);
  const AttackContext ctx{0, 20, 4};
  Alie().corrupt(minus, honest, ctx, rng);
  Alie(AlieVariant::a, AlieSign::plus).corrupt(plus, honest, ctx, rng);
  const double z = Alie::z_max(20, 4);
  for (std::size_t j = 0; j < 500; ++j) {
    double m = 0;
    for (Index i = 0; i < 16; ++i) m += honest.column(i)[j];
    m /= 16;
    // mu - z sigma and mu + z sigma are symmetric about mu and z sigma apart from it.
    REQUIRE(minus.column(0)[j] + plus.column(0)[j] == Approx(2 * m).margin(1e-12));
    REQUIRE(plus.column(0)[j] - m > 0.0);
    double ss = 0;
    for (Index i = 0; i < 16; ++i) ss += (honest.column(i)[j] - m) * (honest.column(i)[j] - m);
    REQUIRE(plus.column(0)[j] - m == Approx(z * std::sqrt(ss / 15)).epsilon(1e-12));
  }
}

TEST_CASE("Alie validates its settings and inputs", "[attacks][Alie]") {
  CHECK(message_of([] { (void)Alie::fixed(-1.0); }) == "fedpp::Alie: z must be finite and >= 0, got -1");
  CHECK_THROWS_AS(Alie::fixed(std::numeric_limits<double>::quiet_NaN()), InvalidArgument);
  CHECK_THROWS_AS(Alie::byzfl(std::numeric_limits<double>::infinity()), InvalidArgument);
  CHECK(message_of([] { (void)Alie::fixed(std::numeric_limits<double>::quiet_NaN()); }) ==
        "fedpp::Alie: z must be finite and >= 0, got nan");
  CHECK(message_of([] { (void)Alie::byzfl(std::numeric_limits<double>::infinity()); }) ==
        "fedpp::Alie: z must be finite and >= 0, got inf");
  const Alie def;
  CHECK_FALSE(def.fixed_z());
  CHECK(def.variant() == AlieVariant::a);
  CHECK(def.sign() == AlieSign::minus);

  auto byz = alie_batch<float>(6, 2, 1);
  Rng rng(0);
  CHECK(message_of([&] { def.corrupt(byz, UpdateBatch<float>(6), AttackContext{0, 2, 2}, rng); }) ==
        "fedpp::Alie::corrupt: needs at least 1 honest update (mu and sigma of the honest updates), got 0");
  CHECK_THROWS_AS(def.corrupt(byz, alie_batch<float>(7, 3, 2), AttackContext{0, 5, 2}, rng), DimensionError);
  CHECK(message_of([&] { def.corrupt(byz, alie_batch<float>(7, 3, 2), AttackContext{0, 5, 2}, rng); }) ==
        "fedpp::Alie::corrupt: honest updates must have the dimension of the Byzantine updates (6), got 7");
  // z from the context: a default (empty) context and a Byzantine majority are rejected.
  const auto honest = alie_batch<float>(6, 3, 2);
  CHECK(message_of([&] { def.corrupt(byz, honest, AttackContext{}, rng); }) ==
        "fedpp::Alie::corrupt: requires n >= 1 (n = 0, f = 0), got n = 0");
  CHECK(message_of([&] { def.corrupt(byz, honest, AttackContext{0, 5, 3}, rng); }) ==
        "fedpp::Alie::corrupt: requires s = floor(n/2 + 1) - f >= 1, i.e. f <= floor(n/2) (n = 5, f = 3), got s = 0");
  // A fixed z needs no context.
  CHECK_NOTHROW(Alie::fixed(1.0).corrupt(byz, honest, AttackContext{}, rng));
  // Nothing to do: no error even with an unusable context and no honest updates.
  UpdateBatch<float> empty(6);
  CHECK_NOTHROW(def.corrupt(empty, UpdateBatch<float>(6), AttackContext{}, rng));
}

TEMPLATE_TEST_CASE("Alie gives the same bits with 1 and 2 threads", "[attacks][Alie]", float, double) {
  using S = TestType;
  const auto honest = alie_batch<S>(100003, 16, 5);
  const auto byz0 = alie_batch<S>(100003, 4, 6);
  const auto a = corrupted_on_threads(Alie(), byz0, honest, AttackContext{0, 20, 4}, 0, 1);
  const auto b = corrupted_on_threads(Alie(), byz0, honest, AttackContext{0, 20, 4}, 0, 2);
  CHECK(same_bits(a, b));
  CHECK_FALSE(same_bits(a, byz0));
}
