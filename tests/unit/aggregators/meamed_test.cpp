// Tests of fedpp::Meamed (mean around the median) and of the shared mean-around-median kernel
// (also Bulyan's last step, on a subset of columns): ByzFL golden value, the tie rule, f = 0 is
// the mean, a brute-force reference bit for bit, every instruction-set kernel, thread counts,
// permutation invariance, breakdown, errors.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "fedpp/aggregators/meamed.hpp"
#include "fedpp/aggregators/trimmed_mean.hpp"
#include "fedpp/core/rng.hpp"
#include "support/aggregator_coordinatewise.hpp"
#include "support/aggregator_inputs.hpp"
#include "support/aggregator_isas.hpp"
#include "support/checks.hpp"

using namespace fedpp;
using namespace fedpp_test;

namespace {

// A d x n batch of the given kind, drawn differently from kind_matrix (normals scaled 2^-6 .. 2^5,
// ties -4..4, three duplicate values, extremes below max / 4096); same seed -> same batch.
template <typename S>
Matrix<S> meamed_inputs(Index d, Index n, Kind kind, std::uint64_t seed) {
  Matrix<S> m(d, n);
  auto rng = make_rng(seed, 0, 0, Purpose::user);
  const S big = std::numeric_limits<S>::max() / S(4096);
  for (Index i = 0; i < n; ++i)
    for (Index j = 0; j < d; ++j) {
      S v = 0;
      switch (kind) {
        case Kind::normal:
          v = static_cast<S>(rng.normal() * std::ldexp(1.0, static_cast<int>(rng.uniform_index(12)) - 6));
          break;
        case Kind::ties: {
          const int k = static_cast<int>(rng.uniform_index(9)) - 4;
          v = k == 0 ? (rng.uniform() < 0.5 ? S(-0.0) : S(0.0)) : static_cast<S>(k);
          break;
        }
        case Kind::duplicates: {
          const S palette[3] = {S(0.5), S(-1.5), S(4)};
          v = palette[rng.uniform_index(3)];
          break;
        }
        case Kind::extremes: {
          const auto pick = rng.uniform_index(4);
          const S sign = rng.uniform() < 0.5 ? S(-1) : S(1);
          v = pick == 0   ? sign * big * static_cast<S>(1.0 + rng.uniform())
              : pick == 1 ? sign * std::numeric_limits<S>::denorm_min() * static_cast<S>(1 + rng.uniform_index(3))
                          : static_cast<S>(rng.normal());
          break;
        }
      }
      m(j, i) = v;
    }
  return m;
}

// Brute force from the definition: median (std::midpoint of the middle values, or the lower),
// then the k values with the smallest |x - m| (distance in double; on equal distance the smaller
// value first), summed in ascending order in double from +0.0, divided by k.
template <typename S>
Vector<S> reference_meamed(const Matrix<S>& m, const std::vector<Index>& columns, Index k, bool average) {
  const Index d = m.rows();
  Vector<S> out(d);
  for (Index j = 0; j < d; ++j) {
    std::vector<S> v = sorted_coordinate(m, j, columns);
    const double med = static_cast<double>(sorted_median(v, average));
    std::stable_sort(v.begin(), v.end(), [med](S a, S b) {
      return std::fabs(static_cast<double>(a) - med) < std::fabs(static_cast<double>(b) - med);
    });  // stable on the ascending order: ties keep the smaller value first
    v.resize(static_cast<std::size_t>(k));  // the k closest
    std::sort(v.begin(), v.end(), total_less<S>);
    double acc = 0.0;
    for (S x : v) acc += static_cast<double>(x);
    out(j) = static_cast<S>(acc / static_cast<double>(k));
  }
  return out;
}

}  // namespace

static_assert(Aggregator<Meamed, float> && Aggregator<Meamed, double>);

TEMPLATE_TEST_CASE("Meamed reproduces ByzFL's golden value", "[aggregators][Meamed]", float, double) {
  using S = TestType;
  // ByzFL: X = [[1,2,3],[4,5,6],[7,8,9]] (one row per client) -> Meamed(1) = [2.5, 3.5, 4.5].
  Matrix<S> x = byzfl_x<S>();
  const Vector<S> out = aggregated<S>(Meamed(1), x);
  CHECK(out(0) == S(2.5));
  CHECK(out(1) == S(3.5));
  CHECK(out(2) == S(4.5));
  const Vector<S> mean = aggregated<S>(Meamed(0), x);  // f = 0: the mean
  CHECK(mean(0) == S(4));
  CHECK(mean(2) == S(6));
}

TEMPLATE_TEST_CASE("Meamed tie rule and conventions", "[aggregators][Meamed]", float, double) {
  using S = TestType;
  Matrix<S> m(1, 4);
  m << 6, 0, 4, 2;  // median 3; |x - 3| = 3, 3, 1, 1; keep 3 of 4: 2, 4 and (tie) the smaller, 0
  CHECK(aggregated<S>(Meamed(1), m)(0) == S(2));
  // Lower convention: median 2; distances 4, 2, 2, 0; keep 3: 2, then 0 and 4 tie -> 0; mean 2.
  CHECK(aggregated<S>(Meamed(1, MedianConvention::lower), m)(0) == S(2));
  // Asymmetric: median 3.5 of {0, 3, 4, 100, -50, 3.5}? n = 6 sorted {-50, 0, 3, 3.5, 4, 100}: median 3.25;
  // keep 4 nearest: 3, 3.5, 4, 0 -> 2.625.
  Matrix<S> six(1, 6);
  six << 0, 3, 4, 100, -50, S(3.5);
  CHECK(aggregated<S>(Meamed(2), six)(0) == S(2.625));
  CHECK(Meamed(2).f() == 2);
  CHECK(Meamed().f() == 0);
  CHECK(Meamed(1, MedianConvention::lower).convention() == MedianConvention::lower);
}

TEMPLATE_TEST_CASE("Meamed equals the brute-force reference bit for bit", "[aggregators][Meamed]", float, double) {
  using S = TestType;
  const Index n = GENERATE(1, 2, 3, 4, 5, 8, 9, 16, 33, 64, 100, 101);
  const Index d = GENERATE(as<Index>{}, 1, 7, 70, 700);
  const Kind kind = GENERATE(Kind::normal, Kind::ties, Kind::duplicates, Kind::extremes);
  const Matrix<S> m = meamed_inputs<S>(d, n, kind, static_cast<std::uint64_t>(31 * n + d));
  const std::vector<Index> columns = detail::all_columns(n);
  for (Index f : {Index{0}, Index{1}, n / 4, (n - 1) / 2}) {
    if (n <= 2 * f) continue;
    for (bool average : {true, false}) {
      INFO("n = " << n << ", d = " << d << ", f = " << f << ", average = " << average << ", kind = " << static_cast<int>(kind));
      const Vector<S> want = reference_meamed<S>(m, columns, n - f, average);
      CHECK(count_mismatches<S>(aggregated<S>(Meamed(f, average ? MedianConvention::average : MedianConvention::lower), m),
                                want) == 0);
      for (detail::TileIsa isa : all_tile_isas) {
        if (!tile_isa_runs(isa)) continue;
        Vector<S> pinned(d);
        detail::coordinate_mean_around_median<S>(m.data(), d, columns, n - f, average, pinned.data(), isa);
        CHECK(count_mismatches<S>(pinned, want) == 0);
      }
    }
  }
}

TEMPLATE_TEST_CASE("mean around the median of a column subset (Bulyan's last step)", "[aggregators][Meamed]", float,
                   double) {
  using S = TestType;
  const Index n = 15, d = 333;
  const Matrix<S> m = meamed_inputs<S>(d, n, Kind::normal, 8);
  const std::vector<Index> selected = {14, 3, 0, 9, 7, 12, 1, 5, 10};  // theta = 9 columns, any order
  for (Index beta : {1, 5, 9}) {
    Vector<S> out(d);
    detail::coordinate_mean_around_median<S>(m.data(), d, selected, beta, true, out.data());
    INFO("beta = " << beta);
    CHECK(count_mismatches<S>(out, reference_meamed<S>(m, selected, beta, true)) == 0);
  }
}

TEMPLATE_TEST_CASE("Meamed with f = 0 is the trimmed mean with b = 0 (the mean), bit for bit", "[aggregators][Meamed]",
                   float, double) {
  using S = TestType;
  const Matrix<S> m = meamed_inputs<S>(400, 12, Kind::normal, 2);
  Vector<S> tm;
  TrimmedMean::count(0).aggregate(UpdateBatch<S>(m), tm);
  CHECK(same_bits(aggregated<S>(Meamed(0), m), tm));
}

TEMPLATE_TEST_CASE("Meamed is bit-identical for any thread count and column order", "[aggregators][Meamed]", float,
                   double) {
  using S = TestType;
  ThreadGuard guard;
  const Index n = 11, d = 40009;
  const Matrix<S> m = meamed_inputs<S>(d, n, Kind::normal, 17);
  set_max_threads(1);
  const Vector<S> one = aggregated<S>(Meamed(3), m);
  for (int t : {2, 3}) {
    set_max_threads(t);
    CHECK(same_bits(aggregated<S>(Meamed(3), m), one));
  }
  set_max_threads(1);
  const Matrix<S> reversed = m.rowwise().reverse();
  CHECK(same_bits(aggregated<S>(Meamed(3), reversed), one));
}

TEMPLATE_TEST_CASE("Meamed breakdown: f huge attackers are never kept", "[aggregators][Meamed]", float, double) {
  using S = TestType;
  const Index honest = GENERATE(3, 9, 30), d = 199;
  const Index f = honest - 1;  // n = 2 honest - 1 > 2f
  Matrix<S> m = meamed_inputs<S>(d, honest + f, Kind::normal, 51);
  auto rng = make_rng(52, 0, 0, Purpose::user);
  const S huge = std::numeric_limits<S>::max() / S(1e4);
  fill_attackers(m, honest, huge, rng);
  const Vector<S> out = aggregated<S>(Meamed(f), m);
  CHECK(outside_honest_range(out, m, honest) == 0);
}

TEMPLATE_TEST_CASE("Meamed errors", "[aggregators][Meamed]", float, double) {
  using S = TestType;
  Vector<S> out = Vector<S>::Constant(2, S(7));
  CHECK(message_of([] { Meamed(-1); }) == "fedpp::Meamed: f must be >= 0, got -1");
  const UpdateBatch<S> four(Matrix<S>::Ones(3, 4));
  CHECK(message_of([&] { Meamed(2).aggregate(four, out); }) ==
        "fedpp::Meamed::aggregate: requires n > 2f (n = 4, f = 2), got n = 4");
  CHECK_THROWS_AS(Meamed(2).aggregate(four, out), InvalidArgument);
  CHECK(message_of([&] { Meamed(0).aggregate(UpdateBatch<S>(3), out); }) ==
        "fedpp::Meamed::aggregate: the batch holds no client updates");
  CHECK_THROWS_AS(Meamed(0).aggregate(UpdateBatch<S>(Matrix<S>(0, 3)), out), DimensionError);
  CHECK(out == Vector<S>::Constant(2, S(7)));
  Meamed(1).aggregate(four, out);
  CHECK(out == Vector<S>::Ones(3));
}
