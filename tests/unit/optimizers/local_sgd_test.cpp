// LocalSgd: matches hand-computed gradient descent, counts steps, validates its settings.
#include <catch2/catch.hpp>

#include "fedpp/models/softmax_regression.hpp"
#include "fedpp/optimizers/local_sgd.hpp"

using namespace fedpp;

namespace {
std::shared_ptr<Dataset<double>> blobs(Index n, Index d, int classes, std::uint64_t seed) {
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
  auto ds = blobs(40, 5, 3, 7);
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
  auto ds = blobs(50, 4, 2, 1);
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
  auto ds = blobs(10, 4, 2, 1);
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
