// Tests of fedpp::Nnm: ByzFL golden mixed batch, brute-force neighbourhoods, composition with
// WeightedMean, a coordinate median written here, and a stateful rule; breakdown; errors;
// thread identity.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "fedpp/aggregators/centered_clipping.hpp"
#include "fedpp/aggregators/nnm.hpp"
#include "fedpp/aggregators/weighted_mean.hpp"
#include "fedpp/core/rng.hpp"
#include "support/aggregator_inputs.hpp"
#include "support/checks.hpp"

using namespace fedpp;
using namespace fedpp_test;

namespace {

// A tiny coordinate-wise median (mean of the two middle values for even n), for composition tests.
struct TinyMedian {
  template <typename S>
  void aggregate(const UpdateBatch<S>& batch, Vector<S>& out) const {
    const Index n = batch.size();
    out.resize(batch.dim());
    std::vector<double> v(static_cast<std::size_t>(n));
    for (Index j = 0; j < batch.dim(); ++j) {
      for (Index i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = batch.matrix()(j, i);
      std::sort(v.begin(), v.end());
      const auto h = static_cast<std::size_t>(n / 2);
      out(j) = static_cast<S>(n % 2 ? v[h] : 0.5 * (v[h - 1] + v[h]));
    }
  }
};
static_assert(Aggregator<TinyMedian, float> && Aggregator<Nnm<TinyMedian>, double>);
static_assert(Aggregator<Nnm<CenteredClipping>, float>);

}  // namespace

TEMPLATE_TEST_CASE("Nnm reproduces ByzFL's golden mixed batch", "[aggregators][Nnm]", float, double) {
  using S = TestType;
  const UpdateBatch<S> batch(byzfl_x<S>(), {1.0, 2.0, 3.0}, {7, 8, 9});
  Nnm<> nnm(1);
  CHECK(nnm.neighborhoods(batch) == std::vector<std::vector<Index>>{{0, 1}, {0, 1}, {1, 2}});
  const UpdateBatch<S> mixed = nnm.transform(batch);
  Matrix<S> golden(3, 3);
  golden << 2.5, 2.5, 5.5, 3.5, 3.5, 6.5, 4.5, 4.5, 7.5;
  CHECK(mixed.matrix() == golden);
  CHECK(std::vector<double>(mixed.weights().begin(), mixed.weights().end()) == std::vector<double>{1, 2, 3});
  CHECK(std::vector<ClientId>(mixed.ids().begin(), mixed.ids().end()) == std::vector<ClientId>{7, 8, 9});
  // Composition: the weighted mean (by the kept weights) and the median of the mixed batch.
  Vector<S> out;
  Nnm<WeightedMean>(1, WeightedMean(Weighting::uniform)).aggregate(batch, out);
  CHECK(out(0) == Approx(3.5));
  CHECK(out(1) == Approx(4.5));
  CHECK(out(2) == Approx(5.5));
  Nnm<TinyMedian>(1).aggregate(batch, out);
  CHECK(out == golden.col(0));
  // f = 0: every update is mixed with all others, i.e. replaced by the mean.
  const UpdateBatch<S> all = Nnm<>(0).transform(batch);
  for (Index i = 0; i < 3; ++i) CHECK(all.matrix().col(i) == Eigen::Matrix<S, 3, 1>(4, 5, 6));
}

TEMPLATE_TEST_CASE("Nnm neighbourhoods and mixed updates match a brute-force reference", "[aggregators][Nnm]", float,
                   double) {
  using S = TestType;
  const Index n = GENERATE(2, 5, 12, 25);
  const Index d = GENERATE(as<Index>{}, 1, 300, 2 * detail::gram_block + 9);
  const Index f = n / 3;
  const Matrix<S> x = cloud<S>(d, n, 0.0, 1.0, static_cast<std::uint64_t>(n * 100 + d));
  const UpdateBatch<S> batch(x);
  const Nnm<> nnm(f);
  const auto lists = nnm.neighborhoods(batch);
  const UpdateBatch<S> mixed = nnm.transform(batch);
  Index bad = 0;
  for (Index i = 0; i < n; ++i) {
    std::vector<std::pair<long double, Index>> dist;
    for (Index j = 0; j < n; ++j) {
      long double s = 0;
      for (Index r = 0; r < d; ++r) {
        const long double t = static_cast<long double>(x(r, i)) - x(r, j);
        s += t * t;
      }
      dist.push_back({j == i ? -1.0L : s, j});  // itself first
    }
    std::sort(dist.begin(), dist.end());
    std::vector<Index> ref;
    for (Index k = 0; k < n - f; ++k) ref.push_back(dist[static_cast<std::size_t>(k)].second);
    std::sort(ref.begin(), ref.end());
    // Compare the sets where the boundary is unambiguous (no near-tie at rank n - f).
    const auto kk = static_cast<std::size_t>(n - f);
    const bool clear = kk == static_cast<std::size_t>(n) || dist[kk].first - dist[kk - 1].first > 1e-9L * dist[kk].first;
    if (clear && lists[static_cast<std::size_t>(i)] != ref) ++bad;
    for (Index r = 0; r < d; ++r) {
      long double m = 0;
      for (Index j : lists[static_cast<std::size_t>(i)]) m += x(r, j);
      m /= static_cast<long double>(n - f);
      const long double tol = std::is_same_v<S, float> ? 1e-6L * (1 + std::fabs(m)) : 1e-14L * (1 + std::fabs(m));
      if (std::fabs(static_cast<long double>(mixed.matrix()(r, i)) - m) > tol) ++bad;
    }
  }
  CAPTURE(n, d, f);
  CHECK(bad == 0);
}

TEMPLATE_TEST_CASE("Nnm mixed updates are WeightedMean of the neighbourhood, bit for bit", "[aggregators][Nnm]", float,
                   double) {
  using S = TestType;
  const Index d = 5003, n = 9, f = 2;
  const UpdateBatch<S> batch(cloud<S>(d, n, 1.0, 1.0, 4));
  const Nnm<> nnm(f);
  const auto lists = nnm.neighborhoods(batch);
  const UpdateBatch<S> mixed = nnm.transform(batch);
  for (Index i = 0; i < n; ++i) {
    const auto& l = lists[static_cast<std::size_t>(i)];
    REQUIRE(l.size() == static_cast<std::size_t>(n - f));
    CHECK(std::find(l.begin(), l.end(), i) != l.end());  // itself is always a neighbour
    Matrix<S> sub(d, n - f);
    for (std::size_t k = 0; k < l.size(); ++k) sub.col(static_cast<Index>(k)) = batch.matrix().col(l[k]);
    Vector<S> ref;
    WeightedMean(Weighting::uniform).aggregate(UpdateBatch<S>(sub), ref);
    CHECK(std::memcmp(ref.data(), mixed.column(i).data(), static_cast<std::size_t>(d) * sizeof(S)) == 0);
  }
}

TEMPLATE_TEST_CASE("Nnm with a median: f colluding huge attackers leave the honest mean",
                   "[aggregators][Nnm][breakdown]", float, double) {
  using S = TestType;
  const Index d = 200, n = 11;
  for (Index f : {Index{1}, Index{3}, Index{5}}) {
    Matrix<S> x = cloud<S>(d, n, 0.0, 1.0, static_cast<std::uint64_t>(f));
    for (Index a = 0; a < f; ++a) x.col(2 * a).setConstant(S(1e6));  // interleaved with honest columns
    const UpdateBatch<S> batch(x);
    // Every honest update's n - f nearest neighbours are exactly the n - f honest ones.
    Matrix<S> honest(d, n - f);
    Index h = 0;
    for (Index i = 0; i < n; ++i)
      if (x(0, i) != S(1e6)) honest.col(h++) = x.col(i);
    Vector<S> honest_mean, out;
    WeightedMean(Weighting::uniform).aggregate(UpdateBatch<S>(honest), honest_mean);
    Nnm<TinyMedian>(f).aggregate(batch, out);
    const S tol = std::is_same_v<S, float> ? S(1e-5) : S(1e-12);
    CAPTURE(f);
    CHECK((out - honest_mean).cwiseAbs().maxCoeff() <= tol);
  }
}

TEST_CASE("Nnm in front of a stateful rule keeps the rule's state in the wrapper", "[aggregators][Nnm]") {
  Nnm<CenteredClipping> nnm(1, CenteredClipping(100.0, 1));
  Vector<double> out;
  nnm.aggregate(UpdateBatch<double>(byzfl_x<double>()), out);
  CHECK(out == Eigen::Vector3d(3.5, 4.5, 5.5));  // the mean of the mixed batch
  CHECK(nnm.inner().center() == Eigen::Vector3d(3.5, 4.5, 5.5));
  nnm.inner().reset();
  CHECK(nnm.inner().center().size() == 0);
}

TEST_CASE("Nnm errors", "[aggregators][Nnm]") {
  const UpdateBatch<float> three(Matrix<float>::Ones(2, 3));
  Nnm<> nnm(3);
  Vector<float> out;
  CHECK(message_of([&] { nnm.aggregate(three, out); }) ==
        "fedpp::Nnm::transform: requires n > f (n = 3, f = 3), got n = 3");
  CHECK(message_of([] { Nnm<>(-1); }) == "fedpp::Nnm: f must be >= 0, got -1");
  CHECK(message_of([&] { (void)Nnm<>(0).transform(UpdateBatch<float>(2)); }) ==
        "fedpp::Nnm::transform: the batch holds no client updates");
  CHECK(Nnm<>(2).f() == 2);
  CHECK(message_of([] { NnmMixing(-2); }) == "fedpp::NnmMixing: f must be >= 0, got -2");
  CHECK(message_of([&] { (void)NnmMixing(3).transform(three); }) ==
        "fedpp::NnmMixing::transform: requires n > f (n = 3, f = 3), got n = 3");
  CHECK(NnmMixing(2).f() == 2);
}

TEMPLATE_TEST_CASE("Nnm transform is bit-identical on 1 and 2 threads", "[aggregators][Nnm][threads]", float, double) {
  using S = TestType;
  ThreadGuard guard;
  const UpdateBatch<S> batch(cloud<S>(3 * 65536 + 5, 7, 0.0, 1.0, 9));
  std::vector<UpdateBatch<S>> outs;
  for (int t : {1, 2}) {
    set_max_threads(t);
    outs.push_back(Nnm<>(2).transform(batch));
  }
  CHECK(std::memcmp(outs[0].data(), outs[1].data(), static_cast<std::size_t>(batch.dim() * batch.size()) * sizeof(S)) ==
        0);
}
