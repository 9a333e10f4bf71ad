// AnyAggregator: forwards to the held rule (with or without the round's context), copies clone state.
#include <catch2/catch.hpp>

#include "fedpp/aggregators/any_aggregator.hpp"
#include "fedpp/aggregators/bucketing.hpp"
#include "fedpp/aggregators/centered_clipping.hpp"
#include "fedpp/aggregators/coordinate_median.hpp"
#include "fedpp/aggregators/weighted_mean.hpp"
#include "support/aggregator_inputs.hpp"
#include "support/checks.hpp"

using namespace fedpp;
using namespace fedpp_test;

namespace {
// A stateful rule: returns the mean plus the number of calls so far.
struct CountingMean {
  int calls = 0;
  void aggregate(const UpdateBatch<double>& b, Vector<double>& out) {
    out = b.matrix().rowwise().mean().array() + static_cast<double>(calls++);
  }
};

// The mean; the context form adds 100 * round + seed.
struct AnyContextMean {
  void aggregate(const UpdateBatch<double>& b, Vector<double>& out) { out = b.matrix().rowwise().mean(); }
  void aggregate(const UpdateBatch<double>& b, Vector<double>& out, const AggregationContext& ctx) {
    const double add = 100.0 * static_cast<double>(ctx.round) + static_cast<double>(ctx.seed);
    out = b.matrix().rowwise().mean().array() + add;
  }
};
}  // namespace

TEST_CASE("AnyAggregator forwards, names and clones", "[aggregators][AnyAggregator]") {
  Matrix<double> m(2, 3);
  m << 1, 2, 3, 4, 5, 6;
  const UpdateBatch<double> batch(m, {1.0, 1.0, 2.0});
  Vector<double> direct, erased;
  WeightedMean().aggregate(batch, direct);
  AnyAggregator<double> any(WeightedMean(), "mean");
  any.aggregate(batch, erased);
  CHECK(erased == direct);
  CHECK(any.name() == "mean");

  AnyAggregator<double> counting(CountingMean{}, "counting");
  Vector<double> out;
  counting.aggregate(batch, out);  // calls = 1 afterwards
  AnyAggregator<double> copy = counting;  // clones the state
  counting.aggregate(batch, out);
  CHECK(out(0) == Approx(2.0 + 1.0));
  copy.aggregate(batch, out);
  CHECK(out(0) == Approx(2.0 + 1.0));  // the copy had its own count of 1
  copy = any;
  copy.aggregate(batch, out);
  CHECK(out == direct);
}

TEST_CASE("AnyAggregator forwards the round's context to a rule that takes one", "[aggregators][AnyAggregator]") {
  Matrix<double> m(2, 2);
  m << 1, 3, 2, 4;
  const UpdateBatch<double> batch(m);
  Vector<double> out;
  AnyAggregator<double> any(AnyContextMean{});
  any.aggregate(batch, out, {.round = 2, .seed = 5});
  CHECK(out == Eigen::Vector2d(207, 208));
  any.aggregate(batch, out);
  CHECK(out == Eigen::Vector2d(2, 3));
  // A rule without a context form gets its plain aggregate.
  AnyAggregator<double> mean(WeightedMean{});
  mean.aggregate(batch, out, {.round = 2, .seed = 5});
  CHECK(out == Eigen::Vector2d(2, 3));

  // Bucketing through the erased type: the keyed stream of the context, same bits for the same
  // context (its context-free form would advance the object's stream instead).
  const UpdateBatch<double> cloud_batch(cloud<double>(30, 9, 0.0, 1.0, 3));
  const AggregationContext ctx{.round = 6, .seed = 1};
  AnyAggregator<double> bucketing(Bucketing<CoordinateMedian>(2, 4, CoordinateMedian()));
  Vector<double> a, b, direct;
  bucketing.aggregate(cloud_batch, a, ctx);
  bucketing.aggregate(cloud_batch, b, ctx);
  Bucketing<CoordinateMedian>(2, 4, CoordinateMedian()).aggregate(cloud_batch, direct, ctx);
  CHECK(count_mismatches(a, b) == 0);
  CHECK(count_mismatches(a, direct) == 0);
  static_assert(ContextAggregator<AnyAggregator<double>, double> && !StatefulAggregator<AnyAggregator<double>>);
}
