// LocalSgd: matches hand-computed gradient descent, momentum (heavy ball / Nesterov, reset or kept),
// clipping, per-round lr decay, state checkpoints; counts steps; validates its settings.
#include <catch2/catch.hpp>

#include "fedpp/models/softmax_regression.hpp"
#include "fedpp/optimizers/local_sgd.hpp"
#include "support/quadratic.hpp"

#include <numeric>

using namespace fedpp;
using fedpp_test::Quadratic;
using fedpp_test::quadratic_points;

namespace {
// n samples in d dims; sample j has label j % classes, and features i with i % classes == label are shifted by 2.
std::shared_ptr<Dataset<double>> cyclic_blobs(Index n, Index d, int classes, std::uint64_t seed) {
  auto ds = std::make_shared<Dataset<double>>();
  ds->features.resize(d, n);
  ds->labels.resize(static_cast<std::size_t>(n));
  ds->num_classes = classes;
  Rng rng(seed);
  for (Index j = 0; j < n; ++j) {
    const int y = static_cast<int>(j % classes);
    ds->labels[static_cast<std::size_t>(j)] = y;
    for (Index i = 0; i < d; ++i) ds->features(i, j) = rng.normal() + (i % classes == y ? 2.0 : 0.0);
  }
  return ds;
}
}  // namespace

TEST_CASE("LocalSgd with full batches equals plain gradient descent", "[optimizers][LocalSgd]") {
  auto ds = cyclic_blobs(40, 5, 3, 7);
  const auto view = DatasetView<double>::all(ds);
  SoftmaxRegression<double> model(5, 3);
  Vector<double> w0;
  Rng init(3);
  model.init_params(w0, init);

  const int K = 7;
  LocalSgd opt({.lr = 0.3, .steps = K, .batch_size = 40, .weight_decay = 0.01});
  static_assert(LocalOptimizer<LocalSgd, SoftmaxRegression<double>>);
  auto st = opt.make_state(model);
  Vector<double> w = w0;
  Rng rng(11);
  const LocalResult r = opt.train(model, w, view, st, RoundContext{}, rng);
  CHECK(r.steps == K);
  CHECK(r.samples == 40 * K);

  // Reference: K full-batch steps w <- w - lr (grad + wd w), losses averaged.
  Vector<double> ref = w0, g(w0.size());
  double loss_sum = 0;
  for (int k = 0; k < K; ++k) {
    loss_sum += model.loss_and_gradient(as_span(std::as_const(ref)), ds->features, ds->labels, as_span(g));
    ref -= 0.3 * (g + 0.01 * ref);
  }
  CHECK((w - ref).norm() <= 1e-12 * ref.norm());
  CHECK(r.train_loss == Approx(loss_sum / K).epsilon(1e-12));
}

TEST_CASE("LocalSgd epochs visit every sample once per epoch", "[optimizers][LocalSgd]") {
  auto ds = cyclic_blobs(50, 4, 2, 1);
  const auto view = DatasetView<double>::all(ds);
  SoftmaxRegression<double> model(4, 2);
  Vector<double> w;
  Rng init(3);
  model.init_params(w, init);
  LocalSgd opt({.lr = 0.1, .epochs = 3, .batch_size = 16});
  auto st = opt.make_state(model);
  Rng rng(5);
  const LocalResult r = opt.train(model, w, view, st, RoundContext{}, rng);
  CHECK(r.steps == 3 * 4);  // ceil(50 / 16) = 4 batches per epoch
  CHECK(r.samples == 150);

  // Same stream -> identical result; another stream -> a different order and result.
  Vector<double> w1, w2, w3;
  Rng i1(3), i2(3), i3(3);
  model.init_params(w1, i1);
  model.init_params(w2, i2);
  model.init_params(w3, i3);
  Rng a(9), b(9), c(10);
  opt.train(model, w1, view, st, RoundContext{}, a);
  opt.train(model, w2, view, st, RoundContext{}, b);
  opt.train(model, w3, view, st, RoundContext{}, c);
  CHECK(w1 == w2);
  CHECK(w1 != w3);
}

TEST_CASE("LocalSgd on an empty shard does nothing", "[optimizers][LocalSgd]") {
  auto ds = cyclic_blobs(10, 4, 2, 1);
  DatasetView<double> empty{ds, {}, {}};
  SoftmaxRegression<double> model(4, 2);
  Vector<double> w = Vector<double>::Ones(model.num_params());
  LocalSgd opt;
  auto st = opt.make_state(model);
  Rng rng(1);
  const LocalResult r = opt.train(model, w, empty, st, RoundContext{}, rng);
  CHECK(r.steps == 0);
  CHECK(w == Vector<double>::Ones(model.num_params()));
}

TEST_CASE("LocalSgd validates its settings", "[optimizers][LocalSgd]") {
  CHECK_THROWS_WITH(LocalSgd({.lr = 0}), "fedpp::LocalSgd: lr must be finite and > 0, got 0");
  CHECK_THROWS_WITH(LocalSgd({.lr = 0.1, .epochs = 0}), Catch::Contains("epochs must be >= 1"));
  CHECK_THROWS_AS(LocalSgd({.lr = 0.1, .steps = -1}), InvalidArgument);
  CHECK_THROWS_AS(LocalSgd({.lr = 0.1, .batch_size = 0}), InvalidArgument);
  CHECK_THROWS_AS(LocalSgd({.lr = 0.1, .weight_decay = -1}), InvalidArgument);
  CHECK_THROWS_AS(LocalSgd({.lr = std::nan("")}), InvalidArgument);
  CHECK_NOTHROW(LocalSgd({.lr = 0.1, .epochs = 0, .steps = 5}));
}

// ---- momentum, clipping, learning-rate decay, state ----------------------------------------------

// Below, fedpp_test::Quadratic on one sample c of curvature a: f(w) = 0.5 a ||w - c||^2, so every
// full-batch gradient is a (w - c).

TEST_CASE("LocalSgd heavy-ball momentum follows v <- beta v + g, w <- w - lr v", "[optimizers][LocalSgd]") {
  const Vector<double> c{{1.0, -2.0}};
  const double a = 1.5, lr = 0.1, beta = 0.9, wd = 0.01;
  auto ds = quadratic_points(c, a);
  const auto view = DatasetView<double>::all(ds);
  Quadratic model;
  const int K = 5;
  const Vector<double> w0{{0.5, 0.25}};

  for (const bool reset : {true, false}) {
    for (const bool nesterov : {false, true}) {
      CAPTURE(reset, nesterov);
      LocalSgd opt({.lr = lr, .steps = K, .batch_size = 1, .weight_decay = wd, .momentum = beta,
                    .nesterov = nesterov, .reset_momentum_each_round = reset});
      auto st = opt.make_state(model);
      REQUIRE(st.momentum.size() == 2);
      Vector<double> w = w0;
      Vector<double> ref = w0, v = Vector<double>::Zero(2);
      for (std::uint64_t round = 0; round < 3; ++round) {
        Rng rng(round);
        opt.train(model, w, view, st, RoundContext{.round = round}, rng);
        if (reset) v.setZero();
        for (int k = 0; k < K; ++k) {
          const Vector<double> g = a * (ref - c) + wd * ref;
          v = beta * v + g;
          ref -= lr * (nesterov ? Vector<double>(g + beta * v) : v);
        }
        CHECK((w - ref).norm() <= 1e-12);
        CHECK((st.momentum - v).norm() <= 1e-12);
      }
    }
  }
}

TEST_CASE("LocalSgd momentum buffers differ between reset and carry-over", "[optimizers][LocalSgd]") {
  auto ds = quadratic_points(Vector<double>{{3.0, 3.0}}, 1.0);
  const auto view = DatasetView<double>::all(ds);
  Quadratic model;
  LocalSgd keep({.lr = 0.1, .steps = 2, .batch_size = 1, .momentum = 0.5, .reset_momentum_each_round = false});
  LocalSgd reset({.lr = 0.1, .steps = 2, .batch_size = 1, .momentum = 0.5});
  auto s1 = keep.make_state(model);
  auto s2 = reset.make_state(model);
  Vector<double> w1 = Vector<double>::Zero(2), w2 = w1;
  Rng r1(1), r2(1);
  keep.train(model, w1, view, s1, {}, r1);
  reset.train(model, w2, view, s2, {}, r2);
  CHECK(w1 == w2);  // first round: identical
  w2 = w1;
  keep.train(model, w1, view, s1, {.round = 1}, r1);
  reset.train(model, w2, view, s2, {.round = 1}, r2);
  CHECK((w1 - w2).norm() > 1e-3);  // carried momentum moves further toward c
  CHECK(w1(0) > w2(0));
}

TEST_CASE("LocalSgd clips the gradient only when its norm exceeds clip_norm", "[optimizers][LocalSgd]") {
  const Vector<double> c{{3.0, 4.0}};  // gradient at 0 is -a c, norm 5 a
  Quadratic model;
  const Vector<double> w0 = Vector<double>::Zero(2);
  const double lr = 0.1;
  SECTION("norm above the bound: scaled to the bound") {
    auto ds = quadratic_points(c, 1.0);
    const auto view = DatasetView<double>::all(ds);
    LocalSgd opt({.lr = lr, .steps = 1, .batch_size = 1, .clip_norm = 2.0});
    auto st = opt.make_state(model);
    Vector<double> w = w0;
    Rng rng(1);
    opt.train(model, w, view, st, {}, rng);
    const Vector<double> g = -c;                        // norm 5
    const Vector<double> ref = w0 - lr * (2.0 / 5.0) * g;  // clipped to norm 2
    CHECK((w - ref).norm() <= 1e-14);
    CHECK((w - w0).norm() == Approx(lr * 2.0).epsilon(1e-12));
  }
  SECTION("norm below the bound: bit-identical to no clipping") {
    auto ds = quadratic_points(c, 0.1);  // gradient norm 0.5
    const auto view = DatasetView<double>::all(ds);
    LocalSgd clipped({.lr = lr, .steps = 3, .batch_size = 1, .clip_norm = 2.0});
    LocalSgd plain({.lr = lr, .steps = 3, .batch_size = 1});
    auto s1 = clipped.make_state(model);
    auto s2 = plain.make_state(model);
    Vector<double> w1 = w0, w2 = w0;
    Rng r1(1), r2(1);
    clipped.train(model, w1, view, s1, {}, r1);
    plain.train(model, w2, view, s2, {}, r2);
    CHECK(w1 == w2);
    CHECK(w1 != w0);
  }
}

TEST_CASE("LocalSgd decays the learning rate by lr_decay^round", "[optimizers][LocalSgd]") {
  const Vector<double> c{{1.0, 2.0}};
  auto ds = quadratic_points(c, 2.0);
  const auto view = DatasetView<double>::all(ds);
  Quadratic model;
  const double lr = 0.2, decay = 0.9;
  LocalSgd opt({.lr = lr, .steps = 1, .batch_size = 1, .lr_decay = decay});
  auto st = opt.make_state(model);
  for (std::uint64_t round : {0u, 1u, 4u}) {
    Vector<double> w = Vector<double>::Zero(2);
    Rng rng(1);
    opt.train(model, w, view, st, {.round = round}, rng);
    const Vector<double> ref = -(lr * std::pow(decay, static_cast<double>(round))) * (2.0 * -c);
    CHECK((w - ref).norm() <= 1e-14);
  }
  // Without decay the round does not matter (bit for bit).
  LocalSgd flat({.lr = lr, .steps = 1, .batch_size = 1});
  auto fs = flat.make_state(model);
  Vector<double> a0 = Vector<double>::Zero(2), a7 = a0;
  Rng q0(1), q7(1);
  flat.train(model, a0, view, fs, {.round = 0}, q0);
  flat.train(model, a7, view, fs, {.round = 7}, q7);
  CHECK(a0 == a7);
}

TEST_CASE("LocalSgd with explicit default extensions matches the plain loop bit for bit", "[optimizers][LocalSgd]") {
  auto ds = cyclic_blobs(45, 5, 3, 2);
  const auto view = DatasetView<double>::all(ds);
  SoftmaxRegression<double> model(5, 3);
  Vector<double> w0;
  Rng init(3);
  model.init_params(w0, init);
  LocalSgd opt({.lr = 0.2, .epochs = 2, .batch_size = 10, .weight_decay = 0.01, .momentum = 0.0,
                .nesterov = false, .reset_momentum_each_round = false, .clip_norm = 0.0, .lr_decay = 1.0});
  auto st = opt.make_state(model);
  CHECK(st.momentum.size() == 0);
  Vector<double> w = w0;
  Rng rng(4);
  opt.train(model, w, view, st, {.round = 3}, rng);

  // The original loop, written out: reshuffle per epoch, w <- w - lr (g + wd w).
  Vector<double> ref = w0, g(w0.size());
  Rng rr(4);
  std::vector<std::uint32_t> order(45);
  std::iota(order.begin(), order.end(), 0u);
  Matrix<double> X;
  std::vector<Label> y;
  for (int e = 0; e < 2; ++e) {
    for (std::size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rr.uniform_index(i)]);
    for (std::size_t first = 0; first < 45; first += 10) {
      const std::size_t cnt = std::min<std::size_t>(10, 45 - first);
      view.gather(std::span<const std::uint32_t>(order).subspan(first, cnt), X, y);
      model.loss_and_gradient(as_span(std::as_const(ref)), X, y, as_span(g));
      g += 0.01 * ref;
      ref -= 0.2 * g;
    }
  }
  CHECK(w == ref);
}

TEST_CASE("LocalSgd validates its extended settings", "[optimizers][LocalSgd]") {
  CHECK_THROWS_WITH(LocalSgd({.lr = 0.1, .momentum = 1.0}), "fedpp::LocalSgd: momentum must be in [0, 1), got 1");
  CHECK_THROWS_AS(LocalSgd({.lr = 0.1, .momentum = -0.1}), InvalidArgument);
  CHECK_THROWS_WITH(LocalSgd({.lr = 0.1, .nesterov = true}), Catch::Contains("nesterov needs momentum > 0"));
  CHECK_THROWS_WITH(LocalSgd({.lr = 0.1, .clip_norm = -1}), Catch::Contains("clip_norm must be finite and >= 0"));
  CHECK_THROWS_AS(LocalSgd({.lr = 0.1, .clip_norm = std::nan("")}), InvalidArgument);
  CHECK_THROWS_WITH(LocalSgd({.lr = 0.1, .lr_decay = 0}), "fedpp::LocalSgd: lr_decay must be in (0, 1], got 0");
  CHECK_THROWS_AS(LocalSgd({.lr = 0.1, .lr_decay = 1.5}), InvalidArgument);
  CHECK_NOTHROW(LocalSgd({.lr = 0.1, .momentum = 0.9, .nesterov = true, .clip_norm = 10, .lr_decay = 0.998}));
}

#if __has_include(<cereal/cereal.hpp>)
#include <sstream>

#include "fedpp/serialization/checkpoint.hpp"

TEST_CASE("LocalSgd state round-trips through a checkpoint and resumes identically", "[optimizers][LocalSgd]") {
  auto ds = quadratic_points(Vector<double>{{1.0, -1.0}}, 2.0);
  const auto view = DatasetView<double>::all(ds);
  Quadratic model;
  LocalSgd opt({.lr = 0.1, .steps = 3, .batch_size = 1, .momentum = 0.9, .reset_momentum_each_round = false});
  auto st = opt.make_state(model);
  Vector<double> w = Vector<double>::Zero(2);
  Rng rng(1);
  opt.train(model, w, view, st, {}, rng);
  REQUIRE(st.momentum.norm() > 0);
  std::stringstream ss;
  save_state(st, ss);
  LocalSgd::State<double> back;
  load_state(back, ss);
  CHECK(back.momentum == st.momentum);
  Vector<double> w1 = w, w2 = w;
  Rng r1(2), r2(2);
  opt.train(model, w1, view, st, {.round = 1}, r1);
  opt.train(model, w2, view, back, {.round = 1}, r2);
  CHECK(w1 == w2);
}
#else
// Without cereal (the optional fedpp::serialization component) the round-trip cannot be built: say so.
TEST_CASE("LocalSgd state round-trips through a checkpoint and resumes identically", "[optimizers][LocalSgd]") {
  WARN("skipped: <cereal/cereal.hpp> not found, so the LocalSgd checkpoint round-trip is not tested");
}
#endif
