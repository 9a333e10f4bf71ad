// Tests of the core vocabulary: errors, RNG streams, UpdateBatch, byte I/O, layout.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <set>

#include "fedpp/core/bytes.hpp"
#include "fedpp/core/error.hpp"
#include "fedpp/core/layout.hpp"
#include "fedpp/core/payload.hpp"
#include "fedpp/core/rng.hpp"
#include "fedpp/core/update_batch.hpp"

using namespace fedpp;

TEST_CASE("error messages name the class, the parameter and the value", "[core][error]") {
  try {
    require(false, "fedpp::TrimmedMean", "trim_ratio must be in [0, 0.5)", 0.7);
    FAIL("no throw");
  } catch (const InvalidArgument& e) {
    CHECK(std::string(e.what()) == "fedpp::TrimmedMean: trim_ratio must be in [0, 0.5), got 0.7");
  }
  CHECK_THROWS_AS(fail<DataError>("fedpp::x", "missing"), Error);
  CHECK(require(true, "w", "v", 3) == 3);
}

TEST_CASE("rng streams are reproducible and distinct", "[core][rng]") {
  auto a = make_rng(42, 3, 7, Purpose::shuffle);
  auto b = make_rng(42, 3, 7, Purpose::shuffle);
  for (int i = 0; i < 100; ++i) REQUIRE(a() == b());
  // Changing any component of the key changes the stream.
  std::set<std::uint64_t> firsts;
  firsts.insert(make_rng(42, 3, 7, Purpose::shuffle)());
  firsts.insert(make_rng(43, 3, 7, Purpose::shuffle)());
  firsts.insert(make_rng(42, 4, 7, Purpose::shuffle)());
  firsts.insert(make_rng(42, 3, 8, Purpose::shuffle)());
  firsts.insert(make_rng(42, 3, 7, Purpose::sampling)());
  CHECK(firsts.size() == 5);
}

TEST_CASE("rng distributions have the right moments", "[core][rng]") {
  auto r = make_rng(1, 0, 0, Purpose::user);
  const int n = 200000;
  double su = 0, su2 = 0, sn = 0, sn2 = 0;
  std::vector<int> counts(7, 0);
  for (int i = 0; i < n; ++i) {
    const double u = r.uniform();
    REQUIRE(u >= 0.0);
    REQUIRE(u < 1.0);
    su += u;
    su2 += u * u;
    const double z = r.normal();
    sn += z;
    sn2 += z * z;
    const auto k = r.uniform_index(7);
    REQUIRE(k < 7);
    ++counts[k];
  }
  CHECK(su / n == Approx(0.5).margin(0.005));
  CHECK(su2 / n - (su / n) * (su / n) == Approx(1.0 / 12).margin(0.002));
  CHECK(sn / n == Approx(0.0).margin(0.01));
  CHECK(sn2 / n == Approx(1.0).margin(0.02));
  for (int c : counts) CHECK(c == Approx(n / 7.0).epsilon(0.03));
}

TEST_CASE("UpdateBatch validates and sorts by id", "[core][UpdateBatch]") {
  UpdateBatch<float> b(3);
  const std::vector<float> x{1, 2, 3}, y{4, 5, 6}, bad{1, 2};
  b.push_back(5, 2.0, x);
  b.push_back(1, 1.0, y);
  CHECK_THROWS_AS(b.push_back(2, 1.0, bad), DimensionError);
  CHECK_THROWS_AS(b.push_back(2, -1.0, x), InvalidArgument);
  CHECK_THROWS_AS(b.push_back(2, std::nan(""), x), InvalidArgument);
  REQUIRE(b.size() == 2);
  b.sort_by_id();
  CHECK(b.ids()[0] == 1);
  CHECK(b.weights()[0] == 1.0);
  CHECK(b.column(0)[0] == 4.0f);
  CHECK(b.matrix()(2, 1) == 3.0f);
  CHECK_THROWS_WITH(UpdateBatch<float>(3).check_nonempty("fedpp::WeightedMean::aggregate"),
                    Catch::Contains("fedpp::WeightedMean::aggregate") && Catch::Contains("no client updates"));
  Matrix<double> m(2, 3);
  CHECK_THROWS_AS(UpdateBatch<double>(m, {1.0, 2.0}), DimensionError);
}

TEST_CASE("byte writer and reader round-trip and reject truncation", "[core][bytes]") {
  std::vector<std::uint8_t> buf;
  ByteWriter w(buf);
  const std::vector<std::uint64_t> vals{0, 1, 127, 128, 300, 1ULL << 40, ~0ULL};
  for (auto v : vals) w.put_varint(v);
  w.put<float>(1.5f);
  w.put<std::uint16_t>(0xBEEF);
  ByteReader r(buf);
  for (auto v : vals) CHECK(r.get_varint() == v);
  CHECK(r.get<float>() == 1.5f);
  CHECK(r.get<std::uint16_t>() == 0xBEEF);
  r.expect_end();
  CHECK_THROWS_AS(r.get<std::uint8_t>(), DecodeError);
  // A varint whose continuation bits never stop is rejected, not read past the end.
  std::vector<std::uint8_t> endless(12, 0xff);
  ByteReader r2(endless);
  CHECK_THROWS_AS(r2.get_varint(), DecodeError);
  // Payload header round trip.
  PayloadHeader h{Codec::dense_f32, 1, 1000, 1000};
  std::vector<std::uint8_t> hb;
  ByteWriter hw(hb);
  h.write(hw);
  Payload p(hb);
  CHECK(p.header().dim == 1000);
  CHECK(p.bytes() == hb.size());
}

TEST_CASE("ParameterLayout lays segments out contiguously", "[core][layout]") {
  ParameterLayout l;
  CHECK(l.add("fc1.weight", {200, 784}) == 0);
  CHECK(l.add("fc1.bias", {200}) == 200 * 784);
  CHECK(l.total() == 200 * 784 + 200);
  CHECK(l.at("fc1.bias").size() == 200);
  CHECK_THROWS_AS(l.at("nope"), InvalidArgument);
  CHECK_THROWS_AS(l.add("bad", {0}), InvalidArgument);
}
