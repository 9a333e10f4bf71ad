// Scaffold and ScaffoldServer: the local round and both control-variate refreshes against their
// closed forms, the server step, a whole partial-participation run against an independent
// implementation of Algorithm 1 (x, c and every c_i), the bytes of the extra vectors, what happens
// when the pair is split, validation.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "fedpp/aggregators/weighted_mean.hpp"
#include "fedpp/optimizers/scaffold.hpp"
#include "fedpp/runtime/in_process.hpp"
#include "fedpp/runtime/server.hpp"
#include "fedpp/runtime/simulation.hpp"
#include "support/quadratic.hpp"

using namespace fedpp;
using fedpp_test::Quadratic;
using fedpp_test::quadratic_points;

static_assert(ExchangingLocalOptimizer<Scaffold, Quadratic>);
static_assert(BroadcastingServerOptimizer<ScaffoldServer, double> && ObservingServerOptimizer<ScaffoldServer, double>);

TEST_CASE("Scaffold's local steps use g + c - c_i, and option II refreshes c_i from the model change",
          "[optimizers][Scaffold]") {
  const Vector<double> p{{2.0, -1.0}}, x0{{0.5, 0.5}}, c{{0.3, 0.1}}, ci{{-0.2, 0.4}};
  const double a = 2.0, lr = 0.1;
  const int K = 5;
  auto ds = quadratic_points(p, a);
  const auto view = DatasetView<double>::all(ds);
  Quadratic model;
  Scaffold opt({.sgd = {.lr = lr, .steps = K, .batch_size = 1}});
  auto st = opt.make_state(model);
  REQUIRE(st.c == Vector<double>::Zero(2));
  st.c = ci;
  Vector<double> w = x0;
  Rng rng(1);
  LocalExchange<double> ex{as_span(c), {}};
  const LocalResult r = opt.train(model, w, view, st, {}, rng, ex);
  Vector<double> y = x0;
  for (int k = 0; k < K; ++k) y -= lr * (a * (y - p) + c - ci);
  const Vector<double> ci_new = ci - c + (x0 - y) / (K * lr);
  CHECK(r.steps == K);
  CHECK((w - y).norm() <= 1e-15);
  CHECK((st.c - ci_new).norm() <= 1e-14);
  CHECK((ex.reply - (ci_new - ci)).norm() <= 1e-14);
}

TEST_CASE("Scaffold option II divides the model change by K times the round's decayed learning rate",
          "[optimizers][Scaffold]") {
  // One sample at p with curvature a, so every step is deterministic: y_{k+1} = y_k - lr_r (a (y_k - p) + c - c_i)
  // with lr_r = lr * decay^r, and c_i+ = c_i - c + (x_r - y_K) / (K lr_r) (Algorithm 1, option II).
  const Vector<double> p{{1.5, -0.5}};
  const double a = 1.2, lr = 0.2, decay = 0.5;
  const int K = 3;
  auto ds = quadratic_points(p, a);
  const auto view = DatasetView<double>::all(ds);
  Quadratic model;
  Scaffold opt({.sgd = {.lr = lr, .steps = K, .batch_size = 1, .lr_decay = decay}});
  auto st = opt.make_state(model);
  Vector<double> x{{-1.0, 2.0}};
  Vector<double> ci = Vector<double>::Zero(2);
  const std::vector<Vector<double>> server_c{Vector<double>{{0.0, 0.0}}, Vector<double>{{0.3, -0.2}},
                                             Vector<double>{{-0.4, 0.5}}, Vector<double>{{0.1, 0.1}}};
  for (std::uint64_t r = 0; r < server_c.size(); ++r) {
    CAPTURE(r);
    const Vector<double>& c = server_c[r];
    Vector<double> w = x;
    Rng rng(r);
    LocalExchange<double> ex{as_span(c), {}};
    opt.train(model, w, view, st, {.round = r}, rng, ex);
    const double lr_r = lr * std::pow(decay, static_cast<double>(r));
    Vector<double> y = x;
    for (int k = 0; k < K; ++k) y -= lr_r * (a * (y - p) + c - ci);
    const Vector<double> ci_new = ci - c + (x - y) / (K * lr_r);
    CHECK((w - y).norm() <= 1e-14);
    CHECK((st.c - ci_new).norm() <= 1e-12);
    CHECK((ex.reply - (ci_new - ci)).norm() <= 1e-12);
    ci = ci_new;
    x = y + Vector<double>{{0.25, -0.25}};  // the next round's global model
  }
}

TEST_CASE("Scaffold option I sets c_i to the full local gradient at the global model", "[optimizers][Scaffold]") {
  // 2500 samples: the gradient is taken in chunks of 1024 over the whole shard.
  Rng g(5);
  Matrix<double> xs(2, 2500);
  for (Index j = 0; j < xs.cols(); ++j) {
    xs(0, j) = g.normal();
    xs(1, j) = 1.0 + g.normal();
  }
  const double a = 0.7;
  auto ds = quadratic_points(xs, a);
  const auto view = DatasetView<double>::all(ds);
  Quadratic model;
  Scaffold opt({.variant = ScaffoldVariant::option1, .sgd = {.lr = 0.05, .steps = 3, .batch_size = 32}});
  auto st = opt.make_state(model);
  const Vector<double> x0{{1.0, -1.0}}, c{{0.1, 0.2}};
  Vector<double> w = x0;
  Rng rng(2);
  LocalExchange<double> ex{as_span(c), {}};
  opt.train(model, w, view, st, {}, rng, ex);
  const Vector<double> full = a * (x0 - xs.rowwise().mean());
  CHECK((st.c - full).norm() <= 1e-12);
  CHECK((ex.reply - full).norm() <= 1e-12);  // c_i was 0
  CHECK(w != x0);
}

TEST_CASE("ScaffoldServer broadcasts c, sums delta c_i and folds the sum in with 1/N", "[optimizers][ScaffoldServer]") {
  ScaffoldServer s({.lr = 0.5});
  auto st = s.make_state<float>(2);
  CHECK(s.needs_aux());
  CHECK(s.broadcast(st).size() == 2);
  CHECK(s.broadcast(st)[0] == 0.0f);
  const Vector<float> d1{{1.0f, -2.0f}}, d2{{3.0f, 0.5f}}, u{{1.0f, 1.0f}};
  s.observe(st, ClientUpdateView<float>{0, 1.0, as_span(u), as_span(d1)});
  s.observe(st, ClientUpdateView<float>{3, 1.0, as_span(u), as_span(d2)});
  Vector<float> x{{0.0f, 2.0f}};
  s.step(x, u, st, ServerContext{0, 8, 2});
  CHECK(x == Vector<float>{{0.5f, 2.5f}});
  CHECK(st.c == Vector<double>{{0.5, -0.1875}});
  CHECK(st.c_sent == Vector<float>{{0.5f, -0.1875f}});
  CHECK(st.pending == Vector<double>::Zero(2));
  CHECK(s.broadcast(st)[1] == -0.1875f);

  const Vector<float> short_aux{{1.0f}};
  CHECK_THROWS_AS(s.observe(st, ClientUpdateView<float>{0, 1.0, as_span(u), as_span(short_aux)}), DimensionError);
  CHECK_THROWS_WITH(ScaffoldServer({.lr = -1}), Catch::Contains("fedpp::ScaffoldServer: lr must be finite and > 0, got -1"));
}

TEST_CASE("SCAFFOLD over partial participation matches an independent implementation of Algorithm 1",
          "[optimizers][Scaffold]") {
  // Five one-sample clients (deterministic local steps), two sampled per round, K = 4, eta_g = 0.8.
  const std::vector<double> a{1.0, 3.0, 0.5, 2.0, 1.5};
  std::vector<Vector<double>> p;
  Rng g(9);
  for (std::size_t i = 0; i < a.size(); ++i) p.push_back(Vector<double>{{g.normal(), g.normal()}});
  const double lr = 0.1, lr_g = 0.8;
  const int K = 4;
  const Scaffold opt({.sgd = {.lr = lr, .steps = K, .batch_size = 1}});
  using ClientT = Client<Quadratic, Scaffold>;
  std::vector<ClientT> clients;
  for (std::size_t i = 0; i < a.size(); ++i)
    clients.emplace_back(static_cast<ClientId>(i), Quadratic{}, DatasetView<double>::all(quadratic_points(p[i], a[i])),
                         opt);
  InProcessTransport<ClientT> transport(std::move(clients), 2);
  const std::uint64_t rounds = 6;
  Server<double, WeightedMean, ScaffoldServer> server(Vector<double>::Zero(2),
                                                      {.rounds = rounds, .clients_per_round = 2, .seed = 3},
                                                      WeightedMean(Weighting::uniform), ScaffoldServer({.lr = lr_g}));
  const std::size_t n = a.size();
  Vector<double> x = Vector<double>::Zero(2), c = Vector<double>::Zero(2);
  std::vector<Vector<double>> ci(n, Vector<double>::Zero(2));
  for (std::uint64_t t = 0; t < rounds; ++t) {
    const RoundStats st = server.step(transport);
    REQUIRE(st.accepted == 2);
    // The same clients the server sampled.
    Rng srng = make_rng(3, t, server_stream, Purpose::sampling);
    const auto who = sample_clients(n, 2, srng);
    Vector<double> dy = Vector<double>::Zero(2), dc = Vector<double>::Zero(2);
    for (ClientId i : who) {
      Vector<double> y = x;
      for (int k = 0; k < K; ++k) y -= lr * (a[i] * (y - p[i]) + c - ci[i]);
      const Vector<double> ci_new = ci[i] - c + (x - y) / (K * lr);
      dy += (y - x) / static_cast<double>(who.size());
      dc += ci_new - ci[i];
      ci[i] = ci_new;
    }
    x += lr_g * dy;
    c += dc / static_cast<double>(n);
    CHECK((server.params() - x).norm() <= 1e-12);
    CHECK((server.server_state().c - c).norm() <= 1e-12);
    // Bytes: the model and c go down; the update and delta c_i come up (dense doubles plus headers).
    CHECK(st.bytes_down == 2 * (24 + 4 * sizeof(double)));
    CHECK(st.bytes_up >= 2 * 2 * (2 * sizeof(double)));
  }
  for (std::size_t i = 0; i < n; ++i) {
    const auto& state = transport.clients()[i].optimizer_state();
    if (state) CHECK((state->c - ci[i]).norm() <= 1e-12);
    else CHECK(ci[i] == Vector<double>::Zero(2));
  }
}

TEST_CASE("A split SCAFFOLD pair fails loudly: clients without c fail, a server without delta c rejects",
          "[optimizers][Scaffold]") {
  std::vector<DatasetView<double>> shards;
  for (int i = 0; i < 3; ++i)
    shards.push_back(DatasetView<double>::all(quadratic_points(Vector<double>{{1.0 * i, 0.0}}, 1.0)));
  Simulation<Quadratic> sim(Quadratic{}, shards, nullptr, {.rounds = 2, .fraction = 1.0, .threads = 1});
  // Scaffold clients with a plain server: every client reports the missing control variate.
  const auto r1 = sim.run(Scaffold({.sgd = {.steps = 2, .batch_size = 1}}), ServerSgd());
  CHECK(r1.history[0].failed == 3);
  CHECK(!r1.history[0].applied);
  CHECK(r1.params == sim.initial_params());
  // Plain clients with ScaffoldServer: no delta c_i in the reply, so every update is rejected.
  const auto r2 = sim.run(LocalSgd({.steps = 2, .batch_size = 1}), ScaffoldServer());
  CHECK(r2.history[0].rejected_malformed == 3);
  CHECK(r2.params == sim.initial_params());
  // The pair (ScaffoldServer is Scaffold's default server in a Simulation) trains.
  const auto r3 = sim.run(Scaffold({.sgd = {.steps = 2, .batch_size = 1}}));
  CHECK(r3.history[0].accepted == 3);
  CHECK(r3.params != sim.initial_params());

  Scaffold lone;
  Quadratic model;
  auto st = lone.make_state(model);
  Vector<double> w = Vector<double>::Zero(2);
  Rng rng(1);
  CHECK_THROWS_WITH(lone.train(model, w, shards[0], st, {}, rng),
                    Catch::Contains("fedpp::Scaffold: train needs the server control variate"));
  const Vector<double> wrong{{1.0, 2.0, 3.0}};
  LocalExchange<double> ex{as_span(wrong), {}};
  CHECK_THROWS_WITH(lone.train(model, w, shards[0], st, {}, rng, ex),
                    Catch::Contains("the server control variate must have the model's 2 entries"));
}

TEST_CASE("Scaffold validates its settings", "[optimizers][Scaffold]") {
  CHECK_THROWS_WITH(Scaffold({.variant = static_cast<ScaffoldVariant>(5)}), Catch::Contains("fedpp::Scaffold: variant"));
  CHECK_THROWS_WITH(Scaffold({.sgd = {.lr = -1}}), Catch::Contains("fedpp::Scaffold: lr must be finite and > 0, got -1"));
}
