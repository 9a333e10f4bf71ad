// Tests of fedpp::Bucketing: bucket structure, bucket means (bit for bit WeightedMean on the
// members), reproducible seeded state, uniformity of the permutation, composition, errors.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "fedpp/aggregators/bucketing.hpp"
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
  CHECK(b.s() == 2);
}
