// AnyAggregator: forwards to the held rule, copies clone state, works in a Server.
#include <catch2/catch.hpp>

#include "fedpp/aggregators/any_aggregator.hpp"
#include "fedpp/aggregators/weighted_mean.hpp"

using namespace fedpp;

namespace {
// A stateful rule: returns the mean plus the number of calls so far.
struct CountingMean {
  int calls = 0;
  void aggregate(const UpdateBatch<double>& b, Vector<double>& out) {
    out = b.matrix().rowwise().mean().array() + static_cast<double>(calls++);
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
