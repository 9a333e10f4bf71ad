// Tests of fedpp::NormClipping: ByzFL golden values, unclipped columns unchanged bit for bit,
// clipped norms, composition bound, errors.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "fedpp/aggregators/norm_clipping.hpp"
#include "fedpp/aggregators/weighted_mean.hpp"
#include "fedpp/core/rng.hpp"
#include "support/aggregator_inputs.hpp"
#include "support/checks.hpp"

using namespace fedpp;
using namespace fedpp_test;

TEMPLATE_TEST_CASE("NormClipping reproduces ByzFL's Clipping(2.0)", "[aggregators][NormClipping]", float, double) {
  using S = TestType;
  Matrix<S> x = byzfl_x<S>();
  const UpdateBatch<S> clipped = NormClipping<>(2.0).transform(UpdateBatch<S>(x));
  const double golden[3][3] = {{0.53452248, 1.06904497, 1.60356745},
                               {0.91168461, 1.13960576, 1.36752692},
                               {1.00514142, 1.14873305, 1.29232469}};
  for (Index i = 0; i < 3; ++i)
    for (Index j = 0; j < 3; ++j) CHECK(clipped.matrix()(j, i) == Approx(golden[i][j]).epsilon(1e-7));
}

TEMPLATE_TEST_CASE("NormClipping leaves small updates alone and scales large ones to norm c",
                   "[aggregators][NormClipping]", float, double) {
  using S = TestType;
  const Index d = 3001, n = 8;
  Matrix<S> x(d, n);
  auto rng = make_rng(1, 0, 0, Purpose::user);
  for (Index i = 0; i < n; ++i)
    for (Index j = 0; j < d; ++j) x(j, i) = static_cast<S>(std::ldexp(1.0, static_cast<int>(i) - 6) * rng.normal());
  const double c = 3.0;
  const UpdateBatch<S> batch(x, std::vector<double>(static_cast<std::size_t>(n), 2.0));
  const NormClipping<> clip(c);
  const UpdateBatch<S> y = clip.transform(batch);
  const std::vector<double> scales = clip.scales(batch);
  Index clipped = 0;
  for (Index i = 0; i < n; ++i) {
    const double norm = x.col(i).template cast<double>().norm();
    if (norm <= c) {
      CHECK(std::memcmp(y.column(i).data(), batch.column(i).data(), static_cast<std::size_t>(d) * sizeof(S)) == 0);
    } else {
      ++clipped;
      CHECK(y.matrix().col(i).template cast<double>().norm() == Approx(c).epsilon(1e-6));
      const double s = scales[static_cast<std::size_t>(i)];
      CHECK(s == Approx(c / norm).epsilon(1e-12));
      Index bad = 0;
      for (Index j = 0; j < d; ++j)
        if (y.matrix()(j, i) != static_cast<S>(static_cast<double>(x(j, i)) * s)) ++bad;
      CHECK(bad == 0);
    }
  }
  CHECK(clipped >= 2);
  CHECK(clipped <= n - 2);
  CHECK(y.weights()[0] == 2.0);
  // The clipped mean (default inner rule) has norm <= c whatever the inputs.
  Matrix<S> huge = x;
  huge.col(0).setConstant(S(1e8));
  Vector<S> out;
  NormClipping<> clip2(c);
  clip2.aggregate(UpdateBatch<S>(huge), out);
  CHECK(out.template cast<double>().norm() <= c * (1 + 1e-6));
}

TEST_CASE("NormClipping errors", "[aggregators][NormClipping]") {
  CHECK(message_of([] { NormClipping<>(0.0); }) == "fedpp::NormClipping: c must be finite and > 0, got 0");
  CHECK(message_of([] { NormClipping<>(-1.5); }) == "fedpp::NormClipping: c must be finite and > 0, got -1.5");
  Vector<double> out;
  NormClipping<> clip;
  CHECK(clip.c() == 2.0);
  CHECK(message_of([&] { clip.aggregate(UpdateBatch<double>(4), out); }) ==
        "fedpp::NormClipping::transform: the batch holds no client updates");
  CHECK(message_of([] { NormClip(0.0); }) == "fedpp::NormClip: c must be finite and > 0, got 0");
  CHECK(message_of([] { (void)NormClip(1.0).transform(UpdateBatch<double>(4)); }) ==
        "fedpp::NormClip::transform: the batch holds no client updates");
  CHECK(NormClip(0.5).c() == 0.5);
}
