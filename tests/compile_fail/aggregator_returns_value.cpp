// Compile-fail case: fedpp::Aggregator requires `a.aggregate(batch, out)` to return void (the
// result goes into `out`); a type whose aggregate() returns the result instead must be rejected
// by a template constrained on the concept. Built twice by ctest (see CMakeLists.txt): without
// FEDPP_COMPILE_FAIL (control: must compile) and with it (must fail, matching every
// `expect-error:` regular expression below).
// expect-error: (satisfaction of|does not satisfy|because) [^A-Za-z]*(fedpp::)?Aggregator
// expect-error: (return-type-requirement|type constraint)
#include "fedpp/core/concepts.hpp"

namespace {

template <fedpp::Aggregator<double> A>
double first_coordinate(A& a, const fedpp::UpdateBatch<double>& batch) {
  fedpp::Vector<double> out;
  a.aggregate(batch, out);
  return out.size() > 0 ? out(0) : 0.0;
}

/// Satisfies Aggregator<double> (used by the control build).
struct MeanAggregator {
  void aggregate(const fedpp::UpdateBatch<double>& batch, fedpp::Vector<double>& out) {
    out = batch.matrix().rowwise().mean();
  }
};

/// Returns the aggregate instead of writing it to `out`.
struct ReturningAggregator {
  fedpp::Vector<double> aggregate(const fedpp::UpdateBatch<double>& batch, fedpp::Vector<double>& out) {
    out = batch.matrix().rowwise().mean();
    return out;
  }
};

}  // namespace

int main() {
  const fedpp::UpdateBatch<double> batch(fedpp::Matrix<double>::Ones(2, 3));
#ifdef FEDPP_COMPILE_FAIL
  ReturningAggregator a;
#else
  MeanAggregator a;
#endif
  return first_coordinate(a, batch) == 1.0 ? 0 : 1;
}
