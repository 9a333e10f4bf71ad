// SparseQsgd (top-k then QSGD of the kept values): decode against a brute-force selection and the
// documented two-neighbouring-levels rule (no library draws), unbiasedness given the selection, exact sizes, determinism and
// strict validation of malformed payloads.
#include <catch2/catch.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "fedpp/compressors/sparse_quantized.hpp"
#include "support/compressor_common.hpp"

using namespace fedpp;
using namespace fedpp_test;

namespace {

// Checks a SparseQsgd decode against a brute-force top-k and the documented rule, without the
// library's draws: a kept value decodes to norm * l / s or norm * (l + 1) / s (l = floor(s |v| / norm),
// the sign of v unless the level is 0), exactly l when s |v| / norm has no fractional part, and every
// other coordinate to +0. Returns how many kept values with a fractional part were rounded up / in all.
template <typename S>
std::pair<std::size_t, std::size_t> check_sparse_qsgd_decode(const std::vector<S>& x, const std::vector<S>& out,
                                                             std::size_t k, std::uint32_t s) {
  const auto idx = brute_top_k(x, k);
  double sq = 0;
  for (auto i : idx) sq += static_cast<double>(x[static_cast<std::size_t>(i)]) * static_cast<double>(x[static_cast<std::size_t>(i)]);
  const double nd = std::sqrt(sq);
  float nf = static_cast<float>(nd);
  if (static_cast<double>(nf) < nd) nf = std::nextafter(nf, 1e30f);
  const auto norm = static_cast<S>(nf), smax = static_cast<S>(s);
  std::vector<bool> kept(x.size(), false);
  std::size_t up = 0, fractional = 0, bad = 0;
  for (auto i : idx) {
    const auto u = static_cast<std::size_t>(i);
    kept[u] = true;
    const S v = x[u];
    const S r = norm > 0 ? std::min(std::abs(v) * (smax / norm), smax) : S(0);
    const auto l = static_cast<std::uint32_t>(r);
    auto value = [&](std::uint32_t lev) {
      const S q = norm * (static_cast<S>(lev) / smax);
      return v < 0 && lev > 0 ? -q : q;
    };
    const bool is_l = out[u] == value(l) && std::signbit(out[u]) == std::signbit(value(l));
    const bool is_up = l < s && r != static_cast<S>(l) && out[u] == value(l + 1) &&
                       std::signbit(out[u]) == std::signbit(value(l + 1));
    bad += (is_l || is_up) ? 0 : 1;
    fractional += r != static_cast<S>(l);
    up += is_up;
  }
  for (std::size_t i = 0; i < x.size(); ++i)
    if (!kept[i]) bad += (out[i] == 0 && !std::signbit(out[i])) ? 0 : 1;
  CHECK(bad == 0);
  return {up, fractional};
}

}  // namespace

TEMPLATE_TEST_CASE("SparseQsgd keeps the top k and decodes their quantised values exactly, with exact sizes",
                   "[compressors][SparseQsgd]", float, double) {
  using S = TestType;
  struct Cfg {
    std::size_t d, k;
    std::uint32_t s;
  };
  for (const Cfg c : {Cfg{1000, 10, 8}, Cfg{1000, 300, 1}, Cfg{100000, 100, 255}, Cfg{50, 50, 4}, Cfg{50, 80, 3},
                      Cfg{7, 1, 16}}) {
    CAPTURE(c.d, c.k, c.s);
    auto x = gaussian<S>(c.d, c.d + c.k);
    x[c.d / 2] = 0;
    x[1] = x[c.d - 1] = S(-3.5);  // a tie between magnitudes: both kept or lowest index first
    const SparseQsgd q(TopK::count(static_cast<Index>(c.k)), c.s);
    Rng rng(c.k);
    Rng copy = rng;
    Payload p;
    const auto out = round_trip(q, x, rng, &p, 9);
    const std::size_t k = std::min(c.k, c.d);
    const auto [up, fractional] = check_sparse_qsgd_decode(x, out, k, c.s);
    if (fractional >= 50) {  // both neighbouring levels occur
      CHECK(up > 0);
      CHECK(up < fractional);
    }
    copy();
    CHECK(rng() == copy());  // exactly one draw
    CHECK(p.header().count == k);
    // Header, index block (mode byte + delta varints or a bitmap, whichever is smaller), varint s, norm, fields.
    const auto idx = brute_top_k(x, k);
    std::size_t varints = 0;
    for (std::size_t j = 0; j < idx.size(); ++j) varints += varint_len(j == 0 ? idx[0] : idx[j] - idx[j - 1] - 1);
    const std::size_t index_block = 1 + std::min(varints, (c.d + 7) / 8);
    const unsigned w = 1 + static_cast<unsigned>(std::bit_width(c.s));
    CHECK(p.bytes() == 2 + 1 + varint_len(c.d) + varint_len(k) + index_block + varint_len(c.s) + 4 + (k * w + 7) / 8);
  }
}

TEST_CASE("SparseQsgd is unbiased given the selection", "[compressors][SparseQsgd]") {
  const auto x = gaussian<double>(200, 17);
  const SparseQsgd q(TopK::count(20), 2);
  const auto idx = brute_top_k(x, 20);
  std::vector<double> sum(200, 0.0);
  const int draws = 20000;
  for (int t = 0; t < draws; ++t) {
    Rng rng(static_cast<std::uint64_t>(t) + 1);
    const auto out = round_trip(q, x, rng, nullptr, 9);
    for (std::size_t i = 0; i < 200; ++i) sum[i] += out[i];
  }
  double sq = 0;
  for (std::size_t i : idx) sq += x[i] * x[i];
  const double norm = std::sqrt(sq);
  std::size_t in_top = 0;
  for (std::size_t i = 0; i < 200; ++i) {
    const bool kept = std::binary_search(idx.begin(), idx.end(), i);
    if (!kept) {
      CHECK(sum[i] == 0);
      continue;
    }
    ++in_top;
    const double r = std::abs(x[i]) * 2 / norm, p = r - std::floor(r);
    const double se = norm / 2 * std::sqrt(p * (1 - p) / draws);
    CHECK(std::abs(sum[i] / draws - x[i]) <= 5 * se + 1e-6);
  }
  CHECK(in_top == 20);
}

TEST_CASE("SparseQsgd maps zero to zero, rejects non-finite input and is thread-count independent",
          "[compressors][SparseQsgd]") {
  const SparseQsgd q(TopK::density(0.01), 8);
  Rng rng(1);
  const std::vector<float> zero(500, 0.0f);
  const auto out = round_trip(q, zero, rng, nullptr, 9);
  CHECK(std::all_of(out.begin(), out.end(), [](float v) { return v == 0 && !std::signbit(v); }));
  const std::vector<float> empty;
  CHECK(round_trip(q, empty, rng, nullptr, 9).empty());
  auto st = q.make_state<float>(3);
  const std::vector<float> bad{1, std::numeric_limits<float>::infinity(), 0};
  CHECK_THROWS_WITH(q.encode(std::span<const float>(bad), st, rng),
                    Catch::Contains("fedpp::SparseQsgd") && Catch::Contains("finite"));
  CHECK_THROWS_WITH(SparseQsgd(TopK::count(3), 0), Catch::Contains("fedpp::SparseQsgd: levels"));

  const auto x = gaussian<float>(300000, 4);
  const SparseQsgd big(TopK::density(0.2), 8);
  auto st2 = big.make_state<float>(300000);
  Rng r1(5), r2(5);
  const Payload p1 = encode_on_threads(big, x, st2, r1, 1);
  const Payload p2 = encode_on_threads(big, x, st2, r2, 2);
  CHECK(std::equal(p1.data().begin(), p1.data().end(), p2.data().begin(), p2.data().end()));
}

TEST_CASE("SparseQsgd rejects malformed payloads with DecodeError", "[compressors][SparseQsgd]") {
  const std::size_t d = 40;
  const auto x = gaussian<float>(d, 8);
  const SparseQsgd q(TopK::count(4), 5);  // fields of 4 bits: levels up to 7 are representable
  auto st = q.make_state<float>(d);
  Rng rng(2);
  const Payload good = q.encode(std::span<const float>(x), st, rng);
  const std::vector<std::uint8_t> bytes(good.data().begin(), good.data().end());
  std::vector<float> out(d);
  auto decode = [&](const std::vector<std::uint8_t>& b) { q.decode(Payload(b), std::span<float>(out)); };
  REQUIRE_NOTHROW(decode(bytes));
  check_rejects_cut_and_extended(decode, bytes);
  // Layout: codec(2) version(1) dim(1) count(1) | mode(1) 4 gaps (1 byte each) | s(1) | norm(4) | 2 bytes of fields.
  REQUIRE(bytes.size() == 5 + 5 + 1 + 4 + 2);
  REQUIRE(bytes[5] == 0);
  auto mutate = [&](std::size_t at, std::uint8_t v) {
    auto m = bytes;
    m[at] = v;
    return m;
  };
  CHECK_THROWS_AS(decode(mutate(0, 5)), DecodeError);   // the sparse codec
  CHECK_THROWS_AS(decode(mutate(2, 9)), DecodeError);   // version
  CHECK_THROWS_AS(decode(mutate(3, 41)), DecodeError);  // dimension
  CHECK_THROWS_WITH(decode(mutate(4, 5)), Catch::Contains("count must be k = 4"));
  CHECK_THROWS_AS(decode(mutate(5, 7)), DecodeError);   // index mode
  CHECK_THROWS_AS(decode(mutate(9, 40)), DecodeError);  // index past the dimension
  CHECK_THROWS_AS(decode(mutate(10, 0)), DecodeError);  // zero levels
  CHECK_THROWS_AS(decode(mutate(10, 16)), DecodeError); // 16 levels: fields of 5 bits, body length differs
  CHECK_THROWS_AS(decode(mutate(14, 0xff)), DecodeError);  // NaN norm
  CHECK_THROWS_AS(decode(mutate(14, 0x80 | bytes[14])), DecodeError);  // negative norm
  CHECK_THROWS_WITH(decode(mutate(15, 0x0c)), Catch::Contains("level above s"));  // value 0: level 6
  CHECK_THROWS_WITH(decode(mutate(16, 0x01 | (bytes[16] & 0xf0))), Catch::Contains("signed zero"));  // value 2: level 0 with sign
  std::vector<float> wrong(d - 1);
  CHECK_THROWS_AS(q.decode(good, std::span<float>(wrong)), DecodeError);
}
