// Tests of fedpp::CenteredClipping: ByzFL golden value, a long double reference over several
// stateful calls, the clipping bound, state handling (restored and checkpointed states continue
// bit for bit), errors, thread and kernel identity.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "fedpp/aggregators/centered_clipping.hpp"
#include "fedpp/aggregators/weighted_mean.hpp"
#include "fedpp/core/rng.hpp"
#include "support/aggregator_inputs.hpp"
#include "support/aggregator_isas.hpp"
#include "support/checks.hpp"

using namespace fedpp;
using namespace fedpp_test;

namespace {

// ByzFL's formula in long double: L times v <- v + mean_i (x_i - v) min(1, tau / ||x_i - v||).
template <typename S>
void ref_cc(const Matrix<S>& x, double tau, Index iters, std::vector<long double>& v) {
  const Index d = x.rows(), n = x.cols();
  for (Index l = 0; l < iters; ++l) {
    std::vector<long double> step(static_cast<std::size_t>(d), 0.0L);
    for (Index i = 0; i < n; ++i) {
      long double s = 0;
      for (Index j = 0; j < d; ++j) {
        const long double u = x(j, i) - v[static_cast<std::size_t>(j)];
        s += u * u;
      }
      const long double norm = std::sqrt(s);
      const long double c = norm == 0 ? 1.0L : std::min<long double>(1.0L, tau / norm);
      for (Index j = 0; j < d; ++j) step[static_cast<std::size_t>(j)] += c * (x(j, i) - v[static_cast<std::size_t>(j)]);
    }
    for (Index j = 0; j < d; ++j) v[static_cast<std::size_t>(j)] += step[static_cast<std::size_t>(j)] / n;
  }
}

}  // namespace

TEMPLATE_TEST_CASE("CenteredClipping reproduces ByzFL's golden value", "[aggregators][CenteredClipping]", float,
                   double) {
  using S = TestType;
  Matrix<S> x = byzfl_x<S>();
  CenteredClipping cc;  // tau = 100, L = 1, from 0: no update is clipped, so the mean exactly
  CHECK(cc.tau() == 100.0);
  CHECK(cc.iterations() == 1);
  CHECK(cc.center().size() == 0);
  Vector<S> out;
  cc.aggregate(UpdateBatch<S>(x), out);
  CHECK(out(0) == S(4));
  CHECK(out(1) == S(5));
  CHECK(out(2) == S(6));
  REQUIRE(cc.center().size() == 3);  // kept for the next call
  CHECK(cc.center() == Eigen::Vector3d(4, 5, 6));
}

TEMPLATE_TEST_CASE("CenteredClipping matches ByzFL's formula over stateful calls", "[aggregators][CenteredClipping]",
                   float, double) {
  using S = TestType;
  const Index n = GENERATE(1, 4, 9);
  const Index d = GENERATE(as<Index>{}, 1, 6, 2 * detail::sweep_chunk + 3);
  const Index iters = GENERATE(as<Index>{}, 1, 3);
  CenteredClipping cc(0.8 * std::sqrt(static_cast<double>(d)), iters);  // some updates clipped, some not
  std::vector<long double> v(static_cast<std::size_t>(d), 0.0L);
  for (int call = 0; call < 3; ++call) {
    const Matrix<S> x = cloud<S>(d, n, 0.3 * call, 1.0, static_cast<std::uint64_t>(1000 * call + 10 * n + d));
    Vector<S> out;
    cc.aggregate(UpdateBatch<S>(x), out);
    ref_cc(x, cc.tau(), iters, v);
    REQUIRE(cc.center().size() == d);  // the center is kept for the next call
    Index bad = 0;
    for (Index j = 0; j < d; ++j) {
      const long double r = v[static_cast<std::size_t>(j)];
      const long double tol = std::is_same_v<S, float> ? 1e-6L * (1 + std::fabs(r)) : 1e-12L * (1 + std::fabs(r));
      if (std::fabs(static_cast<long double>(out(j)) - r) > tol) ++bad;
      if (out(j) != static_cast<S>(cc.center()(j))) ++bad;
    }
    CAPTURE(n, d, iters, call);
    CHECK(bad == 0);
  }
}

TEMPLATE_TEST_CASE("CenteredClipping bounds the move per iteration by tau, whatever the attackers send",
                   "[aggregators][CenteredClipping][breakdown]", float, double) {
  using S = TestType;
  const Index d = 500, n = 10;
  Matrix<S> x = cloud<S>(d, n, 0.0, 1.0, 3);
  for (Index a = 7; a < n; ++a) x.col(a).setConstant(S(1e6));  // 3 huge attackers
  for (Index iters : {Index{1}, Index{4}}) {
    CenteredClipping cc(2.0, iters);
    Vector<S> out;
    cc.aggregate(UpdateBatch<S>(x), out);
    // Each clipped difference has norm <= tau, so each iteration moves the center by <= tau.
    CHECK(out.template cast<double>().norm() <= 2.0 * static_cast<double>(iters) * (1 + 1e-6));
    Vector<S> mean;
    WeightedMean(Weighting::uniform).aggregate(UpdateBatch<S>(x), mean);
    CHECK(mean.template cast<double>().norm() > 1e6);
  }
}

TEST_CASE("CenteredClipping state: reset, set_center, dimension checks, L = 0", "[aggregators][CenteredClipping]") {
  Matrix<double> x(2, 2);
  x << 0, 2, 0, 0;  // points (0,0) and (2,0): mean (1,0)
  CenteredClipping cc(10.0, 1);
  Vector<double> out;
  cc.aggregate(UpdateBatch<double>(x), out);
  CHECK(out == Eigen::Vector2d(1, 0));
  cc.set_center(Eigen::Vector2d(1, 100));  // far away: both clipped to tau = 10 towards them
  cc.aggregate(UpdateBatch<double>(x), out);
  CHECK(out(1) == Approx(100 - 10 * 100 / std::sqrt(100.0 * 100 + 1)).epsilon(1e-14));
  CHECK(out(0) == Approx(1.0).epsilon(1e-14));
  cc.reset();
  CHECK(cc.center().size() == 0);
  cc.aggregate(UpdateBatch<double>(x), out);
  CHECK(out == Eigen::Vector2d(1, 0));
  const UpdateBatch<double> three(Matrix<double>::Ones(3, 2));
  CHECK(message_of([&] { cc.aggregate(three, out); }) ==
        "fedpp::CenteredClipping::aggregate: the stored center has dimension 2 (call reset() for a new model); "
        "batch dimension, got 3");
  CenteredClipping none(1.0, 0);
  none.aggregate(UpdateBatch<double>(x), out);
  CHECK(out.isZero(0));  // L = 0: the starting center, zero on a first call
  CHECK(none.center().size() == 2);
}

TEMPLATE_TEST_CASE("CenteredClipping state: a restored copy continues bit for bit", "[aggregators][CenteredClipping]",
                   float, double) {
  using S = TestType;
  const Index d = 2 * detail::sweep_chunk + 5, n = 7;
  CenteredClipping cc(0.5 * std::sqrt(static_cast<double>(d)), 2);
  Vector<S> out;
  for (std::uint64_t call = 0; call < 2; ++call) cc.aggregate(UpdateBatch<S>(cloud<S>(d, n, 1.0, 1.0, 40 + call)), out);
  // state() is the center the object carries.
  CHECK(&cc.state().center == &cc.center());
  CHECK(&std::as_const(cc).state() == &cc.state());
  REQUIRE(cc.state().center.size() == d);
  const CenteredClipping::State saved = cc.state();
  CenteredClipping restored(cc.tau(), cc.iterations());
  restored.state() = saved;
  CHECK(restored.center() == cc.center());
  for (std::uint64_t call = 2; call < 5; ++call) {
    const UpdateBatch<S> batch(cloud<S>(d, n, 1.0, 1.0, 40 + call));
    Vector<S> a, b;
    cc.aggregate(batch, a);
    restored.aggregate(batch, b);
    CHECK(count_mismatches(a, b) == 0);
    CHECK(count_mismatches(Vector<double>(cc.state().center), Vector<double>(restored.state().center)) == 0);
  }
  // A fresh object (no restore) starts from 0: another result on this input.
  CenteredClipping fresh(cc.tau(), cc.iterations());
  const UpdateBatch<S> batch(cloud<S>(d, n, 1.0, 1.0, 50));
  Vector<S> a, b;
  cc.aggregate(batch, a);
  fresh.aggregate(batch, b);
  CHECK(count_mismatches(a, b) > 0);
  // An empty state restores "no center yet".
  cc.state() = CenteredClipping::State{};
  CHECK(cc.center().size() == 0);
}

#if __has_include(<cereal/cereal.hpp>)
#include <sstream>

#include "fedpp/serialization/checkpoint.hpp"

TEST_CASE("CenteredClipping state round-trips through a checkpoint and resumes identically",
          "[aggregators][CenteredClipping]") {
  const Index d = 300, n = 6;
  CenteredClipping cc(4.0, 3);
  Vector<double> out;
  cc.aggregate(UpdateBatch<double>(cloud<double>(d, n, 2.0, 1.0, 61)), out);
  std::stringstream ss;
  save_state(cc.state(), ss);
  CenteredClipping back(4.0, 3);
  load_state(back.state(), ss);
  CHECK(count_mismatches(back.center(), cc.center()) == 0);
  const UpdateBatch<double> next(cloud<double>(d, n, 2.0, 1.0, 62));
  Vector<double> a, b;
  cc.aggregate(next, a);
  back.aggregate(next, b);
  CHECK(count_mismatches(a, b) == 0);
}
#else
// Without cereal (the optional fedpp::serialization component) the round-trip cannot be built: say so.
TEST_CASE("CenteredClipping state round-trips through a checkpoint and resumes identically",
          "[aggregators][CenteredClipping]") {
  WARN("skipped: <cereal/cereal.hpp> not found, so the CenteredClipping checkpoint round-trip is not tested");
}
#endif

TEST_CASE("CenteredClipping errors", "[aggregators][CenteredClipping]") {
  CHECK(message_of([] { CenteredClipping(0.0); }) == "fedpp::CenteredClipping: tau must be finite and > 0, got 0");
  CHECK(message_of([] { CenteredClipping(1.0, -2); }) == "fedpp::CenteredClipping: iterations must be >= 0, got -2");
  Vector<float> out;
  CenteredClipping cc;
  CHECK(message_of([&] { cc.aggregate(UpdateBatch<float>(2), out); }) ==
        "fedpp::CenteredClipping::aggregate: the batch holds no client updates");
}

TEMPLATE_TEST_CASE("CenteredClipping is bit-identical on 1, 2, 3 threads and with every kernel",
                   "[aggregators][CenteredClipping][threads]", float, double) {
  using S = TestType;
  ThreadGuard guard;
  const Index d = 30 * detail::sweep_chunk + 9;
  const UpdateBatch<S> first(cloud<S>(d, 9, 0.0, 1.0, 1)), second(cloud<S>(d, 9, 0.5, 1.0, 2));
  std::vector<Vector<S>> outs;
  for (int t : {1, 2, 3}) {
    set_max_threads(t);
    for (auto isa : all_dist_isas) {
      if (!dist_isa_runs(isa)) continue;
      CenteredClipping cc(50.0, 3);
      Vector<S> out;
      cc.aggregate(first, out, isa);
      cc.aggregate(second, out, isa);
      outs.push_back(out);
    }
  }
  for (const auto& o : outs)
    CHECK(std::memcmp(o.data(), outs.front().data(), static_cast<std::size_t>(o.size()) * sizeof(S)) == 0);
}
