// Tests of detail/dist_mix.hpp (means of listed columns, in-place column scaling): bit identity
// with WeightedMean on the listed columns, across thread counts and compiled kernels.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <vector>

#include "fedpp/aggregators/detail/dist_mix.hpp"
#include "fedpp/aggregators/weighted_mean.hpp"
#include "fedpp/core/rng.hpp"
#include "fedpp/core/update_batch.hpp"
#include "support/aggregator_inputs.hpp"
#include "support/aggregator_isas.hpp"
#include "support/checks.hpp"

using namespace fedpp;
using namespace fedpp_test;

TEMPLATE_TEST_CASE("mix_columns: means of listed columns equal WeightedMean on those columns",
                   "[aggregators][dist_mix]", float, double) {
  using S = TestType;
  ThreadGuard guard;
  const Index n = 9, d = GENERATE(as<Index>{}, 1, 5, 4099, 70001);
  const Matrix<S> x = cloud<S>(d, n, 0.5, 1.0, static_cast<std::uint64_t>(d));
  const std::vector<std::vector<Index>> lists{{0}, {1, 2}, {0, 3, 4, 5, 8}, {2, 3, 4, 5, 6, 7, 8}, {8}};
  std::vector<Matrix<S>> outs;
  for (int t : {1, 2}) {
    set_max_threads(t);
    for (auto isa : all_dist_isas) {
      if (!dist_isa_runs(isa)) continue;
      Matrix<S> out(d, static_cast<Index>(lists.size()));
      detail::mix_columns(x.data(), d, n, lists, out.data(), isa);
      outs.push_back(out);
    }
  }
  for (const auto& o : outs)
    CHECK(std::memcmp(o.data(), outs.front().data(), static_cast<std::size_t>(o.size()) * sizeof(S)) == 0);
  for (std::size_t o = 0; o < lists.size(); ++o) {
    Matrix<S> sub(d, static_cast<Index>(lists[o].size()));
    for (std::size_t k = 0; k < lists[o].size(); ++k) sub.col(static_cast<Index>(k)) = x.col(lists[o][k]);
    Vector<S> ref;
    WeightedMean(Weighting::uniform).aggregate(UpdateBatch<S>(sub), ref);
    const Vector<S> got = outs.front().col(static_cast<Index>(o));
    CHECK(std::memcmp(got.data(), ref.data(), static_cast<std::size_t>(d) * sizeof(S)) == 0);
  }
}

TEMPLATE_TEST_CASE("scale_columns scales only the columns whose factor is not 1", "[aggregators][dist_mix]", float,
                   double) {
  using S = TestType;
  ThreadGuard guard;
  const Index n = 5, d = 100003;
  const Matrix<S> x = cloud<S>(d, n, 0.5, 1.0, 4);
  const std::vector<double> scales{1.0, 0.5, 1.0, 0.1, 3.0};
  for (int t : {1, 2}) {
    set_max_threads(t);
    Matrix<S> y = x;
    detail::scale_columns(y.data(), d, scales);
    for (Index i = 0; i < n; ++i) {
      const double s = scales[static_cast<std::size_t>(i)];
      Index bad = 0;
      for (Index j = 0; j < d; ++j)
        if (y(j, i) != static_cast<S>(static_cast<double>(x(j, i)) * s)) ++bad;
      CHECK(bad == 0);
    }
  }
}
