// Tests of fedpp::Bulyan: brute-force references for the paper (Flower) and Garfield
// conventions, a hand-checked example, breakdown, permutation invariance, errors, threads.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "fedpp/aggregators/bulyan.hpp"
#include "fedpp/core/rng.hpp"
#include "support/aggregator_inputs.hpp"
#include "support/checks.hpp"

using namespace fedpp;
using namespace fedpp_test;

namespace {

template <typename S>
std::vector<std::vector<long double>> ref_distances(const Matrix<S>& x) {
  const Index n = x.cols();
  std::vector<std::vector<long double>> D(static_cast<std::size_t>(n), std::vector<long double>(static_cast<std::size_t>(n)));
  for (Index a = 0; a < n; ++a)
    for (Index b = 0; b < n; ++b) {
      long double s = 0;
      for (Index r = 0; r < x.rows(); ++r) {
        const long double t = static_cast<long double>(x(r, a)) - x(r, b);
        s += t * t;
      }
      D[static_cast<std::size_t>(a)][static_cast<std::size_t>(b)] = s;
    }
  return D;
}

// Per coordinate: sort, centre (midpoint of the middle two, or the upper middle), keep the k
// closest (ties: smaller value), average.
std::vector<long double> ref_window(const std::vector<std::vector<long double>>& cols, Index k, bool upper) {
  const std::size_t t = cols.size(), d = cols[0].size();
  std::vector<long double> out(d);
  for (std::size_t j = 0; j < d; ++j) {
    std::vector<long double> v(t);
    for (std::size_t i = 0; i < t; ++i) v[i] = cols[i][j];
    std::sort(v.begin(), v.end());
    const long double c = (t % 2 || upper) ? v[t / 2] : 0.5L * (v[t / 2 - 1] + v[t / 2]);
    std::stable_sort(v.begin(), v.end(), [&](long double a, long double b) { return std::fabs(a - c) < std::fabs(b - c); });
    long double s = 0;
    for (Index q = 0; q < k; ++q) s += v[static_cast<std::size_t>(q)];
    out[j] = s / k;
  }
  return out;
}

// El Mhamdi et al. / Flower, from the definition.
template <typename S>
std::vector<long double> ref_paper(const Matrix<S>& x, Index f, std::vector<Index>& chosen) {
  const Index n = x.cols();
  const auto D = ref_distances(x);
  std::vector<Index> rem(static_cast<std::size_t>(n));
  std::iota(rem.begin(), rem.end(), Index{0});
  chosen.clear();
  for (Index k = 0; k < n - 2 * f; ++k) {
    const Index nb = std::min(std::max<Index>(1, static_cast<Index>(rem.size()) - f - 2),
                              static_cast<Index>(rem.size()) - 1);  // Flower's max(1, .)
    long double best = 0;
    std::size_t arg = 0;
    for (std::size_t a = 0; a < rem.size(); ++a) {
      std::vector<long double> row;
      for (std::size_t b = 0; b < rem.size(); ++b)
        if (b != a) row.push_back(D[static_cast<std::size_t>(rem[a])][static_cast<std::size_t>(rem[b])]);
      std::sort(row.begin(), row.end());
      long double s = 0;
      for (Index q = 0; q < nb; ++q) s += row[static_cast<std::size_t>(q)];
      if (a == 0 || s < best) {
        best = s;
        arg = a;
      }
    }
    chosen.push_back(rem[arg]);
    rem.erase(rem.begin() + static_cast<std::ptrdiff_t>(arg));
  }
  std::vector<std::vector<long double>> cols;
  for (Index c : chosen) {
    std::vector<long double> col(static_cast<std::size_t>(x.rows()));
    for (Index r = 0; r < x.rows(); ++r) col[static_cast<std::size_t>(r)] = x(r, c);
    cols.push_back(col);
  }
  return ref_window(cols, n - 4 * f, false);
}

// Garfield's Bulyan over Multi-Krum, from its description.
template <typename S>
std::vector<long double> ref_garfield(const Matrix<S>& x, Index f, Index m) {
  const Index n = x.cols(), knb = n - f - 2, t = n - 2 * f - 2;
  const auto D = ref_distances(x);
  // near[i]: i's knb nearest (fixed once); a score sums the distances to those still remaining.
  std::vector<std::vector<Index>> near(static_cast<std::size_t>(n));
  for (Index i = 0; i < n; ++i) {
    std::vector<std::pair<long double, Index>> o;
    for (Index j = 0; j < n; ++j)
      if (j != i) o.push_back({D[static_cast<std::size_t>(i)][static_cast<std::size_t>(j)], j});
    std::sort(o.begin(), o.end());
    for (Index q = 0; q < knb; ++q) near[static_cast<std::size_t>(i)].push_back(o[static_cast<std::size_t>(q)].second);
  }
  std::vector<bool> removed(static_cast<std::size_t>(n), false);
  std::vector<std::vector<long double>> sel;
  for (Index k = 0; k < t; ++k) {
    std::vector<std::pair<long double, Index>> o;
    for (Index i = 0; i < n; ++i) {
      if (removed[static_cast<std::size_t>(i)]) continue;
      std::vector<long double> v;
      for (Index j : near[static_cast<std::size_t>(i)])
        if (!removed[static_cast<std::size_t>(j)]) v.push_back(D[static_cast<std::size_t>(i)][static_cast<std::size_t>(j)]);
      std::sort(v.begin(), v.end());
      long double sc = 0;
      for (long double u : v) sc += u;
      o.push_back({sc, i});
    }
    std::sort(o.begin(), o.end());
    const Index take = std::min(m, knb - k);
    std::vector<long double> avg(static_cast<std::size_t>(x.rows()), 0);
    for (Index q = 0; q < take; ++q)
      for (Index r = 0; r < x.rows(); ++r) avg[static_cast<std::size_t>(r)] += x(r, o[static_cast<std::size_t>(q)].second);
    for (auto& v : avg) v /= take;
    sel.push_back(avg);
    removed[static_cast<std::size_t>(o[0].second)] = true;
  }
  return ref_window(sel, t - 2 * f, true);
}

}  // namespace

TEST_CASE("Bulyan on a hand-checked 1-D example", "[aggregators][Bulyan]") {
  // n = 7, f = 1: theta = 5 Krum picks, beta = 3. Points 0, 1, 2, 3, 4, 50, 60.
  // Picks (neighbours max(1, |R| - 3)): 2 (score 1+1+4+4), 1 (tie with 3 at 1+4+9: lower index),
  // 3 (1+9), 0 (tie with 4 at 16), then from {4, 50, 60} with 1 neighbour: 50 (100, tie with 60).
  // Coordinate phase over {0, 1, 2, 3, 50}: median 2, the three closest 1, 2, 3: result 2.
  Matrix<double> x(1, 7);
  x << 0, 1, 2, 3, 4, 50, 60;
  const UpdateBatch<double> batch(x);
  const Bulyan b(1);
  CHECK(b.select(batch) == std::vector<Index>{2, 1, 3, 0, 5});
  Vector<double> out;
  b.aggregate(batch, out);
  CHECK(out(0) == 2.0);
  CHECK(b.num_selected(7) == 5);
  CHECK(b.num_kept(7) == 3);
  const Bulyan g(1, BulyanConvention::garfield);
  CHECK(g.num_selected(7) == 3);
  CHECK(g.num_kept(7) == 1);
}

TEMPLATE_TEST_CASE("Bulyan (paper convention) matches a brute-force reference", "[aggregators][Bulyan]", float,
                   double) {
  using S = TestType;
  const Index f = GENERATE(0, 1, 2, 4);
  const Index n = GENERATE_COPY(4 * f + 3, 4 * f + 6);
  const Index d = GENERATE(as<Index>{}, 1, 77, 1030);
  const Matrix<S> x = cloud<S>(d, n, 0.2, 1.0, static_cast<std::uint64_t>(1000 * f + 10 * n + d));
  const UpdateBatch<S> batch(x);
  std::vector<Index> chosen;
  const auto ref = ref_paper(x, f, chosen);
  const Bulyan b(f);
  CHECK(b.select(batch) == chosen);
  Vector<S> out;
  b.aggregate(batch, out);
  Index bad = 0;
  for (Index j = 0; j < d; ++j) {
    const long double tol = std::is_same_v<S, float> ? 1e-6L * (1 + std::fabs(ref[static_cast<std::size_t>(j)]))
                                                     : 1e-14L * (1 + std::fabs(ref[static_cast<std::size_t>(j)]));
    if (std::fabs(static_cast<long double>(out(j)) - ref[static_cast<std::size_t>(j)]) > tol) ++bad;
  }
  CAPTURE(n, f, d);
  CHECK(bad == 0);
}

TEMPLATE_TEST_CASE("Bulyan (garfield convention) matches a brute-force reference", "[aggregators][Bulyan]", float,
                   double) {
  using S = TestType;
  const Index f = GENERATE(0, 1, 2, 3);
  const Index n = GENERATE_COPY(4 * f + 3, 4 * f + 4, 4 * f + 9);
  const Index d = GENERATE(as<Index>{}, 3, 500);
  const Matrix<S> x = cloud<S>(d, n, -0.1, 1.0, static_cast<std::uint64_t>(7 * f + 100 * n + d));
  const UpdateBatch<S> batch(x);
  for (Index m : {Index{0}, n - f - 2, Index{1} + f}) {
    const Index m_eff = m == 0 ? n - f - 2 : m;
    const auto ref = ref_garfield(x, f, m_eff);
    Vector<S> out;
    Bulyan(f, BulyanConvention::garfield, m).aggregate(batch, out);
    Index bad = 0;
    for (Index j = 0; j < d; ++j) {
      const long double tol = std::is_same_v<S, float> ? 2e-6L * (1 + std::fabs(ref[static_cast<std::size_t>(j)]))
                                                       : 1e-13L * (1 + std::fabs(ref[static_cast<std::size_t>(j)]));
      if (std::fabs(static_cast<long double>(out(j)) - ref[static_cast<std::size_t>(j)]) > tol) ++bad;
    }
    CAPTURE(n, f, d, m);
    CHECK(bad == 0);
  }
}

TEMPLATE_TEST_CASE("Bulyan stays in the honest range under f huge attackers", "[aggregators][Bulyan][breakdown]", float,
                   double) {
  using S = TestType;
  const Index d = 300;
  for (auto conv : {BulyanConvention::paper, BulyanConvention::garfield}) {
    for (Index f : {Index{1}, Index{2}, Index{4}}) {
      const Index n = 4 * f + 3;
      Matrix<S> x = cloud<S>(d, n, 0.0, 1.0, static_cast<std::uint64_t>(f + 50));
      for (Index a = 0; a < f; ++a) x.col(3 * a).setConstant(a % 2 ? S(-1e6) : S(1e6));
      Vector<S> out;
      Bulyan(f, conv).aggregate(UpdateBatch<S>(x), out);
      Index outside = 0;
      for (Index j = 0; j < d; ++j) {
        S lo = S(1e30), hi = S(-1e30);
        for (Index i = 0; i < n; ++i)
          if (std::fabs(x(j, i)) < S(1e5)) {
            lo = std::min(lo, x(j, i));
            hi = std::max(hi, x(j, i));
          }
        if (out(j) < lo || out(j) > hi) ++outside;
      }
      CAPTURE(f, conv == BulyanConvention::paper);
      CHECK(outside == 0);
    }
  }
}

TEMPLATE_TEST_CASE("Bulyan is permutation invariant and bit-identical on 1 and 2 threads", "[aggregators][Bulyan]",
                   float, double) {
  using S = TestType;
  ThreadGuard guard;
  const Index d = 20000, n = 11, f = 2;
  const Matrix<S> x = cloud<S>(d, n, 0.0, 1.0, 3);
  Matrix<S> p(d, n);
  for (Index i = 0; i < n; ++i) p.col(i) = x.col((3 * i + 1) % n);
  for (auto conv : {BulyanConvention::paper, BulyanConvention::garfield}) {
    std::vector<Vector<S>> outs;
    for (int t : {1, 2}) {
      set_max_threads(t);
      Vector<S> out;
      Bulyan(f, conv).aggregate(UpdateBatch<S>(x), out);
      outs.push_back(out);
    }
    CHECK(std::memcmp(outs[0].data(), outs[1].data(), static_cast<std::size_t>(d) * sizeof(S)) == 0);
    Vector<S> permuted;
    Bulyan(f, conv).aggregate(UpdateBatch<S>(p), permuted);
    if (conv == BulyanConvention::paper) {
      CHECK(std::memcmp(outs[0].data(), permuted.data(), static_cast<std::size_t>(d) * sizeof(S)) == 0);
    } else {  // Multi-Krum averages are summed in column order: equal up to rounding
      const S tol = std::is_same_v<S, float> ? S(1e-6) : S(1e-14);
      CHECK((outs[0] - permuted).cwiseAbs().maxCoeff() <= tol);
    }
  }
}

TEST_CASE("Bulyan errors", "[aggregators][Bulyan]") {
  const UpdateBatch<float> ten(Matrix<float>::Random(3, 10));
  Vector<float> out;
  CHECK(message_of([&] { Bulyan(2).aggregate(ten, out); }) ==
        "fedpp::Bulyan::aggregate: requires n >= 4f + 3 (n = 10, f = 2), got n = 10");
  CHECK_NOTHROW(Bulyan(1).aggregate(ten, out));
  CHECK(message_of([] { Bulyan(-1); }) == "fedpp::Bulyan: f must be >= 0, got -1");
  CHECK(message_of([] { Bulyan(1, BulyanConvention::garfield, -3); }) ==
        "fedpp::Bulyan: m must be >= 0 (0: n - f - 2), got -3");
  CHECK(message_of([&] { Bulyan(1, BulyanConvention::garfield, 8).aggregate(ten, out); }) ==
        "fedpp::Bulyan::aggregate: requires m <= n - f - 2 (m = 8, n = 10, f = 1), got m = 8");
  CHECK(message_of([&] { Bulyan(0).aggregate(UpdateBatch<float>(3), out); }) ==
        "fedpp::Bulyan::aggregate: the batch holds no client updates");
  CHECK(Bulyan(2).min_clients() == 11);
}
