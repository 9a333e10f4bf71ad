// Bit writer/reader, Elias gamma/omega codes and half-precision conversions.
#include <catch2/catch.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "fedpp/compressors/detail/bits.hpp"
#include "fedpp/core/rng.hpp"

using namespace fedpp;
using namespace fedpp::detail;

namespace {

// The stream as a string of '0'/'1' in stream order (bit i = bit i%8 of byte i/8).
std::string bit_string(const std::vector<std::uint8_t>& bytes, std::size_t nbits) {
  std::string s;
  for (std::size_t i = 0; i < nbits; ++i) s += ((bytes[i / 8] >> (i % 8)) & 1) ? '1' : '0';
  return s;
}

std::string gamma_bits(std::uint64_t k) {
  std::vector<std::uint8_t> b;
  BitWriter w(b);
  w.put_elias_gamma(k);
  const auto n = w.bits_written();
  w.finish();
  return bit_string(b, n);
}

std::string omega_bits(std::uint64_t k) {
  std::vector<std::uint8_t> b;
  BitWriter w(b);
  w.put_elias_omega(k);
  const auto n = w.bits_written();
  w.finish();
  return bit_string(b, n);
}

// Writes a textbook bit string ('0'/'1' in stream order) into bytes.
std::vector<std::uint8_t> from_bit_string(const std::string& s) {
  std::vector<std::uint8_t> b((s.size() + 7) / 8, 0);
  for (std::size_t i = 0; i < s.size(); ++i)
    if (s[i] == '1') b[i / 8] |= static_cast<std::uint8_t>(1u << (i % 8));
  return b;
}

float f32(std::uint32_t u) { return std::bit_cast<float>(u); }

}  // namespace

TEST_CASE("BitWriter packs LSB-first and BitReader reads it back", "[compressors][bits]") {
  std::vector<std::uint8_t> b;
  BitWriter w(b);
  w.put(0b101, 3);
  w.put(0b11, 2);
  w.put(0, 1);
  w.put(0b1, 1);
  w.put(0b1, 1);
  w.put(0xabc, 12);
  w.finish();
  // First byte: bits 1,0,1,1,1,0,1,1 (stream order) = 0b11011101.
  REQUIRE(b.size() == 3);
  CHECK(b[0] == 0b11011101);
  CHECK(b[1] == 0xbc);
  CHECK(b[2] == 0x0a);
  BitReader r(b);
  CHECK(r.get(3) == 0b101);
  CHECK(r.get(2) == 0b11);
  CHECK(r.get(1) == 0);
  CHECK(r.get(2) == 0b11);
  CHECK(r.get(12) == 0xabc);
  CHECK(r.bits_remaining() == 4);
  r.expect_end();
}

TEST_CASE("BitWriter/BitReader round-trip random widths 0..64", "[compressors][bits]") {
  Rng rng(7);
  std::vector<std::pair<std::uint64_t, unsigned>> items;
  std::vector<std::uint8_t> b;
  BitWriter w(b);
  std::uint64_t total = 0;
  for (int i = 0; i < 5000; ++i) {
    const auto n = static_cast<unsigned>(rng.uniform_index(65));
    const std::uint64_t v = rng();
    w.put(v, n);
    items.emplace_back(n == 64 ? v : (n == 0 ? 0 : v & ((std::uint64_t{1} << n) - 1)), n);
    total += n;
  }
  CHECK(w.bits_written() == total);
  w.finish();
  CHECK(b.size() == (total + 7) / 8);
  BitReader r(b);
  for (const auto& [v, n] : items) REQUIRE(r.get(n) == v);
  r.expect_end();
  CHECK_THROWS_AS(r.get(8), DecodeError);
}

TEST_CASE("Elias gamma codes match hand-computed bit strings", "[compressors][bits]") {
  CHECK(gamma_bits(1) == "1");
  CHECK(gamma_bits(2) == "010");
  CHECK(gamma_bits(3) == "011");
  CHECK(gamma_bits(4) == "00100");
  CHECK(gamma_bits(5) == "00101");
  CHECK(gamma_bits(9) == "0001001");
  CHECK(gamma_bits(17) == "000010001");
  CHECK(gamma_bits(~std::uint64_t{0}) == std::string(63, '0') + std::string(64, '1'));
  CHECK_THROWS_AS(gamma_bits(0), InvalidArgument);
}

TEST_CASE("Elias omega codes match hand-computed bit strings", "[compressors][bits]") {
  CHECK(omega_bits(1) == "0");
  CHECK(omega_bits(2) == "100");
  CHECK(omega_bits(3) == "110");
  CHECK(omega_bits(4) == "101000");
  CHECK(omega_bits(7) == "101110");
  CHECK(omega_bits(8) == "1110000");
  CHECK(omega_bits(15) == "1111110");
  CHECK(omega_bits(16) == "10100100000");
  CHECK(omega_bits(100) == "1011011001000");  // 10 110 1100100 0
  // 2^64-1: groups 1, 11, 111111 (63), 64 ones, then 0.
  CHECK(omega_bits(~std::uint64_t{0}) == "10" + std::string("101") + "111111" + std::string(64, '1') + "0");
  CHECK_THROWS_AS(omega_bits(0), InvalidArgument);
}

TEST_CASE("Elias codes round-trip, interleaved with raw bits", "[compressors][bits]") {
  std::vector<std::uint64_t> vals;
  for (std::uint64_t k = 1; k < 3000; ++k) vals.push_back(k);
  for (unsigned s = 1; s < 64; ++s) {
    vals.push_back(std::uint64_t{1} << s);
    vals.push_back((std::uint64_t{1} << s) - 1);
    vals.push_back((std::uint64_t{1} << s) + 1);
  }
  vals.push_back(~std::uint64_t{0});
  std::vector<std::uint8_t> b;
  BitWriter w(b);
  for (auto v : vals) {
    w.put_elias_gamma(v);
    w.put(v, 5);
    w.put_elias_omega(v);
  }
  w.finish();
  BitReader r(b);
  for (auto v : vals) {
    REQUIRE(r.get_elias_gamma() == v);
    REQUIRE(r.get(5) == (v & 31));
    REQUIRE(r.get_elias_omega() == v);
  }
  r.expect_end();
}

TEST_CASE("BitReader rejects truncated and impossible Elias codes", "[compressors][bits]") {
  {
    BitReader r(std::span<const std::uint8_t>{});  // empty stream
    CHECK_THROWS_AS(r.get_elias_gamma(), DecodeError);
    CHECK_THROWS_AS(r.get_elias_omega(), DecodeError);
    CHECK_THROWS_AS(r.get(1), DecodeError);
  }
  {
    const auto b = from_bit_string("00000000");  // all zeros: the gamma code never terminates
    BitReader r(b, "test");
    CHECK_THROWS_WITH(r.get_elias_gamma(), Catch::Contains("test") && Catch::Contains("truncated"));
  }
  {
    const auto b = from_bit_string("0001");  // 3 zeros, 1, then 3 padding zeros: gamma = 1000b = 8
    BitReader r(b);
    CHECK(r.get_elias_gamma() == 8);
  }
  {
    const auto b = from_bit_string("00001");  // 4 zeros, 1, then only 3 of the 4 value bits remain
    BitReader r(b);
    CHECK_THROWS_AS(r.get_elias_gamma(), DecodeError);
  }
  {
    // 64 zeros then a 1: longer than any 64-bit value.
    const auto b = from_bit_string(std::string(64, '0') + "1" + std::string(71, '0'));
    BitReader r(b);
    CHECK_THROWS_WITH(r.get_elias_gamma(), Catch::Contains("longer than 64 bits"));
  }
  {
    // Omega groups that keep growing: 1|1 -> 3, 1|111 -> 15, 1|1^15 -> 65535, then a 65536-bit group.
    const auto b = from_bit_string("11" + std::string("1111") + "1" + std::string(15, '1') + std::string(200, '1'));
    BitReader r(b);
    CHECK_THROWS_WITH(r.get_elias_omega(), Catch::Contains("wider than 64 bits"));
  }
  {
    // Omega: 1|1 -> n = 3, 1|111 -> n = 15, then 1 announces a 16-bit group but only 1 bit is left.
    const auto b = from_bit_string("11111111");
    BitReader r(b);
    CHECK_THROWS_AS(r.get_elias_omega(), DecodeError);
  }
  // Every truncation of a valid stream throws instead of reading past the end.
  std::vector<std::uint8_t> full;
  BitWriter w(full);
  for (std::uint64_t v : {1000000007ULL, 3ULL, 1ULL << 40}) {
    w.put_elias_gamma(v);
    w.put_elias_omega(v);
  }
  w.finish();
  for (std::size_t len = 0; len < full.size(); ++len) {
    BitReader r(std::span<const std::uint8_t>(full.data(), len));
    CHECK_THROWS_AS(
        [&] {
          for (int i = 0; i < 3; ++i) {
            (void)r.get_elias_gamma();
            (void)r.get_elias_omega();
          }
        }(),
        DecodeError);
  }
}

TEST_CASE("BitReader::expect_end rejects trailing bytes and non-zero padding", "[compressors][bits]") {
  std::vector<std::uint8_t> b{0xff, 0x00};
  BitReader r(b);
  (void)r.get(3);
  CHECK_THROWS_WITH(r.expect_end(), Catch::Contains("trailing"));
  CHECK(r.get(5) == 31);
  CHECK(r.get(1) == 0);
  r.expect_end();  // 7 zero padding bits left: fine
  std::vector<std::uint8_t> c{0x81};
  BitReader r2(c);
  (void)r2.get(1);
  CHECK_THROWS_WITH(r2.expect_end(), Catch::Contains("padding"));
}

TEST_CASE("binary16 conversion is exact on every half and rounds to nearest even", "[compressors][bits]") {
  // Every finite half value, increasing, with its bits.
  std::vector<std::pair<double, std::uint16_t>> table;
  for (std::uint32_t h = 0; h < 0x7c00; ++h) table.emplace_back(static_cast<double>(from_f16(static_cast<std::uint16_t>(h))), h);
  // Exactness: all 65536 patterns decode to the IEEE value and re-encode to themselves.
  for (std::uint32_t h = 0; h < 0x10000; ++h) {
    const auto hh = static_cast<std::uint16_t>(h);
    const float f = from_f16(hh);
    const std::uint32_t e = (h >> 10) & 0x1f, m = h & 0x3ff;
    double expect;
    if (e == 0) expect = std::ldexp(static_cast<double>(m), -24);
    else if (e == 31) expect = m ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
    else expect = std::ldexp(1.0 + m / 1024.0, static_cast<int>(e) - 15);
    if (h & 0x8000) expect = -expect;
    if (std::isnan(expect)) {
      REQUIRE(std::isnan(f));
      REQUIRE((to_f16(f) & 0x7c00) == 0x7c00);
      REQUIRE((to_f16(f) & 0x3ff) != 0);
    } else {
      REQUIRE(static_cast<double>(f) == expect);
      REQUIRE(std::signbit(f) == ((h & 0x8000) != 0));
      REQUIRE(to_f16(f) == hh);
    }
  }
  // Rounding against a brute-force nearest-even search over the table (positive floats, strided).
  auto reference = [&](float x) -> std::uint16_t {
    const double v = static_cast<double>(x);
    if (v >= 65520.0) return 0x7c00;  // halfway between 65504 and 65536 (= next binade) rounds up to inf
    auto it = std::lower_bound(table.begin(), table.end(), v,
                               [](const std::pair<double, std::uint16_t>& a, double y) { return a.first < y; });
    if (it == table.end()) return 0x7bff;  // in (65504, 65520): below the halfway point to 65536
    if (it->first == v) return it->second;
    const auto lo = *(it - 1), hi = *it;
    const double dl = v - lo.first, dh = hi.first - v;
    if (dl < dh) return lo.second;
    if (dh < dl) return hi.second;
    return (lo.second & 1) ? hi.second : lo.second;
  };
  std::size_t checked = 0;
  for (std::uint64_t u = 1; u < 0x7f800000u; u += 1237) {
    const float x = f32(static_cast<std::uint32_t>(u));
    REQUIRE(to_f16(x) == reference(x));
    REQUIRE(to_f16(-x) == (reference(x) | 0x8000));
    ++checked;
  }
  CHECK(checked > 1000000);
  // Exact ties around the subnormal and normal ranges.
  CHECK(to_f16(f32(0x33000000)) == 0x0000);  // 2^-25 = half of the smallest subnormal: ties to even (0)
  CHECK(to_f16(f32(0x33000001)) == 0x0001);  // just above: rounds up
  CHECK(to_f16(std::ldexp(3.0f, -25)) == 0x0002);  // 1.5 ulps: ties to even (2)
  CHECK(to_f16(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);  // 1 + half ulp: to even (1.0)
  CHECK(to_f16(1.0f + std::ldexp(3.0f, -11)) == 0x3c02);  // 1 + 1.5 ulp: to even
  CHECK(to_f16(65504.0f) == 0x7bff);
  CHECK(to_f16(65519.99f) == 0x7bff);
  CHECK(to_f16(65520.0f) == 0x7c00);
  CHECK(to_f16(std::numeric_limits<float>::infinity()) == 0x7c00);
  CHECK(to_f16(-std::numeric_limits<float>::infinity()) == 0xfc00);
  CHECK(to_f16(-0.0f) == 0x8000);
  CHECK(to_f16(std::numeric_limits<float>::denorm_min()) == 0x0000);
  CHECK(from_f16(0x0001) == std::ldexp(1.0f, -24));
  CHECK(from_f16(0x3555) == 0.333251953125f);
}

#if defined(__FLT16_MAX__) && (defined(__x86_64__) || defined(__aarch64__))
TEST_CASE("binary16 conversion agrees with the compiler's _Float16", "[compressors][bits]") {
  for (std::uint64_t u = 0; u <= 0xffffffffu; u += 4099) {
    const float x = f32(static_cast<std::uint32_t>(u));
    if (std::isnan(x)) continue;
    const auto h = static_cast<_Float16>(x);
    std::uint16_t bits;
    std::memcpy(&bits, &h, 2);
    REQUIRE(to_f16(x) == bits);
  }
}
#else
TEST_CASE("binary16 conversion agrees with the compiler's _Float16", "[compressors][bits]") {
  WARN("skipped: this compiler or target has no _Float16 to compare to_f16 with");
}
#endif

TEST_CASE("bfloat16 conversion rounds to nearest even and keeps inf/NaN/subnormals", "[compressors][bits]") {
  // Exact on every bfloat16 value.
  for (std::uint32_t b = 0; b < 0x10000; ++b) {
    const float f = from_bf16(static_cast<std::uint16_t>(b));
    REQUIRE(std::bit_cast<std::uint32_t>(f) == b << 16);
    if (!std::isnan(f)) REQUIRE(to_bf16(f) == b);
    else REQUIRE(std::isnan(from_bf16(to_bf16(f))));
  }
  // Rounding: compare with the two neighbours computed in double.
  for (std::uint64_t u = 0; u < 0x7f800000u; u += 977) {
    const float x = f32(static_cast<std::uint32_t>(u));
    const std::uint32_t lo = static_cast<std::uint32_t>(u) >> 16;
    const double vlo = static_cast<double>(f32(lo << 16));
    const double vhi = lo + 1 == 0x7f80 ? std::ldexp(1.0, 128) : static_cast<double>(f32((lo + 1) << 16));
    const double v = static_cast<double>(x);
    std::uint32_t expect;
    if (v - vlo < vhi - v) expect = lo;
    else if (v - vlo > vhi - v) expect = lo + 1;
    else expect = (lo & 1) ? lo + 1 : lo;
    REQUIRE(to_bf16(x) == expect);
  }
  CHECK(to_bf16(std::numeric_limits<float>::max()) == 0x7f80);  // rounds to inf
  CHECK(to_bf16(f32(0x00000001)) == 0x0000);                    // tiny subnormal to zero
  CHECK(to_bf16(f32(0x00018000)) == 0x0002);                    // subnormal tie to even
  CHECK(to_bf16(f32(0x3f808000)) == 0x3f80);                    // 1 + half ulp -> 1
  CHECK(to_bf16(f32(0x3f818000)) == 0x3f82);                    // 1 + 1.5 ulp -> even
  CHECK(to_bf16(-std::numeric_limits<float>::infinity()) == 0xff80);
  const float nan_low = f32(0x7f800001);  // signalling NaN whose payload lies in the dropped bits
  CHECK(std::isnan(from_bf16(to_bf16(nan_low))));
}
