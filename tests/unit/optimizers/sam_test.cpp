// Sam / FedSam: single steps against the closed form of the perturbed gradient on a quadratic (SAM and
// ASAM, with clipping, weight decay and momentum), against an explicit two-pass computation on softmax
// regression, rho = 0 equals LocalSgd bit for bit (an equivalence of two runs of the same loop; the
// independent mini-batch reference is in sgd_loop_test.cpp), stationary points, validation.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <type_traits>

#include "fedpp/models/softmax_regression.hpp"
#include "fedpp/optimizers/sam.hpp"
#include "support/blobs.hpp"
#include "support/checks.hpp"
#include "support/softmax_problem.hpp"
#include "support/quadratic.hpp"

using namespace fedpp;
using fedpp_test::Quadratic;
using fedpp_test::quadratic_points;

static_assert(std::is_same_v<FedSam, Sam>);
static_assert(LocalOptimizer<Sam, Quadratic>);

namespace {

// One SAM step on 0.5 a ||w - c||^2, written out: g1 = a (w - c), e = rho g1 / (||g1|| + eps)
// (ASAM: rho w^2 g1 / (||w g1|| + eps)), g = a (w + e - c).
Vector<double> sam_gradient(const Vector<double>& w, const Vector<double>& c, double a, double rho, bool adaptive,
                            double eps = 1e-7) {
  const Vector<double> g1 = a * (w - c);
  Vector<double> e;
  if (adaptive) {
    const double norm = w.cwiseAbs().cwiseProduct(g1).norm();
    e = rho / (norm + eps) * w.cwiseProduct(w).cwiseProduct(g1);
  } else {
    e = rho / (g1.norm() + eps) * g1;
  }
  return a * (w + e - c);
}

}  // namespace

TEST_CASE("Sam steps on a quadratic follow the closed form of the perturbed gradient", "[optimizers][Sam]") {
  const Vector<double> c{{2.0, -1.0, 0.5}}, w0{{0.5, 0.5, -1.5}};
  const double a = 1.5, lr = 0.1, rho = 0.3;
  auto ds = quadratic_points(c, a);
  const auto view = DatasetView<double>::all(ds);
  Quadratic model{3};
  for (bool adaptive : {false, true}) {
    for (Index K : {1, 4}) {
      CAPTURE(adaptive, K);
      Sam opt({.rho = rho, .adaptive = adaptive, .sgd = {.lr = lr, .steps = K, .batch_size = 1}});
      auto st = opt.make_state(model);
      Vector<double> w = w0;
      Rng rng(3);
      const LocalResult r = opt.train(model, w, view, st, {}, rng);
      Vector<double> ref = w0;
      double loss = 0;
      for (Index k = 0; k < K; ++k) {
        loss += 0.5 * a * (ref - c).squaredNorm();
        ref -= lr * sam_gradient(ref, c, a, rho, adaptive);
      }
      CHECK(r.steps == K);
      CHECK(r.train_loss == Approx(loss / static_cast<double>(K)).epsilon(1e-14));  // loss at the unperturbed point
      CHECK((w - ref).norm() <= 1e-14);
      // SAM moves differently from SGD (the test would pass for a no-op perturbation otherwise).
      const Vector<double> sgd1 = w0 - lr * a * (w0 - c);
      if (K == 1) CHECK((w - sgd1).norm() > 1e-3);
    }
  }
}

TEST_CASE("Sam clips the perturbed gradient, then adds weight decay and momentum as LocalSgd",
          "[optimizers][Sam]") {
  const Vector<double> c{{3.0, -4.0}}, w0{{0.0, 0.0}};
  const double a = 2.0, lr = 0.05, rho = 0.2, wd = 0.01, beta = 0.9, clip = 1.0, decay = 0.9;
  auto ds = quadratic_points(c, a);
  const auto view = DatasetView<double>::all(ds);
  Quadratic model;
  Sam opt({.rho = rho,
           .sgd = {.lr = lr, .steps = 3, .batch_size = 1, .weight_decay = wd, .momentum = beta,
                   .reset_momentum_each_round = false, .clip_norm = clip, .lr_decay = decay}});
  auto st = opt.make_state(model);
  REQUIRE(st.momentum.size() == 2);
  Vector<double> w = w0, ref = w0, v = Vector<double>::Zero(2);
  for (std::uint64_t round = 0; round < 2; ++round) {
    Rng rng(round);
    opt.train(model, w, view, st, {.round = round}, rng);
    const double lr_t = lr * std::pow(decay, static_cast<double>(round));
    for (int k = 0; k < 3; ++k) {
      Vector<double> g = sam_gradient(ref, c, a, rho, false);
      if (g.norm() > clip) g *= clip / g.norm();
      g += wd * ref;
      v = beta * v + g;
      ref -= lr_t * v;
    }
    CHECK((w - ref).norm() <= 1e-14);
    CHECK((st.momentum - v).norm() <= 1e-14);
  }
}

TEST_CASE("Sam on softmax regression uses the gradient at the ascent point of each mini-batch",
          "[optimizers][Sam]") {
  auto ds = fedpp_test::blobs<double>(40, 4, 3, 5);
  const auto view = DatasetView<double>::all(ds);
  SoftmaxRegression<double> model(4, 3);
  Vector<double> w0;
  Rng init(2);
  model.init_params(w0, init);
  const double lr = 0.5, rho = 0.05;
  // One full-batch step (the batch is all 40 samples; the model's mean gradient is order independent
  // up to rounding, hence the tolerance).
  Sam opt({.rho = rho, .sgd = {.lr = lr, .steps = 1, .batch_size = 40}});
  auto st = opt.make_state(model);
  Vector<double> w = w0;
  Rng rng(4);
  opt.train(model, w, view, st, {}, rng);

  Vector<double> g1(w0.size()), g2(w0.size());
  const std::span<const Label> y(ds->labels);
  model.loss_and_gradient(as_span(w0), ds->features, y, as_span(g1));
  const Vector<double> point = w0 + (rho / (g1.norm() + 1e-7)) * g1;
  model.loss_and_gradient(as_span(point), ds->features, y, as_span(g2));
  const Vector<double> ref = w0 - lr * g2;
  CHECK((w - ref).norm() <= 1e-12 * ref.norm());
  const Vector<double> sgd = w0 - lr * g1;
  CHECK((w - sgd).norm() > 1e-4);
}

TEST_CASE("Sam with rho = 0 is LocalSgd bit for bit", "[optimizers][Sam]") {
  const fedpp_test::SoftmaxProblem pb;
  const auto& [ds, view, model, w0] = pb;
  const LocalSgdOptions o{.lr = 0.3, .epochs = 2, .batch_size = 16, .weight_decay = 0.01, .momentum = 0.7,
                          .reset_momentum_each_round = false, .clip_norm = 0.5, .lr_decay = 0.99};
  LocalSgd sgd(o);
  Sam sam({.rho = 0.0, .sgd = o});
  auto s1 = sgd.make_state(model);
  auto s2 = sam.make_state(model);
  Vector<double> w1 = w0, w2 = w0;
  for (std::uint64_t round = 0; round < 2; ++round) {
    Rng r1(round + 10), r2(round + 10);
    const LocalResult a = sgd.train(model, w1, view, s1, {.round = round}, r1);
    const LocalResult b = sam.train(model, w2, view, s2, {.round = round}, r2);
    CHECK(a.train_loss == b.train_loss);
  }
  CHECK(w1 == w2);
  CHECK(s1.momentum == s2.momentum);
}

TEST_CASE("Sam at a stationary point stays there (no division by a zero norm)", "[optimizers][Sam]") {
  const Vector<double> c{{1.0, 2.0}};
  auto ds = quadratic_points(c, 1.0);
  const auto view = DatasetView<double>::all(ds);
  Quadratic model;
  for (double eps : {1e-7, 0.0}) {
    for (bool adaptive : {false, true}) {
      CAPTURE(eps, adaptive);
      Sam opt({.rho = 0.5, .adaptive = adaptive, .eps = eps, .sgd = {.lr = 0.1, .steps = 3, .batch_size = 1}});
      auto st = opt.make_state(model);
      Vector<double> w = c;
      Rng rng(1);
      opt.train(model, w, view, st, {}, rng);
      CHECK(w.allFinite());
      CHECK(w == c);
    }
  }
}

TEST_CASE("Sam validates its settings, naming the class and the value", "[optimizers][Sam]") {
  const auto message = [](const SamOptions& o) { return fedpp_test::message_of([&] { Sam s(o); }); };
  CHECK(message({.rho = -0.1}).find("fedpp::Sam: rho must be finite and >= 0, got -0.1") != std::string::npos);
  CHECK(message({.rho = std::nan("")}).find("fedpp::Sam: rho") != std::string::npos);
  CHECK(message({.eps = -1}).find("fedpp::Sam: eps must be finite and >= 0, got -1") != std::string::npos);
  CHECK(message({.sgd = {.lr = 0}}).find("fedpp::Sam: lr must be finite and > 0, got 0") != std::string::npos);
  CHECK(message({.sgd = {.batch_size = 0}}).find("fedpp::Sam: batch_size") != std::string::npos);
  CHECK(message({}) == "(no throw)");
}
