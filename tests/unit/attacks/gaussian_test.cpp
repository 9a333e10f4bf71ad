// Tests of fedpp::GaussianNoise: the documented draw order (one key per column from the Rng
// passed in, then Rng(key).normal() per coordinate), determinism, sample moments, add mode,
// shared draws (ByzFL), Rng consumption, empty batches, errors, thread-count bit identity.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "fedpp/attacks/gaussian.hpp"
#include "fedpp/core/rng.hpp"
#include "support/attack_batches.hpp"
#include "support/checks.hpp"

using namespace fedpp;
using namespace fedpp_test;

namespace {

template <typename A, typename B>
bool same_column(A a, B b) {
  static_assert(sizeof(a[0]) == sizeof(b[0]));
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(a[0])) == 0;
}

// Runs the attack on a copy of `byz` with Rng(seed).
template <typename S>
UpdateBatch<S> attacked(const GaussianNoise& g, UpdateBatch<S> byz, std::uint64_t seed) {
  Rng rng(seed);
  g.corrupt(byz, UpdateBatch<S>(byz.dim()), AttackContext{}, rng);
  return byz;
}

}  // namespace

static_assert(Attack<GaussianNoise, float> && Attack<GaussianNoise, double>);

TEMPLATE_TEST_CASE("GaussianNoise follows the documented draw order", "[attacks][GaussianNoise]", float, double) {
  using S = TestType;
  const Index d = 513, f = 3;
  const auto byz = attacked(GaussianNoise(2.0), normal_batch<S>(d, f, 1), 42);
  Rng keys(42);
  for (Index c = 0; c < f; ++c) {
    Rng col(keys());
    for (Index j = 0; j < d; ++j) {
      // mean 0: madd(sigma, z, 0) is the correctly rounded product, fused or not.
      const S want = static_cast<S>(2.0 * col.normal());
      REQUIRE(byz.column(c)[static_cast<std::size_t>(j)] == want);
    }
  }
}

TEMPLATE_TEST_CASE("GaussianNoise is deterministic given the seed", "[attacks][GaussianNoise]", float, double) {
  using S = TestType;
  const auto byz = normal_batch<S>(1000, 4, 2);
  const GaussianNoise g(0.7, NoiseMode::replace, 0.25);
  CHECK(same_bits(attacked(g, byz, 5), attacked(g, byz, 5)));
  CHECK_FALSE(same_bits(attacked(g, byz, 5), attacked(g, byz, 6)));
  // A column's noise does not depend on how many columns follow it.
  const auto one = attacked(g, normal_batch<S>(1000, 1, 3), 5);
  CHECK(same_column(one.column(0), attacked(g, byz, 5).column(0)));
}

TEST_CASE("GaussianNoise draws have the requested mean and standard deviation", "[attacks][GaussianNoise]") {
  const Index d = 200000;
  const double mu = 0.75, sigma = 3.0;
  const auto byz = attacked(GaussianNoise(sigma, NoiseMode::replace, mu), normal_batch<double>(d, 2, 1), 11);
  for (Index c = 0; c < 2; ++c) {
    const auto x = as_map(byz.column(c));
    const double m = x.mean();
    const double sd = std::sqrt((x.array() - m).square().sum() / static_cast<double>(d - 1));
    // 6 standard errors: sigma / sqrt(d) for the mean, about sigma / sqrt(2 d) for the sd.
    CHECK(std::abs(m - mu) < 6.0 * sigma / std::sqrt(static_cast<double>(d)));
    CHECK(std::abs(sd - sigma) < 6.0 * sigma / std::sqrt(2.0 * static_cast<double>(d)));
  }
  // The two columns are independent draws: their correlation is near 0.
  const auto a = as_map(byz.column(0)), b = as_map(byz.column(1));
  const double corr = ((a.array() - a.mean()) * (b.array() - b.mean())).sum() /
                      std::sqrt((a.array() - a.mean()).square().sum() * (b.array() - b.mean()).square().sum());
  CHECK(std::abs(corr) < 6.0 / std::sqrt(static_cast<double>(d)));
}

TEST_CASE("GaussianNoise (add) adds the replace-mode noise to the own update", "[attacks][GaussianNoise]") {
  const auto own = normal_batch<double>(777, 3, 4);
  const auto noise = attacked(GaussianNoise(1.5, NoiseMode::replace, -0.5), own, 8);
  const auto added = attacked(GaussianNoise(1.5, NoiseMode::add, -0.5), own, 8);
  for (Index c = 0; c < 3; ++c)
    for (std::size_t j = 0; j < 777; ++j) REQUIRE(added.column(c)[j] == own.column(c)[j] + noise.column(c)[j]);
}

TEMPLATE_TEST_CASE("GaussianNoise with shared draws sends one vector (ByzFL)", "[attacks][GaussianNoise]", float,
                   double) {
  using S = TestType;
  const auto byz = normal_batch<S>(300, 4, 5);
  const auto shared = attacked(GaussianNoise::byzfl(0.5, 2.0), byz, 13);
  const auto independent = attacked(GaussianNoise(2.0, NoiseMode::replace, 0.5), byz, 13);
  for (Index c = 0; c < 4; ++c) CHECK(same_column(shared.column(c), shared.column(0)));
  CHECK(same_column(shared.column(0), independent.column(0)));  // both use the first key
  CHECK_FALSE(same_column(independent.column(1), independent.column(0)));
  const GaussianNoise z = GaussianNoise::byzfl();
  CHECK(z.mean() == 0.0);
  CHECK(z.sigma() == 1.0);
  CHECK(z.mode() == NoiseMode::replace);
  CHECK(z.draws() == NoiseDraws::shared);

  // Shared noise in add mode: every column gets its own update plus the same noise.
  if constexpr (std::is_same_v<S, double>) {
    const auto added = attacked(GaussianNoise(2.0, NoiseMode::add, 0.5, NoiseDraws::shared), byz, 13);
    for (Index c = 0; c < 4; ++c)
      for (std::size_t j = 0; j < 300; ++j) REQUIRE(added.column(c)[j] == byz.column(c)[j] + shared.column(0)[j]);
  }
}

TEST_CASE("GaussianNoise takes one key per column from the Rng (one when shared)", "[attacks][GaussianNoise]") {
  auto byz = normal_batch<float>(10, 3, 1);
  const UpdateBatch<float> honest(10);
  for (auto draws : {NoiseDraws::independent, NoiseDraws::shared}) {
    auto b = byz;
    Rng rng(77), ref(77);
    GaussianNoise(1.0, NoiseMode::replace, 0.0, draws).corrupt(b, honest, AttackContext{}, rng);
    const int used = draws == NoiseDraws::shared ? 1 : 3;
    for (int k = 0; k < used; ++k) (void)ref();
    CHECK(rng() == ref());
  }
  // An empty batch draws nothing.
  UpdateBatch<float> empty(10);
  Rng rng(77), ref(77);
  GaussianNoise().corrupt(empty, honest, AttackContext{}, rng);
  CHECK(empty.empty());
  CHECK(rng() == ref());
}

TEST_CASE("GaussianNoise with sigma = 0 sends the mean exactly", "[attacks][GaussianNoise]") {
  const auto byz = attacked(GaussianNoise(0.0, NoiseMode::replace, 0.125), normal_batch<float>(50, 2, 1), 1);
  for (Index c = 0; c < 2; ++c)
    for (float v : byz.column(c)) REQUIRE(v == 0.125f);
}

TEST_CASE("GaussianNoise validates its settings", "[attacks][GaussianNoise]") {
  CHECK(GaussianNoise().sigma() == 1.0);
  CHECK(GaussianNoise().mode() == NoiseMode::replace);
  CHECK(GaussianNoise().draws() == NoiseDraws::independent);
  CHECK(message_of([] { GaussianNoise(-1.0); }) == "fedpp::GaussianNoise: sigma must be finite and >= 0, got -1");
  CHECK_THROWS_AS(GaussianNoise(std::numeric_limits<double>::infinity()), InvalidArgument);
  CHECK_THROWS_AS(GaussianNoise(std::numeric_limits<double>::quiet_NaN()), InvalidArgument);
  CHECK(message_of([] { GaussianNoise(std::numeric_limits<double>::infinity()); }) ==
        "fedpp::GaussianNoise: sigma must be finite and >= 0, got inf");
  CHECK(message_of([] { GaussianNoise(std::numeric_limits<double>::quiet_NaN()); }) ==
        "fedpp::GaussianNoise: sigma must be finite and >= 0, got nan");
  CHECK(message_of([] { GaussianNoise(1.0, NoiseMode::replace, std::numeric_limits<double>::quiet_NaN()); }) ==
        "fedpp::GaussianNoise: mean must be finite, got nan");
  CHECK(message_of([] { GaussianNoise(0.0); }) == "(no throw)");  // sigma = 0 is allowed
  CHECK(message_of([] { GaussianNoise(1.0, NoiseMode::add, std::numeric_limits<double>::infinity()); }) ==
        "fedpp::GaussianNoise: mean must be finite, got inf");
}

TEMPLATE_TEST_CASE("GaussianNoise gives the same bits with 1 and 2 threads", "[attacks][GaussianNoise]", float,
                   double) {
  using S = TestType;
  ThreadGuard guard;
  const auto byz = normal_batch<S>(50000, 4, 3);
  for (auto mode : {NoiseMode::replace, NoiseMode::add}) {
    for (auto draws : {NoiseDraws::independent, NoiseDraws::shared}) {
      const GaussianNoise g(1.0, mode, 0.1, draws);
      set_max_threads(1);
      const auto a = attacked(g, byz, 21);
      set_max_threads(2);
      const auto b = attacked(g, byz, 21);
      CHECK(same_bits(a, b));
    }
  }
}
