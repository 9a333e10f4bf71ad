// ScaledSign: output equals the documented formula (||p||_1 / d) sign(p), sign(0) = 0, per-segment
// scales, exact sizes in each zero mode, determinism, bias, strict validation of malformed payloads.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "fedpp/compressors/sign.hpp"
#include "support/compressor_common.hpp"
#include "support/checks.hpp"

using namespace fedpp;
using namespace fedpp_test;

namespace {

// The formula, written from the paper: scale = float32(mean |p_i|) over [lo, hi); value = scale * sign(p_i).
template <typename S>
void expected_scaled_sign(const std::vector<S>& x, std::size_t lo, std::size_t hi, std::vector<S>& out) {
  double sum = 0;
  for (std::size_t i = lo; i < hi; ++i) sum += std::abs(static_cast<double>(x[i]));
  const auto scale = static_cast<S>(static_cast<float>(sum / static_cast<double>(hi - lo)));
  for (std::size_t i = lo; i < hi; ++i) out[i] = x[i] > 0 ? scale : (x[i] < 0 ? -scale : S(0));
}

// round_trip with Rng(1) (ScaledSign draws nothing) and 42 as the value decode must overwrite.
template <typename S>
std::vector<S> sign_round_trip(const ScaledSign& c, const std::vector<S>& x, Payload* keep = nullptr) {
  Rng rng(1);
  return round_trip(c, x, rng, keep, S(42));
}

std::size_t header_bytes(std::uint64_t d) { return 2 + 1 + 2 * varint_len(d); }

}  // namespace

TEMPLATE_TEST_CASE("ScaledSign decodes to (||p||_1 / d) sign(p) with exact sizes", "[compressors][ScaledSign]", float,
                   double) {
  using S = TestType;
  const ScaledSign c;
  for (std::size_t d : {1u, 7u, 8u, 1000u, 20001u}) {
    CAPTURE(d);
    const auto x = gaussian<S>(d, d);
    std::vector<S> want(d);
    expected_scaled_sign(x, 0, d, want);
    Payload p;
    const auto out = sign_round_trip(c, x, &p);
    CHECK(out == want);
    // No zeros: header, mode byte, one scale (varint count + float), d bits.
    CHECK(p.bytes() == header_bytes(d) + 1 + 1 + 4 + (d + 7) / 8);
  }
}

TEST_CASE("ScaledSign codes zeros as sign(0) = 0 only when zeros exist", "[compressors][ScaledSign]") {
  const ScaledSign c;
  const std::size_t d = 1000;
  // A few zeros: delta-coded list (count + gaps), then the sign bitmap.
  auto x = gaussian<float>(d, 3);
  x[0] = 0;
  x[500] = -0.0f;
  x[999] = 0;
  std::vector<float> want(d);
  expected_scaled_sign(x, 0, d, want);
  Payload p;
  auto out = sign_round_trip(c, x, &p);
  CHECK(out == want);
  CHECK(out[500] == 0);
  CHECK(!std::signbit(out[500]));
  const std::size_t list = 1 + varint_len(0) + varint_len(499) + varint_len(498);
  CHECK(p.bytes() == header_bytes(d) + 1 + 1 + 4 + list + (d + 7) / 8);
  CHECK(p.data()[header_bytes(d)] == 1);
  // Many zeros: a zero bitmap is smaller than the list.
  for (std::size_t i = 0; i < d; i += 2) x[i] = 0;
  expected_scaled_sign(x, 0, d, want);
  out = sign_round_trip(c, x, &p);
  CHECK(out == want);
  CHECK(p.data()[header_bytes(d)] == 2);
  CHECK(p.bytes() == header_bytes(d) + 1 + 1 + 4 + 2 * ((d + 7) / 8));
  // All zero: mode 3, nothing after the (zero) scale. Empty vector: mode 0, nothing after the scale.
  const std::vector<float> zero(d, 0.0f);
  out = sign_round_trip(c, zero, &p);
  CHECK(out == zero);
  CHECK(p.data()[header_bytes(d)] == 3);
  CHECK(p.bytes() == header_bytes(d) + 1 + 1 + 4);
  const std::vector<float> empty;
  CHECK(sign_round_trip(c, empty, &p).empty());
  CHECK(p.bytes() == header_bytes(0) + 1 + 1 + 4);
}

TEST_CASE("ScaledSign with a layout scales each segment by its own mean magnitude", "[compressors][ScaledSign]") {
  ParameterLayout layout;
  layout.add("w1", {10, 30});
  layout.add("b1", {30});
  layout.add("w2", {5, 30});
  const ScaledSign c(layout);
  CHECK(c.layer_wise());
  auto x = gaussian<double>(480, 8);
  for (std::size_t i = 300; i < 330; ++i) x[i] *= 100;  // a segment with much larger values
  x[301] = 0;
  std::vector<double> want(480);
  expected_scaled_sign(x, 0, 300, want);
  expected_scaled_sign(x, 300, 330, want);
  expected_scaled_sign(x, 330, 480, want);
  Payload p;
  CHECK(sign_round_trip(c, x, &p) == want);
  // Mode, 3 scales, a list of one zero (count 1, gap 301 in 2 bytes), 480 sign bits.
  CHECK(p.bytes() == header_bytes(480) + 1 + 1 + 3 * 4 + 1 + 2 + 480 / 8);
  // A global scale differs (so the test distinguishes the two).
  std::vector<double> global(480);
  expected_scaled_sign(x, 0, 480, global);
  CHECK(sign_round_trip(ScaledSign(), x) == global);
  CHECK(global != want);
  // Layout and dimension must agree.
  auto st = c.make_state<double>(479);
  Rng rng(1);
  const std::vector<double> short_x(479, 1.0);
  CHECK_THROWS_AS(c.encode(std::span<const double>(short_x), st, rng), DimensionError);
  CHECK_THROWS_AS(ScaledSign(ParameterLayout{}), InvalidArgument);
  // A payload made with another segment count is rejected.
  Payload g;
  sign_round_trip(ScaledSign(), x, &g);
  std::vector<double> out(480);
  CHECK_THROWS_WITH(c.decode(g, std::span<double>(out)), Catch::Contains("number of scales"));
}

TEST_CASE("ScaledSign is a biased delta-compressor: ||C(x) - x||^2 = ||x||^2 - ||x||_1^2 / d", "[compressors][ScaledSign]") {
  // Skewed vector: one large coordinate, many small ones. Sign compression alone does not preserve it.
  std::vector<double> x(100, -0.1);
  x[0] = 10;
  const auto out = sign_round_trip(ScaledSign(), x);
  double l1 = 0, l2 = 0, err = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    l1 += std::abs(x[i]);
    l2 += x[i] * x[i];
    err += (out[i] - x[i]) * (out[i] - x[i]);
  }
  CHECK(out[0] == Approx(0.199).epsilon(1e-6));  // (10 + 99 * 0.1) / 100, far from 10: biased
  CHECK(err == Approx(l2 - l1 * l1 / 100).epsilon(1e-6));
  CHECK(err > 0.9 * l2);
}

TEST_CASE("ScaledSign gives the same bits on 1 and 2 threads", "[compressors][ScaledSign]") {
  auto x = gaussian<float>(300001, 11);
  x[12345] = 0;
  const ScaledSign c;
  auto st = c.make_state<float>(300001);
  Rng r(1);
  const Payload p1 = encode_on_threads(c, x, st, r, 1);
  const Payload p2 = encode_on_threads(c, x, st, r, 2);
  CHECK(std::equal(p1.data().begin(), p1.data().end(), p2.data().begin(), p2.data().end()));
}

TEST_CASE("ScaledSign rejects non-finite input and malformed payloads", "[compressors][ScaledSign]") {
  const ScaledSign c;
  auto st = c.make_state<float>(3);
  Rng rng(1);
  const std::vector<float> nan{1, std::numeric_limits<float>::quiet_NaN(), 2};
  CHECK_THROWS_WITH(c.encode(std::span<const float>(nan), st, rng),
                    Catch::Contains("fedpp::ScaledSign") && Catch::Contains("finite"));
  auto std_ = c.make_state<double>(2);
  const std::vector<double> huge{1e300, -1e300};
  CHECK_THROWS_WITH(c.encode(std::span<const double>(huge), std_, rng), Catch::Contains("float32 range"));
  const std::vector<double> largest{3.4028234e38, -3.4028234e38};  // just below FLT_MAX: still representable
  CHECK(sign_round_trip(c, largest)[1] == -static_cast<double>(std::numeric_limits<float>::max()));

  const std::size_t d = 20;  // header 5 bytes, mode at 5, scale count at 6, scale at 7..10, then 11..
  std::vector<float> out(d);
  auto decode = [&](const std::vector<std::uint8_t>& b) { c.decode(Payload(b), std::span<float>(out)); };
  auto wire_of = [&](const std::vector<float>& x) {
    Payload p;
    sign_round_trip(c, x, &p);
    return fedpp_test::bytes_of(p);
  };
  auto x = gaussian<float>(d, 2);
  const auto none = wire_of(x);
  x[3] = 0;
  const auto list = wire_of(x);
  for (std::size_t i = 0; i < d; i += 2) x[i] = 0;
  const auto bitmap = wire_of(x);
  const auto all = wire_of(std::vector<float>(d, 0.0f));
  REQUIRE(none[5] == 0);
  REQUIRE(list[5] == 1);
  REQUIRE(bitmap[5] == 2);
  REQUIRE(all[5] == 3);
  for (const auto* good : {&none, &list, &bitmap, &all}) {
    REQUIRE_NOTHROW(decode(*good));
    check_rejects_cut_and_extended(decode, *good);
    auto m = *good;
    m[0] = 6;  // Qsgd's codec id
    CHECK_THROWS_AS(decode(m), DecodeError);
    m = *good;
    m[3] = 21;  // dimension
    CHECK_THROWS_AS(decode(m), DecodeError);
    m = *good;
    m[4] = 19;  // count
    CHECK_THROWS_AS(decode(m), DecodeError);
    m = *good;
    m[5] = 4;  // mode
    CHECK_THROWS_AS(decode(m), DecodeError);
    m = *good;
    m[6] = 2;  // scale count
    CHECK_THROWS_AS(decode(m), DecodeError);
    m = *good;
    m[10] |= 0x80;  // negative scale
    CHECK_THROWS_AS(decode(m), DecodeError);
    m = *good;
    m[9] = 0x80;  // infinite scale
    m[10] = 0x7f;
    m[7] = m[8] = 0;
    CHECK_THROWS_WITH(decode(m), Catch::Contains("finite"));
  }
  // Mode-specific corruption.
  auto m = all;
  m[8] = 1;  // a nonzero scale in all-zero mode
  CHECK_THROWS_WITH(decode(m), Catch::Contains("zero scales"));
  m = none;
  m.back() |= 0x80;  // padding bit of the sign bitmap (20 bits: the last byte uses 4)
  CHECK_THROWS_WITH(decode(m), Catch::Contains("padding"));
  // List: count at 11, gap at 12 (3), then signs.
  REQUIRE(list[11] == 1);
  REQUIRE(list[12] == 3);
  m = list;
  m[11] = 0;
  CHECK_THROWS_AS(decode(m), DecodeError);
  m = list;
  m[11] = 20;
  CHECK_THROWS_AS(decode(m), DecodeError);
  m = list;
  m[12] = 20;  // position past the dimension
  CHECK_THROWS_WITH(decode(m), Catch::Contains("past the dimension"));
  m = list;
  m[13] |= 0x08;  // sign bit on the zero coordinate 3
  CHECK_THROWS_WITH(decode(m), Catch::Contains("zero coordinate carries a sign"));
  m = bitmap;
  m[13] |= 0x80;  // padding bit of the zero bitmap (bytes 11..13)
  CHECK_THROWS_WITH(decode(m), Catch::Contains("zero bitmap"));
}
