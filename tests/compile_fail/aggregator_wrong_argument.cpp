// Compile-fail case: a type whose aggregate() takes a plain Eigen matrix instead of an
// UpdateBatch is not a fedpp::Aggregator<float>, so a template constrained on that concept must
// reject it, with a diagnostic that names the concept. Built twice by ctest (see CMakeLists.txt):
// without FEDPP_COMPILE_FAIL (control: must compile) and with it (must fail, matching every
// `expect-error:` regular expression below).
// expect-error: (satisfaction of|does not satisfy|because) [^A-Za-z]*(fedpp::)?Aggregator
// expect-error: aggregate\(batch, out\).* (is|would be) invalid
#include "fedpp/core/concepts.hpp"

namespace {

template <fedpp::Aggregator<float> A>
void run_aggregator(A& a, const fedpp::UpdateBatch<float>& batch, fedpp::Vector<float>& out) {
  a.aggregate(batch, out);
}

/// Satisfies Aggregator<float> (used by the control build).
struct SumAggregator {
  void aggregate(const fedpp::UpdateBatch<float>& batch, fedpp::Vector<float>& out) {
    out = batch.matrix().rowwise().sum();
  }
};

/// Looks like an aggregator but takes the updates as a matrix.
struct MatrixAggregator {
  void aggregate(const fedpp::Matrix<float>& updates, fedpp::Vector<float>& out) { out = updates.rowwise().sum(); }
};

}  // namespace

int main() {
  fedpp::UpdateBatch<float> batch(3);
  fedpp::Vector<float> out;
#ifdef FEDPP_COMPILE_FAIL
  MatrixAggregator a;
#else
  SumAggregator a;
#endif
  run_aggregator(a, batch, out);
  return 0;
}
