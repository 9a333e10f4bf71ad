// Tests of fedpp::Krum and fedpp::MultiKrum: ByzFL golden values, brute-force scores, both
// neighbour conventions, ties, permutation invariance, breakdown, errors, thread identity.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "fedpp/aggregators/krum.hpp"
#include "fedpp/aggregators/weighted_mean.hpp"
#include "fedpp/core/rng.hpp"
#include "support/aggregator_inputs.hpp"
#include "support/checks.hpp"

using namespace fedpp;
using namespace fedpp_test;

namespace {

// Brute-force Krum scores: long double distances, the k smallest over j != i, sum (or mean).
template <typename S>
std::vector<long double> ref_scores(const Matrix<S>& x, Index k, bool mean) {
  const Index n = x.cols();
  std::vector<long double> out(static_cast<std::size_t>(n));
  for (Index i = 0; i < n; ++i) {
    std::vector<long double> dist;
    for (Index j = 0; j < n; ++j) {
      if (j == i) continue;
      long double s = 0;
      for (Index r = 0; r < x.rows(); ++r) {
        const long double t = static_cast<long double>(x(r, i)) - static_cast<long double>(x(r, j));
        s += t * t;
      }
      dist.push_back(s);
    }
    std::sort(dist.begin(), dist.end());
    long double s = 0;
    for (Index t = 0; t < k; ++t) s += dist[static_cast<std::size_t>(t)];
    out[static_cast<std::size_t>(i)] = mean ? s / k : s;
  }
  return out;
}

}  // namespace

TEMPLATE_TEST_CASE("Krum and MultiKrum reproduce ByzFL's golden values", "[aggregators][Krum]", float, double) {
  using S = TestType;
  const UpdateBatch<S> batch(byzfl_x<S>());
  Vector<S> out;
  Krum::byzfl(1).aggregate(batch, out);  // all three scores tie at 27: the first index wins
  CHECK(out == byzfl_x<S>().col(0));
  MultiKrum::byzfl(1).aggregate(batch, out);
  REQUIRE(out.size() == 3);
  CHECK(out(0) == S(2.5));
  CHECK(out(1) == S(3.5));
  CHECK(out(2) == S(4.5));
  CHECK(Krum::byzfl(1).scores(batch) == std::vector<double>{27.0, 27.0, 27.0});
  CHECK(MultiKrum::byzfl(1).select(batch) == std::vector<Index>{0, 1});
}

TEST_CASE("Krum's two neighbour conventions select differently where they should", "[aggregators][Krum]") {
  // 1-D points 0, 1, 2, 10, 10.5 with f = 1: k = 2 gives scores 5, 2, 5, 64.25, 72.5 (select 1);
  // k = 3 gives 105, 83, 69, 145.25, 162.75 (select 2).
  Matrix<double> x(1, 5);
  x << 0, 1, 2, 10, 10.5;
  const UpdateBatch<double> batch(x);
  const Krum blanchard(1);
  CHECK(blanchard.scores(batch) == std::vector<double>{5, 2, 5, 64.25, 72.5});
  CHECK(blanchard.select(batch) == 1);
  const Krum byzfl_k(1, KrumNeighbors::n_minus_f_minus_1);
  CHECK(byzfl_k.scores(batch) == std::vector<double>{105, 83, 69, 145.25, 162.75});
  CHECK(byzfl_k.select(batch) == 2);
  CHECK(Krum::byzfl(1).scores(batch) == std::vector<double>{35, 83.0 / 3, 23, 145.25 / 3, 162.75 / 3});
  CHECK(Krum::byzfl(1).select(batch) == 2);
  Vector<double> out;
  blanchard.aggregate(batch, out);
  CHECK(out(0) == 1.0);
  // Multi-Krum with m = 3 keeps the three points of the cluster.
  CHECK(MultiKrum(1, 3).select(batch) == std::vector<Index>{0, 1, 2});
  MultiKrum(1, 3).aggregate(batch, out);
  CHECK(out(0) == 1.0);
  // Default m = n - f = 4 adds the closest outlier (score 64.25).
  CHECK(MultiKrum(1).select(batch) == std::vector<Index>{0, 1, 2, 3});
}

TEMPLATE_TEST_CASE("Krum scores and selection match a brute-force reference", "[aggregators][Krum]", float, double) {
  using S = TestType;
  const Index n = GENERATE(5, 9, 16, 31);
  const Index d = GENERATE(as<Index>{}, 3, 1000, 2 * detail::gram_block + 5);
  const Index f = (n - 3) / 2;
  const Matrix<S> x = cloud<S>(d, n, 0.3, 1.0, static_cast<std::uint64_t>(n * 1000 + d));
  const UpdateBatch<S> batch(x);
  for (auto nb : {KrumNeighbors::n_minus_f_minus_2, KrumNeighbors::n_minus_f_minus_1}) {
    for (auto sc : {KrumScore::sum, KrumScore::mean}) {
      const Krum krum(f, nb, sc);
      const Index k = nb == KrumNeighbors::n_minus_f_minus_2 ? n - f - 2 : n - f - 1;
      const auto ref = ref_scores(x, k, sc == KrumScore::mean);
      const auto got = krum.scores(batch);
      REQUIRE(got.size() == ref.size());
      for (std::size_t i = 0; i < ref.size(); ++i) CHECK(std::fabs(got[i] - ref[i]) <= 1e-9 * ref[i]);
      // The brute-force ranking gives the same selection whenever the best score is unambiguous.
      std::vector<Index> order(static_cast<std::size_t>(n));
      std::iota(order.begin(), order.end(), Index{0});
      std::stable_sort(order.begin(), order.end(), [&](Index a, Index b) {
        return ref[static_cast<std::size_t>(a)] < ref[static_cast<std::size_t>(b)];
      });
      const auto o0 = static_cast<std::size_t>(order[0]), o1 = static_cast<std::size_t>(order[1]);
      if (ref[o1] - ref[o0] > 1e-6 * ref[o0]) CHECK(krum.select(batch) == order[0]);
      const MultiKrum mk(f, 0, nb, sc);
      std::vector<Index> top(order.begin(), order.begin() + (n - f));
      std::sort(top.begin(), top.end());
      const auto b0 = static_cast<std::size_t>(order[static_cast<std::size_t>(n - f - 1)]);
      const auto b1 = static_cast<std::size_t>(order[static_cast<std::size_t>(n - f)]);
      if (ref[b1] - ref[b0] > 1e-6 * ref[b0]) CHECK(mk.select(batch) == top);
    }
  }
}

TEMPLATE_TEST_CASE("Krum scores are exact sums in ascending order of distance, bit for bit", "[aggregators][Krum]",
                   float, double) {
  using S = TestType;
  // Integer points whose squared norms, dot products and squared distances are all integers
  // below 2^53, so the Gram route computes every squared distance exactly. Column 2 (the origin)
  // has neighbours at squared distances 1, 1, B, B with B = 3 * 2^51: summed in ascending order
  // (1 + 1) + B + B = 3 * 2^52 + 2 exactly, while any order that adds a B first loses both ones
  // (3 * 2^52 + 1 is a tie between representable neighbours and rounds to the even 3 * 2^52).
  // The far points come first in column order, so column order is not ascending order either.
  constexpr double p25 = 33554432.0, p26 = 67108864.0;  // 2^25, 2^26
  Matrix<S> x(3, 5);
  x.col(0) << S(p25), S(p25), S(p26);   // c1: |c1|^2 = 2^50 + 2^50 + 2^52 = 3 * 2^51
  x.col(1) << S(p25), S(-p25), S(p26);  // c2: same norm, |c1 - c2|^2 = 2^52
  x.col(2) << S(0), S(0), S(0);         // the origin
  x.col(3) << S(1), S(0), S(0);
  x.col(4) << S(0), S(1), S(0);
  const Index n = x.cols();
  // Exact squared distances in 64-bit integers (independent of the Gram route), each exactly a double.
  std::vector<std::vector<double>> dist(static_cast<std::size_t>(n));
  for (Index i = 0; i < n; ++i)
    for (Index j = 0; j < n; ++j) {
      if (j == i) continue;
      std::int64_t s = 0;
      for (Index r = 0; r < 3; ++r) {
        const auto t = static_cast<std::int64_t>(x(r, i)) - static_cast<std::int64_t>(x(r, j));
        s += t * t;
      }
      REQUIRE(static_cast<std::int64_t>(static_cast<double>(s)) == s);
      dist[static_cast<std::size_t>(i)].push_back(static_cast<double>(s));
    }
  const double B = 3.0 * 2251799813685248.0;  // 3 * 2^51
  std::vector<double> origin = dist[2];
  std::sort(origin.begin(), origin.end());
  REQUIRE(origin == std::vector<double>{1.0, 1.0, B, B});
  // The summation order matters here: ascending and descending sums differ.
  const double ascending = ((1.0 + 1.0) + B) + B, descending = ((B + B) + 1.0) + 1.0;
  REQUIRE(ascending == 13510798882111490.0);   // 3 * 2^52 + 2
  REQUIRE(descending == 13510798882111488.0);  // 3 * 2^52
  for (auto nb : {KrumNeighbors::n_minus_f_minus_1, KrumNeighbors::n_minus_f_minus_2}) {
    for (auto sc : {KrumScore::sum, KrumScore::mean}) {
      const Index k = nb == KrumNeighbors::n_minus_f_minus_1 ? n - 1 : n - 2;  // f = 0
      std::vector<double> want(static_cast<std::size_t>(n));
      for (Index i = 0; i < n; ++i) {
        std::vector<double> v = dist[static_cast<std::size_t>(i)];
        std::sort(v.begin(), v.end());
        double s = 0.0;
        for (Index t = 0; t < k; ++t) s += v[static_cast<std::size_t>(t)];
        want[static_cast<std::size_t>(i)] = sc == KrumScore::mean ? s / static_cast<double>(k) : s;
      }
      if (nb == KrumNeighbors::n_minus_f_minus_1 && sc == KrumScore::sum) CHECK(want[2] == ascending);
      const std::vector<double> got = Krum(0, nb, sc).scores(UpdateBatch<S>(x));
      CAPTURE(static_cast<int>(nb), static_cast<int>(sc));
      CHECK(same_bits(got, want));
      CHECK(same_bits(MultiKrum(0, 1, nb, sc).scores(UpdateBatch<S>(x)), want));
    }
  }
  // (1, 0, 0) scores lowest: it is nearer than the origin to both far points (3 * 2^51 - 2^26 + 1).
  CHECK(Krum(0, KrumNeighbors::n_minus_f_minus_1).select(UpdateBatch<S>(x)) == 3);
}

TEMPLATE_TEST_CASE("Krum scores of a large-integer cloud are exact ascending sums, bit for bit",
                   "[aggregators][Krum]", float, double) {
  using S = TestType;
  // d = 64 even integer coordinates c with |c| <= 11863282 < 2^23.5 (exact in float), so
  // d c^2 < 2^53: every product, norm and Gram entry is a multiple of 4 below 2^54 and every
  // squared distance a multiple of 4 below 2^55, all exact in double, so the Gram route is
  // exact. The scores, sums of 11 to 14 distances near 2^52.4, pass 2^55, where the spacing of
  // doubles is 8 or 16: they round, and their bits depend on the summation order.
  const Index d = 64, n = 16;
  Matrix<S> x(d, n);
  auto rng = make_rng(12, 0, 0, Purpose::user);
  for (Index i = 0; i < n; ++i)
    for (Index r = 0; r < d; ++r)
      x(r, i) = static_cast<S>(2 * (static_cast<std::int64_t>(rng.uniform_index(11863283)) - 5931641));
  std::vector<std::vector<double>> dist(static_cast<std::size_t>(n));  // row i: distances to j != i, by j
  for (Index i = 0; i < n; ++i)
    for (Index j = 0; j < n; ++j) {
      if (j == i) continue;
      std::int64_t s = 0;
      for (Index r = 0; r < d; ++r) {
        const auto t = static_cast<std::int64_t>(x(r, i)) - static_cast<std::int64_t>(x(r, j));
        s += t * t;
      }
      REQUIRE(static_cast<std::int64_t>(static_cast<double>(s)) == s);
      dist[static_cast<std::size_t>(i)].push_back(static_cast<double>(s));
    }
  for (Index f : {Index{1}, Index{2}, Index{3}}) {
    for (auto nb : {KrumNeighbors::n_minus_f_minus_2, KrumNeighbors::n_minus_f_minus_1}) {
      const Index k = nb == KrumNeighbors::n_minus_f_minus_2 ? n - f - 2 : n - f - 1;
      std::vector<double> want(static_cast<std::size_t>(n));
      Index order_matters = 0;
      for (Index i = 0; i < n; ++i) {
        std::vector<double> v = dist[static_cast<std::size_t>(i)];
        std::sort(v.begin(), v.end());
        double up = 0.0, down = 0.0;
        for (Index t = 0; t < k; ++t) up += v[static_cast<std::size_t>(t)];
        for (Index t = k - 1; t >= 0; --t) down += v[static_cast<std::size_t>(t)];
        want[static_cast<std::size_t>(i)] = up;
        order_matters += up != down ? 1 : 0;
      }
      CAPTURE(f, k);
      CHECK(order_matters >= n / 4);  // the inputs do tell the orders apart
      CHECK(same_bits(Krum(f, nb).scores(UpdateBatch<S>(x)), want));
    }
  }
}

TEMPLATE_TEST_CASE("Krum returns the chosen column bit for bit, and MultiKrum is the mean of its choice",
                   "[aggregators][Krum]", float, double) {
  using S = TestType;
  const Index d = 3001, n = 12, f = 3;
  const UpdateBatch<S> batch(cloud<S>(d, n, 0.0, 1.0, 5));
  Vector<S> out;
  const Krum krum(f);
  krum.aggregate(batch, out);
  const Index i = krum.select(batch);
  CHECK(same_bits(out, Vector<S>(batch.matrix().col(i))));

  const MultiKrum mk(f, 5);
  const auto sel = mk.select(batch);
  REQUIRE(sel.size() == 5);
  CHECK(std::is_sorted(sel.begin(), sel.end()));
  CHECK(sel.front() >= 0);
  CHECK(sel.back() < n);
  Matrix<S> chosen(d, 5);
  for (std::size_t k = 0; k < sel.size(); ++k) chosen.col(static_cast<Index>(k)) = batch.matrix().col(sel[k]);
  Vector<S> ref;
  WeightedMean(Weighting::uniform).aggregate(UpdateBatch<S>(chosen), ref);
  mk.aggregate(batch, out);
  CHECK(same_bits(out, ref));
  // Weights are ignored.
  std::vector<double> w(static_cast<std::size_t>(n));
  for (std::size_t k = 0; k < w.size(); ++k) w[k] = 1.0 + static_cast<double>(k);
  Vector<S> weighted;
  mk.aggregate(UpdateBatch<S>(batch.matrix(), w), weighted);
  CHECK(same_bits(out, weighted));
}

TEMPLATE_TEST_CASE("Krum is permutation invariant (no ties)", "[aggregators][Krum]", float, double) {
  using S = TestType;
  const Index d = 500, n = 15, f = 4;
  const Matrix<S> x = cloud<S>(d, n, 1.0, 1.0, 11);
  std::vector<Index> perm(static_cast<std::size_t>(n));
  std::iota(perm.begin(), perm.end(), Index{0});
  auto rng = make_rng(11, 0, 1, Purpose::user);
  for (std::size_t k = perm.size() - 1; k > 0; --k) std::swap(perm[k], perm[rng.uniform_index(k + 1)]);
  Matrix<S> y(d, n);
  for (Index k = 0; k < n; ++k) y.col(k) = x.col(perm[static_cast<std::size_t>(k)]);
  Vector<S> a, b;
  Krum(f).aggregate(UpdateBatch<S>(x), a);
  Krum(f).aggregate(UpdateBatch<S>(y), b);
  CHECK(a == b);
  MultiKrum(f).aggregate(UpdateBatch<S>(x), a);
  MultiKrum(f).aggregate(UpdateBatch<S>(y), b);
  const S tol = std::is_same_v<S, float> ? S(1e-6) : S(1e-14);
  CHECK((a - b).cwiseAbs().maxCoeff() <= tol);  // the same set, summed in another order
}

TEMPLATE_TEST_CASE("Krum and MultiKrum never select f huge attackers", "[aggregators][Krum][breakdown]", float,
                   double) {
  using S = TestType;
  const Index d = 2000;
  for (Index f : {Index{1}, Index{3}, Index{6}}) {
    const Index n = 2 * f + 3;
    Matrix<S> x = cloud<S>(d, n, 0.5, 1.0, static_cast<std::uint64_t>(f));
    // Colluding attackers: f identical huge vectors (each other's nearest neighbours at distance 0).
    for (Index a = 0; a < f; ++a) x.col(n - 1 - a).setConstant(S(1e6));
    if (f > 1) x.col(0).swap(x.col(n - 1));  // one attacker first, to rule out index effects
    const UpdateBatch<S> batch(x);
    const Index i = Krum(f).select(batch);
    CAPTURE(f, i);
    CHECK(x(0, i) != S(1e6));
    Vector<S> out;
    MultiKrum(f).aggregate(batch, out);
    CHECK(out.cwiseAbs().maxCoeff() < S(10));  // the mean of honest updates only
    for (Index s : MultiKrum(f).select(batch)) CHECK(x(0, s) != S(1e6));
  }
}

TEST_CASE("Krum and MultiKrum errors", "[aggregators][Krum]") {
  const UpdateBatch<float> seven(Matrix<float>::Ones(4, 7));
  Vector<float> out;
  CHECK(message_of([&] { Krum(3).aggregate(seven, out); }) ==
        "fedpp::Krum::aggregate: requires n >= 2f + 3 (n = 7, f = 3), got n = 7");
  CHECK_NOTHROW(Krum(2).aggregate(seven, out));
  CHECK(message_of([&] { Krum(4, KrumNeighbors::n_minus_f_minus_1).aggregate(seven, out); }) ==
        "fedpp::Krum::aggregate: requires n >= 2f + 1 and n >= f + 2 (n = 7, f = 4), got n = 7");
  CHECK_NOTHROW(Krum::byzfl(3).aggregate(seven, out));
  const UpdateBatch<float> one(Matrix<float>::Ones(4, 1));
  CHECK(message_of([&] { Krum::byzfl(0).aggregate(one, out); }) ==
        "fedpp::Krum::aggregate: requires n >= 2f + 1 and n >= f + 2 (n = 1, f = 0), got n = 1");
  CHECK(message_of([&] { Krum(-1); }) == "fedpp::Krum: f must be >= 0, got -1");
  CHECK(message_of([&] { MultiKrum(-2); }) == "fedpp::MultiKrum: f must be >= 0, got -2");
  CHECK(message_of([&] { MultiKrum(1, -1); }) == "fedpp::MultiKrum: m must be >= 0 (0: n - f), got -1");
  CHECK(message_of([&] { MultiKrum(1, 8).aggregate(seven, out); }) ==
        "fedpp::MultiKrum::aggregate: requires m <= n (m = 8, n = 7), got n = 7");
  CHECK(message_of([&] { MultiKrum(3).aggregate(seven, out); }) ==
        "fedpp::MultiKrum::aggregate: requires n >= 2f + 3 (n = 7, f = 3), got n = 7");
  CHECK(message_of([&] { Krum(0).aggregate(UpdateBatch<float>(4), out); }) ==
        "fedpp::Krum::aggregate: the batch holds no client updates");
  CHECK(message_of([&] { MultiKrum(0).aggregate(UpdateBatch<float>(4), out); }) ==
        "fedpp::MultiKrum::aggregate: the batch holds no client updates");
  CHECK(message_of([&] { MultiKrum(0).aggregate(UpdateBatch<float>(Matrix<float>(0, 3)), out); }) ==
        "fedpp::MultiKrum::aggregate: updates have dimension 0");
  CHECK(message_of([&] { Krum(0).aggregate(UpdateBatch<float>(Matrix<float>(0, 3)), out); }) ==
        "fedpp::Krum::aggregate: updates have dimension 0");
  CHECK(Krum(2).min_clients() == 7);
  CHECK(Krum::byzfl(2).min_clients() == 5);
  CHECK(Krum::byzfl(0).min_clients() == 2);
  CHECK(MultiKrum(2).num_selected(10) == 8);
  CHECK(MultiKrum(2, 3).num_selected(10) == 3);
}

TEMPLATE_TEST_CASE("Krum scores and MultiKrum are bit-identical on 1 and 2 threads", "[aggregators][Krum][threads]",
                   float, double) {
  using S = TestType;
  ThreadGuard guard;
  const UpdateBatch<S> batch(cloud<S>(3 * detail::gram_block + 7, 23, 0.1, 1.0, 21));
  std::vector<std::vector<double>> scores;
  std::vector<Vector<S>> outs;
  for (int t : {1, 2}) {
    set_max_threads(t);
    scores.push_back(Krum(5).scores(batch));
    Vector<S> out;
    MultiKrum(5).aggregate(batch, out);
    outs.push_back(out);
  }
  CHECK(std::memcmp(scores[0].data(), scores[1].data(), scores[0].size() * sizeof(double)) == 0);
  CHECK(same_bits(outs[0], outs[1]));
}
