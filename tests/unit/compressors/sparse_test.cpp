// Sparse wire format: exact bytes, bitmap/varint choice, round trips in every value format, and
// rejection of every malformed payload with DecodeError.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "fedpp/compressors/sparse.hpp"
#include "fedpp/core/rng.hpp"
#include "support/checks.hpp"

using namespace fedpp;

namespace {

using Bytes = std::vector<std::uint8_t>;
using fedpp_test::bytes_of;

template <typename T>
void append(Bytes& b, T v) {
  const auto n = b.size();
  b.resize(n + sizeof(T));
  std::memcpy(b.data() + n, &v, sizeof(T));
}

// Offset of the index-mode byte: u16 codec, u8 version, varint dim, varint count, u8 format.
std::size_t mode_offset(std::uint64_t dim, std::uint64_t k) {
  return 3 + detail::varint_size(dim) + detail::varint_size(k) + 1;
}

template <typename S>
std::vector<S> decoded_sparse(const Payload& p, std::size_t dim) {
  std::vector<S> out(dim, S(123));
  decode_sparse(p, std::span<S>(out), "test");
  return out;
}

}  // namespace

TEST_CASE("sparse payload bytes match the documented format (bitmap)", "[compressors][sparse]") {
  const std::vector<Index> idx{1, 4, 9};
  const std::vector<float> val{1.0f, -2.0f, 0.5f};
  const Payload p = encode_sparse<float>(10, idx, val);
  // varints would take 1 + 1 + 1 = 3 bytes, the bitmap of 10 bits 2 bytes: bitmap.
  Bytes expect{0x05, 0x00, 0x01, 10, 3, /*f32*/ 0, /*bitmap*/ 1, 0x12, 0x02};
  for (float v : val) append(expect, v);
  CHECK(bytes_of(p) == expect);
  CHECK(p.bytes() == 9 + 12);
  const auto out = decoded_sparse<float>(p, 10);
  CHECK(out == std::vector<float>{0, 1, 0, 0, -2, 0, 0, 0, 0, 0.5f});
}

TEST_CASE("sparse payload bytes match the documented format (varints)", "[compressors][sparse]") {
  const std::vector<Index> idx{3, 130, 999};
  const std::vector<double> val{-1.25, 3.0, 7.5};
  const Payload p = encode_sparse<double>(1000, idx, val, ValueFormat::f64);
  // dim 1000 = e8 07; gaps: 3, 126, 868 (= e4 06).
  Bytes expect{0x05, 0x00, 0x01, 0xe8, 0x07, 3, /*f64*/ 1, /*varints*/ 0, 0x03, 0x7e, 0xe4, 0x06};
  for (double v : val) append(expect, v);
  CHECK(bytes_of(p) == expect);
  const auto out = decoded_sparse<double>(p, 1000);
  for (std::size_t i = 0; i < 1000; ++i) {
    const double e = i == 3 ? -1.25 : i == 130 ? 3.0 : i == 999 ? 7.5 : 0.0;
    REQUIRE(out[i] == e);
  }
}

TEST_CASE("index mode: varints unless the bitmap is strictly smaller", "[compressors][sparse]") {
  // dim 64: bitmap = 8 bytes. k indices 0..k-1 take k one-byte varints.
  for (std::size_t k = 0; k <= 64; ++k) {
    std::vector<Index> idx(k);
    for (std::size_t j = 0; j < k; ++j) idx[j] = static_cast<Index>(j);
    const std::vector<float> val(k, 1.0f);
    const Payload p = encode_sparse<float>(64, idx, val);
    const auto b = bytes_of(p);
    const std::size_t mo = mode_offset(64, k);
    const bool bitmap = k > 8;  // tie at k = 8 -> varints
    REQUIRE(b[mo] == (bitmap ? 1 : 0));
    REQUIRE(p.bytes() == mo + 1 + (bitmap ? 8 : k) + 4 * k);
    const auto out = decoded_sparse<float>(p, 64);
    for (std::size_t i = 0; i < 64; ++i) REQUIRE(out[i] == (i < k ? 1.0f : 0.0f));
  }
  // dim 0: empty payload, varint mode.
  const Payload e = encode_sparse<float>(0, {}, std::span<const float>{});
  CHECK(bytes_of(e) == Bytes{5, 0, 1, 0, 0, 0, 0});
  std::vector<float> none;
  decode_sparse(e, std::span<float>(none), "test");
  // dim 9, no index: varints (0 bytes) beat the 2-byte bitmap.
  const Payload z = encode_sparse<float>(9, {}, std::span<const float>{});
  CHECK(z.bytes() == 7);
  CHECK(decoded_sparse<float>(z, 9) == std::vector<float>(9, 0.0f));
}

TEST_CASE("varint block size counts multi-byte gaps", "[compressors][sparse]") {
  // Gaps of 127 (1 byte), 128 (2 bytes), 16384 (3 bytes).
  const std::vector<Index> idx{0, 128, 257, 16642};
  CHECK(detail::varint_block_bytes(idx) == 1 + 1 + 2 + 3);
  const Payload p = encode_sparse<float>(20000, idx, std::vector<float>(4, 2.0f));
  CHECK(p.bytes() == 3 + 3 + 1 + 1 + 1 + 7 + 16);
}

TEMPLATE_TEST_CASE("sparse round trips in every value format", "[compressors][sparse]", float, double) {
  using S = TestType;
  Rng rng(11);
  for (int rep = 0; rep < 60; ++rep) {
    const auto dim = static_cast<std::uint64_t>(1 + rng.uniform_index(rep < 30 ? 50 : 5000));
    std::vector<Index> idx;
    const double keep = rng.uniform();
    for (std::uint64_t i = 0; i < dim; ++i)
      if (rng.uniform() < keep) idx.push_back(static_cast<Index>(i));
    std::vector<S> val(idx.size());
    for (auto& v : val) v = static_cast<S>(rng.normal() * 100.0);
    for (ValueFormat fmt : {ValueFormat::f32, ValueFormat::f64, ValueFormat::f16, ValueFormat::bf16}) {
      const Payload p = encode_sparse<S>(dim, idx, val, fmt);
      const std::uint64_t vbytes = detail::varint_block_bytes(idx), bbytes = (dim + 7) / 8;
      const std::size_t mo = mode_offset(dim, idx.size());
      REQUIRE(bytes_of(p)[mo] == (vbytes <= bbytes ? 0 : 1));
      REQUIRE(p.bytes() == mo + 1 + std::min(vbytes, bbytes) + idx.size() * value_bytes(fmt));
      const auto out = decoded_sparse<S>(p, static_cast<std::size_t>(dim));
      std::size_t j = 0;
      for (std::uint64_t i = 0; i < dim; ++i) {
        if (j < idx.size() && static_cast<std::uint64_t>(idx[j]) == i) {
          const S v = val[j++];
          S expect = v;
          if (fmt == ValueFormat::f32) expect = static_cast<S>(static_cast<float>(v));
          if (fmt == ValueFormat::f16) expect = static_cast<S>(detail::from_f16(detail::to_f16(static_cast<float>(v))));
          if (fmt == ValueFormat::bf16) expect = static_cast<S>(detail::from_bf16(detail::to_bf16(static_cast<float>(v))));
          REQUIRE(out[static_cast<std::size_t>(i)] == expect);
        } else {
          REQUIRE(out[static_cast<std::size_t>(i)] == S(0));
        }
      }
    }
  }
}

TEST_CASE("encode_sparse rejects bad arguments", "[compressors][sparse]") {
  const std::vector<float> v2{1, 2};
  CHECK_THROWS_AS(encode_sparse<float>(10, std::vector<Index>{1}, v2), DimensionError);
  CHECK_THROWS_WITH(encode_sparse<float>(10, std::vector<Index>{3, 3}, v2), Catch::Contains("strictly increasing"));
  CHECK_THROWS_AS(encode_sparse<float>(10, std::vector<Index>{4, 2}, v2), InvalidArgument);
  CHECK_THROWS_WITH(encode_sparse<float>(10, std::vector<Index>{4, 10}, v2), Catch::Contains("< dim"));
  CHECK_THROWS_AS(encode_sparse<float>(10, std::vector<Index>{-1, 2}, v2), InvalidArgument);
  const std::vector<float> nan{1, std::numeric_limits<float>::quiet_NaN()};
  CHECK_THROWS_WITH(encode_sparse<float>(10, std::vector<Index>{1, 2}, nan), Catch::Contains("finite"));
  const std::vector<float> big{1, 70000.0f};
  CHECK_THROWS_WITH(encode_sparse<float>(10, std::vector<Index>{1, 2}, big, ValueFormat::f16),
                    Catch::Contains("overflows f16"));
  CHECK_NOTHROW(encode_sparse<float>(10, std::vector<Index>{1, 2}, big, ValueFormat::bf16));
  const std::vector<double> huge{1, 1e300};
  CHECK_THROWS_AS(encode_sparse<double>(10, std::vector<Index>{1, 2}, huge, ValueFormat::f32), InvalidArgument);
  CHECK_THROWS_AS(encode_sparse<float>(10, std::vector<Index>{1, 2}, v2, static_cast<ValueFormat>(9)), InvalidArgument);
}

TEST_CASE("decode_sparse rejects every malformed payload", "[compressors][sparse]") {
  const std::vector<Index> sparse_idx{2, 40, 41, 300};
  const std::vector<Index> dense_idx{0, 1, 2, 3, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18};
  std::vector<float> out300(301), out19(19);
  const Payload pv = encode_sparse<float>(301, sparse_idx, std::vector<float>(4, 1.5f));                 // varints
  const Payload pb = encode_sparse<float>(19, dense_idx, std::vector<float>(17, -1.0f), ValueFormat::f16);  // bitmap
  REQUIRE(bytes_of(pv)[mode_offset(301, 4)] == 0);
  REQUIRE(bytes_of(pb)[mode_offset(19, 17)] == 1);
  auto expect_bad = [](const Bytes& b, std::vector<float>& out, const char* what) {
    CHECK_THROWS_AS(decode_sparse(Payload(b), std::span<float>(out), "fedpp::Test"), DecodeError);
    CHECK_THROWS_WITH(decode_sparse(Payload(b), std::span<float>(out), "fedpp::Test"),
                      Catch::Contains("fedpp::Test") && Catch::Contains(what));
  };

  SECTION("every truncation") {
    for (const auto& [p, out] : {std::pair{&pv, &out300}, std::pair{&pb, &out19}}) {
      const Bytes b = bytes_of(*p);
      for (std::size_t len = 0; len < b.size(); ++len)
        CHECK_THROWS_AS(decode_sparse(Payload(Bytes(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(len))),
                                      std::span<float>(*out), "t"),
                        DecodeError);
      Bytes longer = b;
      longer.push_back(0);
      expect_bad(longer, *out, "value block");
    }
  }
  SECTION("header fields") {
    Bytes b = bytes_of(pv);
    b[0] = 1;  // dense_f32 codec
    expect_bad(b, out300, "codec");
    b = bytes_of(pv);
    b[2] = 2;  // version
    expect_bad(b, out300, "version");
    std::vector<float> wrong(300);
    expect_bad(bytes_of(pv), wrong, "dimension");
    // count > dim: dim 19 (1 byte), count byte at offset 4.
    b = bytes_of(pb);
    b[4] = 20;
    expect_bad(b, out19, "count");
  }
  SECTION("value format and index mode") {
    Bytes b = bytes_of(pv);
    b[mode_offset(301, 4) - 1] = 4;
    expect_bad(b, out300, "value format");
    b = bytes_of(pv);
    b[mode_offset(301, 4)] = 2;
    expect_bad(b, out300, "index mode");
  }
  SECTION("varint indices out of range") {
    // Last gap: 300 - 41 - 1 = 258 (2 bytes: 0x82 0x02). Make it 259 -> index 301 == dim.
    Bytes b = bytes_of(pv);
    const std::size_t mo = mode_offset(301, 4);
    REQUIRE(b[mo + 4] == 0x82);
    b[mo + 4] = 0x83;
    expect_bad(b, out300, "out of range");
    // A huge gap that would wrap around 64 bits.
    b = bytes_of(pv);
    Bytes tail(b.begin() + static_cast<std::ptrdiff_t>(mo + 6), b.end());
    b.resize(mo + 4);
    for (int i = 0; i < 9; ++i) b.push_back(0xff);
    b.push_back(0x01);
    b.insert(b.end(), tail.begin(), tail.end());
    expect_bad(b, out300, "out of range");
    // Count larger than the index block can hold.
    b = bytes_of(pv);
    REQUIRE(b[5] == 4);  // count follows the 2-byte dim
    b[5] = 100;
    expect_bad(b, out300, "cannot hold the index count");
    b[5] = 5;  // one index too many: the value bytes are read as indices, then the length is wrong
    CHECK_THROWS_AS(decode_sparse(Payload(b), std::span<float>(out300), "t"), DecodeError);
  }
  SECTION("bitmap popcount, stray bits and wrong count") {
    const std::size_t mo = mode_offset(19, 17);
    Bytes b = bytes_of(pb);
    b[mo + 1] ^= 0x10;  // set bit 4 (not kept): popcount 18 != 17
    expect_bad(b, out19, "popcount");
    b = bytes_of(pb);
    b[mo + 3] |= 0x08;  // bit 19 = past dim
    expect_bad(b, out19, "past dim");
    b = bytes_of(pb);
    b[4] = 16;  // count 16 with 17 bits set
    expect_bad(b, out19, "popcount");
  }
  SECTION("valid payloads still decode") {
    decode_sparse(pv, std::span<float>(out300), "t");
    CHECK(out300[300] == 1.5f);
    decode_sparse(pb, std::span<float>(out19), "t");
    CHECK(out19[18] == -1.0f);
    CHECK(out19[4] == 0.0f);
  }
}

TEST_CASE("write/read_sparse_indices compose inside a larger payload", "[compressors][sparse]") {
  for (std::uint64_t dim : {1ULL, 7ULL, 8ULL, 9ULL, 100ULL, 1000ULL}) {
    for (std::uint64_t stride : {1ULL, 2ULL, 3ULL, 9ULL, 200ULL}) {
      std::vector<Index> idx;
      for (std::uint64_t i = 0; i < dim; i += stride) idx.push_back(static_cast<Index>(i));
      Bytes buf;
      ByteWriter w(buf);
      w.put(std::uint8_t{0xaa});
      const auto mode = detail::write_sparse_indices(w, dim, idx);
      CHECK(mode == (detail::varint_block_bytes(idx) <= (dim + 7) / 8 ? 0 : 1));
      w.put(std::uint32_t{0xdeadbeef});
      ByteReader r(buf, "t");
      CHECK(r.get<std::uint8_t>() == 0xaa);
      std::vector<Index> back;
      detail::read_sparse_indices(r, dim, idx.size(), back, "t");
      CHECK(back == idx);
      CHECK(r.get<std::uint32_t>() == 0xdeadbeef);
      r.expect_end();
      // A reader told a different count fails (or reads the wrong block) without going out of bounds.
      ByteReader r2(buf, "t");
      (void)r2.get<std::uint8_t>();
      CHECK_THROWS_AS(detail::read_sparse_indices(r2, dim, dim + 1, back, "t"), DecodeError);
    }
  }
}

TEST_CASE("decode_sparse zero-fills large outputs completely (parallel fill)", "[compressors][sparse]") {
  const std::uint64_t dim = (std::uint64_t{1} << 21) + 7;
  const std::vector<Index> idx{0, 5, 1'000'000, static_cast<Index>(dim - 1)};
  const std::vector<float> val{1, 2, 3, 4};
  const Payload p = encode_sparse<float>(dim, idx, val);
  fedpp_test::ThreadGuard guard;
  for (int threads : {1, 2, 3}) {
    set_max_threads(threads);
    std::vector<float> out(dim, -1.0f);
    decode_sparse(p, std::span<float>(out), "t");
    std::size_t nonzero = 0;
    for (float v : out) nonzero += v != 0.0f;
    CHECK(nonzero == 4);
    CHECK(out[1'000'000] == 3.0f);
    CHECK(out[dim - 1] == 4.0f);
  }
}
