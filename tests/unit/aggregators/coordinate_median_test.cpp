// Tests of fedpp::CoordinateMedian and of the shared coordinate kernel (order keys, comparator
// networks, tiles): known and ByzFL golden values, a sort-based reference bit for bit (ties,
// duplicates, signed zeros, huge and tiny magnitudes, n = 1, 2, even and odd, the large-n path),
// every instruction-set kernel, thread counts, permutation invariance, translation equivariance,
// breakdown, errors.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "fedpp/aggregators/coordinate_median.hpp"
#include "fedpp/core/rng.hpp"
#include "support/aggregator_coordinatewise.hpp"
#include "support/aggregator_inputs.hpp"
#include "support/aggregator_isas.hpp"
#include "support/checks.hpp"

using namespace fedpp;
using namespace fedpp_test;

namespace {

// A d x n batch of the given kind (see kind_matrix); extremes up to the largest finite values.
template <typename S>
Matrix<S> median_inputs(Index d, Index n, Kind kind, std::uint64_t seed) {
  const S big = std::numeric_limits<S>::max() / S(4);
  const S tiny = std::numeric_limits<S>::denorm_min();
  return kind_matrix<S>(d, n, kind, seed, [&](Rng& rng) {
    const auto pick = rng.uniform_index(6);
    const S sign = rng.uniform() < 0.5 ? S(-1) : S(1);
    return pick == 0   ? sign * big
           : pick == 1 ? sign * big * static_cast<S>(1.0 + rng.uniform())
           : pick == 2 ? sign * tiny * static_cast<S>(1 + rng.uniform_index(5))
           : pick == 3 ? sign * std::numeric_limits<S>::min()
           : pick == 4 ? sign * std::numeric_limits<S>::max()
                       : static_cast<S>(rng.normal());
  });
}

// The sort-based reference: per coordinate, sort (totalOrder) and take the middle value(s).
template <typename S>
Vector<S> reference_median(const Matrix<S>& m, bool average) {
  Vector<S> out(m.rows());
  for (Index j = 0; j < m.rows(); ++j) out(j) = sorted_median(sorted_coordinate(m, j), average);
  return out;
}

template <typename S>
Vector<S> median_of(const Matrix<S>& m, MedianConvention c = MedianConvention::average) {
  return aggregated<S>(CoordinateMedian(c), m);
}

}  // namespace

static_assert(Aggregator<CoordinateMedian, float> && Aggregator<CoordinateMedian, double>);

// ---- the shared kernel ------------------------------------------------------------------------

TEMPLATE_TEST_CASE("order_key orders like IEEE totalOrder and round-trips", "[aggregators][coordinate_blocks]", float,
                   double) {
  using S = TestType;
  const S inf = std::numeric_limits<S>::infinity();
  const std::vector<S> ascending = {-inf,
                                    -std::numeric_limits<S>::max(),
                                    S(-1e3),
                                    S(-1),
                                    -std::numeric_limits<S>::min(),
                                    -std::numeric_limits<S>::denorm_min(),
                                    S(-0.0),
                                    S(0.0),
                                    std::numeric_limits<S>::denorm_min(),
                                    std::numeric_limits<S>::min(),
                                    S(0.5),
                                    S(1),
                                    std::numeric_limits<S>::max(),
                                    inf};
  for (std::size_t k = 0; k < ascending.size(); ++k) {
    const S x = ascending[k];
    const S back = detail::from_order_key<S>(detail::order_key<S>(x));
    CHECK(std::memcmp(&x, &back, sizeof(S)) == 0);
    if (k + 1 < ascending.size()) CHECK(detail::order_key<S>(x) < detail::order_key<S>(ascending[k + 1]));
  }
}

TEMPLATE_TEST_CASE("midpoint_of is std::midpoint, without overflow", "[aggregators][coordinate_blocks]", float,
                   double) {
  using S = TestType;
  const S mx = std::numeric_limits<S>::max(), tn = std::numeric_limits<S>::denorm_min();
  const S mn = std::numeric_limits<S>::min();
  const std::vector<S> xs = {S(0),   S(-0.0), S(1),       S(-1),      S(3),      mx,       -mx,      mx / S(3),
                             tn,     -tn,     S(3) * tn,  mn,         -mn,       S(1e-3),  S(7.25),  S(-2.5e4),
                             S(0.1), S(0.2),  mx / S(2), -mx / S(2), S(1) + std::numeric_limits<S>::epsilon()};
  for (S a : xs)
    for (S b : xs) {
      const S got = detail::midpoint_of<S>(a, b), want = std::midpoint(a, b);
      INFO(a << " " << b);
      CHECK(std::memcmp(&got, &want, sizeof(S)) == 0);
    }
}

TEST_CASE("ComparatorNetwork sorts and selects (0-1 principle, exhaustive for small m)",
          "[aggregators][coordinate_blocks]") {
  // A comparator network sorts every input iff it sorts every 0-1 input (Knuth 5.3.4).
  for (Index m = 0; m <= 14; ++m) {
    const auto sorter = detail::ComparatorNetwork::sorter(m);
    const Index med[2] = {m > 0 ? (m - 1) / 2 : 0, m / 2};
    const auto selector = detail::ComparatorNetwork::selector(m, std::span<const Index>(med, m > 0 ? 2 : 0));
    REQUIRE(sorter.inputs() == m);
    CHECK(selector.size() <= sorter.size());
    Index bad_sort = 0, bad_select = 0;
    for (std::uint32_t bits = 0; bits < (1u << m); ++bits) {
      std::vector<int> a(static_cast<std::size_t>(m)), b;
      for (Index r = 0; r < m; ++r) a[static_cast<std::size_t>(r)] = (bits >> r) & 1u;
      b = a;
      std::vector<int> want = a;
      std::sort(want.begin(), want.end());
      for (const auto& c : sorter.comparators()) {
        REQUIRE(c.lo < c.hi);
        if (a[c.lo] > a[c.hi]) std::swap(a[c.lo], a[c.hi]);
      }
      for (const auto& c : selector.comparators())
        if (b[c.lo] > b[c.hi]) std::swap(b[c.lo], b[c.hi]);
      if (a != want) ++bad_sort;
      if (m > 0 && (b[static_cast<std::size_t>(med[0])] != want[static_cast<std::size_t>(med[0])] ||
                    b[static_cast<std::size_t>(med[1])] != want[static_cast<std::size_t>(med[1])]))
        ++bad_select;
    }
    INFO("m = " << m);
    CHECK(bad_sort == 0);
    CHECK(bad_select == 0);
  }
  // Sizes: merge exchange on 100 inputs has 1077 comparators; the median needs fewer.
  CHECK(detail::ComparatorNetwork::sorter(100).size() == 1077);
  const Index med100[2] = {49, 50};
  CHECK(detail::ComparatorNetwork::selector(100, med100).size() < 900);
}

TEST_CASE("ComparatorNetwork range_selector gives every rank in range (random inputs)", "[aggregators][coordinate_blocks]") {
  auto rng = make_rng(5, 0, 0, Purpose::user);
  for (Index m : {17, 33, 64, 100, 129}) {
    for (Index b : {Index{0}, Index{1}, m / 10, (m - 1) / 2}) {
      const auto net = detail::ComparatorNetwork::range_selector(m, b, m - b);
      Index bad = 0;
      for (int trial = 0; trial < 50; ++trial) {
        std::vector<int> a(static_cast<std::size_t>(m));
        for (auto& x : a) x = static_cast<int>(rng.uniform_index(1000));
        std::vector<int> want = a;
        std::sort(want.begin(), want.end());
        for (const auto& c : net.comparators())
          if (a[c.lo] > a[c.hi]) std::swap(a[c.lo], a[c.hi]);
        for (Index r = b; r < m - b; ++r)
          if (a[static_cast<std::size_t>(r)] != want[static_cast<std::size_t>(r)]) ++bad;
      }
      INFO("m = " << m << ", b = " << b);
      CHECK(bad == 0);
    }
  }
}

TEMPLATE_TEST_CASE("for_each_sorted_tile visits every coordinate once, with a column subset", "[aggregators][coordinate_blocks]",
                   float, double) {
  using S = TestType;
  const Index n = 9, d = 1000;
  const Matrix<S> m = median_inputs<S>(d, n, Kind::normal, 3);
  const std::vector<Index> columns = {7, 2, 2, 5, 0};  // any subset, order, repeats
  const auto net = detail::ComparatorNetwork::sorter(static_cast<Index>(columns.size()));
  std::vector<int> seen(static_cast<std::size_t>(d), 0);
  Index bad = 0;
  detail::for_each_sorted_tile<S>(m.data(), d, columns, net, [&](const detail::SortedTile<S>& t) {
    for (Index l = 0; l < t.count; ++l) {
      const Index j = t.first + l;
      ++seen[static_cast<std::size_t>(j)];
      const std::vector<S> want = sorted_coordinate(m, j, columns);
      for (Index r = 0; r < t.rows; ++r)
        if (t.value(r, l) != want[static_cast<std::size_t>(r)]) ++bad;
    }
  });
  CHECK(bad == 0);
  CHECK(std::all_of(seen.begin(), seen.end(), [](int s) { return s == 1; }));
}

// ---- CoordinateMedian --------------------------------------------------------------------------

TEMPLATE_TEST_CASE("CoordinateMedian known values and conventions", "[aggregators][CoordinateMedian]", float, double) {
  using S = TestType;
  Matrix<S> m(1, 4);
  m << 1, 2, 3, 100;
  CHECK(median_of<S>(m)(0) == S(2.5));
  CHECK(median_of<S>(m, MedianConvention::lower)(0) == S(2));
  Matrix<S> odd(2, 5);
  odd << 5, -1, 3, 9, 0,  //
      2, 2, 7, 2, -4;
  const Vector<S> o = median_of<S>(odd);
  CHECK(o(0) == S(3));
  CHECK(o(1) == S(2));
  CHECK(same_bits(median_of<S>(odd, MedianConvention::lower), o));  // odd n: conventions agree
  // n = 1: the value; n = 2: midpoint or the smaller.
  Matrix<S> one(3, 1);
  one << S(-7.5), S(0.1), S(3e4);
  CHECK(median_of<S>(one) == one.col(0));
  Matrix<S> two(1, 2);
  two << 3, 1;
  CHECK(median_of<S>(two)(0) == S(2));
  CHECK(median_of<S>(two, MedianConvention::lower)(0) == S(1));
  // No overflow at the extremes: the midpoint of max and max/2 is 0.75 max.
  two << std::numeric_limits<S>::max(), std::numeric_limits<S>::max() / 2;
  CHECK(median_of<S>(two)(0) == std::midpoint(std::numeric_limits<S>::max(), std::numeric_limits<S>::max() / 2));
  CHECK(std::isfinite(median_of<S>(two)(0)));
}

TEMPLATE_TEST_CASE("CoordinateMedian reproduces ByzFL's golden value", "[aggregators][CoordinateMedian]", float, double) {
  using S = TestType;
  // ByzFL: X = [[1,2,3],[4,5,6],[7,8,9]] (one row per client) -> Median = [4, 5, 6].
  Matrix<S> x = byzfl_x<S>();  // one column per client
  const Vector<S> out = median_of<S>(x);
  CHECK(out(0) == S(4));
  CHECK(out(1) == S(5));
  CHECK(out(2) == S(6));
}

TEMPLATE_TEST_CASE("CoordinateMedian signed zeros follow totalOrder", "[aggregators][CoordinateMedian]", float, double) {
  using S = TestType;
  const S nz = S(-0.0), pz = S(0.0);
  auto bits_equal = [](S a, S b) { return std::memcmp(&a, &b, sizeof(S)) == 0; };
  Matrix<S> m(1, 3);
  m << pz, nz, pz;
  CHECK(bits_equal(median_of<S>(m)(0), pz));
  m << nz, pz, nz;
  CHECK(bits_equal(median_of<S>(m)(0), nz));
  Matrix<S> two(1, 2);
  two << pz, nz;
  CHECK(bits_equal(median_of<S>(two, MedianConvention::lower)(0), nz));
  CHECK(bits_equal(median_of<S>(two)(0), pz));  // midpoint(-0, +0) = +0
  two << nz, nz;
  CHECK(bits_equal(median_of<S>(two)(0), nz));
}

namespace {
// CoordinateMedian and the tile kernel pinned to every ISA this CPU runs equal the sort-based
// reference bit for bit (a skipped ISA is reported by tile_isa_runs).
template <typename S>
void check_median_every_path(const Matrix<S>& m, const std::vector<Index>& columns, bool average) {
  const Index d = m.rows();
  const Vector<S> want = reference_median<S>(m, average);
  CHECK(count_mismatches<S>(median_of<S>(m, average ? MedianConvention::average : MedianConvention::lower), want) ==
        0);
  for (detail::TileIsa isa : all_tile_isas) {
    if (!tile_isa_runs(isa)) continue;
    Vector<S> pinned(d);
    detail::coordinate_median<S>(m.data(), d, columns, average, pinned.data(), isa);
    CHECK(count_mismatches<S>(pinned, want) == 0);
  }
}
}  // namespace

TEMPLATE_TEST_CASE("CoordinateMedian equals the sort-based reference bit for bit", "[aggregators][CoordinateMedian]",
                   float, double) {
  using S = TestType;
  const Index n = GENERATE(1, 2, 3, 4, 5, 7, 8, 16, 31, 32, 33, 64, 99, 100, 101, 128, 257);
  const Index d = GENERATE(as<Index>{}, 1, 5, 33, 1000);
  const Kind kind = GENERATE(Kind::normal, Kind::ties, Kind::extremes, Kind::duplicates);
  const Matrix<S> m = median_inputs<S>(d, n, kind, static_cast<std::uint64_t>(1000 * n + d));
  const std::vector<Index> columns = detail::all_columns(n);
  INFO("n = " << n << ", d = " << d << ", kind = " << static_cast<int>(kind));
  for (bool average : {true, false}) check_median_every_path<S>(m, columns, average);
}

TEMPLATE_TEST_CASE("CoordinateMedian around every network size, over several tiles, equals the reference",
                   "[aggregators][CoordinateMedian]", float, double) {
  using S = TestType;
  // Batcher's merge-exchange network changes shape at powers of two: n = 2^k - 1, 2^k, 2^k + 1.
  // d = three full tiles plus a partial one, so every lane position and the tail are checked.
  const Index d = 3 * detail::tile_lanes<S> + 5;
  const Index p = GENERATE(as<Index>{}, 2, 4, 8, 16, 32, 64, 128, 256, 512);
  const Kind kind = GENERATE(Kind::normal, Kind::ties);
  const std::vector<Index> columns_of[3] = {detail::all_columns(p - 1), detail::all_columns(p),
                                            detail::all_columns(p + 1)};
  for (int v = 0; v < 3; ++v) {
    const Index n = p - 1 + v;
    const Matrix<S> m = median_inputs<S>(d, n, kind, static_cast<std::uint64_t>(31 * n + 7));
    INFO("n = " << n << ", d = " << d << ", kind = " << static_cast<int>(kind));
    for (bool average : {true, false}) check_median_every_path<S>(m, columns_of[v], average);
  }
}

TEMPLATE_TEST_CASE("CoordinateMedian around the network limit (network and sort paths) equals the reference",
                   "[aggregators][CoordinateMedian]", float, double) {
  using S = TestType;
  // network_max_rows - 1 and network_max_rows use the network, network_max_rows + 1 the sort path;
  // d = a full tile plus a partial one (the test above covers more tiles at smaller n).
  const Index n = detail::network_max_rows + GENERATE(as<Index>{}, -1, 0, 1);
  const Index d = detail::tile_lanes<S> + 5;
  const Matrix<S> m = grid_matrix<S>(d, n, static_cast<std::uint64_t>(n));
  INFO("n = " << n << ", d = " << d);
  Vector<S> mid(d), lower(d);
  for (Index j = 0; j < d; ++j) {
    const std::vector<S> v = sorted_coordinate(m, j);
    mid(j) = sorted_median(v, true);
    lower(j) = sorted_median(v, false);
  }
  CHECK(count_mismatches<S>(median_of<S>(m), mid) == 0);
  CHECK(count_mismatches<S>(median_of<S>(m, MedianConvention::lower), lower) == 0);
}

TEMPLATE_TEST_CASE("CoordinateMedian is bit-identical for any thread count and column order",
                   "[aggregators][CoordinateMedian]", float, double) {
  using S = TestType;
  ThreadGuard guard;
  const Index n = 21, d = 50021;  // enough tiles to split across threads
  const Matrix<S> m = median_inputs<S>(d, n, Kind::normal, 99);
  set_max_threads(1);
  const Vector<S> one = median_of<S>(m);
  for (int t : {2, 3, 4}) {
    set_max_threads(t);
    CHECK(same_bits(median_of<S>(m), one));
  }
  set_max_threads(1);
  // Reversed and shuffled columns.
  std::vector<Index> perm = detail::all_columns(n);
  auto rng = make_rng(4, 0, 0, Purpose::user);
  for (Index i = n - 1; i > 0; --i) std::swap(perm[static_cast<std::size_t>(i)], perm[rng.uniform_index(static_cast<std::uint64_t>(i + 1))]);
  Matrix<S> shuffled(d, n);
  for (Index i = 0; i < n; ++i) shuffled.col(i) = m.col(perm[static_cast<std::size_t>(i)]);
  CHECK(same_bits(median_of<S>(shuffled), one));
  CHECK(same_bits(median_of<S>(Matrix<S>(m.rowwise().reverse())), one));
}

TEMPLATE_TEST_CASE("CoordinateMedian is translation equivariant for exact shifts", "[aggregators][CoordinateMedian]",
                   float, double) {
  using S = TestType;
  // Values k / 1024 with |k| < 2^12 and shift 3.5: every sum and midpoint is exact.
  const Index n = GENERATE(6, 7), d = 777;
  Matrix<S> m(d, n);
  auto rng = make_rng(8, 0, 0, Purpose::user);
  for (Index i = 0; i < n; ++i)
    for (Index j = 0; j < d; ++j) m(j, i) = static_cast<S>(static_cast<double>(static_cast<int>(rng.uniform_index(8191)) - 4095) / 1024.0);
  const S c = S(3.5);
  const Vector<S> base = median_of<S>(m);
  const Matrix<S> shifted = m.array() + c;
  const Vector<S> moved = median_of<S>(shifted);
  CHECK(moved == (base.array() + c).matrix());
  // Scaling by -1 reflects the median (average convention).
  const Matrix<S> neg = -m;
  CHECK(median_of<S>(neg) == -base);
}

TEMPLATE_TEST_CASE("CoordinateMedian breakdown: f attackers cannot leave the honest range",
                   "[aggregators][CoordinateMedian]", float, double) {
  using S = TestType;
  const Index honest = GENERATE(5, 8, 51), d = 513;
  const Index attackers = honest - 1;  // the most the median tolerates: n = 2 honest - 1 > 2 attackers
  Matrix<S> m = median_inputs<S>(d, honest + attackers, Kind::normal, 21);
  auto rng = make_rng(22, 0, 0, Purpose::user);
  const S huge = std::numeric_limits<S>::max() / S(8);
  fill_attackers(m, honest, huge, rng);  // both sides, per coordinate
  for (MedianConvention c : {MedianConvention::average, MedianConvention::lower}) {
    Vector<S> out;
    CoordinateMedian(c, attackers).aggregate(UpdateBatch<S>(m), out);
    CHECK(outside_honest_range(out, m, honest) == 0);
  }
}

TEMPLATE_TEST_CASE("CoordinateMedian errors", "[aggregators][CoordinateMedian]", float, double) {
  using S = TestType;
  Vector<S> out = Vector<S>::Constant(2, S(7));
  CHECK(message_of([&] { CoordinateMedian{}.aggregate(UpdateBatch<S>(3), out); }) ==
        "fedpp::CoordinateMedian::aggregate: the batch holds no client updates");
  CHECK(message_of([&] { CoordinateMedian{}.aggregate(UpdateBatch<S>(Matrix<S>(0, 2)), out); }) ==
        "fedpp::CoordinateMedian::aggregate: updates have dimension 0");
  CHECK_THROWS_AS(CoordinateMedian{}.aggregate(UpdateBatch<S>(Matrix<S>(0, 2)), out), DimensionError);
  CHECK(message_of([] { CoordinateMedian(Index{-1}); }) == "fedpp::CoordinateMedian: f must be >= 0, got -1");
  CHECK(message_of([] { CoordinateMedian(MedianConvention::lower, -2); }) ==
        "fedpp::CoordinateMedian: f must be >= 0, got -2");
  const UpdateBatch<S> four(Matrix<S>::Ones(3, 4));
  CHECK(message_of([&] { CoordinateMedian(Index{2}).aggregate(four, out); }) ==
        "fedpp::CoordinateMedian::aggregate: requires n > 2f (n = 4, f = 2), got n = 4");
  CHECK_THROWS_AS(CoordinateMedian(Index{2}).aggregate(four, out), InvalidArgument);
  CHECK(out == Vector<S>::Constant(2, S(7)));  // untouched on error
  CoordinateMedian(Index{1}).aggregate(four, out);  // n = 4 > 2
  CHECK(out == Vector<S>::Ones(3));
  CHECK(CoordinateMedian(Index{1}).f() == 1);
  CHECK(CoordinateMedian(MedianConvention::lower).convention() == MedianConvention::lower);
  CHECK(CoordinateMedian{}.convention() == MedianConvention::average);
}
