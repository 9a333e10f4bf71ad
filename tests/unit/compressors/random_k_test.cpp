// RandomK: uniform k-subsets (chi-square checks with fixed seeds), reproducibility from the Rng,
// unbiasedness of the scaled option, k edge cases and strict decoding.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <vector>

#include "fedpp/compressors/random_k.hpp"
#include "support/checks.hpp"

using namespace fedpp;

TEST_CASE("random_k_indices: sorted, distinct, in range, reproducible", "[compressors][RandomK]") {
  for (std::uint64_t d : {1u, 2u, 10u, 64u, 65u, 1000u}) {
    for (std::uint64_t k : {std::uint64_t{0}, std::uint64_t{1}, d / 2, d - 1, d, d + 3}) {
      Rng a(42), b(42);
      const auto s = random_k_indices(d, k, a);
      CHECK(s.size() == std::min(k, d));
      for (std::size_t j = 0; j < s.size(); ++j) {
        REQUIRE(s[j] >= 0);
        REQUIRE(static_cast<std::uint64_t>(s[j]) < d);
        if (j > 0) REQUIRE(s[j] > s[j - 1]);
      }
      CHECK(random_k_indices(d, k, b) == s);
      // Exactly k draws consumed when k < d, none otherwise: the streams stay in step.
      CHECK(a() == b());
    }
  }
  Rng a(1), b(2);
  CHECK(random_k_indices(1000, 10, a) != random_k_indices(1000, 10, b));
}

TEST_CASE("random_k_indices draws every k-subset equally often (chi-square)", "[compressors][RandomK]") {
  // d = 6, k = 3: 20 subsets. 40000 draws, expected 2000 each; chi-square with 19 degrees of freedom
  // has mean 19 and its 99.99% quantile is about 49.
  Rng rng(2024);
  std::map<std::vector<Index>, int> counts;
  const int draws = 40000;
  for (int t = 0; t < draws; ++t) ++counts[random_k_indices(6, 3, rng)];
  CHECK(counts.size() == 20);
  double chi2 = 0;
  for (const auto& [s, c] : counts) chi2 += (c - 2000.0) * (c - 2000.0) / 2000.0;
  CHECK(chi2 < 49.0);
  // Per-coordinate inclusion frequency is k/d for a larger case (d = 100, k = 7).
  std::vector<int> hits(100, 0);
  for (int t = 0; t < 20000; ++t)
    for (Index i : random_k_indices(100, 7, rng)) ++hits[static_cast<std::size_t>(i)];
  const double expect = 20000.0 * 7 / 100;  // 1400
  double chi2c = 0;
  for (int h : hits) chi2c += (h - expect) * (h - expect) / expect;
  // Approximately chi-square with 99 dof (slightly less spread: draws within a sample are dependent);
  // the 99.99% quantile is about 160.
  CHECK(chi2c < 160.0);
  CHECK(chi2c > 40.0);  // not suspiciously regular
}

TEST_CASE("RandomK parameters", "[compressors][RandomK]") {
  CHECK(RandomK::count(5).k_for(3) == 3);
  CHECK(RandomK::density(0.25).k_for(10) == 3);
  CHECK(RandomK::density(0.001).k_for(25'000'000) == 25'000);
  CHECK_FALSE(RandomK::count(2).is_unbiased());
  CHECK(RandomK::count(2).unbiased().is_unbiased());
  CHECK_THROWS_WITH(RandomK::density(0), Catch::Contains("fedpp::RandomK: density must be in (0, 1], got 0"));
  CHECK_THROWS_WITH(RandomK::count(-1), Catch::Contains("fedpp::RandomK: k must be >= 1, got -1"));
}

TEMPLATE_TEST_CASE("RandomK encodes the chosen coordinates, reproducibly", "[compressors][RandomK]", float, double) {
  using S = TestType;
  std::vector<S> x(300);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<S>(std::sin(static_cast<double>(i)) + 0.01 * i);
  const RandomK c = RandomK::count(20);
  auto st = c.template make_state<S>(300);
  Rng r1 = make_rng(7, 3, 11, Purpose::compression), r2 = make_rng(7, 3, 11, Purpose::compression);
  const Payload p1 = c.encode(std::span<const S>(x), st, r1);
  const Payload p2 = c.encode(std::span<const S>(x), st, r2);
  CHECK(std::vector<std::uint8_t>(p1.data().begin(), p1.data().end()) ==
        std::vector<std::uint8_t>(p2.data().begin(), p2.data().end()));
  Rng r3 = make_rng(7, 3, 11, Purpose::compression);
  const auto idx = random_k_indices(300, 20, r3);
  std::vector<S> out(300, S(9));
  c.decode(p1, std::span<S>(out));
  std::set<Index> kept(idx.begin(), idx.end());
  for (std::size_t i = 0; i < x.size(); ++i) REQUIRE(out[i] == (kept.count(static_cast<Index>(i)) ? x[i] : S(0)));
  // Unbiased: values scaled by d/k = 15.
  Rng r4 = make_rng(7, 3, 11, Purpose::compression);
  c.unbiased().decode(c.unbiased().encode(std::span<const S>(x), st, r4), std::span<S>(out));
  for (std::size_t i = 0; i < x.size(); ++i)
    REQUIRE(out[i] == (kept.count(static_cast<Index>(i)) ? static_cast<S>(static_cast<double>(x[i]) * 15.0) : S(0)));
  // k >= d: everything, no scaling.
  const RandomK all = RandomK::count(1000).unbiased();
  all.decode(all.encode(std::span<const S>(x), st, r4), std::span<S>(out));
  CHECK(out == x);
}

TEST_CASE("RandomK::unbiased: the mean of many seeded draws converges to x", "[compressors][RandomK]") {
  const std::vector<double> x{1.0, -2.0, 0.5, 3.0, 0.0, -1.5, 2.5, 4.0};
  const RandomK c = RandomK::count(3).unbiased();
  RandomK::State st;
  std::vector<double> sum(8, 0.0), out(8);
  const int n = 40000;
  for (int t = 0; t < n; ++t) {
    Rng rng = make_rng(99, static_cast<std::uint64_t>(t), 0, Purpose::compression);
    c.decode(c.encode(std::span<const double>(x), st, rng), std::span<double>(out));
    for (std::size_t i = 0; i < 8; ++i) sum[i] += out[i];
  }
  for (std::size_t i = 0; i < 8; ++i) {
    // Per-draw variance of coordinate i: x_i^2 (d/k - 1) = x_i^2 * 5/3; 5 standard errors of the mean.
    const double se = std::abs(x[i]) * std::sqrt(5.0 / 3.0 / n);
    CHECK(std::abs(sum[i] / n - x[i]) <= 5 * se + 1e-12);
  }
  // The default (unscaled) variant is biased by the factor k/d.
  const RandomK plain = RandomK::count(3);
  double s3 = 0;
  for (int t = 0; t < n; ++t) {
    Rng rng = make_rng(99, static_cast<std::uint64_t>(t), 0, Purpose::compression);
    plain.decode(plain.encode(std::span<const double>(x), st, rng), std::span<double>(out));
    s3 += out[3];
  }
  CHECK(std::abs(s3 / n - 3.0 * 3 / 8) < 0.05);
}

TEST_CASE("RandomK: zero vector, non-finite input, strict decode", "[compressors][RandomK]") {
  const RandomK c = RandomK::density(0.2).with_format(ValueFormat::bf16);
  RandomK::State st;
  Rng rng(5);
  const std::vector<float> zero(50, 0.0f);
  std::vector<float> out(50, 1.0f);
  c.decode(c.encode(std::span<const float>(zero), st, rng), std::span<float>(out));
  CHECK(out == zero);
  std::vector<float> bad(50, 1.0f);
  bad[49] = std::numeric_limits<float>::infinity();
  CHECK_THROWS_WITH(c.encode(std::span<const float>(bad), st, rng), Catch::Contains("fedpp::RandomK") &&
                                                                       Catch::Contains("finite"));
  const Payload p = c.encode(std::span<const float>(std::vector<float>(50, 2.0f)), st, rng);
  CHECK(p.bytes() == 5 + 1 + 1 + 7 + 10 * 2);  // 10 kept, bitmap (7 bytes) <= varints (>= 10 bytes)
  CHECK_THROWS_WITH(RandomK::count(11).with_format(ValueFormat::bf16).decode(p, std::span<float>(out)),
                    Catch::Contains("fedpp::RandomK::decode") && Catch::Contains("count must be k = 11"));
  CHECK_THROWS_WITH(RandomK::count(10).decode(p, std::span<float>(out)),  // f32 expected, bf16 sent
                    Catch::Contains("value format must be f32"));
  const auto b = fedpp_test::bytes_of(p);
  for (std::size_t len = 0; len < b.size(); ++len)
    CHECK_THROWS_AS(c.decode(Payload(std::vector<std::uint8_t>(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(len))),
                             std::span<float>(out)),
                    DecodeError);
}
