// FedDyn and FedDynServer: the local round against its recurrence on a quadratic (with clipping and
// weight decay), h_i over several rounds, the server step's closed form, a whole run against an
// independent implementation of the algorithm, exact convergence to the global optimum, validation.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "fedpp/aggregators/weighted_mean.hpp"
#include "fedpp/optimizers/fed_dyn.hpp"
#include "fedpp/runtime/simulation.hpp"
#include "support/quadratic.hpp"

using namespace fedpp;
using fedpp_test::Quadratic;
using fedpp_test::quadratic_points;

static_assert(LocalOptimizer<FedDyn, Quadratic>);
static_assert(ServerOptimizer<FedDynServer, double> && !Aggregator<FedDynServer, double>);

TEST_CASE("FedDyn's local round follows g + alpha (w - x_t + h_i) and accumulates h_i", "[optimizers][FedDyn]") {
  const Vector<double> c{{2.0, -1.0}}, x0{{0.5, 0.5}}, h0{{0.3, -0.2}};
  const double a = 2.0, alpha = 0.4, lr = 0.1;
  auto ds = quadratic_points(c, a);
  const auto view = DatasetView<double>::all(ds);
  Quadratic model;
  FedDyn opt({.alpha = alpha, .sgd = {.lr = lr, .steps = 5, .batch_size = 1}});
  auto st = opt.make_state(model);
  REQUIRE(st.h == Vector<double>::Zero(2));
  st.h = h0;
  Vector<double> w = x0;
  Rng rng(1);
  const LocalResult r = opt.train(model, w, view, st, {}, rng);
  Vector<double> ref = x0;
  for (int k = 0; k < 5; ++k) ref -= lr * (a * (ref - c) + alpha * (ref - x0 + h0));
  CHECK(r.steps == 5);
  CHECK((w - ref).norm() <= 1e-15);
  CHECK((st.h - (h0 + ref - x0)).norm() <= 1e-15);
}

TEST_CASE("FedDyn clips the loss gradient with the linear correction, then adds (wd + alpha) w",
          "[optimizers][FedDyn]") {
  const Vector<double> c{{5.0, -3.0}}, x0{{0.0, 1.0}}, h0{{1.0, 2.0}};
  const double a = 1.0, alpha = 0.5, lr = 0.05, wd = 0.01, clip = 0.8;
  auto ds = quadratic_points(c, a);
  const auto view = DatasetView<double>::all(ds);
  Quadratic model;
  FedDyn opt({.alpha = alpha, .sgd = {.lr = lr, .steps = 4, .batch_size = 1, .weight_decay = wd, .clip_norm = clip}});
  auto st = opt.make_state(model);
  st.h = h0;
  Vector<double> w = x0;
  Rng rng(1);
  opt.train(model, w, view, st, {}, rng);
  Vector<double> ref = x0;
  for (int k = 0; k < 4; ++k) {
    Vector<double> g = a * (ref - c) + alpha * (h0 - x0);
    if (g.norm() > clip) g *= clip / g.norm();
    ref -= lr * (g + (wd + alpha) * ref);
  }
  CHECK((w - ref).norm() <= 1e-15);
}

TEST_CASE("FedDynServer adds H / N to the aggregated update, H summing every accepted update",
          "[optimizers][FedDynServer]") {
  FedDynServer s({.lr = 0.5});
  auto st = s.make_state<double>(3);
  const Vector<double> u1{{1.0, 2.0, 3.0}}, u2{{-1.0, 0.5, 0.0}};
  s.observe(st, ClientUpdateView<double>{0, 1.0, as_span(u1), {}});
  s.observe(st, ClientUpdateView<double>{4, 2.0, as_span(u2), {}});
  CHECK(st.h_sum == u1 + u2);
  Vector<double> x{{0.0, 0.0, 1.0}};
  const Vector<double> agg = 0.5 * (u1 + u2);
  s.step(x, agg, st, ServerContext{0, 10, 2});
  const Vector<double> ref = Vector<double>{{0.0, 0.0, 1.0}} + 0.5 * agg + (u1 + u2) / 10.0;
  CHECK((x - ref).norm() <= 1e-15);
  CHECK(st.steps == 1);
  // A later round adds the whole H / N again (x_{t+1} = mean_S x_i + mean_all h_j).
  s.observe(st, ClientUpdateView<double>{1, 1.0, as_span(u1), {}});
  Vector<double> x2 = x;
  s.step(x2, u1, st, ServerContext{1, 10, 1});
  CHECK((x2 - (x + 0.5 * u1 + (2 * u1 + u2) / 10.0)).norm() <= 1e-15);

  // add_dual = false is the plain server step.
  FedDynServer plain({.lr = 1.0, .add_dual = false});
  auto pst = plain.make_state<double>(3);
  plain.observe(pst, ClientUpdateView<double>{0, 1.0, as_span(u1), {}});
  CHECK(pst.h_sum == Vector<double>::Zero(3));
  Vector<double> x3 = Vector<double>::Zero(3);
  plain.step(x3, u2, pst, ServerContext{0, 10, 1});
  CHECK(x3 == u2);

  CHECK_THROWS_WITH(FedDynServer({.lr = 0}), Catch::Contains("fedpp::FedDynServer: lr must be finite and > 0, got 0"));
  Vector<double> bad(2);
  CHECK_THROWS_AS(s.step(bad, u1, st, ServerContext{0, 10, 1}), DimensionError);
  CHECK_THROWS_WITH(s.step(x, u1, st, ServerContext{0, 0, 1}), Catch::Contains("number of clients must be > 0"));
}

TEST_CASE("FedDyn in a Simulation matches an independent implementation of the algorithm round by round",
          "[optimizers][FedDyn]") {
  // Full participation of three one-sample clients (so every local step is deterministic), K = 6.
  const fedpp_test::QuadraticFederation fed;
  const double alpha = 0.3, lr = 0.1;
  const int K = 6;
  const FedDyn opt({.alpha = alpha, .sgd = {.lr = lr, .steps = K, .batch_size = 1}});
  for (std::uint64_t rounds : {1u, 2u, 7u}) {
    CAPTURE(rounds);
    Simulation<Quadratic> sim(Quadratic{}, fed.shards, nullptr, {.rounds = rounds, .fraction = 1.0, .threads = 2});
    const auto result = sim.run(opt, WeightedMean(Weighting::uniform));  // FedDynServer by default

    // Reference: theta_k <- K gradient steps on f_k - <g_k, w> + alpha/2 ||w - x||^2 with g_k = -alpha h_k;
    // h_k += theta_k - x; H = sum_k h_k; x <- mean_k theta_k + H / N.
    const std::size_t n = fed.a.size();
    Vector<double> x = Vector<double>::Zero(2);
    std::vector<Vector<double>> h(n, Vector<double>::Zero(2));
    for (std::uint64_t t = 0; t < rounds; ++t) {
      Vector<double> mean = Vector<double>::Zero(2), H = Vector<double>::Zero(2);
      for (std::size_t i = 0; i < n; ++i) {
        Vector<double> w = x;
        for (int k = 0; k < K; ++k) w -= lr * (fed.a[i] * (w - fed.c[i]) + alpha * (h[i] - x) + alpha * w);
        h[i] += w - x;
        mean += w / static_cast<double>(n);
      }
      for (const auto& hi : h) H += hi;
      x = mean + H / static_cast<double>(n);
    }
    CHECK((result.params - x).norm() <= 1e-12);
  }
}

TEST_CASE("FedDyn reaches the exact optimum of the heterogeneous objective with many local steps",
          "[optimizers][FedDyn]") {
  // FedDyn's fixed point is the global optimum whatever K (Acar et al., Theorem 1 setting); FedAvg's is not.
  const fedpp_test::QuadraticFederation fed;
  const Vector<double> opt = fed.optimum();
  Simulation<Quadratic> sim(Quadratic{}, fed.shards, nullptr, {.rounds = 400, .fraction = 1.0, .threads = 1});
  const auto dyn = sim.run(FedDyn({.alpha = 0.5, .sgd = {.lr = 0.1, .steps = 20, .batch_size = 1}}),
                           WeightedMean(Weighting::uniform));
  const auto avg = sim.run(LocalSgd({.lr = 0.1, .steps = 20, .batch_size = 1}), WeightedMean(Weighting::uniform));
  const double d_dyn = (dyn.params - opt).norm(), d_avg = (avg.params - opt).norm();
  CAPTURE(d_dyn, d_avg);
  CHECK(d_avg > 0.1);
  CHECK(d_dyn < 1e-8);
}

TEST_CASE("FedDyn validates its settings", "[optimizers][FedDyn]") {
  CHECK_THROWS_WITH(FedDyn({.alpha = 0}), Catch::Contains("fedpp::FedDyn: alpha must be finite and > 0, got 0"));
  CHECK_THROWS_WITH(FedDyn({.alpha = std::nan("")}), Catch::Contains("fedpp::FedDyn: alpha"));
  CHECK_THROWS_WITH(FedDyn({.sgd = {.epochs = 0}}), Catch::Contains("fedpp::FedDyn: epochs must be >= 1"));
  CHECK(FedDyn().paired_server().options().add_dual);
}
