// Tests of fedpp::Arc (adaptive robust clipping): ByzFL golden value, the clipped count, a
// brute-force reference, ties, composition, errors.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "fedpp/aggregators/arc.hpp"
#include "fedpp/aggregators/weighted_mean.hpp"
#include "fedpp/core/rng.hpp"
#include "support/aggregator_inputs.hpp"
#include "support/checks.hpp"

using namespace fedpp;
using namespace fedpp_test;

TEMPLATE_TEST_CASE("Arc reproduces ByzFL's ARC(1)", "[aggregators][Arc]", float, double) {
  using S = TestType;
  Matrix<S> x = byzfl_x<S>();
  const UpdateBatch<S> y = Arc<>(1).transform(UpdateBatch<S>(x));
  CHECK(y.matrix().col(0) == x.col(0));
  CHECK(y.matrix().col(1) == x.col(1));
  CHECK(y.matrix()(0, 2) == Approx(4.41004009).epsilon(1e-7));
  CHECK(y.matrix()(1, 2) == Approx(5.04004582).epsilon(1e-7));
  CHECK(y.matrix()(2, 2) == Approx(5.67005155).epsilon(1e-7));
}

TEST_CASE("Arc clips floor(2 f (n - f) / n) updates", "[aggregators][Arc]") {
  CHECK(Arc<>(0).num_clipped(10) == 0);
  CHECK(Arc<>(1).num_clipped(3) == 1);   // 4/3
  CHECK(Arc<>(3).num_clipped(10) == 4);  // 42/10
  CHECK(Arc<>(3).num_clipped(9) == 4);   // 36/9 exactly
  CHECK(Arc<>(2).num_clipped(4) == 2);   // 8/4
  CHECK(Arc<>(4).num_clipped(9) == 4);   // 40/9
}

TEMPLATE_TEST_CASE("Arc matches a brute-force reference", "[aggregators][Arc]", float, double) {
  using S = TestType;
  const Index d = 700, n = 10, f = 3;  // k = 4
  Matrix<S> x(d, n);
  auto rng = make_rng(2, 0, 0, Purpose::user);
  for (Index i = 0; i < n; ++i)
    for (Index j = 0; j < d; ++j) x(j, i) = static_cast<S>((1.0 + 0.3 * static_cast<double>(i % 7)) * rng.normal());
  x.col(9) = x.col(2);  // equal norms (see the next test for what ties can and cannot change)
  const UpdateBatch<S> batch(x);
  const Arc<> arc(f);
  const std::vector<double> scales = arc.scales(batch);
  std::vector<long double> norm(static_cast<std::size_t>(n));
  for (Index i = 0; i < n; ++i) {
    long double s = 0;
    for (Index j = 0; j < d; ++j) s += static_cast<long double>(x(j, i)) * x(j, i);
    norm[static_cast<std::size_t>(i)] = std::sqrt(s);
  }
  std::vector<Index> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), Index{0});
  std::stable_sort(order.begin(), order.end(), [&](Index a, Index b) {
    return norm[static_cast<std::size_t>(a)] < norm[static_cast<std::size_t>(b)];
  });
  const long double threshold = norm[static_cast<std::size_t>(order[static_cast<std::size_t>(n - 5)])];
  for (Index r = 0; r < n; ++r) {
    const auto i = static_cast<std::size_t>(order[static_cast<std::size_t>(r)]);
    const long double expect = r >= n - 4 && norm[i] > threshold ? threshold / norm[i] : 1.0L;
    CAPTURE(r, i);
    CHECK(std::fabs(scales[i] - expect) <= 1e-12L);
  }
  const UpdateBatch<S> y = arc.transform(batch);
  for (Index i = 0; i < n; ++i) {
    if (scales[static_cast<std::size_t>(i)] == 1.0)
      CHECK(std::memcmp(y.column(i).data(), batch.column(i).data(), static_cast<std::size_t>(d) * sizeof(S)) == 0);
    else
      CHECK(y.matrix().col(i).template cast<long double>().norm() == Approx(static_cast<double>(threshold)).epsilon(1e-6));
  }
  // f = 0 changes nothing; the default inner rule is the (weighted) mean of the clipped batch.
  const UpdateBatch<S> same = Arc<>(0).transform(batch);
  CHECK(std::memcmp(same.data(), batch.data(), static_cast<std::size_t>(d * n) * sizeof(S)) == 0);
  Vector<S> out, ref;
  Arc<> arc2(f);
  arc2.aggregate(batch, out);
  WeightedMean{}.aggregate(y, ref);
  CHECK(std::memcmp(out.data(), ref.data(), static_cast<std::size_t>(d) * sizeof(S)) == 0);
}

TEMPLATE_TEST_CASE("Arc: equal norms are clipped alike, so the tie order cannot change the result",
                   "[aggregators][Arc]", float, double) {
  using S = TestType;
  // The documented order is (norm, column index), but no input can observe the index part: the
  // threshold is the (n - k)-th smallest norm whatever the order of equal norms, a column whose
  // norm equals the threshold is left alone whichever side of the cut it lands on (it is not
  // above it), and equal norms above it get the same factor. Exact norms (Pythagorean triples)
  // put ties on both sides of the cut; hand-computed scales, for every column order.
  const auto vec = [](double a, double b) {
    Vector<S> v(2);
    v << S(a), S(b);
    return v;
  };
  struct Case {
    Index f;
    std::vector<Vector<S>> cols;
    std::vector<double> scales;  // hand-computed: threshold / norm above the threshold, else 1
  };
  const std::vector<Case> cases = {
      // n = 5, f = 1: k = floor(8 / 5) = 1, threshold = 4th smallest norm = 5; the two 5s tie
      // across the cut: neither changes.
      {1, {vec(3, 4), vec(0, 1), vec(5, 0), vec(2, 0), vec(0, 3)}, {1, 1, 1, 1, 1}},
      // n = 5, f = 2: k = floor(12 / 5) = 2, threshold = 3rd smallest norm = 3; the two 5s tie
      // above the cut: both scaled by 3 / 5.
      {2, {vec(3, 4), vec(0, 1), vec(5, 0), vec(2, 0), vec(0, 3)}, {0.6, 1, 0.6, 1, 1}},
      // n = 6, f = 2: k = floor(16 / 6) = 2, threshold = 4th smallest norm = 5 (a tie of three
      // norms 5 across the cut), the 13 is scaled by 5 / 13.
      {2, {vec(5, 0), vec(5, 12), vec(0, 5), vec(1, 0), vec(3, 4), vec(0, 2)}, {1, 5.0 / 13.0, 1, 1, 1, 1}}};
  for (const Case& c : cases) {
    const Index n = static_cast<Index>(c.cols.size());
    std::vector<Index> perm(static_cast<std::size_t>(n));
    std::iota(perm.begin(), perm.end(), Index{0});
    do {  // every column order
      Matrix<S> x(2, n);
      for (Index i = 0; i < n; ++i) x.col(i) = c.cols[static_cast<std::size_t>(perm[static_cast<std::size_t>(i)])];
      const std::vector<double> got = Arc<>(c.f).scales(UpdateBatch<S>(x));
      for (Index i = 0; i < n; ++i) {
        CAPTURE(c.f, n, i);
        CHECK(got[static_cast<std::size_t>(i)] == c.scales[static_cast<std::size_t>(perm[static_cast<std::size_t>(i)])]);
      }
    } while (std::next_permutation(perm.begin(), perm.end()));
  }
}

TEST_CASE("Arc errors", "[aggregators][Arc]") {
  CHECK(message_of([] { Arc<>(-1); }) == "fedpp::Arc: f must be >= 0, got -1");
  Vector<float> out;
  Arc<> arc(2);
  CHECK(message_of([&] { arc.aggregate(UpdateBatch<float>(Matrix<float>::Ones(3, 2)), out); }) ==
        "fedpp::Arc::transform: requires n > f (n = 2, f = 2), got n = 2");
  CHECK(message_of([&] { arc.aggregate(UpdateBatch<float>(3), out); }) ==
        "fedpp::Arc::transform: the batch holds no client updates");
  CHECK(message_of([] { ArcClipping(-3); }) == "fedpp::ArcClipping: f must be >= 0, got -3");
  CHECK(message_of([] { (void)ArcClipping(2).transform(UpdateBatch<float>(Matrix<float>::Ones(3, 2))); }) ==
        "fedpp::ArcClipping::transform: requires n > f (n = 2, f = 2), got n = 2");
  CHECK(ArcClipping(2).f() == 2);
}
