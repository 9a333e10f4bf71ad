// Tests of fedpp::Bucketing and fedpp::BucketMeans: bucket structure, bucket means (bit for bit
// WeightedMean on the members), reproducible seeded state, the (seed, round) key of the context
// form against a Fisher-Yates shuffle written here, uniformity of the permutation, composition,
// errors.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <numeric>
#include <string>
#include <type_traits>
#include <vector>

#include "fedpp/aggregators/bucketing.hpp"
#include "fedpp/aggregators/coordinate_median.hpp"
#include "fedpp/aggregators/weighted_mean.hpp"
#include "fedpp/core/rng.hpp"
#include "support/aggregator_inputs.hpp"
#include "support/checks.hpp"

using namespace fedpp;
using namespace fedpp_test;

TEST_CASE("Bucketing buckets partition the columns", "[aggregators][Bucketing]") {
  for (Index n : {Index{1}, Index{2}, Index{7}, Index{10}}) {
    for (Index s : {Index{1}, Index{2}, Index{3}, Index{10}, Index{12}}) {
      Bucketing<> b(s, 5);
      Rng rng(n * 31 + s);
      const auto buckets = b.buckets(n, rng);
      CHECK(static_cast<Index>(buckets.size()) == (n + s - 1) / s);
      std::vector<Index> all;
      for (std::size_t k = 0; k < buckets.size(); ++k) {
        CHECK(std::is_sorted(buckets[k].begin(), buckets[k].end()));
        const Index expect = k + 1 < buckets.size() || n % s == 0 ? std::min(s, n) : n % s;
        CHECK(static_cast<Index>(buckets[k].size()) == expect);
        all.insert(all.end(), buckets[k].begin(), buckets[k].end());
      }
      std::sort(all.begin(), all.end());
      std::vector<Index> ref(static_cast<std::size_t>(n));
      std::iota(ref.begin(), ref.end(), Index{0});
      CHECK(all == ref);
    }
  }
}

TEMPLATE_TEST_CASE("Bucketing means are WeightedMean of the members, bit for bit", "[aggregators][Bucketing]", float,
                   double) {
  using S = TestType;
  const Index d = 4099, n = 11;
  const UpdateBatch<S> batch(cloud<S>(d, n, 0.0, 1.0, 1));
  Bucketing<> b(3, 42);
  Rng rng = b.rng();  // the stream transform() is about to use
  const auto buckets = b.buckets(n, rng);
  const UpdateBatch<S> means = b.transform(batch);
  REQUIRE(means.size() == 4);
  for (Index k = 0; k < means.size(); ++k) {
    const auto& l = buckets[static_cast<std::size_t>(k)];
    CHECK(means.weights()[static_cast<std::size_t>(k)] == static_cast<double>(l.size()));
    CHECK(means.ids()[static_cast<std::size_t>(k)] == static_cast<ClientId>(k));
    Matrix<S> sub(d, static_cast<Index>(l.size()));
    for (std::size_t i = 0; i < l.size(); ++i) sub.col(static_cast<Index>(i)) = batch.matrix().col(l[i]);
    Vector<S> ref;
    WeightedMean(Weighting::uniform).aggregate(UpdateBatch<S>(sub), ref);
    CHECK(std::memcmp(ref.data(), means.column(k).data(), static_cast<std::size_t>(d) * sizeof(S)) == 0);
  }
  // With the default inner rule (weighted by member counts) the result is the plain mean.
  Vector<S> out, mean;
  Bucketing<>(3, 42).aggregate(batch, out);
  WeightedMean(Weighting::uniform).aggregate(batch, mean);
  const S tol = std::is_same_v<S, float> ? S(1e-6) : S(1e-14);
  CHECK((out - mean).cwiseAbs().maxCoeff() <= tol);
}

TEST_CASE("Bucketing state: seeded, advanced per call, reproducible", "[aggregators][Bucketing]") {
  const UpdateBatch<double> batch(cloud<double>(20, 9, 0.0, 1.0, 2));
  Bucketing<> a(2, 7), b(2, 7), c(2, 8);
  std::vector<Matrix<double>> seq_a, seq_b;
  for (int r = 0; r < 4; ++r) {
    seq_a.push_back(a.transform(batch).matrix());
    seq_b.push_back(b.transform(batch).matrix());
  }
  for (int r = 0; r < 4; ++r) CHECK(seq_a[static_cast<std::size_t>(r)] == seq_b[static_cast<std::size_t>(r)]);
  CHECK(seq_a[0] != seq_a[1]);  // the stream advances between calls
  CHECK(c.transform(batch).matrix() != seq_a[0]);  // another seed, another permutation
  // A copy continues the same sequence; the const overload leaves the object's stream alone.
  Bucketing<> copy = a;
  Rng explicit_rng = a.rng();
  const Matrix<double> next = a.transform(batch, explicit_rng).matrix();
  CHECK(a.transform(batch).matrix() == next);
  CHECK(copy.transform(batch).matrix() == next);
}

namespace {

// The permutation a call in ctx must use: Fisher-Yates, written out here, on the stream
// make_rng(key, round, server_stream, aggregation) with key = run seed ^ mix64(seed) ^ mix64(0)
// (the documented key; the run seed itself for seed 0).
std::vector<Index> bucketing_expected_perm(Index n, std::uint64_t seed, const AggregationContext& ctx) {
  const std::uint64_t key = seed == 0 ? ctx.seed : ctx.seed ^ detail::mix64(seed) ^ detail::mix64(0);
  Rng rng = make_rng(key, ctx.round, server_stream, Purpose::aggregation);
  std::vector<Index> perm;
  for (Index i = 0; i < n; ++i) perm.push_back(i);
  for (Index k = n; k >= 2; --k) {
    const auto j = static_cast<Index>(rng.uniform_index(static_cast<std::uint64_t>(k)));
    const Index t = perm[static_cast<std::size_t>(k - 1)];
    perm[static_cast<std::size_t>(k - 1)] = perm[static_cast<std::size_t>(j)];
    perm[static_cast<std::size_t>(j)] = t;
  }
  return perm;
}

// The permutation read back from s = 1 bucket means (each mean is one column, exactly).
template <typename S>
std::vector<Index> bucketing_perm_of(const UpdateBatch<S>& batch, const UpdateBatch<S>& means) {
  std::vector<Index> perm;
  for (Index b = 0; b < means.size(); ++b)
    for (Index i = 0; i < batch.size(); ++i)
      if (batch.matrix().col(i) == means.matrix().col(b)) perm.push_back(i);
  return perm;
}

}  // namespace

TEMPLATE_TEST_CASE("Bucketing with a context draws the documented (seed, round) permutation",
                   "[aggregators][Bucketing]", float, double) {
  using S = TestType;
  const Index d = 40, n = 13;
  const UpdateBatch<S> batch(cloud<S>(d, n, 0.0, 1.0, 6));  // distinct columns
  for (std::uint64_t seed : {std::uint64_t{0}, std::uint64_t{5}}) {
    for (const AggregationContext ctx : {AggregationContext{0, 0}, AggregationContext{4, 0}, AggregationContext{4, 99},
                                         AggregationContext{123456789, 7}}) {
      CAPTURE(seed, ctx.round, ctx.seed);
      const std::vector<Index> expect = bucketing_expected_perm(n, seed, ctx);
      CHECK(bucketing_perm_of(batch, BucketMeans(1, seed).transform(batch, ctx)) == expect);
      CHECK(bucketing_perm_of(batch, Bucketing<>(1, seed).transform(batch, ctx)) == expect);
      // s = 4: buckets of consecutive permutation entries, weights = member counts.
      const UpdateBatch<S> means = BucketMeans(4, seed).transform(batch, ctx);
      REQUIRE(means.size() == 4);
      for (Index b = 0; b < 4; ++b) {
        const Index lo = 4 * b, hi = std::min<Index>(lo + 4, n);
        CHECK(means.weights()[static_cast<std::size_t>(b)] == static_cast<double>(hi - lo));
        for (Index j = 0; j < d; ++j) {
          long double m = 0;
          for (Index k = lo; k < hi; ++k) m += batch.matrix()(j, expect[static_cast<std::size_t>(k)]);
          m /= static_cast<long double>(hi - lo);
          const long double tol = std::is_same_v<S, float> ? 1e-6L : 1e-14L;
          CHECK(std::fabs(static_cast<long double>(means.matrix()(j, b)) - m) <= tol * (1 + std::fabs(m)));
        }
      }
    }
  }
}

TEST_CASE("Bucketing with a context: same context same bits, and round, run seed and seed all matter",
          "[aggregators][Bucketing]") {
  const Index d = 50, n = 10;
  const UpdateBatch<double> batch(cloud<double>(d, n, 0.0, 1.0, 8));
  const AggregationContext ctx{.round = 3, .seed = 11};
  Bucketing<> b(1, 2);
  const UpdateBatch<double> first = b.transform(batch, ctx);
  (void)b.transform(batch);  // a context-free call in between changes nothing
  CHECK(same_bits(b.transform(batch, ctx), first));
  CHECK(same_bits(Bucketing<>(1, 2).transform(batch, ctx), first));  // a fresh object: what a resumed run draws
  Vector<double> out1, out2;
  Bucketing<CoordinateMedian> agg(2, 2, CoordinateMedian());
  agg.aggregate(batch, out1, ctx);
  agg.aggregate(batch, out2, ctx);
  CHECK(count_mismatches(out1, out2) == 0);
  // Each part of the key changes the permutation here (n = 10, s = 1: 10! permutations).
  const auto perm = bucketing_perm_of(batch, first);
  REQUIRE(perm.size() == static_cast<std::size_t>(n));
  CHECK(bucketing_perm_of(batch, b.transform(batch, {.round = 4, .seed = 11})) != perm);
  CHECK(bucketing_perm_of(batch, b.transform(batch, {.round = 3, .seed = 12})) != perm);
  CHECK(bucketing_perm_of(batch, Bucketing<>(1, 3).transform(batch, ctx)) != perm);
  // And the aggregate differs between rounds.
  agg.aggregate(batch, out2, {.round = 4, .seed = 11});
  CHECK(count_mismatches(out1, out2) > 0);
  // Rounds 0..4 in one object equal fresh objects per round (no hidden state).
  Bucketing<CoordinateMedian> run(2, 2, CoordinateMedian());
  for (std::uint64_t r = 0; r < 5; ++r) {
    Vector<double> a, fresh;
    run.aggregate(batch, a, {.round = r, .seed = 11});
    Bucketing<CoordinateMedian>(2, 2, CoordinateMedian()).aggregate(batch, fresh, {.round = r, .seed = 11});
    CHECK(count_mismatches(a, fresh) == 0);
  }
}

TEST_CASE("Bucketing draws every permutation equally often", "[aggregators][Bucketing]") {
  // s = 1: the buckets are the permutation itself. 6000 draws of the 6 permutations of 3.
  Bucketing<> b(1, 3);
  Rng rng(11);
  std::map<std::vector<Index>, int> count;
  for (int r = 0; r < 6000; ++r) {
    std::vector<Index> perm;
    for (const auto& l : b.buckets(3, rng)) perm.push_back(l[0]);
    ++count[perm];
  }
  CHECK(count.size() == 6);
  for (const auto& [perm, c] : count) {
    CAPTURE(perm, c);
    CHECK(c > 850);  // expected 1000, sd about 29
    CHECK(c < 1150);
  }
}

TEST_CASE("Bucketing on ByzFL's input: two buckets whose weighted means give the mean", "[aggregators][Bucketing]") {
  Matrix<double> x = byzfl_x<double>();
  Bucketing<> b(2, 1);
  const UpdateBatch<double> means = b.transform(UpdateBatch<double>(x));
  REQUIRE(means.size() == 2);
  CHECK(means.weights()[0] == 2.0);
  CHECK(means.weights()[1] == 1.0);
  const Eigen::Vector3d total = 2.0 * means.matrix().col(0) + means.matrix().col(1);
  CHECK(total.isApprox(Eigen::Vector3d(12, 15, 18)));
}

TEST_CASE("Bucketing errors", "[aggregators][Bucketing]") {
  CHECK(message_of([] { Bucketing<>(0); }) == "fedpp::Bucketing: s must be >= 1, got 0");
  Bucketing<> b(2);
  Vector<float> out;
  CHECK(message_of([&] { b.aggregate(UpdateBatch<float>(3), out); }) ==
        "fedpp::Bucketing::transform: the batch holds no client updates");
  CHECK(message_of([&] { b.aggregate(UpdateBatch<float>(3), out, {.round = 1, .seed = 1}); }) ==
        "fedpp::Bucketing::transform: the batch holds no client updates");
  CHECK(b.s() == 2);
  CHECK(message_of([] { BucketMeans(0); }) == "fedpp::BucketMeans: s must be >= 1, got 0");
  CHECK(message_of([] { (void)BucketMeans(2).transform(UpdateBatch<float>(3), AggregationContext{}); }) ==
        "fedpp::BucketMeans::transform: the batch holds no client updates");
  CHECK(BucketMeans(3, 8).s() == 3);
  CHECK(BucketMeans(3, 8).seed() == 8);
}
