// ServerMomentum (FedAvgM): single steps and recurrences against long-double references, the
// constant-update closed form, Nesterov, state fields, option errors, and a seeded simulation.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include "fedpp/data/synthetic.hpp"
#include "fedpp/models/softmax_regression.hpp"
#include "fedpp/optimizers/server_momentum.hpp"
#include "fedpp/runtime/simulation.hpp"
#include "support/blobs.hpp"
#include "support/optimizer_reference.hpp"

using namespace fedpp;

namespace {

// Independent long-double FedAvgM over a sequence of updates.
struct RefMomentum {
  long double lr, beta;
  bool nesterov;
  std::vector<long double> x, v;
  void step(const std::vector<long double>& d) {
    for (std::size_t i = 0; i < x.size(); ++i) {
      v[i] = beta * v[i] + d[i];
      x[i] += lr * (nesterov ? beta * v[i] + d[i] : v[i]);
    }
  }
};

}  // namespace

TEST_CASE("ServerMomentum single step: v = update, x += lr * v", "[optimizers][ServerMomentum]") {
  const ServerMomentum opt({.lr = 0.5, .momentum = 0.9});
  auto st = opt.make_state<double>(3);
  REQUIRE(st.velocity.size() == 3);
  CHECK(st.velocity.isZero());
  Vector<double> x(3), u(3);
  x << 1, 2, 3;
  u << 2, -2, 4;
  opt.step(x, u, st, 0);
  CHECK(x == Vector<double>((Vector<double>(3) << 2, 1, 5).finished()));
  CHECK(st.velocity == u);
  CHECK(st.steps == 1);
}

TEST_CASE("ServerMomentum follows its recurrence over several steps", "[optimizers][ServerMomentum]") {
  for (bool nesterov : {false, true}) {
    CAPTURE(nesterov);
    const double lr = 0.7, beta = 0.85;
    const ServerMomentum opt({.lr = lr, .momentum = beta, .nesterov = nesterov});
    Vector<double> x(4);
    x << 0.5, -1.25, 3.0, 0.0;
    RefMomentum ref{lr, beta, nesterov, fedpp_test::to_ld(x), std::vector<long double>(4, 0.0L)};
    auto st = opt.make_state<double>(4);
    Rng rng(7);
    for (int t = 0; t < 8; ++t) {
      Vector<double> u(4);
      for (Index i = 0; i < 4; ++i) u[i] = rng.normal();
      opt.step(x, u, st, static_cast<std::uint64_t>(t));
      ref.step(fedpp_test::to_ld(u));
      for (std::size_t i = 0; i < 4; ++i) {
        CHECK(static_cast<long double>(x[static_cast<Index>(i)]) == Approx(static_cast<double>(ref.x[i])).epsilon(1e-13));
        CHECK(static_cast<long double>(st.velocity[static_cast<Index>(i)]) ==
              Approx(static_cast<double>(ref.v[i])).epsilon(1e-13));
      }
    }
    CHECK(st.steps == 8);
  }
}

TEST_CASE("ServerMomentum on a constant update matches the geometric closed form", "[optimizers][ServerMomentum]") {
  // v_t = d (1 - beta^t) / (1 - beta); x_T = x_0 + lr d sum_{t=1..T} (1 - beta^t) / (1 - beta).
  const double lr = 0.3, beta = 0.9, d = 0.25;
  const ServerMomentum opt({.lr = lr, .momentum = beta});
  Vector<double> x = Vector<double>::Constant(2, 1.0);
  const Vector<double> u = Vector<double>::Constant(2, d);
  auto st = opt.make_state<double>(2);
  long double sum = 0;
  for (int t = 1; t <= 30; ++t) {
    opt.step(x, u, st, 0);
    sum += (1.0L - std::pow(static_cast<long double>(beta), t)) / (1.0L - beta);
    CHECK(x[0] == Approx(static_cast<double>(1.0L + lr * d * sum)).epsilon(1e-12));
    CHECK(x[1] == x[0]);
  }
  // With beta = 0 it is plain FedAvg with a server learning rate.
  const ServerMomentum plain({.lr = 2.0, .momentum = 0.0});
  auto s0 = plain.make_state<float>(2);
  Vector<float> xf = Vector<float>::Constant(2, 1.0f);
  const Vector<float> uf = Vector<float>::Constant(2, 0.5f);
  plain.step(xf, uf, s0, 0);
  plain.step(xf, uf, s0, 1);
  CHECK(xf == Vector<float>::Constant(2, 3.0f));
}

TEST_CASE("ServerMomentum Nesterov step differs from heavy ball by lr * beta * v", "[optimizers][ServerMomentum]") {
  const ServerMomentum heavy({.lr = 1.0, .momentum = 0.5});
  const ServerMomentum nest({.lr = 1.0, .momentum = 0.5, .nesterov = true});
  Vector<double> a = Vector<double>::Zero(1), b = Vector<double>::Zero(1);
  const Vector<double> u = Vector<double>::Constant(1, 1.0);
  auto sa = heavy.make_state<double>(1), sb = nest.make_state<double>(1);
  heavy.step(a, u, sa, 0);  // v = 1, x = 1
  nest.step(b, u, sb, 0);   // v = 1, x = 0.5 + 1 = 1.5
  CHECK(a[0] == 1.0);
  CHECK(b[0] == 1.5);
  heavy.step(a, u, sa, 1);  // v = 1.5, x = 2.5
  nest.step(b, u, sb, 1);   // v = 1.5, x = 1.5 + 0.75 + 1 = 3.25
  CHECK(a[0] == 2.5);
  CHECK(b[0] == 3.25);
}

TEST_CASE("ServerMomentum state lists velocity and steps, and sizes are checked", "[optimizers][ServerMomentum]") {
  const ServerMomentum opt;
  auto st = opt.make_state<float>(5);
  fedpp_test::FieldRecorder rec;
  st.serialize(rec);
  REQUIRE(rec.fields.size() == 2);
  CHECK(rec.fields[0] == &st.velocity);
  CHECK(rec.fields[1] == &st.steps);

  Vector<float> x = Vector<float>::Zero(5), u = Vector<float>::Zero(4);
  CHECK_THROWS_AS(opt.step(x, u, st, 0), DimensionError);
  auto small = opt.make_state<float>(4);
  u = Vector<float>::Zero(5);
  CHECK_THROWS_AS(opt.step(x, u, small, 0), DimensionError);
  CHECK_THROWS_AS(opt.make_state<float>(-1), InvalidArgument);
}

TEST_CASE("ServerMomentum rejects invalid options naming the parameter and value", "[optimizers][ServerMomentum]") {
  CHECK_THROWS_WITH(ServerMomentum({.lr = 0.0}), "fedpp::ServerMomentum: lr must be finite and > 0, got 0");
  CHECK_THROWS_WITH(ServerMomentum({.lr = -1.5}), "fedpp::ServerMomentum: lr must be finite and > 0, got -1.5");
  CHECK_THROWS_WITH(ServerMomentum({.lr = std::numeric_limits<double>::infinity()}),
                    "fedpp::ServerMomentum: lr must be finite and > 0, got inf");
  CHECK_THROWS_WITH(ServerMomentum({.momentum = 1.0}), "fedpp::ServerMomentum: momentum must be in [0, 1), got 1");
  CHECK_THROWS_WITH(ServerMomentum({.momentum = -0.1}),
                    "fedpp::ServerMomentum: momentum must be in [0, 1), got -0.1");
  CHECK_THROWS_AS(ServerMomentum({.momentum = std::numeric_limits<double>::quiet_NaN()}), InvalidArgument);
  CHECK_NOTHROW(ServerMomentum({.lr = 1e-9, .momentum = 0.0}));
}

TEST_CASE("FedAvgM trains in a seeded simulation, bit-identical on 1 and 2 threads", "[optimizers][ServerMomentum][simulation]") {
  const GaussianMixture mix(4, 10, 3.0, 5);
  const auto train = mix.generate<float>(800, 6);
  const auto test = mix.generate<float>(400, 7);
  const auto shards = fedpp_test::contiguous_split(train, 20);
  const SoftmaxRegression<float> model(10, 4);
  std::vector<Vector<float>> finals;
  for (int threads : {1, 2}) {
    Simulation sim(model, shards, test, {.rounds = 10, .fraction = 0.25, .seed = 17, .threads = threads});
    const auto r = sim.run(ServerMomentum({.lr = 1.0, .momentum = 0.5}),
                           LocalSgd({.lr = 0.05, .epochs = 1, .batch_size = 10}));
    REQUIRE(r.history.size() == 10);
    const double initial = model.evaluate(as_span(sim.initial_params()), test->features, test->labels).loss();
    CHECK(r.final_test.loss() < 0.7 * initial);
    CHECK(r.final_accuracy() > 0.6);  // chance is 0.25
    finals.push_back(r.params);
  }
  CHECK(finals[0] == finals[1]);
}
