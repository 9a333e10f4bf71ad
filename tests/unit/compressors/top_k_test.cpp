// TopK: exactly the k largest magnitudes (ties to the lowest index) against a brute-force sort,
// on every selection path (small inputs, multi-level radix, all-equal inputs), k edge cases,
// parameters, formats and strict decoding.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include "fedpp/compressors/top_k.hpp"
#include "support/compressor_common.hpp"
#include "support/checks.hpp"

using namespace fedpp;
using namespace fedpp_test;

namespace {

template <typename S>
std::vector<S> make_vector(std::size_t d, int kind, Rng& rng) {
  std::vector<S> x(d);
  for (std::size_t i = 0; i < d; ++i) {
    switch (kind) {
      case 0: x[i] = static_cast<S>(rng.normal()); break;                                // distinct
      case 1: x[i] = static_cast<S>(static_cast<int>(rng.uniform_index(7)) - 3); break;  // many ties, +-
      case 2: x[i] = S(0.5); break;                                                       // all equal
      case 3: x[i] = (i % 2 ? S(-1) : S(1)) * static_cast<S>(1 + rng.uniform_index(3)) * S(1e-3); break;
      case 4: x[i] = rng.uniform() < 0.01 ? static_cast<S>(rng.normal() * 1e6) : S(0); break;  // mostly zero
      default: x[i] = static_cast<S>(std::ldexp(rng.uniform(), -static_cast<int>(rng.uniform_index(40)))); break;
    }
  }
  if (kind == 1 && d > 2) x[1] = S(-0.0);
  return x;
}

}  // namespace

TEMPLATE_TEST_CASE("top_k_indices equals a brute-force sort, ties to the lowest index", "[compressors][TopK]",
                   float, double) {
  using S = TestType;
  Rng rng(3);
  // Sizes: below the candidate limit, several chunks, and with a partial last chunk.
  for (std::size_t d : {std::size_t{1}, std::size_t{2}, std::size_t{17}, std::size_t{1000}, std::size_t{70000},
                        std::size_t{300001}}) {
    for (int kind = 0; kind < 6; ++kind) {
      const auto x = make_vector<S>(d, kind, rng);
      const auto order = magnitude_order(x);
      for (std::size_t k : {std::size_t{1}, std::size_t{2}, d / 1000 + 1, d / 3 + 1, d - 1, d, d + 5}) {
        if (k == 0) continue;
        const auto got = top_k_indices<S>(x, k);
        REQUIRE(got == first_k_sorted(order, k));
      }
    }
  }
}

TEST_CASE("top_k_indices resolves ties that survive every radix level", "[compressors][TopK]") {
  // 300000 equal magnitudes (with both signs) plus a few larger ones: the k-th key is shared by
  // most entries, so the final level is exact and the lowest indices must win.
  std::vector<float> x(300000, 2.0f);
  for (std::size_t i = 0; i < x.size(); i += 3) x[i] = -2.0f;
  x[299999] = 5.0f;
  x[7] = -9.0f;
  x[150000] = 3.0f;
  const auto ox = magnitude_order(x);
  for (std::size_t k : {1u, 3u, 4u, 40000u, 299999u}) CHECK(top_k_indices<float>(x, k) == first_k_sorted(ox, k));
  // Keys differing only in the last mantissa bit (all radix levels needed).
  std::vector<float> y(200000);
  for (std::size_t i = 0; i < y.size(); ++i) y[i] = std::nextafter(1.0f, 2.0f) * ((i * 7919) % 3 == 0 ? 1.0f : 0.0f);
  for (std::size_t i = 0; i < y.size(); i += 5) y[i] = 1.0f;
  const auto oy = magnitude_order(y);
  for (std::size_t k : {1u, 1000u, 66667u, 70000u, 150000u}) CHECK(top_k_indices<float>(y, k) == first_k_sorted(oy, k));
}

TEST_CASE("TopK parameters: count, density, k_for and errors", "[compressors][TopK]") {
  CHECK(TopK::count(5).k_for(100) == 5);
  CHECK(TopK::count(500).k_for(100) == 100);
  CHECK(TopK::density(0.001).k_for(25'000'000) == 25'000);  // 0.001 * 25e6 is not exact in binary
  CHECK(TopK::density(0.1).k_for(10) == 1);
  CHECK(TopK::density(0.11).k_for(10) == 2);  // ceil(1.1)
  CHECK(TopK::density(1e-9).k_for(10) == 1);  // at least 1
  CHECK(TopK::density(1.0).k_for(7) == 7);
  CHECK(TopK::density(0.5).k_for(0) == 0);
  CHECK_THROWS_WITH(TopK::density(0.0), Catch::Contains("fedpp::TopK: density must be in (0, 1], got 0"));
  CHECK_THROWS_AS(TopK::density(1.5), InvalidArgument);
  CHECK_THROWS_AS(TopK::density(std::nan("")), InvalidArgument);
  CHECK_THROWS_WITH(TopK::count(0), Catch::Contains("fedpp::TopK: k must be >= 1, got 0"));
  CHECK_THROWS_AS(TopK::count(1).with_format(static_cast<ValueFormat>(7)), InvalidArgument);
}

TEMPLATE_TEST_CASE("TopK encode/decode keeps exactly the top-k values", "[compressors][TopK]", float, double) {
  using S = TestType;
  Rng rng(9);
  const auto x = make_vector<S>(5000, 1, rng);
  for (const TopK c : {TopK::count(1), TopK::count(37), TopK::density(0.01), TopK::count(5000), TopK::count(9999)}) {
    auto st = c.template make_state<S>(5000);
    const Payload p = c.encode(std::span<const S>(x), st, rng);
    const auto h = p.header();
    CHECK(h.codec == Codec::sparse);
    CHECK(h.dim == 5000);
    CHECK(h.count == static_cast<std::uint64_t>(c.k_for(5000)));
    std::vector<S> out(5000, S(7));
    c.decode(p, std::span<S>(out));
    const auto keep = brute_top_k(x, static_cast<std::size_t>(c.k_for(5000)));
    std::vector<S> expect(5000, S(0));
    for (Index i : keep) expect[static_cast<std::size_t>(i)] = x[static_cast<std::size_t>(i)];
    CHECK(out == expect);
  }
}

TEST_CASE("TopK: zero vector, formats, non-finite input, strict decode", "[compressors][TopK]") {
  Rng rng(1);
  const TopK c = TopK::count(3);
  TopK::State st = c.make_state<float>(10);
  const std::vector<float> zero(10, 0.0f);
  const Payload pz = c.encode(std::span<const float>(zero), st, rng);
  std::vector<float> out(10, 1.0f);
  c.decode(pz, std::span<float>(out));
  CHECK(out == zero);

  const std::vector<float> x{0.1f, -3.0f, 2.0f, 0.0f, 1e-3f, 2.0f, -0.5f, 1.0f, 0.2f, -2.0f};
  // Kept: 1, 2, 5 (ties at |2|: 2 and 5 before 9). Payload = 5 header + 1 fmt + 1 mode + 2 bitmap
  // bytes (smaller than 3 varints) + 3 f16 values.
  const Payload ph = c.with_format(ValueFormat::f16).encode(std::span<const float>(x), st, rng);
  CHECK(ph.bytes() == 5 + 1 + 1 + 2 + 6);
  c.with_format(ValueFormat::f16).decode(ph, std::span<float>(out));
  CHECK(out == std::vector<float>{0, -3.0f, 2.0f, 0, 0, 2.0f, 0, 0, 0, 0});  // ties: 2, 5 before 9
  // A double update sent as f32.
  const std::vector<double> xd{0.1, -1.0 / 3.0, 0.2};
  TopK::State sd;
  const Payload pd = TopK::count(1).with_format(ValueFormat::f32).encode(std::span<const double>(xd), sd, rng);
  std::vector<double> outd(3);
  TopK::count(1).with_format(ValueFormat::f32).decode(pd, std::span<double>(outd));
  CHECK(outd[1] == static_cast<double>(static_cast<float>(-1.0 / 3.0)));

  std::vector<float> bad = x;
  bad[4] = std::numeric_limits<float>::infinity();
  CHECK_THROWS_WITH(c.encode(std::span<const float>(bad), st, rng), Catch::Contains("fedpp::TopK") &&
                                                                       Catch::Contains("finite"));
  bad[4] = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_AS(c.encode(std::span<const float>(bad), st, rng), InvalidArgument);
  std::vector<float> big(100000, 1.0f);
  big[77777] = -std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_AS(TopK::count(10).encode(std::span<const float>(big), st, rng), InvalidArgument);
  CHECK_THROWS_AS(TopK::count(200000).encode(std::span<const float>(big), st, rng), InvalidArgument);

  // Decoding: a payload with another k is rejected, as are wrong dims and truncations.
  const Payload p = c.encode(std::span<const float>(x), st, rng);
  CHECK_THROWS_WITH(TopK::count(4).decode(p, std::span<float>(out)), Catch::Contains("fedpp::TopK::decode") &&
                                                                         Catch::Contains("count must be k = 4"));
  std::vector<float> out9(9);
  CHECK_THROWS_AS(c.decode(p, std::span<float>(out9)), DecodeError);
  const auto b = bytes_of(p);
  for (std::size_t len = 0; len < b.size(); ++len)
    CHECK_THROWS_AS(c.decode(Payload(std::vector<std::uint8_t>(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(len))),
                             std::span<float>(out)),
                    DecodeError);
}

TEST_CASE("top_k_indices does not depend on the thread count", "[compressors][TopK]") {
  Rng rng(5);
  const auto x = make_vector<float>(1'500'000, 0, rng);
  ThreadGuard guard;
  set_max_threads(1);
  const auto one = top_k_indices<float>(x, 1500);
  set_max_threads(3);
  const auto three = top_k_indices<float>(x, 1500);
  // A size that takes the sampled-threshold path.
  const auto y = make_vector<float>((std::size_t{1} << 22) + 99, 0, rng);
  set_max_threads(1);
  const auto y1 = top_k_indices<float>(y, 4000);
  set_max_threads(3);
  const auto y3 = top_k_indices<float>(y, 4000);
  CHECK(one == three);
  CHECK(one == brute_top_k(x, 1500));
  CHECK(y1 == y3);
  CHECK(y1.size() == 4000);
}

TEST_CASE("top_k_indices: sampled-threshold path and its fallbacks are exact", "[compressors][TopK]") {
  const std::size_t d = (std::size_t{1} << 22) + 1234;  // large enough for the sampled path
  const std::size_t step = d / 4096;                    // sample runs start at multiples of step
  Rng rng(8);
  std::vector<float> x(d);
  for (auto& v : x) v = static_cast<float>(rng.normal());
  x[12345] = x[54321] = 9.0f;  // a tie among the largest
  const auto order = magnitude_order(x);
  for (std::size_t k : {std::size_t{1}, std::size_t{2}, std::size_t{1000}, d / 64}) {
    std::vector<Index> via_sample;
    CHECK(detail::top_k_by_sample<float>(x, k, via_sample));  // the estimate works on Gaussian data
    CHECK(via_sample == first_k_sorted(order, k));
    CHECK(top_k_indices<float>(x, k) == first_k_sorted(order, k));
  }
  // Large values only where the sample looks: too few pass the threshold -> radix fallback.
  std::vector<float> y(d, 0.001f);
  for (std::size_t r = 0; r < 4096; ++r)
    for (std::size_t j = 0; j < 16; ++j) y[r * step + j] = 1.0f + static_cast<float>((r * 16 + j) % 97);
  std::vector<Index> tmp;
  CHECK_FALSE(detail::top_k_by_sample<float>(y, 20000, tmp));
  CHECK(top_k_indices<float>(y, 20000) == brute_top_k(y, 20000));
  // Large values only where the sample does not look: far too many pass -> radix fallback.
  std::vector<float> z(d);
  for (std::size_t i = 0; i < d; ++i) z[i] = (i % step) < 16 ? 1e-3f : 1.0f + static_cast<float>(i % 13);
  CHECK_FALSE(detail::top_k_by_sample<float>(z, 5000, tmp));
  CHECK(top_k_indices<float>(z, 5000) == brute_top_k(z, 5000));
  // A NaN outside the sample is still reported.
  x[d - 3] = std::numeric_limits<float>::quiet_NaN();
  CHECK_FALSE(detail::top_k_by_sample<float>(x, 1000, tmp));
  CHECK_THROWS_AS(top_k_indices<float>(x, 1000), InvalidArgument);
}
