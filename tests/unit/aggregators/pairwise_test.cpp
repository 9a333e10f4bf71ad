// Tests of detail/pairwise.hpp: the Gram matrix and squared distances against a brute-force
// long double double loop, symmetry, exact diagonal, non-negativity, and bit identity across
// thread counts and compiled kernels.
#include <catch2/catch.hpp>

#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "fedpp/aggregators/detail/pairwise.hpp"
#include "fedpp/core/rng.hpp"
#include "fedpp/core/update_batch.hpp"
#include "support/aggregator_inputs.hpp"
#include "support/aggregator_isas.hpp"
#include "support/checks.hpp"

using namespace fedpp;
using namespace fedpp_test;

TEMPLATE_TEST_CASE("pairwise squared distances match a brute-force double loop", "[aggregators][pairwise]", float,
                   double) {
  using S = TestType;
  const Index n = GENERATE(1, 2, 3, 5, 7, 13);
  const Index d = GENERATE(as<Index>{}, 1, 7, 8, 9, 1023, 1024, 1025, 3 * detail::gram_block + 17);
  const Matrix<S> x = scaled_columns<S>(d, n, static_cast<std::uint64_t>(100 * n + d));
  Matrix<double> D, G;
  Vector<double> norms;
  detail::pairwise_sq_distances(x.data(), d, n, D, &norms);
  detail::gram_matrix(x.data(), d, n, G);
  REQUIRE(D.rows() == n);
  REQUIRE(D.cols() == n);
  Index bad = 0;
  for (Index p = 0; p < n; ++p) {
    for (Index q = 0; q < n; ++q) {
      long double dist = 0, gram = 0, na = 0, nb = 0;
      for (Index j = 0; j < d; ++j) {
        const long double a = x(j, p), b = x(j, q);
        dist += (a - b) * (a - b);
        gram += a * b;
        na += a * a;
        nb += b * b;
      }
      // Double sums of exact (float) or rounded (double) products: error ~ d * eps * |terms|;
      // the distance inherits the cancellation of ||a||^2 + ||b||^2 - 2 a.b.
      const long double tol = 4.0L * static_cast<long double>(d + 8) * DBL_EPSILON * (na + nb);
      if (std::fabs(static_cast<long double>(G(p, q)) - gram) > tol) ++bad;
      if (std::fabs(static_cast<long double>(D(p, q)) - dist) > 2 * tol) ++bad;
      if (D(p, q) < 0.0) ++bad;
      if (D(p, q) != D(q, p) || G(p, q) != G(q, p)) ++bad;
    }
    if (D(p, p) != 0.0) ++bad;
    if (norms(p) != G(p, p)) ++bad;
  }
  CAPTURE(n, d);
  CHECK(bad == 0);
}

TEST_CASE("pairwise distances: float inputs are exact in double for small integers", "[aggregators][pairwise]") {
  // Integer coordinates: every product and partial sum is an exact double, so the result is exact.
  Matrix<float> x = byzfl_x<float>();
  Matrix<double> D;
  detail::pairwise_sq_distances(x.data(), 3, 3, D);
  CHECK(D(0, 1) == 27.0);
  CHECK(D(1, 2) == 27.0);
  CHECK(D(0, 2) == 108.0);
  CHECK(D(2, 0) == 108.0);
  CHECK(D(1, 1) == 0.0);
}

TEST_CASE("pairwise distances: duplicates give exact zeros, offsets do not break them", "[aggregators][pairwise]") {
  // Updates far from the origin but close to each other: the Gram route cancels ||a||^2 ~ 1e10
  // against 2 a.b; double accumulation keeps the small distances accurate and duplicates at 0.
  Matrix<float> x = scaled_columns<float>(5000, 6, 9, /*offset=*/1000.0);
  x.col(4) = x.col(1);
  Matrix<double> D;
  detail::pairwise_sq_distances(x.data(), x.rows(), x.cols(), D);
  CHECK(D(1, 4) == 0.0);
  CHECK(D(4, 1) == 0.0);
  for (Index p = 0; p < 6; ++p)
    for (Index q = 0; q < 6; ++q) {
      const double ref = (x.col(p).cast<double>() - x.col(q).cast<double>()).squaredNorm();
      CHECK(std::fabs(D(p, q) - ref) <= 1e-6 * ref);  // relative, although ||a||^2 ~ 5e9
    }
}

TEMPLATE_TEST_CASE("pairwise distances are bit-identical on 1, 2 and 3 threads and with every kernel",
                   "[aggregators][pairwise][threads]", float, double) {
  using S = TestType;
  ThreadGuard guard;
  const Index d = 5 * detail::gram_block + 11;
  for (Index n : {Index{4}, Index{17}, Index{41}}) {
    const Matrix<S> x = scaled_columns<S>(d, n, static_cast<std::uint64_t>(n));
    std::vector<Matrix<double>> outs;
    for (int t : {1, 2, 3}) {
      set_max_threads(t);
      for (auto isa : all_dist_isas) {
        if (!gram_isa_runs<S>(isa)) continue;
        Matrix<double> D;
        detail::pairwise_sq_distances(x.data(), d, n, D, nullptr, isa);
        outs.push_back(D);
      }
    }
    CAPTURE(n, outs.size());
    for (const auto& o : outs) CHECK(same_bits(o, outs.front()));
  }
}

TEST_CASE("pairwise distances: empty inputs", "[aggregators][pairwise]") {
  Matrix<double> G;
  const std::vector<float> none;
  detail::gram_matrix(none.data(), 0, 3, G);
  CHECK(G.rows() == 3);
  CHECK(G.isZero(0.0));
  detail::gram_matrix(none.data(), 5, 0, G);
  CHECK(G.size() == 0);
}
