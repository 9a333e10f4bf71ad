// FedSpeed: the local round against its recurrence (perturbed quasi-gradient, prox-correction,
// clipping, weight decay), rho = 0 equals FedDyn bit for bit, h_i over several rounds, the paper and
// reference forms (equal under full participation), a whole run against an independent
// implementation, the reference defaults, validation. The rho = 0 and form comparisons run the
// library on both sides; the independent mini-batch reference is in sgd_loop_test.cpp.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "fedpp/aggregators/weighted_mean.hpp"
#include "fedpp/models/softmax_regression.hpp"
#include "fedpp/optimizers/fed_speed.hpp"
#include "fedpp/runtime/simulation.hpp"
#include "support/blobs.hpp"
#include "support/softmax_problem.hpp"
#include "support/quadratic.hpp"

using namespace fedpp;
using fedpp_test::Quadratic;
using fedpp_test::quadratic_points;

static_assert(LocalOptimizer<FedSpeed, Quadratic>);

namespace {

// The quasi-gradient of one step on 0.5 a ||w - c||^2: (1 - alpha) g1 + alpha a (w + e - c),
// e = rho g1 / (||g1|| + 1e-7), g1 = a (w - c).
Vector<double> quasi_gradient(const Vector<double>& w, const Vector<double>& c, double a, double rho, double alpha) {
  const Vector<double> g1 = a * (w - c);
  const Vector<double> e = rho / (g1.norm() + 1e-7) * g1;
  return (1 - alpha) * g1 + alpha * a * (w + e - c);
}

// One FedSpeed round of K steps from x (no clipping): returns x_K, updates h.
Vector<double> fedspeed_round(const Vector<double>& x, Vector<double>& h, const Vector<double>& c, double a,
                              double lr, double prox, double rho, double alpha, int K) {
  Vector<double> w = x;
  for (int k = 0; k < K; ++k) w -= lr * (quasi_gradient(w, c, a, rho, alpha) + prox * (h - x) + prox * w);
  h += w - x;
  return w;
}

}  // namespace

TEST_CASE("FedSpeed's local round follows the perturbed quasi-gradient plus prox (w - x_t + h_i)",
          "[optimizers][FedSpeed]") {
  const Vector<double> c{{2.0, -1.0}}, x0{{0.5, 0.5}}, h0{{0.2, -0.4}};
  const double a = 1.5, prox = 0.3, lr = 0.1, rho = 0.25;
  auto ds = quadratic_points(c, a);
  const auto view = DatasetView<double>::all(ds);
  Quadratic model;
  for (double alpha : {1.0, 0.5, 0.25, 0.0}) {
    CAPTURE(alpha);
    FedSpeed opt({.prox = prox, .rho = rho, .alpha = alpha, .sgd = {.lr = lr, .steps = 4, .batch_size = 1}});
    auto st = opt.make_state(model);
    REQUIRE(st.h == Vector<double>::Zero(2));
    st.h = h0;
    Vector<double> w = x0;
    Rng rng(1);
    opt.train(model, w, view, st, {}, rng);
    Vector<double> h = h0;
    const Vector<double> ref = fedspeed_round(x0, h, c, a, lr, prox, rho, alpha, 4);
    CHECK((w - ref).norm() <= 1e-15);
    CHECK((st.h - h).norm() <= 1e-15);
  }
}

TEST_CASE("FedSpeed clips the quasi-gradient with the correction, then adds (wd + prox) w",
          "[optimizers][FedSpeed]") {
  const Vector<double> c{{4.0, 3.0}}, x0{{0.0, 0.0}}, h0{{-1.0, 0.5}};
  const double a = 1.0, prox = 0.1, lr = 0.1, rho = 0.1, wd = 1e-3, clip = 1.0;
  auto ds = quadratic_points(c, a);
  const auto view = DatasetView<double>::all(ds);
  Quadratic model;
  FedSpeed opt({.prox = prox, .rho = rho, .sgd = {.lr = lr, .steps = 3, .batch_size = 1, .weight_decay = wd,
                                                   .clip_norm = clip}});
  auto st = opt.make_state(model);
  st.h = h0;
  Vector<double> w = x0;
  Rng rng(1);
  opt.train(model, w, view, st, {}, rng);
  Vector<double> ref = x0;
  for (int k = 0; k < 3; ++k) {
    Vector<double> g = quasi_gradient(ref, c, a, rho, 1.0) + prox * (h0 - x0);
    if (g.norm() > clip) g *= clip / g.norm();
    ref -= lr * (g + (wd + prox) * ref);
  }
  CHECK((w - ref).norm() <= 1e-15);
}

TEST_CASE("FedSpeed with rho = 0 is FedDyn with alpha = prox, bit for bit", "[optimizers][FedSpeed]") {
  const fedpp_test::SoftmaxProblem pb;
  const auto& [ds, view, model, w0] = pb;
  const LocalSgdOptions o{.lr = 0.2, .epochs = 2, .batch_size = 16, .weight_decay = 0.01, .clip_norm = 0.5,
                          .lr_decay = 0.99};
  FedDyn dyn({.alpha = 0.2, .sgd = o});
  FedSpeed speed({.prox = 0.2, .rho = 0.0, .sgd = o});
  auto s1 = dyn.make_state(model);
  auto s2 = speed.make_state(model);
  Vector<double> w1 = w0, w2 = w0;
  for (std::uint64_t round = 0; round < 3; ++round) {
    w1 = w0 + 0.01 * static_cast<double>(round) * Vector<double>::Ones(w0.size());
    w2 = w1;
    Rng r1(round), r2(round);
    const LocalResult a = dyn.train(model, w1, view, s1, {.round = round}, r1);
    const LocalResult b = speed.train(model, w2, view, s2, {.round = round}, r2);
    CHECK(a.train_loss == b.train_loss);
    CHECK(w1 == w2);
  }
  CHECK(s1.h == s2.h);
  CHECK(s1.h != Vector<double>::Zero(w0.size()));
}

TEST_CASE("FedSpeed in a Simulation matches an independent implementation of the reference form",
          "[optimizers][FedSpeed]") {
  // Three one-sample clients, full participation; x <- mean_i x_i + (1/N) sum_j h_j.
  const fedpp_test::QuadraticFederation fed;
  const auto& [a, c, shards] = fed;
  const double prox = 0.2, lr = 0.1, rho = 0.05;
  const int K = 5;
  const std::uint64_t rounds = 6;
  Simulation<Quadratic> sim(Quadratic{}, shards, nullptr, {.rounds = rounds, .fraction = 1.0, .threads = 2});
  const auto ref_run =
      sim.run(FedSpeed({.prox = prox, .rho = rho, .sgd = {.lr = lr, .steps = K, .batch_size = 1}}),
              WeightedMean(Weighting::uniform));
  const auto paper_run = sim.run(
      FedSpeed({.prox = prox, .rho = rho, .form = FedSpeedForm::paper, .sgd = {.lr = lr, .steps = K, .batch_size = 1}}),
      WeightedMean(Weighting::uniform));

  Vector<double> x = Vector<double>::Zero(2);
  std::vector<Vector<double>> h(a.size(), Vector<double>::Zero(2));
  for (std::uint64_t t = 0; t < rounds; ++t) {
    Vector<double> mean = Vector<double>::Zero(2), H = Vector<double>::Zero(2);
    for (std::size_t i = 0; i < a.size(); ++i)
      mean += fedspeed_round(x, h[i], c[i], a[i], lr, prox, rho, 1.0, K) / static_cast<double>(a.size());
    for (const auto& hi : h) H += hi;
    x = mean + H / static_cast<double>(a.size());
  }
  CHECK((ref_run.params - x).norm() <= 1e-12);
  // Under full participation the paper's mean of x_hat_i = x_i + h_i is the same model.
  CHECK((paper_run.params - x).norm() <= 1e-12);
}

TEST_CASE("FedSpeed's paper form sends x_hat_i = x_K + h_i and pairs with a plain averaging server",
          "[optimizers][FedSpeed]") {
  const Vector<double> c{{1.0, 1.0}}, x0{{0.0, 0.0}};
  auto ds = quadratic_points(c, 1.0);
  const auto view = DatasetView<double>::all(ds);
  Quadratic model;
  const FedSpeedOptions base{.prox = 0.1, .rho = 0.1, .sgd = {.lr = 0.1, .steps = 3, .batch_size = 1}};
  FedSpeedOptions paper_opts = base;
  paper_opts.form = FedSpeedForm::paper;
  FedSpeed ref(base), paper(paper_opts);
  CHECK(ref.paired_server().options().add_dual);
  CHECK(!paper.paired_server().options().add_dual);
  auto s1 = ref.make_state(model);
  auto s2 = paper.make_state(model);
  for (std::uint64_t round = 0; round < 3; ++round) {
    Vector<double> w1 = x0, w2 = x0;
    Rng r1(round), r2(round);
    ref.train(model, w1, view, s1, {.round = round}, r1);
    paper.train(model, w2, view, s2, {.round = round}, r2);
    CHECK(s1.h == s2.h);
    CHECK((w2 - (w1 + s1.h)).norm() == 0.0);
  }
}

TEST_CASE("FedSpeed's reference options are FL-Simulator's defaults", "[optimizers][FedSpeed]") {
  const FedSpeedOptions o = FedSpeed::reference_options();
  CHECK(o.prox == 0.1);
  CHECK(o.rho == 0.1);
  CHECK(o.alpha == 1.0);
  CHECK(o.form == FedSpeedForm::reference);
  CHECK(o.sgd.lr == 0.1);
  CHECK(o.sgd.epochs == 5);
  CHECK(o.sgd.batch_size == 50);
  CHECK(o.sgd.weight_decay == 1e-3);
  CHECK(o.sgd.clip_norm == 10.0);
  CHECK(o.sgd.lr_decay == 0.998);
  CHECK_NOTHROW(FedSpeed(o));
}

TEST_CASE("FedSpeed validates its settings", "[optimizers][FedSpeed]") {
  CHECK_THROWS_WITH(FedSpeed({.prox = 0}), Catch::Contains("fedpp::FedSpeed: prox must be finite and > 0, got 0"));
  CHECK_THROWS_WITH(FedSpeed({.rho = -1}), Catch::Contains("fedpp::FedSpeed: rho must be finite and >= 0, got -1"));
  CHECK_THROWS_WITH(FedSpeed({.alpha = 1.5}), Catch::Contains("fedpp::FedSpeed: alpha must be in [0, 1], got 1.5"));
  CHECK_THROWS_WITH(FedSpeed({.eps = -1e-3}), Catch::Contains("fedpp::FedSpeed: eps"));
  CHECK_THROWS_WITH(FedSpeed({.form = static_cast<FedSpeedForm>(7)}), Catch::Contains("fedpp::FedSpeed: form"));
  CHECK_THROWS_WITH(FedSpeed({.sgd = {.momentum = 1.0}}), Catch::Contains("fedpp::FedSpeed: momentum must be in [0, 1)"));
}
