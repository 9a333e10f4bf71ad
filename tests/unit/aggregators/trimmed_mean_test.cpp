// Tests of fedpp::TrimmedMean: known and ByzFL golden values, count and fraction forms, b = 0 is
// the mean, a sort-based reference bit for bit (ties, duplicates, signed zeros, huge and tiny
// magnitudes, every b, n = 1, 2, even and odd, the large-n path), every instruction-set kernel,
// thread counts, permutation invariance, translation equivariance, breakdown, errors.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <string>
#include <type_traits>
#include <vector>

#include "fedpp/aggregators/trimmed_mean.hpp"
#include "fedpp/core/rng.hpp"
#include "support/aggregator_coordinatewise.hpp"
#include "support/aggregator_inputs.hpp"
#include "support/aggregator_isas.hpp"
#include "support/checks.hpp"

using namespace fedpp;
using namespace fedpp_test;

namespace {

// A d x n batch of the given kind (see kind_matrix); huge values stay below max / n so that no
// sum of them overflows.
template <typename S>
Matrix<S> trimmed_mean_inputs(Index d, Index n, Kind kind, std::uint64_t seed) {
  const S big = std::numeric_limits<S>::max() / S(4096);
  const S tiny = std::numeric_limits<S>::denorm_min();
  return kind_matrix<S>(d, n, kind, seed, [&](Rng& rng) {
    const auto pick = rng.uniform_index(5);
    const S sign = rng.uniform() < 0.5 ? S(-1) : S(1);
    return pick == 0   ? sign * big * static_cast<S>(1.0 + rng.uniform())
           : pick == 1 ? sign * tiny * static_cast<S>(1 + rng.uniform_index(5))
           : pick == 2 ? sign * std::numeric_limits<S>::min()
           : pick == 3 ? static_cast<S>(rng.normal() * 1e-30)
                       : static_cast<S>(rng.normal());
  });
}

// The sort-based reference: sort each coordinate, sum ranks b..n-b-1 in ascending order in
// double from +0.0, divide by n - 2b. (The order of -0 and +0 cannot change the sum.)
template <typename S>
Vector<S> reference_trimmed_mean(const Matrix<S>& m, Index b) {
  const Index d = m.rows(), n = m.cols();
  Vector<S> out(d);
  for (Index j = 0; j < d; ++j) {
    const std::vector<S> v = sorted_coordinate(m, j);
    double acc = 0.0;
    for (Index r = b; r < n - b; ++r) acc += static_cast<double>(v[static_cast<std::size_t>(r)]);
    out(j) = static_cast<S>(acc / static_cast<double>(n - 2 * b));
  }
  return out;
}

}  // namespace

static_assert(Aggregator<TrimmedMean, float> && Aggregator<TrimmedMean, double>);
// An integer is almost surely meant as a count: TrimmedMean(2) does not compile.
static_assert(!std::is_constructible_v<TrimmedMean, int>);
static_assert(!std::is_constructible_v<TrimmedMean, Index>);
static_assert(std::is_constructible_v<TrimmedMean, double>);

TEMPLATE_TEST_CASE("TrimmedMean known values", "[aggregators][TrimmedMean]", float, double) {
  using S = TestType;
  Matrix<S> m(1, 4);
  m << 1, 2, 3, 100;
  CHECK(aggregated<S>(TrimmedMean::count(1), m)(0) == S(2.5));
  CHECK(aggregated<S>(TrimmedMean::count(0), m)(0) == S(26.5));  // b = 0: the plain mean, not NaN
  CHECK(aggregated<S>(TrimmedMean::fraction(0.25), m)(0) == S(2.5));  // floor(0.25 * 4) = 1
  CHECK(aggregated<S>(TrimmedMean(0.2), m)(0) == S(26.5));           // floor(0.8) = 0
  CHECK(aggregated<S>(TrimmedMean(0.0), m)(0) == S(26.5));
  // Columns are clients, rows coordinates: both rows at once, b = 1 of 5.
  Matrix<S> two(2, 5);
  two << 9, -4, 0, 2, 100,  //
      1, 1, 1, 1, 1;
  const Vector<S> out = aggregated<S>(TrimmedMean::count(1), two);
  CHECK(out(0) == static_cast<S>((0.0 + 2.0 + 9.0) / 3.0));
  CHECK(out(1) == S(1));
  // n = 1 and n = 2 with b = 0.
  Matrix<S> one(2, 1);
  one << S(0.3), S(-8);
  CHECK(aggregated<S>(TrimmedMean(), one) == one.col(0));
  Matrix<S> pair(1, 2);
  pair << 1, 4;
  CHECK(aggregated<S>(TrimmedMean(0.4), pair)(0) == S(2.5));
  // Largest b: 2b = n - 1 gives the (odd n) median.
  Matrix<S> five(1, 5);
  five << 50, -1, 7, 3, 2;
  CHECK(aggregated<S>(TrimmedMean::count(2), five)(0) == S(3));
}

TEMPLATE_TEST_CASE("TrimmedMean reproduces ByzFL's golden value", "[aggregators][TrimmedMean]", float, double) {
  using S = TestType;
  // ByzFL: X = [[1,2,3],[4,5,6],[7,8,9]] (one row per client) -> TrMean(1) = [4, 5, 6], TrMean(0) = Average = [4, 5, 6].
  Matrix<S> x = byzfl_x<S>();
  for (Index f : {0, 1}) {
    const Vector<S> out = aggregated<S>(TrimmedMean::count(f), x);
    CHECK(out(0) == S(4));
    CHECK(out(1) == S(5));
    CHECK(out(2) == S(6));
  }
}

TEST_CASE("TrimmedMean trims floor(beta * n) per side by fraction, f by count", "[aggregators][TrimmedMean]") {
  const TrimmedMean t(0.1);
  CHECK_FALSE(t.by_count());
  CHECK(t.beta() == 0.1);
  CHECK(t.f() == 0);
  CHECK(t.trimmed_per_side(1) == 0);
  CHECK(t.trimmed_per_side(9) == 0);
  CHECK(t.trimmed_per_side(10) == 1);
  CHECK(t.trimmed_per_side(19) == 1);
  CHECK(t.trimmed_per_side(100) == 10);
  CHECK(t.trimmed_per_side(1000) == 100);
  CHECK(TrimmedMean(0.3).trimmed_per_side(10) == 3);  // 0.3 * 10 rounds to 3.0 in double
  CHECK(TrimmedMean(0.49).trimmed_per_side(3) == 1);
  CHECK(TrimmedMean().beta() == 0.1);  // default
  const TrimmedMean c = TrimmedMean::count(4);
  CHECK(c.by_count());
  CHECK(c.f() == 4);
  CHECK(c.beta() == 0.0);
  CHECK(c.trimmed_per_side(9) == 4);
  CHECK(c.trimmed_per_side(1000) == 4);
  CHECK(TrimmedMean::fraction(0.25).trimmed_per_side(8) == 2);
  // The fraction form always satisfies 2b < n.
  for (double beta : {0.0, 0.1, 0.25, 0.33, 0.4999})
    for (Index n = 1; n < 300; ++n) CHECK(2 * TrimmedMean(beta).trimmed_per_side(n) < n);
}

namespace {
// TrimmedMean::count(b) and the tile kernel pinned to every ISA this CPU runs equal the sort-based
// reference bit for bit (a skipped ISA is reported by tile_isa_runs).
template <typename S>
void check_trimmed_mean_every_path(const Matrix<S>& m, const std::vector<Index>& columns, Index b) {
  const Index d = m.rows();
  const Vector<S> want = reference_trimmed_mean<S>(m, b);
  CHECK(count_mismatches<S>(aggregated<S>(TrimmedMean::count(b), m), want) == 0);
  for (detail::TileIsa isa : all_tile_isas) {
    if (!tile_isa_runs(isa)) continue;
    Vector<S> pinned(d);
    detail::coordinate_trimmed_mean<S>(m.data(), d, columns, b, pinned.data(), isa);
    CHECK(count_mismatches<S>(pinned, want) == 0);
  }
}
}  // namespace

TEMPLATE_TEST_CASE("TrimmedMean equals the sort-based reference bit for bit", "[aggregators][TrimmedMean]", float,
                   double) {
  using S = TestType;
  const Index n = GENERATE(1, 2, 3, 4, 5, 7, 8, 16, 31, 32, 33, 64, 99, 100, 101, 257);
  const Index d = GENERATE(as<Index>{}, 1, 5, 33, 1000);
  const Kind kind = GENERATE(Kind::normal, Kind::ties, Kind::extremes, Kind::duplicates);
  const Matrix<S> m = trimmed_mean_inputs<S>(d, n, kind, static_cast<std::uint64_t>(77 * n + d));
  const std::vector<Index> columns = detail::all_columns(n);
  std::vector<Index> bs = {0, (n - 1) / 2, n / 10, 1};
  for (Index b : bs) {
    if (2 * b >= n) continue;
    INFO("n = " << n << ", d = " << d << ", b = " << b << ", kind = " << static_cast<int>(kind));
    check_trimmed_mean_every_path<S>(m, columns, b);
  }
}

TEMPLATE_TEST_CASE("TrimmedMean around every network size, over several tiles, equals the reference",
                   "[aggregators][TrimmedMean]", float, double) {
  using S = TestType;
  // Batcher's merge-exchange network changes shape at powers of two: n = 2^k - 1, 2^k, 2^k + 1.
  // d = three full tiles plus a partial one, so every lane position and the tail are checked.
  const Index d = 3 * detail::tile_lanes<S> + 5;
  const Index p = GENERATE(as<Index>{}, 2, 4, 8, 16, 32, 64, 128, 256, 512);
  for (Index n = p - 1; n <= p + 1; ++n) {
    const Matrix<S> m = trimmed_mean_inputs<S>(d, n, Kind::normal, static_cast<std::uint64_t>(53 * n + 3));
    const std::vector<Index> columns = detail::all_columns(n);
    for (Index b : {Index{0}, Index{1}, n / 10, (n - 1) / 2}) {
      if (2 * b >= n) continue;
      INFO("n = " << n << ", d = " << d << ", b = " << b);
      check_trimmed_mean_every_path<S>(m, columns, b);
    }
  }
}

TEMPLATE_TEST_CASE("TrimmedMean around the network limit (network and sort paths) equals the reference",
                   "[aggregators][TrimmedMean]", float, double) {
  using S = TestType;
  // network_max_rows - 1 and network_max_rows use the network, network_max_rows + 1 the sort path;
  // d = a full tile plus a partial one (the test above covers more tiles at smaller n).
  const Index n = detail::network_max_rows + GENERATE(as<Index>{}, -1, 0, 1);
  const Index d = detail::tile_lanes<S> + 5;
  const Matrix<S> m = grid_matrix<S>(d, n, static_cast<std::uint64_t>(n));
  INFO("n = " << n << ", d = " << d);
  CHECK(count_mismatches<S>(aggregated<S>(TrimmedMean(0.1), m), reference_trimmed_mean<S>(m, n / 10)) == 0);
}

TEMPLATE_TEST_CASE("TrimmedMean with b = 0 is the mean", "[aggregators][TrimmedMean]", float, double) {
  using S = TestType;
  const Index n = 13, d = 300;
  const Matrix<S> m = trimmed_mean_inputs<S>(d, n, Kind::normal, 5);
  const Vector<S> out = aggregated<S>(TrimmedMean::count(0), m);
  Index bad = 0;
  for (Index j = 0; j < d; ++j) {
    long double ref = 0, scale = 0;
    for (Index i = 0; i < n; ++i) {
      ref += m(j, i);
      scale += std::fabs(static_cast<long double>(m(j, i)));
    }
    ref /= n;
    scale /= n;
    const long double tol = std::numeric_limits<S>::epsilon() * std::fabs(ref) + 2.0L * (n + 2) * DBL_EPSILON * scale;
    if (std::fabs(static_cast<long double>(out(j)) - ref) > tol) ++bad;
  }
  CHECK(bad == 0);
}

TEMPLATE_TEST_CASE("TrimmedMean is bit-identical for any thread count and column order", "[aggregators][TrimmedMean]",
                   float, double) {
  using S = TestType;
  ThreadGuard guard;
  const Index n = 20, d = 50021;
  const Matrix<S> m = trimmed_mean_inputs<S>(d, n, Kind::normal, 123);
  const TrimmedMean t(0.1);
  set_max_threads(1);
  const Vector<S> one = aggregated<S>(t, m);
  for (int threads : {2, 3, 4}) {
    set_max_threads(threads);
    CHECK(same_bits(aggregated<S>(t, m), one));
  }
  set_max_threads(1);
  std::vector<Index> perm = detail::all_columns(n);
  auto rng = make_rng(6, 0, 0, Purpose::user);
  for (Index i = n - 1; i > 0; --i) std::swap(perm[static_cast<std::size_t>(i)], perm[rng.uniform_index(static_cast<std::uint64_t>(i + 1))]);
  Matrix<S> shuffled(d, n);
  for (Index i = 0; i < n; ++i) shuffled.col(i) = m.col(perm[static_cast<std::size_t>(i)]);
  CHECK(same_bits(aggregated<S>(t, shuffled), one));  // exact: the sum runs in ascending order
}

TEMPLATE_TEST_CASE("TrimmedMean is translation equivariant up to rounding", "[aggregators][TrimmedMean]", float,
                   double) {
  using S = TestType;
  const Index n = 17, d = 500;
  const Matrix<S> m = trimmed_mean_inputs<S>(d, n, Kind::normal, 31);
  const TrimmedMean t = TrimmedMean::count(3);
  const Vector<S> base = aggregated<S>(t, m);
  for (double c : {0.75, -12.5, 1e3}) {
    const Matrix<S> shifted = (m.array() + static_cast<S>(c)).matrix();
    const Vector<S> moved = aggregated<S>(t, shifted);
    Index bad = 0;
    for (Index j = 0; j < d; ++j) {
      const double scale = std::fabs(c) + m.row(j).cwiseAbs().maxCoeff();
      if (std::fabs(static_cast<double>(moved(j)) - (static_cast<double>(base(j)) + c)) >
          4.0 * std::numeric_limits<S>::epsilon() * scale)
        ++bad;
    }
    INFO("shift " << c);
    CHECK(bad == 0);
  }
}

TEMPLATE_TEST_CASE("TrimmedMean breakdown: f attackers cannot leave the honest range", "[aggregators][TrimmedMean]",
                   float, double) {
  using S = TestType;
  const Index honest = GENERATE(3, 8, 40), d = 257;
  const Index f = GENERATE(1, 2, 7);
  if (honest <= f) return;  // needs n = honest + f > 2f
  Matrix<S> m = trimmed_mean_inputs<S>(d, honest + f, Kind::normal, 41);
  auto rng = make_rng(42, 0, 0, Purpose::user);
  const S huge = std::numeric_limits<S>::max() / S(1e4);
  fill_attackers(m, honest, huge, rng);
  const Vector<S> out = aggregated<S>(TrimmedMean::count(f), m);
  CHECK(outside_honest_range(out, m, honest) == 0);
}

TEMPLATE_TEST_CASE("TrimmedMean errors", "[aggregators][TrimmedMean]", float, double) {
  using S = TestType;
  Vector<S> out = Vector<S>::Constant(2, S(7));
  CHECK(message_of([] { TrimmedMean(0.5); }) == "fedpp::TrimmedMean: beta must be in [0, 0.5), got 0.5");
  CHECK(message_of([] { TrimmedMean(0.7); }) == "fedpp::TrimmedMean: beta must be in [0, 0.5), got 0.7");
  CHECK(message_of([] { (void)TrimmedMean::fraction(-0.1); }) == "fedpp::TrimmedMean: beta must be in [0, 0.5), got -0.1");
  CHECK_THROWS_AS(TrimmedMean(std::nan("")), InvalidArgument);
  CHECK(message_of([] { (void)TrimmedMean::count(-1); }) == "fedpp::TrimmedMean: f must be >= 0, got -1");
  const UpdateBatch<S> four(Matrix<S>::Ones(3, 4));
  CHECK(message_of([&] { TrimmedMean::count(2).aggregate(four, out); }) ==
        "fedpp::TrimmedMean::aggregate: requires n > 2f (n = 4, f = 2), got n = 4");
  CHECK(message_of([&] { TrimmedMean::count(5).aggregate(four, out); }) ==
        "fedpp::TrimmedMean::aggregate: requires n > 2f (n = 4, f = 5), got n = 4");
  CHECK_THROWS_AS(TrimmedMean::count(2).aggregate(four, out), InvalidArgument);
  CHECK(message_of([&] { TrimmedMean{}.aggregate(UpdateBatch<S>(3), out); }) ==
        "fedpp::TrimmedMean::aggregate: the batch holds no client updates");
  CHECK_THROWS_AS(TrimmedMean{}.aggregate(UpdateBatch<S>(Matrix<S>(0, 3)), out), DimensionError);
  CHECK(out == Vector<S>::Constant(2, S(7)));  // untouched on error
}
