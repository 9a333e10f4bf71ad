// Tests of fedpp::WeightedMean (FedAvg): reference values, weighting, streaming/batch and
// thread-count bit identity, column order, errors.
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

#include "fedpp/aggregators/weighted_mean.hpp"
#include "fedpp/core/rng.hpp"
#include "support/checks.hpp"

using namespace fedpp;
using namespace fedpp_test;

namespace {

// A d x n batch of normal values (scale varies per column) with weights in [0, 10), about one in
// five exactly zero (but never all), and ids 0..n-1. Same seed -> same batch.
template <typename S>
UpdateBatch<S> random_batch(Index d, Index n, std::uint64_t seed, bool zero_weights = true) {
  Matrix<S> m(d, n);
  std::vector<double> w(static_cast<std::size_t>(n));
  auto rng = make_rng(seed, 0, 0, Purpose::user);
  for (Index i = 0; i < n; ++i) {
    const double scale = std::ldexp(1.0, static_cast<int>(rng.uniform_index(9)) - 4);  // 1/16 .. 16
    for (Index j = 0; j < d; ++j) m(j, i) = static_cast<S>(scale * rng.normal());
    const bool zero = zero_weights && rng.uniform() < 0.2;
    w[static_cast<std::size_t>(i)] = zero ? 0.0 : 10.0 * rng.uniform();
  }
  if (std::all_of(w.begin(), w.end(), [](double x) { return x == 0.0; })) w[0] = 1.5;
  return UpdateBatch<S>(m, w);
}

// Streams the batch's columns, in order, through an Accumulator.
template <typename S>
Vector<S> streamed(const WeightedMean& mean, const UpdateBatch<S>& batch) {
  WeightedMean::Accumulator<S> acc(mean, batch.dim());
  for (Index i = 0; i < batch.size(); ++i) acc.add(batch.column(i), batch.weights()[static_cast<std::size_t>(i)]);
  Vector<S> out;
  acc.finish(out);
  return out;
}

}  // namespace

static_assert(std::is_same_v<FedAvg, WeightedMean>);
static_assert(Aggregator<WeightedMean, float> && Aggregator<WeightedMean, double>);
static_assert(StreamingAggregator<WeightedMean, float> && StreamingAggregator<WeightedMean, double>);

TEMPLATE_TEST_CASE("WeightedMean gives exact known values", "[aggregators][WeightedMean]", float, double) {
  using S = TestType;
  Matrix<S> m(3, 2);
  m << 1, 3,  //
      2, 6,   //
      -3, 9;
  const UpdateBatch<S> batch(m, {1.0, 3.0});
  Vector<S> out;

  WeightedMean{}.aggregate(batch, out);
  REQUIRE(out.size() == 3);
  CHECK(out(0) == S(2.5));  // (1 * 1 + 3 * 3) / 4
  CHECK(out(1) == S(5.0));  // (2 + 18) / 4
  CHECK(out(2) == S(6.0));  // (-3 + 27) / 4

  WeightedMean(Weighting::uniform).aggregate(batch, out);
  CHECK(out(0) == S(2));
  CHECK(out(1) == S(4));
  CHECK(out(2) == S(3));

  // One client: its update, whatever its (positive) weight.
  const UpdateBatch<S> one(m.leftCols(1), {0.3});
  WeightedMean{}.aggregate(one, out);
  CHECK(out == m.col(0));

  // 1/3 is inexact in binary: the result is the correctly rounded (1 + 1 + 2) / 3 for float and double.
  Matrix<S> t(1, 3);
  t << 1, 1, 2;
  WeightedMean{}.aggregate(UpdateBatch<S>(t), out);
  CHECK(out(0) == static_cast<S>(4.0 / 3.0));
}

TEMPLATE_TEST_CASE("WeightedMean matches a long double reference", "[aggregators][WeightedMean]", float, double) {
  using S = TestType;
  const Index n = GENERATE(1, 2, 3, 7, 8, 9, 17, 64);
  const Index d = GENERATE(as<Index>{}, 1, 5, 4095, 4096, 4097, 9001, 2 * WeightedMean::block_size() + 3);
  const auto batch = random_batch<S>(d, n, static_cast<std::uint64_t>(1000 * n + d));
  for (Weighting weighting : {Weighting::by_weight, Weighting::uniform}) {
    Vector<S> out;
    WeightedMean(weighting).aggregate(batch, out);
    REQUIRE(out.size() == d);
    long double sum_w = 0;
    for (Index i = 0; i < n; ++i)
      sum_w += weighting == Weighting::uniform ? 1.0L : static_cast<long double>(batch.weights()[static_cast<std::size_t>(i)]);
    Index bad = 0;
    for (Index j = 0; j < d; ++j) {
      long double ref = 0, scale = 0;
      for (Index i = 0; i < n; ++i) {
        const long double wi =
            weighting == Weighting::uniform ? 1.0L : static_cast<long double>(batch.weights()[static_cast<std::size_t>(i)]);
        const long double x = batch.matrix()(j, i);
        ref += wi * x;
        scale += wi * std::fabs(x);
      }
      ref /= sum_w;
      scale /= sum_w;
      // Final rounding to S plus double accumulation error (n + 2 roundings, relative to sum |w x|).
      const long double tol = std::numeric_limits<S>::epsilon() * std::fabs(ref) +
                              2.0L * static_cast<long double>(n + 2) * DBL_EPSILON * scale;
      if (std::fabs(static_cast<long double>(out(j)) - ref) > tol) ++bad;
    }
    CHECK(bad == 0);
  }
}

TEMPLATE_TEST_CASE("WeightedMean weighting: uniform, unnormalised and zero weights", "[aggregators][WeightedMean]",
                   float, double) {
  using S = TestType;
  const Index d = 3001, n = 11;
  const auto batch = random_batch<S>(d, n, 7, /*zero_weights=*/false);
  const auto m = batch.matrix();
  const std::vector<double> w(batch.weights().begin(), batch.weights().end());
  Vector<S> weighted, uniform;
  WeightedMean{}.aggregate(batch, weighted);
  WeightedMean(Weighting::uniform).aggregate(batch, uniform);

  SECTION("uniform equals by_weight with all weights 1, bit for bit, and differs from the weighted mean") {
    Vector<S> ones;
    WeightedMean{}.aggregate(UpdateBatch<S>(Matrix<S>(m)), ones);
    CHECK(same_bits(uniform, ones));
    CHECK((uniform - weighted).cwiseAbs().maxCoeff() > S(1e-3));
  }
  SECTION("scaling every weight by a power of two changes no bit; normalising changes only rounding") {
    std::vector<double> w4(w), wn(w);
    const double total = std::accumulate(w.begin(), w.end(), 0.0);
    for (auto& x : w4) x *= 4.0;
    for (auto& x : wn) x /= total;
    Vector<S> out4, outn;
    WeightedMean{}.aggregate(UpdateBatch<S>(Matrix<S>(m), w4), out4);
    WeightedMean{}.aggregate(UpdateBatch<S>(Matrix<S>(m), wn), outn);
    CHECK(same_bits(weighted, out4));
    const S tol = std::is_same_v<S, float> ? S(1e-5) : S(1e-12);
    CHECK((outn - weighted).cwiseAbs().maxCoeff() <= tol * weighted.cwiseAbs().maxCoeff());
  }
  SECTION("clients with weight 0 change no bit, even when their updates are huge") {
    // Insert zero-weight columns of huge values at the front, middle and back.
    Matrix<S> big(d, n + 3);
    std::vector<double> wz;
    Index c = 0;
    auto put_zero = [&] {
      big.col(c++).setConstant(S(1e30));
      wz.push_back(0.0);
    };
    put_zero();
    for (Index i = 0; i < n; ++i) {
      if (i == n / 2) put_zero();
      big.col(c++) = m.col(i);
      wz.push_back(w[static_cast<std::size_t>(i)]);
    }
    put_zero();
    REQUIRE(c == n + 3);
    Vector<S> out;
    WeightedMean{}.aggregate(UpdateBatch<S>(big, wz), out);
    CHECK(same_bits(weighted, out));
    CHECK(same_bits(weighted, streamed(WeightedMean{}, UpdateBatch<S>(big, wz))));
  }
  SECTION("a client with most of the weight pulls the mean towards its update") {
    std::vector<double> wd(static_cast<std::size_t>(n), 1e-9);
    wd[3] = 1.0;
    Vector<S> out;
    WeightedMean{}.aggregate(UpdateBatch<S>(Matrix<S>(m), wd), out);
    CHECK((out - m.col(3)).cwiseAbs().maxCoeff() <= S(1e-6) * m.cwiseAbs().maxCoeff() * S(n));
  }
}

TEMPLATE_TEST_CASE("WeightedMean streaming equals batch bit for bit", "[aggregators][WeightedMean][streaming]", float,
                   double) {
  using S = TestType;
  const Index n = GENERATE(1, 2, 3, 5, 8, 13, 35);
  const Index d = GENERATE(as<Index>{}, 1, 7, 4096, 4096 * 3 + 5, 16384 * 2 + 123, 3 * WeightedMean::block_size() + 9);
  const auto batch = random_batch<S>(d, n, static_cast<std::uint64_t>(77 * n + d));
  for (Weighting weighting : {Weighting::by_weight, Weighting::uniform}) {
    const WeightedMean mean(weighting);
    Vector<S> out;
    mean.aggregate(batch, out);
    const Vector<S> s = streamed(mean, batch);
    CAPTURE(n, d, weighting == Weighting::uniform);
    CHECK(same_bits(out, s));
  }
}

TEST_CASE("WeightedMean Accumulator: state, finish, reset", "[aggregators][WeightedMean][streaming]") {
  const auto batch = random_batch<double>(40000, 6, 5);
  const WeightedMean mean;
  WeightedMean::Accumulator<double> acc(mean, batch.dim());
  CHECK(acc.dim() == 40000);
  CHECK(acc.count() == 0);
  for (Index i = 0; i < 3; ++i) acc.add(batch.column(i), batch.weights()[static_cast<std::size_t>(i)]);
  CHECK(acc.count() == 3);
  CHECK(acc.weight_sum() == (batch.weights()[0] + batch.weights()[1]) + batch.weights()[2]);
  Vector<double> first, again;
  acc.finish(first);
  acc.finish(again);
  CHECK(same_bits(first, again));  // finish() does not change the state
  for (Index i = 3; i < 6; ++i) acc.add(batch.column(i), batch.weights()[static_cast<std::size_t>(i)]);
  Vector<double> all, ref;
  acc.finish(all);
  mean.aggregate(batch, ref);
  CHECK(same_bits(all, ref));  // adding after finish() continues the same sum
  acc.reset();
  CHECK(acc.count() == 0);
  CHECK(acc.weight_sum() == 0.0);
  for (Index i = 0; i < 6; ++i) acc.add(batch.column(i), batch.weights()[static_cast<std::size_t>(i)]);
  Vector<double> after_reset;
  acc.finish(after_reset);
  CHECK(same_bits(after_reset, ref));

  // Under uniform weighting the weight passed to add() is validated but not used.
  WeightedMean::Accumulator<double> u(WeightedMean(Weighting::uniform), 2);
  const std::vector<double> a{1, 2}, b{3, 8};
  u.add(a, 100.0);
  u.add(b, 0.0);
  CHECK(u.weight_sum() == 2.0);
  Vector<double> out;
  u.finish(out);
  CHECK(out(0) == 2.0);
  CHECK(out(1) == 5.0);
}

TEMPLATE_TEST_CASE("WeightedMean gives the same bits on 1, 2 and 4 threads", "[aggregators][WeightedMean][threads]",
                   float, double) {
#if FEDPP_HAS_OPENMP
  using S = TestType;
  ThreadGuard guard;
  // Several blocks per thread, ragged last block, ragged last column group.
  const Index d = 4 * WeightedMean::block_size() + 37, n = 21;
  const auto batch = random_batch<S>(d, n, 99);
  const auto big = random_batch<S>(16384 * 5 + 9, 4, 100);  // split over the threads in add()
  std::vector<Vector<S>> outs, streams;
  for (int t : {1, 2, 4}) {
    set_max_threads(t);
    REQUIRE(max_threads() == t);
    Vector<S> out;
    WeightedMean{}.aggregate(batch, out);
    outs.push_back(out);
    streams.push_back(streamed(WeightedMean{}, big));
  }
  CHECK(same_bits(outs[0], outs[1]));
  CHECK(same_bits(outs[0], outs[2]));
  CHECK(same_bits(streams[0], streams[1]));
  CHECK(same_bits(streams[0], streams[2]));
  Vector<S> big_batch;
  WeightedMean{}.aggregate(big, big_batch);
  CHECK(same_bits(streams[0], big_batch));
#else
  WARN("built without OpenMP: thread-count identity not exercised");
  SUCCEED();
#endif
}

TEMPLATE_TEST_CASE("WeightedMean column order: rounding only, exact after sort_by_id", "[aggregators][WeightedMean]",
                   float, double) {
  using S = TestType;
  const Index d = 5000, n = 40;
  const auto batch = random_batch<S>(d, n, 3);
  Vector<S> ref;
  WeightedMean{}.aggregate(batch, ref);

  // A seeded random permutation of the columns, carrying weights and ids along.
  std::vector<Index> perm(static_cast<std::size_t>(n));
  std::iota(perm.begin(), perm.end(), Index{0});
  auto rng = make_rng(3, 0, 1, Purpose::user);
  for (std::size_t k = perm.size() - 1; k > 0; --k) std::swap(perm[k], perm[rng.uniform_index(k + 1)]);
  UpdateBatch<S> shuffled(d, n);
  for (Index k : perm)
    shuffled.push_back(batch.ids()[static_cast<std::size_t>(k)], batch.weights()[static_cast<std::size_t>(k)],
                       batch.column(k));
  Vector<S> out;
  WeightedMean{}.aggregate(shuffled, out);
  const S tol = std::is_same_v<S, float> ? S(1e-5) : S(1e-12);
  CHECK((out - ref).cwiseAbs().maxCoeff() <= tol * ref.cwiseAbs().maxCoeff());

  shuffled.sort_by_id();
  WeightedMean{}.aggregate(shuffled, out);
  CHECK(same_bits(out, ref));
}

TEMPLATE_TEST_CASE("WeightedMean's block sizes, column groups and instruction sets give the same bits",
                   "[aggregators][WeightedMean]", float, double) {
  using S = TestType;
  constexpr int G = WeightedMean::column_group;
  const Index B = WeightedMean::block_size();
  CHECK(B >= 8192);
  CHECK(B <= 65536);
  CHECK(B % 16 == 0);
  const auto batch = random_batch<S>(2 * B + 1001, 23, 11);
  const std::vector<double> w(batch.weights().begin(), batch.weights().end());
  const double sum_w = std::accumulate(w.begin(), w.end(), 0.0);
  Vector<S> ref, out(batch.dim());
  WeightedMean{}.aggregate(batch, ref);  // the kernel best_range_kernel() picks for this CPU
  auto blocked = [&](auto g, Index block, detail::RangeKernel<S> kernel) {
    out.setConstant(S(-1));
    detail::weighted_mean_blocked<decltype(g)::value>(batch.data(), batch.dim(), batch.size(), w.data(), sum_w,
                                                      out.data(), block, kernel);
    return same_bits(ref, out);
  };
  using G1 = std::integral_constant<int, 1>;
  using G3 = std::integral_constant<int, 3>;
  using G8 = std::integral_constant<int, 8>;
  using GD = std::integral_constant<int, G>;
  CHECK(blocked(GD{}, B, &detail::weighted_mean_range_base<G, S>));
  CHECK(blocked(G3{}, 4096, &detail::weighted_mean_range_base<3, S>));
  CHECK(blocked(G8{}, 1000, &detail::weighted_mean_range_base<8, S>));  // rounded down to 992
  CHECK(blocked(G1{}, 16, &detail::weighted_mean_range_base<1, S>));
#if FEDPP_WEIGHTED_SUM_AVX2
  if (detail::cpu_has_avx2()) {
    CHECK(blocked(GD{}, B, &detail::weighted_mean_range_avx2<G, S>));
    CHECK(blocked(G8{}, 5000, &detail::weighted_mean_range_avx2<8, S>));
  } else {
    WARN("this CPU has no AVX2: only the base kernel was exercised");
  }
#endif
}

TEST_CASE("WeightedMean's multiply-add is fused exactly when the target has FMA", "[aggregators][WeightedMean]") {
  // w * x = 1 - 2^-60 exactly; rounded to double it is 1, so mul-then-add gives 0 and fma gives -2^-60.
  volatile double w = 1.0 + 0x1p-30, x = 1.0 - 0x1p-30, acc = -1.0;
  const double r = detail::madd(acc, w, x);
  if (detail::madd_is_fused) {
    CHECK(r == -0x1p-60);
  } else {
    CHECK(r == 0.0);
  }
}

TEST_CASE("WeightedMean errors name the class and the bad value", "[aggregators][WeightedMean][errors]") {
  Vector<float> out = Vector<float>::Constant(2, 7.0f);
  const Vector<float> before = out;

  const UpdateBatch<float> empty(3);
  CHECK_THROWS_AS(WeightedMean{}.aggregate(empty, out), InvalidArgument);
  CHECK(message_of([&] { WeightedMean{}.aggregate(empty, out); }) ==
        "fedpp::WeightedMean: the batch holds no client updates");

  const UpdateBatch<float> dim0{Matrix<float>(0, 2)};
  CHECK_THROWS_AS(WeightedMean{}.aggregate(dim0, out), DimensionError);
  CHECK(message_of([&] { WeightedMean{}.aggregate(dim0, out); }) == "fedpp::WeightedMean: updates have dimension 0");

  const UpdateBatch<float> zeros(Matrix<float>::Ones(4, 3), {0.0, 0.0, 0.0});
  CHECK_THROWS_AS(WeightedMean{}.aggregate(zeros, out), InvalidArgument);
  CHECK(message_of([&] { WeightedMean{}.aggregate(zeros, out); }) ==
        "fedpp::WeightedMean: the sum of the weights must be finite and > 0, got 0");
  const UpdateBatch<float> overflow(Matrix<float>::Ones(4, 2), {1e308, 1e308});
  CHECK(message_of([&] { WeightedMean{}.aggregate(overflow, out); }) ==
        "fedpp::WeightedMean: the sum of the weights must be finite and > 0, got inf");
  CHECK(same_bits(out, before));  // untouched by every failed call

  // Uniform weighting ignores the zero weights.
  WeightedMean(Weighting::uniform).aggregate(zeros, out);
  CHECK(out == Vector<float>::Ones(4));

  // Accumulator.
  const WeightedMean mean;
  CHECK_THROWS_AS(WeightedMean::Accumulator<float>(mean, 0), DimensionError);
  CHECK(message_of([&] { WeightedMean::Accumulator<float>(mean, -2); }) ==
        "fedpp::WeightedMean::Accumulator: dim must be > 0, got -2");
  WeightedMean::Accumulator<float> acc(mean, 3);
  CHECK(message_of([&] { acc.finish(out); }) == "fedpp::WeightedMean::Accumulator: no update was added");
  const std::vector<float> x3{1, 2, 3}, x2{1, 2};
  CHECK_THROWS_AS(acc.add(x2, 1.0), DimensionError);
  CHECK(message_of([&] { acc.add(x2, 1.0); }) == "fedpp::WeightedMean::Accumulator: update size must equal dim 3, got 2");
  CHECK_THROWS_AS(acc.add(x3, -1.0), InvalidArgument);
  CHECK(message_of([&] { acc.add(x3, -0.5); }) ==
        "fedpp::WeightedMean::Accumulator: weight must be finite and >= 0, got -0.5");
  CHECK_THROWS_AS(acc.add(x3, std::nan("")), InvalidArgument);
  CHECK_THROWS_AS(acc.add(x3, std::numeric_limits<double>::infinity()), InvalidArgument);
  CHECK(message_of([&] { acc.add(x3, std::numeric_limits<double>::infinity()); }) ==
        "fedpp::WeightedMean::Accumulator: weight must be finite and >= 0, got inf");
  CHECK(message_of([&] { acc.add(x3, std::numeric_limits<double>::quiet_NaN()); }) ==
        "fedpp::WeightedMean::Accumulator: weight must be finite and >= 0, got nan");
  CHECK(acc.count() == 0);  // rejected updates are not counted
  acc.add(x3, 0.0);
  CHECK(message_of([&] { acc.finish(out); }) ==
        "fedpp::WeightedMean: the sum of the weights must be finite and > 0, got 0");
  acc.add(x3, 2.0);
  acc.finish(out);
  CHECK(out == Eigen::Vector3f(1, 2, 3));
}
