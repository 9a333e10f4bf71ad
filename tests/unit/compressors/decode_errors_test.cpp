// Every documented error of the compressors (include/fedpp/compressors/) and of the payload header
// (core/payload.hpp), each triggered on purpose and matched by its full message: unsupported
// versions, codecs, dimensions and counts, non-zero padding bits, over-long varints, truncated
// payloads, bad options (class, parameter and bad value), non-finite inputs. Payloads are built by
// hand (documented layouts) or by mutating one byte of a valid payload.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "fedpp/compressors/detail/bits.hpp"
#include "fedpp/compressors/error_feedback.hpp"
#include "fedpp/compressors/identity.hpp"
#include "fedpp/compressors/qsgd.hpp"
#include "fedpp/compressors/random_k.hpp"
#include "fedpp/compressors/sign.hpp"
#include "fedpp/compressors/sparse.hpp"
#include "fedpp/compressors/sparse_quantized.hpp"
#include "fedpp/compressors/top_k.hpp"
#include "fedpp/core/payload.hpp"
#include "support/checks.hpp"
#include "support/compressor_common.hpp"

using namespace fedpp;
using Catch::Matchers::Contains;
using Catch::Matchers::Equals;

namespace {

using Bytes = std::vector<std::uint8_t>;

// decode(bytes) with compressor c into `dim` values of S; the exception must be a DecodeError whose
// message is exactly `msg`.
template <typename S, typename C>
void expect_decode_error(const C& c, const Bytes& bytes, std::size_t dim, const std::string& msg) {
  std::vector<S> out(dim);
  CHECK_THROWS_AS(c.decode(Payload(bytes), std::span<S>(out)), DecodeError);
  CHECK_THROWS_WITH(c.decode(Payload(bytes), std::span<S>(out)), Equals(msg));
}

template <typename S, typename C>
Bytes encoded(const C& c, const std::vector<S>& x, std::uint64_t seed = 1) {
  auto st = c.template make_state<S>(static_cast<Index>(x.size()));
  Rng rng(seed);
  return fedpp_test::bytes_of(c.encode(std::span<const S>(x), st, rng));
}

Bytes with(Bytes b, std::size_t at, std::uint8_t v) {
  b.at(at) = v;
  return b;
}

Bytes cut(Bytes b, std::size_t n) {
  b.resize(b.size() - n);
  return b;
}

// The header of the first n bytes of b (not inlined: GCC's -Warray-bounds misreads the constant sizes).
[[gnu::noinline]] PayloadHeader header_of_prefix(const Bytes& b, std::size_t n) {
  return Payload(Bytes(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(n))).header();
}

Bytes plus(Bytes b, std::uint8_t v) {
  b.push_back(v);
  return b;
}

}  // namespace

TEST_CASE("PayloadHeader::read rejects a truncated header", "[compressors][errors]") {
  // u16 codec, u8 version, varint dim, varint count: each prefix of a 5-byte header is truncated.
  const Bytes h{5, 0, 1, 10, 3};
  CHECK_THROWS_WITH(header_of_prefix(h, 1), Equals("fedpp::Payload: truncated input: need 2 bytes at offset 0, remaining, got 1"));
  CHECK_THROWS_WITH(header_of_prefix(h, 2), Equals("fedpp::Payload: truncated input: need 1 bytes at offset 2, remaining, got 0"));
  CHECK_THROWS_WITH(header_of_prefix(h, 4), Equals("fedpp::Payload: truncated input: need 1 bytes at offset 4, remaining, got 0"));
  CHECK_THROWS_WITH(header_of_prefix(Bytes{5, 0, 1, 0x80, 1}, 4),
                    Equals("fedpp::Payload: truncated input: need 1 bytes at offset 4, remaining, got 0"));
  const PayloadHeader ok = Payload(h).header();
  CHECK(ok.codec == Codec::sparse);
  CHECK(ok.version == 1);
  CHECK(ok.dim == 10);
  CHECK(ok.count == 3);
}

// ---- Identity -------------------------------------------------------------------------------------

TEST_CASE("Identity: every decode error and the format option, with their messages", "[compressors][errors]") {
  CHECK_THROWS_WITH(Identity(static_cast<ValueFormat>(4)), Equals("fedpp::Identity: format must be f32, f64, f16 or bf16, got 4"));
  const Identity id;
  const Bytes good = encoded<float>(id, {1.0f, -2.0f, 3.0f, 0.5f});  // 01 00 | 01 | 04 | 04 | 16 bytes
  REQUIRE(good.size() == 5 + 16);
  const std::string who = "fedpp::Identity::decode: ";
  expect_decode_error<float>(id, with(good, 0, 2), 4, who + "unexpected codec (expected 1), got 2");
  expect_decode_error<float>(id, with(good, 2, 2), 4, who + "unsupported version, got 2");
  expect_decode_error<float>(id, with(good, 2, 0), 4, who + "unsupported version, got 0");
  expect_decode_error<float>(id, good, 5, who + "dimension must be 5, got 4");
  expect_decode_error<float>(id, with(good, 4, 3), 4, who + "dense count must equal the dimension, got 3");
  expect_decode_error<float>(id, cut(good, 1), 4, who + "value block must be 16 bytes, got 15");
  expect_decode_error<float>(id, plus(good, 0), 4, who + "value block must be 16 bytes, got 17");
  // f16: codec 3, two bytes a value; a version-2 f16 payload is rejected too.
  const Identity h(ValueFormat::f16);
  const Bytes g16 = encoded<float>(h, {1.0f, -2.0f, 3.0f});
  REQUIRE(g16.size() == 5 + 6);
  expect_decode_error<float>(h, with(g16, 2, 2), 3, who + "unsupported version, got 2");
  expect_decode_error<float>(h, good, 4, who + "unexpected codec (expected 3), got 1");
  expect_decode_error<float>(h, cut(g16, 1), 3, who + "value block must be 6 bytes, got 5");
  expect_decode_error<double>(Identity(ValueFormat::bf16), g16, 3, who + "unexpected codec (expected 4), got 3");
}

// ---- ScaledSign -----------------------------------------------------------------------------------

TEST_CASE("ScaledSign: every decode error and option error, with their messages", "[compressors][errors]") {
  const ScaledSign sign;
  const std::string who = "fedpp::ScaledSign::decode: ";
  // d = 10, no zeros: 07 00 | 01 | 0a | 0a | mode 0 | nseg 1 | f32 scale | 2 sign bytes (6 padding bits).
  std::vector<float> x{1, -2, 3, -4, 5, -6, 7, -8, 9, -10};
  const Bytes good = encoded<float>(sign, x);
  REQUIRE(good.size() == 5 + 1 + 1 + 4 + 2);
  REQUIRE(good[5] == 0);
  expect_decode_error<float>(sign, with(good, 0, 5), 10, who + "unexpected codec, got 5");
  expect_decode_error<float>(sign, with(good, 2, 2), 10, who + "unsupported version, got 2");
  expect_decode_error<float>(sign, good, 11, who + "dimension must be 11, got 10");
  expect_decode_error<float>(sign, with(good, 4, 9), 10, who + "count must equal the dimension, got 9");
  expect_decode_error<float>(sign, with(good, 5, 4), 10, who + "zero mode must be 0-3, got 4");
  expect_decode_error<float>(sign, with(good, 6, 2), 10, who + "number of scales must be 1, got 2");
  expect_decode_error<float>(sign, with(good, 10, 0xbf), 10, who + "scales must be finite and non-negative, segment 0 has, got -1.375");
  expect_decode_error<float>(sign, with(with(good, 9, 0x80), 10, 0x7f), 10, who + "scales must be finite and non-negative, segment 0 has, got inf");
  expect_decode_error<float>(sign, with(good, 12, good[12] | 0x04), 10, who + "sign bitmap has non-zero padding bits, got 6");
  expect_decode_error<float>(sign, cut(good, 1), 10, who + "truncated input: need 2 bytes at offset 11, remaining, got 1");
  expect_decode_error<float>(sign, plus(good, 0), 10, who + "trailing bytes after the payload, got 1");
  // All-zero mode (3): scales must be 0, the dimension positive, nothing may follow.
  const Bytes zeros = encoded<float>(sign, std::vector<float>(10, 0.0f));
  REQUIRE(zeros.size() == 5 + 1 + 1 + 4);
  REQUIRE(zeros[5] == 3);
  expect_decode_error<float>(sign, with(zeros, 10, 0x3f), 10, who + "all-zero mode needs zero scales, got a scale, got 0.5");
  expect_decode_error<float>(sign, plus(zeros, 0), 10, who + "trailing bytes after the payload, got 1");
  expect_decode_error<float>(sign, Bytes{7, 0, 1, 0, 0, 3, 1, 0, 0, 0, 0}, 0, who + "all-zero mode needs a positive dimension, got 0");
  // List mode (1): d = 20 with a zero at 3: varint count 1, varint gap 3, then 3 sign bytes.
  std::vector<float> y(20, 1.0f);
  y[3] = 0.0f;
  y[7] = -1.0f;
  const Bytes list = encoded<float>(sign, y);
  REQUIRE(list.size() == 5 + 1 + 1 + 4 + 2 + 3);
  REQUIRE(list[5] == 1);
  expect_decode_error<float>(sign, with(list, 11, 0), 20, who + "zero count must be in [1, dim), got 0");
  expect_decode_error<float>(sign, with(list, 11, 20), 20, who + "zero count must be in [1, dim), got 20");
  expect_decode_error<float>(sign, with(list, 11, 6), 20, who + "truncated input: zero positions missing, count, got 6");
  expect_decode_error<float>(sign, with(list, 12, 20), 20, who + "zero position past the dimension at entry, got 0");
  expect_decode_error<float>(sign, with(list, 13, list[13] | 0x08), 20, who + "a zero coordinate carries a sign bit at, got 3");
  // Bitmap mode (2): zeros at 0..9 (a list would take 11 bytes, the bitmap 3).
  std::vector<float> z(20, 2.0f);
  for (int i = 0; i < 10; ++i) z[static_cast<std::size_t>(i)] = 0.0f;
  const Bytes bm = encoded<float>(sign, z);
  REQUIRE(bm.size() == 5 + 1 + 1 + 4 + 3 + 3);
  REQUIRE(bm[5] == 2);
  expect_decode_error<float>(sign, with(bm, 13, 0x10), 20, who + "zero bitmap has non-zero padding bits, got 16");
  expect_decode_error<float>(sign, with(bm, 16, 0x20), 20, who + "sign bitmap has non-zero padding bits, got 32");
  // Layout-wise: the dimension must equal the layout's total (DecodeError decoding, DimensionError encoding).
  ParameterLayout layout;
  layout.add("a", {4});
  layout.add("b", {6});
  const ScaledSign layered(layout);
  CHECK_NOTHROW(encoded<float>(layered, x));
  expect_decode_error<float>(layered, good, 10, who + "number of scales must be 2, got 1");
  expect_decode_error<float>(layered, list, 20, who + "dimension must equal the layout's total 10, got 20");
  std::vector<float> eleven(11, 1.0f);
  auto st = layered.make_state<float>(11);
  Rng rng(1);
  CHECK_THROWS_AS(layered.encode(std::span<const float>(eleven), st, rng), DimensionError);
  CHECK_THROWS_WITH(layered.encode(std::span<const float>(eleven), st, rng),
                    Equals("fedpp::ScaledSign: dimension must equal the layout's total 10, got 11"));
  CHECK_THROWS_WITH(ScaledSign(ParameterLayout{}), Equals("fedpp::ScaledSign: layout must have at least one segment, got 0"));
  x[4] = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH(sign.encode(std::span<const float>(x), st, rng), Equals("fedpp::ScaledSign: input must be finite (NaN or infinity found), got 10"));
  const std::vector<double> huge{1e300, -1e300, 1.0};
  auto sd = sign.make_state<double>(3);
  CHECK_THROWS_WITH(sign.encode(std::span<const double>(huge), sd, rng), Equals("fedpp::ScaledSign: a scale exceeds the float32 range in segment, got 0"));
}

// ---- Qsgd -----------------------------------------------------------------------------------------

TEST_CASE("Qsgd: every decode error and option error, with their messages", "[compressors][errors]") {
  const std::string who = "fedpp::Qsgd::decode: ";
  CHECK_THROWS_WITH(Qsgd(1u << 25), Equals("fedpp::Qsgd: levels must be in [1, 16777216], got 33554432"));
  CHECK_THROWS_WITH(Qsgd(4, -3), Equals("fedpp::Qsgd: bucket_size must be >= 1 (or 0 for the whole vector), got -3"));
  CHECK_THROWS_WITH(Qsgd(4, 8, static_cast<QsgdCoding>(2)), Equals("fedpp::Qsgd: coding must be packed or elias_omega, got 2"));
  CHECK_THROWS_WITH(Qsgd(4, 8, QsgdCoding::packed, static_cast<QsgdNorm>(7)), Equals("fedpp::Qsgd: norm must be l2 or max, got 7"));
  CHECK_NOTHROW(Qsgd(1u << 24, 0));
  // d = 11, s = 4 (fields of 4 bits: 44 bits, 4 padding bits), buckets of 4 (3 norms).
  // Layout: 06 00 | 01 | 0b | 0b | coding | kind | s | bucket | 12 bytes of norms (9..20) | 6 body bytes (21..26).
  const Qsgd q(4, 4);
  std::vector<float> x{0.5f, -0.25f, 0.75f, 0.0f, 1.5f, -0.5f, 0.125f, -1.0f, -0.375f, 0.625f, 0.25f};
  const Bytes good = encoded<float>(q, x);
  REQUIRE(good.size() == 27);
  expect_decode_error<float>(q, with(good, 0, 99), 11, who + "unexpected codec, got 99");
  expect_decode_error<float>(q, with(good, 2, 2), 11, who + "unsupported version, got 2");
  expect_decode_error<float>(q, good, 12, who + "dimension must be 12, got 11");
  expect_decode_error<float>(q, with(good, 5, 2), 11, who + "coding must be 0 (packed) or 1 (Elias omega), got 2");
  expect_decode_error<float>(q, with(good, 6, 2), 11, who + "norm kind must be 0 (l2) or 1 (max), got 2");
  expect_decode_error<float>(q, with(good, 7, 0), 11, who + "levels must be in [1, 16777216], got 0");
  expect_decode_error<float>(q, with(good, 8, 0), 11, who + "bucket size must be in [1, max(dim, 1)], got 0");
  expect_decode_error<float>(q, with(good, 8, 12), 11, who + "bucket size must be in [1, max(dim, 1)], got 12");
  expect_decode_error<float>(q, Bytes(good.begin(), good.begin() + 20), 11, who + "truncated input: bucket norms missing, buckets, got 3");
  expect_decode_error<float>(q, with(with(with(with(good, 13, 0), 14, 0), 15, 0xc0), 16, 0xbf), 11,
                             who + "bucket norms must be finite and non-negative, bucket 1 has, got -1.5");
  expect_decode_error<float>(q, with(good, 4, 10), 11, who + "packed count must equal the dimension, got 10");
  expect_decode_error<float>(q, cut(good, 1), 11, who + "packed body must be 6 bytes, got 5");
  expect_decode_error<float>(q, plus(good, 0), 11, who + "packed body must be 6 bytes, got 7");
  expect_decode_error<float>(q, with(good, 21, 0x0a | (good[21] & 0xf0)), 11, who + "level above s or signed zero level at coordinate, got 0");
  expect_decode_error<float>(q, with(good, 22, 0x01 | (good[22] & 0xf0)), 11, who + "level above s or signed zero level at coordinate, got 2");
  expect_decode_error<float>(q, with(good, 26, good[26] | 0x80), 11, who + "non-zero padding bits, got " + std::to_string(good[26] | 0x80));
  expect_decode_error<float>(q, with(good, 26, good[26] | 0x10), 11, who + "non-zero padding bits, got " + std::to_string(good[26] | 0x10));
  // Elias omega: count = nonzeros, then (gap, sign, level) per nonzero; here all 11 as level 1, gap 1.
  Bytes e(good.begin(), good.begin() + 21);
  e[5] = 1;
  e[4] = 11;
  detail::BitWriter bw(e);
  for (int i = 0; i < 11; ++i) {
    bw.put_elias_omega(1);
    bw.put_bit(false);
    bw.put_elias_omega(1);
  }
  bw.finish();
  std::vector<float> out(11);
  REQUIRE_NOTHROW(q.decode(Payload(e), std::span<float>(out)));
  expect_decode_error<float>(q, with(e, 4, 12), 11, who + "nonzero count exceeds the dimension, got 12");
  expect_decode_error<float>(q, plus(e, 0), 11, who + "trailing bytes after the bit stream, got 1");
  expect_decode_error<float>(q, with(e, e.size() - 1, e.back() | 0x80), 11, who + "non-zero padding bits at bit, got 33");
  {
    Bytes m(good.begin(), good.begin() + 21);
    m[5] = 1;
    m[4] = 1;
    detail::BitWriter w(m);
    w.put_elias_omega(12);  // index 11 of 11
    w.put_bit(false);
    w.put_elias_omega(1);
    w.finish();
    expect_decode_error<float>(q, m, 11, who + "index past the dimension at nonzero, got 0");
    Bytes n(good.begin(), good.begin() + 21);
    n[5] = 1;
    n[4] = 2;
    detail::BitWriter w2(n);
    w2.put_elias_omega(1);
    w2.put_bit(true);
    w2.put_elias_omega(4);
    w2.put_elias_omega(3);
    w2.put_bit(false);
    w2.put_elias_omega(5);  // level 5 > s = 4
    w2.finish();
    expect_decode_error<float>(q, n, 11, who + "level above s at nonzero, got 1");
  }
  // Encode errors: non-finite input (l2 and max norms) and a norm beyond float32.
  auto st = q.make_state<float>(11);
  Rng rng(1);
  x[5] = std::numeric_limits<float>::infinity();
  CHECK_THROWS_WITH(q.encode(std::span<const float>(x), st, rng), Equals("fedpp::Qsgd: input must be finite (NaN or infinity found), got 11"));
  x[5] = std::numeric_limits<float>::quiet_NaN();
  const Qsgd qmax(4, 4, QsgdCoding::packed, QsgdNorm::max);
  CHECK_THROWS_WITH(qmax.encode(std::span<const float>(x), st, rng), Equals("fedpp::Qsgd: input must be finite (NaN or infinity found), got 11"));
  const Qsgd qe(4, 3, QsgdCoding::elias_omega);  // the separate-norms path
  CHECK_THROWS_WITH(qe.encode(std::span<const float>(x), st, rng), Equals("fedpp::Qsgd: input must be finite (NaN or infinity found), got 11"));
  const std::vector<double> huge{1e200, 1.0, 3.0};
  auto sd = qe.make_state<double>(3);
  CHECK_THROWS_WITH(qe.encode(std::span<const double>(huge), sd, rng), Equals("fedpp::Qsgd: a bucket norm exceeds the float32 range, got overflow"));
}

// ---- SparseQsgd -----------------------------------------------------------------------------------

TEST_CASE("SparseQsgd: every decode error and option error, with their messages", "[compressors][errors]") {
  const std::string who = "fedpp::SparseQsgd::decode: ";
  CHECK_THROWS_WITH(SparseQsgd(TopK::count(2), 0), Equals("fedpp::SparseQsgd: levels must be in [1, 16777216], got 0"));
  // d = 40, k = 3, s = 4 (4-bit fields: 12 bits, 4 padding bits): the kept indices 1, 4, 8 as varints.
  // Layout: 08 00 | 01 | 28 | 03 | mode 0 | 01 02 03 | s 04 | f32 norm (10..13) | 2 body bytes (14, 15).
  const SparseQsgd q(TopK::count(3), 4);
  std::vector<float> x(40, 0.01f);
  x[1] = 3.0f;
  x[4] = -2.0f;
  x[8] = 1.5f;
  const Bytes good = encoded<float>(q, x);
  REQUIRE(good.size() == 16);
  REQUIRE(good[5] == 0);
  expect_decode_error<float>(q, with(good, 0, 6), 40, who + "unexpected codec, got 6");
  expect_decode_error<float>(q, with(good, 2, 2), 40, who + "unsupported version, got 2");
  expect_decode_error<float>(q, good, 9, who + "dimension must be 9, got 40");
  expect_decode_error<float>(q, with(good, 4, 2), 40, who + "count must be k = 3, got 2");
  expect_decode_error<float>(q, with(good, 5, 2), 40, who + "unknown index mode (0 varints, 1 bitmap), got 2");
  expect_decode_error<float>(q, with(good, 8, 35), 40, who + "index out of range (must be < dim = 40) at position 2: gap, got 35");
  expect_decode_error<float>(q, with(good, 9, 0), 40, who + "levels must be in [1, 16777216], got 0");
  expect_decode_error<float>(q, with(with(with(with(good, 10, 0), 11, 0), 12, 0xc0), 13, 0x7f), 40,
                             who + "norm must be finite and non-negative, got nan");
  expect_decode_error<float>(q, with(with(with(with(good, 10, 0), 11, 0), 12, 0), 13, 0x80), 40,
                             who + "norm must be finite and non-negative, got -0");
  expect_decode_error<float>(q, cut(good, 1), 40, who + "packed body must be 2 bytes, got 1");
  expect_decode_error<float>(q, plus(good, 0), 40, who + "packed body must be 2 bytes, got 3");
  expect_decode_error<float>(q, with(good, 14, 0x0a | (good[14] & 0xf0)), 40, who + "level above s or signed zero level at kept value, got 0");
  expect_decode_error<float>(q, with(good, 15, good[15] | 0x40), 40, who + "non-zero padding bits, got " + std::to_string(good[15] | 0x40));
  expect_decode_error<float>(q, Bytes(good.begin(), good.begin() + 7), 40, who + "truncated index block: 1 bytes cannot hold the index count, got 3");
  std::vector<float> bad = x;
  bad[2] = std::numeric_limits<float>::infinity();
  auto st = q.make_state<float>(40);
  Rng rng(1);
  CHECK_THROWS_WITH(q.encode(std::span<const float>(bad), st, rng), Equals("fedpp::SparseQsgd: input must be finite (NaN or infinity found), got 40"));
  const std::vector<double> huge{1e200, 1e200, 1e200, 0.0};
  auto sd = q.make_state<double>(4);
  CHECK_THROWS_WITH(q.encode(std::span<const double>(huge), sd, rng),
                    Equals("fedpp::SparseQsgd: the norm of the kept values exceeds the float32 range, got overflow"));
}

// ---- the sparse wire format, TopK and RandomK -----------------------------------------------------

TEST_CASE("decode_sparse: every error of the sparse format, with its message", "[compressors][errors]") {
  const std::string who = "fedpp::TopK::decode: ";
  const TopK top = TopK::count(3);
  // d = 40, keep 1, 4, 8: 05 00 | 01 | 28 | 03 | fmt 0 | mode 0 | 01 02 03 | 3 f32 values (10..21).
  std::vector<float> x(40, 0.01f);
  x[1] = 3.0f;
  x[4] = -2.0f;
  x[8] = 1.5f;
  const Bytes good = encoded<float>(top, x);
  REQUIRE(good.size() == 22);
  expect_decode_error<float>(top, with(good, 0, 6), 40, who + "unexpected codec (expected sparse = 5), got 6");
  expect_decode_error<float>(top, with(good, 2, 2), 40, who + "unsupported version, got 2");
  expect_decode_error<float>(top, good, 11, who + "dimension must be 11, got 40");
  expect_decode_error<float>(top, with(good, 4, 2), 40, who + "count must be k = 3, got 2");
  expect_decode_error<float>(top, with(good, 5, 4), 40, who + "unknown value format (0 f32, 1 f64, 2 f16, 3 bf16), got 4");
  expect_decode_error<float>(top, with(good, 5, 2), 40, who + "value format must be f32, got f16");
  expect_decode_error<float>(top, with(good, 6, 2), 40, who + "unknown index mode (0 varints, 1 bitmap), got 2");
  expect_decode_error<float>(top, with(good, 9, 35), 40, who + "index out of range (must be < dim = 40) at position 2: gap, got 35");
  expect_decode_error<float>(top, cut(good, 1), 40, who + "value block must be 12 bytes, got 11");
  expect_decode_error<float>(top, plus(good, 0), 40, who + "value block must be 12 bytes, got 13");
  expect_decode_error<float>(top, Bytes(good.begin(), good.begin() + 9), 40, who + "truncated index block: 2 bytes cannot hold the index count, got 3");
  // Over-long varints: 11 bytes for the dimension, and a 10th byte above 1 (more than 64 bits).
  Bytes longdim{5, 0, 1};
  for (int i = 0; i < 10; ++i) longdim.push_back(0x80);
  longdim.push_back(0);
  expect_decode_error<float>(top, longdim, 40, who + "varint longer than 10 bytes at byte, got 13");
  Bytes overflow{5, 0, 1};
  for (int i = 0; i < 9; ++i) overflow.push_back(0x80);
  overflow.push_back(0x02);
  expect_decode_error<float>(top, overflow, 40, who + "varint overflows 64 bits at byte, got 12");
  Bytes gap = Bytes(good.begin(), good.begin() + 7);  // the first index gap as an over-long varint
  for (int i = 0; i < 11; ++i) gap.push_back(0x80);
  expect_decode_error<float>(top, gap, 40, who + "varint longer than 10 bytes at byte, got 17");
  // Count above dim (RandomK decodes through the same checks with its own name).
  const RandomK rk = RandomK::count(3);
  const Bytes over{5, 0, 1, 2, 3, 0, 0, 0, 0, 0};
  expect_decode_error<float>(rk, over, 2, "fedpp::RandomK::decode: count must be k = 2, got 3");
  std::vector<float> two(2);
  CHECK_THROWS_WITH(decode_sparse<float>(Payload(over), std::span<float>(two), "w"), Equals("w: count must be <= dim = 2, got 3"));
  {
    ByteReader r(std::span<const std::uint8_t>(over.data() + 5, 5), "r");
    std::vector<Index> idx;
    CHECK_THROWS_WITH(detail::read_sparse_indices(r, 2, 3, idx, "r"), Equals("r: count must be <= dim = 2, got 3"));
  }
  // Bitmap mode: d = 20, 12 kept (varints would take 12 bytes, the bitmap 3).
  const TopK dense = TopK::count(12);
  std::vector<float> y(20);
  for (std::size_t i = 0; i < 20; ++i) y[i] = static_cast<float>(i % 3 == 0 ? 0.5 : 2.0 + static_cast<double>(i));
  const Bytes bm = encoded<float>(dense, y);
  REQUIRE(bm[6] == 1);
  REQUIRE(bm.size() == 7 + 3 + 48);
  const std::string wd = "fedpp::TopK::decode: ";
  expect_decode_error<float>(dense, with(bm, 9, bm[9] | 0x10), 20, wd + "bitmap has bits set past dim, got 20");
  expect_decode_error<float>(dense, with(bm, 7, bm[7] ^ 0x02), 20, wd + "bitmap popcount must equal count = 12, got " + std::to_string(12 + ((bm[7] & 0x02) ? -1 : 1)));
  expect_decode_error<float>(dense, Bytes(bm.begin(), bm.begin() + 9), 20, wd + "truncated bitmap: need 3 bytes, remaining, got 2");
}

TEST_CASE("encode_sparse, put_values and the sparsifiers' options: errors with their messages", "[compressors][errors]") {
  const std::vector<Index> idx{1, 5};
  const std::vector<float> v{1.0f, 2.0f};
  CHECK_THROWS_AS(encode_sparse<float>(10, idx, std::vector<float>{1.0f, 2.0f, 3.0f}), DimensionError);
  CHECK_THROWS_WITH(encode_sparse<float>(10, idx, std::vector<float>{1.0f, 2.0f, 3.0f}),
                    Equals("fedpp::encode_sparse: values must have one entry per index (2), got 3"));
  CHECK_THROWS_WITH(encode_sparse<float>(10, idx, v, static_cast<ValueFormat>(5)), Equals("fedpp::encode_sparse: unknown value format, got 5"));
  CHECK_THROWS_WITH(encode_sparse<float>(10, std::vector<Index>{5, 5}, v),
                    Equals("fedpp::detail::write_sparse_indices: indices must be strictly increasing (position 1 follows 5), got 5"));
  CHECK_THROWS_WITH(encode_sparse<float>(10, std::vector<Index>{-1, 5}, v),
                    Equals("fedpp::detail::write_sparse_indices: indices must be strictly increasing (position 0 follows -1), got -1"));
  CHECK_THROWS_WITH(encode_sparse<float>(10, std::vector<Index>{5, 10}, v),
                    Equals("fedpp::detail::write_sparse_indices: indices must be < dim = 10, got 10"));
  CHECK_THROWS_WITH(encode_sparse<float>(10, idx, std::vector<float>{1.0f, std::numeric_limits<float>::infinity()}),
                    Equals("fedpp::encode_sparse: values must be finite, got a non-finite value at position, got 1"));
  CHECK_THROWS_WITH(encode_sparse<float>(10, idx, std::vector<float>{70000.0f, 1.0f}, ValueFormat::f16),
                    Equals("fedpp::encode_sparse: value overflows f16 at position 0:, got 70000"));
  CHECK_THROWS_WITH(encode_sparse<double>(10, idx, std::vector<double>{1.0, 1e300}, ValueFormat::f32),
                    Equals("fedpp::encode_sparse: value overflows f32 at position 1:, got 1e+300"));
  CHECK_THROWS_WITH(encode_sparse<double>(10, idx, std::vector<double>{1.0, 1e300}, ValueFormat::bf16),
                    Equals("fedpp::encode_sparse: value overflows bf16 at position 1:, got 1e+300"));
  {
    Bytes b;
    ByteWriter w(b);
    CHECK_THROWS_WITH(detail::put_values<float>(w, v, static_cast<ValueFormat>(7), "p"), Equals("p: unknown value format, got 7"));
  }
  CHECK_THROWS_WITH(TopK::count(0), Equals("fedpp::TopK: k must be >= 1, got 0"));
  CHECK_THROWS_WITH(RandomK::count(-2), Equals("fedpp::RandomK: k must be >= 1, got -2"));
  CHECK_THROWS_WITH(TopK::density(0.0), Equals("fedpp::TopK: density must be in (0, 1], got 0"));
  CHECK_THROWS_WITH(RandomK::density(1.5), Equals("fedpp::RandomK: density must be in (0, 1], got 1.5"));
  CHECK_NOTHROW(TopK::density(1.0));
  CHECK_THROWS_WITH(TopK::count(2).with_format(static_cast<ValueFormat>(9)), Equals("fedpp::TopK: format must be f32, f64, f16 or bf16, got 9"));
  CHECK_THROWS_WITH(RandomK::count(2).with_format(static_cast<ValueFormat>(4)), Equals("fedpp::RandomK: format must be f32, f64, f16 or bf16, got 4"));
  // Non-finite input on every path of TopK (k >= d, small k with the sampled and radix paths) and RandomK.
  std::vector<float> x(100, 1.0f);
  x[42] = std::numeric_limits<float>::quiet_NaN();
  Rng rng(1);
  for (Index k : {Index{1}, Index{50}, Index{100}, Index{200}}) {
    CAPTURE(k);
    const TopK t = TopK::count(k);
    TopK::State s;
    CHECK_THROWS_WITH(t.encode(std::span<const float>(x), s, rng), Equals("fedpp::TopK: update must be finite, got a non-finite value"));
  }
  CHECK_THROWS_WITH(top_k_indices(std::span<const float>(x), 0, "z"), Equals("z: update must be finite, got a non-finite value"));
  RandomK::State rs;
  CHECK_THROWS_WITH(RandomK::count(3).encode(std::span<const float>(x), rs, rng), Equals("fedpp::RandomK: update must be finite, got a non-finite value"));
}

// ---- bits.hpp -------------------------------------------------------------------------------------

TEST_CASE("BitWriter and BitReader: every error, with its message", "[compressors][errors]") {
  Bytes b;
  detail::BitWriter w(b);
  CHECK_THROWS_WITH(w.put_elias_gamma(0), Equals("fedpp::detail::BitWriter: Elias gamma value must be >= 1, got 0"));
  CHECK_THROWS_WITH(w.put_elias_omega(0), Equals("fedpp::detail::BitWriter: Elias omega value must be >= 1, got 0"));
  {  // 64 zero bits then a 1: a gamma code of more than 64 bits
    Bytes z(8, 0);
    z.push_back(1);
    detail::BitReader r(z, "g");
    CHECK_THROWS_WITH(r.get_elias_gamma(), Equals("g: Elias gamma code longer than 64 bits at bit, got 0"));
    Bytes y(8, 0);
    y.push_back(0);
    y.push_back(1);
    detail::BitReader r2(y, "g");  // 72 zeros: over the limit before the end
    CHECK_THROWS_WITH(r2.get_elias_gamma(), Equals("g: Elias gamma code longer than 64 bits at bit, got 0"));
    const Bytes three(3, 0);
    detail::BitReader r3(three, "g");  // the stream ends in zeros
    CHECK_THROWS_WITH(r3.get_elias_gamma(), Equals("g: truncated bit stream: Elias code runs past the end at bit, got 0"));
  }
  {  // omega groups 1 1 | 1 111 | 1 then 15 ones: n = 65535 > 63 when the next group starts
    Bytes o;
    detail::BitWriter ow(o);
    ow.put(0x3, 2);       // "11": n = 3
    ow.put(0xf, 4);       // "1111": n = 15
    ow.put(0xffff, 16);   // "1" + 15 ones: n = 65535
    ow.put(1, 1);         // another group begins
    ow.finish();
    detail::BitReader r(o, "o");
    CHECK_THROWS_WITH(r.get_elias_omega(), Equals("o: Elias omega group wider than 64 bits at bit, got 23"));
  }
  {
    const Bytes one{0x05};
    detail::BitReader r(one, "t");
    CHECK(r.get(3) == 5);
    CHECK_THROWS_WITH(r.get(6), Equals("t: truncated bit stream: need 6 bits at bit 3, remaining, got 5"));
    CHECK_NOTHROW(r.expect_end());
    const Bytes b85{0x85}, b05{0x05, 0x00};
    detail::BitReader pad(b85, "t");
    CHECK(pad.get(3) == 5);
    CHECK_THROWS_WITH(pad.expect_end(), Equals("t: non-zero padding bits at bit, got 3"));
    detail::BitReader trail(b05, "t");
    CHECK(trail.get(3) == 5);
    CHECK_THROWS_WITH(trail.expect_end(), Equals("t: trailing bytes after the bit stream, got 1"));
  }
}

// ---- ErrorFeedback and Ef21 -----------------------------------------------------------------------

TEST_CASE("ErrorFeedback and Ef21: every error, with its message", "[compressors][errors]") {
  const ErrorFeedback<Identity> ef;
  const Ef21<Identity> e21;
  CHECK_THROWS_WITH(ef.make_state<float>(-1), Equals("fedpp::ErrorFeedback: dim must be >= 0, got -1"));
  CHECK_THROWS_WITH(e21.make_state<float>(-2), Equals("fedpp::Ef21: dim must be >= 0, got -2"));
  CHECK_THROWS_WITH(e21.make_decoder_state<float>(-3), Equals("fedpp::Ef21: dim must be >= 0, got -3"));
  auto st = ef.make_state<float>(4);
  auto s21 = e21.make_state<float>(4);
  Rng rng(1);
  const std::vector<float> five(5, 1.0f);
  CHECK_THROWS_AS(ef.encode(std::span<const float>(five), st, rng), DimensionError);
  CHECK_THROWS_WITH(ef.encode(std::span<const float>(five), st, rng),
                    Equals("fedpp::ErrorFeedback: update dimension must equal the state's dimension 4, got 5"));
  CHECK_THROWS_WITH(e21.encode(std::span<const float>(five), s21, rng),
                    Equals("fedpp::Ef21: update dimension must equal the state's dimension 4, got 5"));
  std::vector<float> x(4, 1.0f);
  x[2] = -std::numeric_limits<float>::infinity();
  CHECK_THROWS_WITH(ef.encode(std::span<const float>(x), st, rng), Equals("fedpp::ErrorFeedback: update must be finite, got non-finite values"));
  CHECK_THROWS_WITH(e21.encode(std::span<const float>(x), s21, rng), Equals("fedpp::Ef21: update must be finite, got non-finite values"));
  x[2] = 1.0f;
  const Payload p = e21.encode(std::span<const float>(x), s21, rng);
  auto dst = e21.make_decoder_state<float>(3);
  std::vector<float> out(4);
  CHECK_THROWS_AS(e21.decode(p, std::span<float>(out), dst), DecodeError);
  CHECK_THROWS_WITH(e21.decode(p, std::span<float>(out), dst), Equals("fedpp::Ef21::decode: decoder state dimension must be 4, got 3"));
}
