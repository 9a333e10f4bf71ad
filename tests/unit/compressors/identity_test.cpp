// Identity compressor: exact round trip, exact byte count, strict validation of malformed payloads.
#include <catch2/catch.hpp>

#include "fedpp/compressors/identity.hpp"
#include "support/checks.hpp"

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

TEMPLATE_TEST_CASE("Identity with a ValueFormat: f16/bf16/f32/f64 payloads", "[compressors][Identity]", float, double) {
  using S = TestType;
  const std::vector<S> x{S(1.5), S(-0.0), S(3e-6), S(-7.1), S(60000), S(0.1)};
  Rng rng(1);
  for (ValueFormat fmt : {ValueFormat::f16, ValueFormat::bf16, ValueFormat::f32, ValueFormat::f64}) {
    const Identity c(fmt);
    CHECK(c.format() == fmt);
    auto st = c.make_state<S>(6);
    const Payload p = c.encode(std::span<const S>(x), st, rng);
    const PayloadHeader h = p.header();
    const Codec expect_codec = fmt == ValueFormat::f16    ? Codec::dense_f16
                               : fmt == ValueFormat::bf16 ? Codec::dense_bf16
                               : fmt == ValueFormat::f32  ? Codec::dense_f32
                                                          : Codec::dense_f64;
    CHECK(h.codec == expect_codec);
    CHECK(p.bytes() == 5 + 6 * value_bytes(fmt));
    std::vector<S> out(6);
    c.decode(p, std::span<S>(out));
    for (std::size_t i = 0; i < x.size(); ++i) {
      const auto f = static_cast<float>(x[i]);
      const S expect = fmt == ValueFormat::f16    ? static_cast<S>(detail::from_f16(detail::to_f16(f)))
                       : fmt == ValueFormat::bf16 ? static_cast<S>(detail::from_bf16(detail::to_bf16(f)))
                       : fmt == ValueFormat::f32  ? static_cast<S>(f)
                                                  : x[i];
      CHECK(out[i] == expect);
    }
    CHECK(std::signbit(out[1]));
    // A decoder configured for another format rejects the payload.
    const Identity other(fmt == ValueFormat::f16 ? ValueFormat::bf16 : ValueFormat::f16);
    CHECK_THROWS_WITH(other.decode(p, std::span<S>(out)), Catch::Contains("unexpected codec"));
    // Every truncation and trailing bytes are rejected.
    const auto b = fedpp_test::bytes_of(p);
    for (std::size_t len = 0; len < b.size(); ++len)
      CHECK_THROWS_AS(c.decode(Payload(std::vector<std::uint8_t>(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(len))),
                               std::span<S>(out)),
                      DecodeError);
    auto longer = b;
    longer.push_back(0);
    CHECK_THROWS_AS(c.decode(Payload(longer), std::span<S>(out)), DecodeError);
  }
  Identity::State st0;
  // Known values: 1.5 is 0x3e00 in f16, 0x3fc0 in bf16; 0.1 rounds to 0x2e66 in f16 and 0x3dcd in bf16.
  const Payload ph = Identity(ValueFormat::f16).encode(std::span<const S>(x), st0, rng);
  CHECK(ph.data()[5] == 0x00);
  CHECK(ph.data()[6] == 0x3e);
  CHECK(ph.data()[15] == 0x66);
  CHECK(ph.data()[16] == 0x2e);
}

TEST_CASE("Identity with f16 rejects values it cannot represent", "[compressors][Identity]") {
  Identity::State st;
  Rng rng(1);
  const std::vector<float> big{1.0f, 65520.0f};
  CHECK_THROWS_WITH(Identity(ValueFormat::f16).encode(std::span<const float>(big), st, rng),
                    Catch::Contains("fedpp::Identity") && Catch::Contains("overflows f16"));
  CHECK_NOTHROW(Identity(ValueFormat::bf16).encode(std::span<const float>(big), st, rng));
  const std::vector<float> nan{std::nanf("")};
  CHECK_THROWS_AS(Identity(ValueFormat::bf16).encode(std::span<const float>(nan), st, rng), InvalidArgument);
  CHECK_THROWS_AS(Identity(static_cast<ValueFormat>(4)), InvalidArgument);
  // The default keeps the old lossless behaviour (non-finite values pass; the server rejects them).
  CHECK_NOTHROW(Identity().encode(std::span<const float>(nan), st, rng));
  CHECK_FALSE(Identity().format().has_value());
}
