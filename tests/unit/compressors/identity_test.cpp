// Identity compressor: exact round trip, exact byte count, strict validation of malformed payloads.
#include <catch2/catch.hpp>

#include "fedpp/compressors/identity.hpp"

using namespace fedpp;

TEMPLATE_TEST_CASE("Identity round-trips exactly and counts its bytes", "[compressors][Identity]", float, double) {
  using S = TestType;
  Identity c;
  auto st = c.make_state<S>(5);
  Rng rng(1);
  const std::vector<S> x{S(1.5), S(-0.0), S(3e-30), S(-7), S(1e30)};
  const Payload p = c.encode(std::span<const S>(x), st, rng);
  const PayloadHeader h = p.header();
  CHECK(h.dim == 5);
  CHECK(h.count == 5);
  // Header: u16 codec + u8 version + 1-byte varints for dim and count; then 5 values.
  CHECK(p.bytes() == 2 + 1 + 1 + 1 + 5 * sizeof(S));
  std::vector<S> out(5);
  c.decode(p, std::span<S>(out));
  for (std::size_t i = 0; i < x.size(); ++i) CHECK(out[i] == x[i]);
  CHECK(std::signbit(out[1]));
}

TEST_CASE("Identity rejects malformed payloads without reading out of bounds", "[compressors][Identity]") {
  Identity c;
  auto st = c.make_state<float>(4);
  Rng rng(1);
  const std::vector<float> x{1, 2, 3, 4};
  const Payload good = c.encode(std::span<const float>(x), st, rng);
  std::vector<float> out(4), wrong(3);
  CHECK_THROWS_AS(c.decode(good, std::span<float>(wrong)), DecodeError);
  CHECK_THROWS_WITH(c.decode(good, std::span<float>(wrong)), Catch::Contains("fedpp::Identity::decode") &&
                                                                Catch::Contains("dimension"));
  auto bytes = std::vector<std::uint8_t>(good.data().begin(), good.data().end());
  // Truncated at every possible length.
  for (std::size_t len = 0; len < bytes.size(); ++len) {
    Payload t(std::vector<std::uint8_t>(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(len)));
    CHECK_THROWS_AS(c.decode(t, std::span<float>(out)), DecodeError);
  }
  // Trailing garbage.
  auto longer = bytes;
  longer.push_back(0);
  CHECK_THROWS_AS(c.decode(Payload(longer), std::span<float>(out)), DecodeError);
  // Wrong codec (a double payload decoded as float).
  auto std_ = c.make_state<double>(4);
  const std::vector<double> xd{1, 2, 3, 4};
  CHECK_THROWS_AS(c.decode(c.encode(std::span<const double>(xd), std_, rng), std::span<float>(out)), DecodeError);
  // Count that disagrees with the dimension.
  auto bad_count = bytes;
  bad_count[4] = 3;
  CHECK_THROWS_AS(c.decode(Payload(bad_count), std::span<float>(out)), DecodeError);
  c.decode(good, std::span<float>(out));
  CHECK(out == x);
}
