// FedProx: closed form on a quadratic, mu = 0 equals LocalSgd bit for bit, less client drift than
// FedAvg on heterogeneous least squares, thread-count independence, validation. The mu = 0 check
// runs the same loop on both sides (an equivalence, not a reference); the independent mini-batch
// reference of every option combination is in sgd_loop_test.cpp.
#include <catch2/catch.hpp>

#include <cmath>

#include "fedpp/models/softmax_regression.hpp"
#include "fedpp/optimizers/fed_prox.hpp"
#include "fedpp/runtime/simulation.hpp"
#include "support/blobs.hpp"
#include "support/softmax_problem.hpp"
#include "support/quadratic.hpp"

using namespace fedpp;

using fedpp_test::Quadratic;
using fedpp_test::quadratic_points;
static_assert(LocalOptimizer<FedProx, Quadratic>);

TEST_CASE("FedProx on 0.5 a ||w - c||^2 follows the closed form of the proximal objective", "[optimizers][FedProx]") {
  // Local objective 0.5 a ||w - c||^2 + 0.5 mu ||w - w0||^2 has minimiser w* = (a c + mu w0) / (a + mu), and
  // gradient descent from w0 gives w_k - w* = (1 - lr (a + mu))^k (w0 - w*).
  const Vector<double> c{{2.0, -1.0}}, w0{{0.5, 0.5}};
  const double a = 2.0, mu = 0.5, lr = 0.1;
  auto ds = quadratic_points(c, a);
  const auto view = DatasetView<double>::all(ds);
  Quadratic model;
  const Vector<double> wstar = (a * c + mu * w0) / (a + mu);
  for (Index K : {1, 2, 7}) {
    CAPTURE(K);
    FedProx opt({.mu = mu, .sgd = {.lr = lr, .steps = K, .batch_size = 1}});
    auto st = opt.make_state(model);
    Vector<double> w = w0;
    Rng rng(1);
    const LocalResult r = opt.train(model, w, view, st, {}, rng);
    CHECK(r.steps == K);
    const Vector<double> ref = wstar + std::pow(1 - lr * (a + mu), static_cast<double>(K)) * (w0 - wstar);
    CHECK((w - ref).norm() <= 1e-14);
  }
  // Single step: the proximal term vanishes at w = w_global, so step one is plain SGD; step two is not.
  FedProx two({.mu = mu, .sgd = {.lr = lr, .steps = 2, .batch_size = 1}});
  auto st = two.make_state(model);
  Vector<double> w = w0;
  Rng rng(1);
  two.train(model, w, view, st, {}, rng);
  const Vector<double> w1 = w0 - lr * a * (w0 - c);
  const Vector<double> w2 = w1 - lr * (a * (w1 - c) + mu * (w1 - w0));
  CHECK((w - w2).norm() <= 1e-15);
}

TEST_CASE("FedProx with momentum, weight decay and decay adds mu (w - w_global) to the gradient",
          "[optimizers][FedProx]") {
  const Vector<double> c{{1.0, 3.0}}, w0{{-1.0, 0.0}};
  const double a = 1.0, mu = 0.3, lr = 0.05, beta = 0.8, wd = 0.02, decay = 0.95;
  auto ds = quadratic_points(c, a);
  const auto view = DatasetView<double>::all(ds);
  Quadratic model;
  FedProx opt({.mu = mu,
               .sgd = {.lr = lr, .steps = 4, .batch_size = 1, .weight_decay = wd, .momentum = beta,
                       .reset_momentum_each_round = false, .lr_decay = decay}});
  auto st = opt.make_state(model);
  Vector<double> w = w0, ref = w0, v = Vector<double>::Zero(2);
  for (std::uint64_t round = 0; round < 3; ++round) {
    Rng rng(round);
    const Vector<double> global = ref;
    opt.train(model, w, view, st, {.round = round}, rng);
    const double lr_t = lr * std::pow(decay, static_cast<double>(round));
    for (int k = 0; k < 4; ++k) {
      const Vector<double> g = a * (ref - c) + wd * ref + mu * (ref - global);
      v = beta * v + g;
      ref -= lr_t * v;
    }
    CHECK((w - ref).norm() <= 1e-13);
    CHECK((st.momentum - v).norm() <= 1e-13);
  }
}

TEST_CASE("FedProx with mu = 0 is LocalSgd bit for bit", "[optimizers][FedProx]") {
  const fedpp_test::SoftmaxProblem pb;
  const auto& [ds, view, model, w0] = pb;
  const LocalSgdOptions o{.lr = 0.3, .epochs = 2, .batch_size = 16, .weight_decay = 0.01, .momentum = 0.7,
                          .nesterov = true, .reset_momentum_each_round = false, .clip_norm = 0.5, .lr_decay = 0.99};
  LocalSgd sgd(o);
  FedProx prox({.mu = 0.0, .sgd = o});
  auto s1 = sgd.make_state(model);
  auto s2 = prox.make_state(model);
  Vector<double> w1 = w0, w2 = w0;
  for (std::uint64_t round = 0; round < 3; ++round) {
    Rng r1(round + 10), r2(round + 10);
    const LocalResult a = sgd.train(model, w1, view, s1, {.round = round}, r1);
    const LocalResult b = prox.train(model, w2, view, s2, {.round = round}, r2);
    CHECK(a.train_loss == b.train_loss);
    CHECK(a.steps == b.steps);
  }
  CHECK(w1 == w2);
  CHECK(s1.momentum == s2.momentum);
  CHECK(w1 != w0);

  // And mu > 0 changes the result.
  FedProx prox1({.mu = 0.1, .sgd = o});
  auto s3 = prox1.make_state(model);
  Vector<double> w3 = w0, w4 = w0;
  auto s4 = sgd.make_state(model);
  Rng r3(10), r4(10);
  prox1.train(model, w3, view, s3, {}, r3);
  sgd.train(model, w4, view, s4, {}, r4);
  CHECK(w3 != w4);
}

TEST_CASE("FedProx ends closer to the global optimum than FedAvg on heterogeneous least squares",
          "[optimizers][FedProx]") {
  // Three clients with different curvatures a_i and optima c_i (5 noisy points each, full-batch steps).
  // Global objective sum_i 0.5 a_i mean_j ||w - x_ij||^2 has minimiser sum_i a_i xbar_i / sum_i a_i.
  // FedAvg with many local steps weights the client optima almost equally (client drift); the proximal
  // term pulls the weights back toward a_i.
  Quadratic model;
  const std::vector<double> curv{1.0, 4.0, 0.5};
  const std::vector<Vector<double>> centres{Vector<double>{{0.0, 0.0}}, Vector<double>{{2.0, 1.0}},
                                            Vector<double>{{-1.0, 3.0}}};
  Rng noise(42);
  std::vector<DatasetView<double>> shards;
  Vector<double> num = Vector<double>::Zero(2);
  double den = 0;
  for (std::size_t i = 0; i < curv.size(); ++i) {
    Matrix<double> xs(2, 5);
    for (Index j = 0; j < 5; ++j) xs.col(j) = centres[i] + 0.1 * Vector<double>{{noise.normal(), noise.normal()}};
    num += curv[i] * xs.rowwise().mean();
    den += curv[i];
    shards.push_back(DatasetView<double>::all(quadratic_points(xs, curv[i])));
  }
  const Vector<double> optimum = num / den;

  const auto run = [&](double mu) {
    const FedProx opt({.mu = mu, .sgd = {.lr = 0.1, .steps = 20, .batch_size = 5}});
    std::vector<FedProx::State<double>> states;
    for (std::size_t i = 0; i < shards.size(); ++i) states.push_back(opt.make_state(model));
    Vector<double> global = Vector<double>::Zero(2);
    for (std::uint64_t round = 0; round < 60; ++round) {
      Vector<double> sum = Vector<double>::Zero(2);
      for (std::size_t i = 0; i < shards.size(); ++i) {
        Vector<double> w = global;
        Rng rng = make_rng(7, round, static_cast<ClientId>(i), Purpose::shuffle);
        opt.train(model, w, shards[i], states[i], {.round = round, .seed = 7, .client = static_cast<ClientId>(i)},
                  rng);
        sum += w;
      }
      global = sum / static_cast<double>(shards.size());
    }
    return (global - optimum).norm();
  };
  const double fedavg = run(0.0);
  const double fedprox = run(1.0);
  const double fedprox_strong = run(5.0);
  CAPTURE(fedavg, fedprox, fedprox_strong);
  CHECK(fedavg > 0.1);               // the drift is real at this scale
  CHECK(fedprox < 0.8 * fedavg);     // the proximal term reduces it
  CHECK(fedprox_strong < fedprox);   // and more so for larger mu
}

TEST_CASE("FedProx in a Simulation is bit-identical on 1 and 2 threads", "[optimizers][FedProx]") {
  auto train = fedpp_test::blobs<float>(400, 6, 3, 5, 2.5);
  const auto shards = fedpp_test::contiguous_split(train, 8);
  const FedProx opt({.mu = 0.1,
                     .sgd = {.lr = 0.2, .epochs = 1, .batch_size = 16, .momentum = 0.5,
                             .reset_momentum_each_round = false, .clip_norm = 5.0, .lr_decay = 0.99}});
  Vector<float> params[2];
  for (int t : {1, 2}) {
    Simulation sim(SoftmaxRegression<float>(6, 3), shards, nullptr,
                   {.rounds = 6, .fraction = 0.5, .seed = 3, .threads = t});
    params[t - 1] = sim.run(opt).params;
    CHECK(params[t - 1] != sim.initial_params());
  }
  CHECK(params[0] == params[1]);
}

TEST_CASE("FedProx validates its settings", "[optimizers][FedProx]") {
  CHECK_THROWS_WITH(FedProx({.mu = -0.1}), "fedpp::FedProx: mu must be finite and >= 0, got -0.1");
  CHECK_THROWS_AS(FedProx({.mu = std::nan("")}), InvalidArgument);
  CHECK_THROWS_WITH(FedProx({.mu = 0.1, .sgd = {.lr = 0}}), "fedpp::FedProx: lr must be finite and > 0, got 0");
  CHECK_THROWS_WITH(FedProx({.mu = 0.1, .sgd = {.momentum = 1.0}}), Catch::Contains("fedpp::FedProx: momentum"));
  CHECK_NOTHROW(FedProx({.mu = 0.0}));
  CHECK(FedProx().options().mu == 0.01);
}
