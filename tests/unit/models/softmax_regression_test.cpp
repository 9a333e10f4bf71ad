// Tests of fedpp::SoftmaxRegression: layout, initialisation, closed forms, exact gradients (finite
// differences), brute-force references, invariances, error cases and training on separable data.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <span>
#include <thread>
#include <vector>

#include "fedpp/models/softmax_regression.hpp"
#include "support/model_common.hpp"
#include "support/random.hpp"

using namespace fedpp;
using namespace fedpp_test;

namespace {

Vector<double> normal_params(Index n, Rng& rng, double scale = 0.5) {
  Vector<double> p(n);
  for (Index i = 0; i < n; ++i) p(i) = scale * rng.normal();
  return p;
}

// Logits of sample j by explicit loops: W row-major at offset 0, then b.
std::vector<double> softmax_reference_logits(Index d, int classes, const Vector<double>& p, const Matrix<double>& X,
                                             Index j) {
  std::vector<double> z(static_cast<std::size_t>(classes));
  for (Index k = 0; k < classes; ++k) {
    double s = p(classes * d + k);
    for (Index i = 0; i < d; ++i) s += p(k * d + i) * X(i, j);
    z[static_cast<std::size_t>(k)] = s;
  }
  return z;
}

}  // namespace

TEST_CASE("SoftmaxRegression validates its constructor arguments", "[models][SoftmaxRegression]") {
  CHECK_THROWS_WITH(SoftmaxRegression<>(0, 10), "fedpp::SoftmaxRegression: input_dim must be > 0, got 0");
  CHECK_THROWS_WITH(SoftmaxRegression<>(-4, 10), "fedpp::SoftmaxRegression: input_dim must be > 0, got -4");
  CHECK_THROWS_WITH(SoftmaxRegression<>(784, 1), "fedpp::SoftmaxRegression: num_classes must be >= 2, got 1");
  CHECK_THROWS_AS(SoftmaxRegression<double>(784, -2), InvalidArgument);
  CHECK_NOTHROW(SoftmaxRegression<double>(1, 2));
}

TEMPLATE_TEST_CASE("SoftmaxRegression layout and sizes", "[models][SoftmaxRegression][layout]", float, double) {
  const SoftmaxRegression<TestType> model(784, 10);
  STATIC_REQUIRE(std::is_same_v<typename SoftmaxRegression<TestType>::Scalar, TestType>);
  CHECK(model.input_dim() == 784);
  CHECK(model.num_classes() == 10);
  CHECK(model.num_params() == 7850);
  const ParameterLayout& layout = model.layout();
  REQUIRE(layout.size() == 2);
  CHECK(layout.total() == model.num_params());
  CHECK(layout.segments()[0].name == "weight");
  CHECK(layout.segments()[0].offset == 0);
  CHECK(layout.segments()[0].shape == std::vector<Index>{10, 784});
  CHECK(layout.segments()[1].name == "bias");
  CHECK(layout.segments()[1].offset == 7840);
  CHECK(layout.segments()[1].shape == std::vector<Index>{10});
  // Copies are independent, equal models.
  const SoftmaxRegression<TestType> copy = model;
  CHECK(copy.num_params() == model.num_params());
  CHECK(copy.layout().at("bias").offset == 7840);
}

TEST_CASE("SoftmaxRegression views map W row-major and b after it", "[models][SoftmaxRegression]") {
  const SoftmaxRegression<double> model(3, 2);
  Vector<double> p(model.num_params());
  for (Index i = 0; i < p.size(); ++i) p(i) = static_cast<double>(i);
  const auto W = model.weight(as_span(std::as_const(p)));
  REQUIRE(W.rows() == 2);
  REQUIRE(W.cols() == 3);
  CHECK(W(0, 2) == 2.0);
  CHECK(W(1, 0) == 3.0);
  CHECK(W.data() == p.data());  // no copy
  CHECK(model.bias(as_span(std::as_const(p)))(1) == 7.0);
  model.weight(as_span(p))(1, 1) = -1.0;
  CHECK(p(4) == -1.0);
  model.bias(as_span(p)).setZero();
  CHECK(p.tail(2).isZero(0.0));
  Vector<double> wrong(7);
  CHECK_THROWS_WITH(model.weight(as_span(wrong)),
                    Catch::Contains("fedpp::SoftmaxRegression::weight") && Catch::EndsWith("got 7"));
}

TEST_CASE("SoftmaxRegression init is deterministic Glorot-uniform with zero bias", "[models][SoftmaxRegression][init]") {
  const SoftmaxRegression<double> model(200, 10);
  const Vector<double> a = seeded_init_params(model, 1), b = seeded_init_params(model, 1),
                       c = seeded_init_params(model, 2);
  REQUIRE(a.size() == model.num_params());
  CHECK(a == b);
  CHECK(a != c);
  const double limit = std::sqrt(6.0 / 210.0);
  const auto W = model.weight(as_span(std::as_const(a)));
  CHECK(W.cwiseAbs().maxCoeff() <= limit);
  CHECK(W.cwiseAbs().maxCoeff() > 0.99 * limit);
  CHECK(W.array().square().mean() == Approx(limit * limit / 3).epsilon(0.05));
  CHECK(model.bias(as_span(std::as_const(a))).isZero(0.0));
  Vector<float> f;
  auto r4 = make_rng(1, 0, 0, Purpose::model_init);
  SoftmaxRegression<float>(200, 10).init_params(f, r4);
  CHECK(f == a.cast<float>());
}

TEST_CASE("SoftmaxRegression at zero parameters: loss log(C), closed-form gradient", "[models][SoftmaxRegression]") {
  const Index d = 5, m = 8;
  const int C = 4;
  const SoftmaxRegression<double> model(d, C);
  auto rng = make_rng(3, 0, 0, Purpose::user);
  const Matrix<double> X = random_inputs<double>(d, m, rng);
  const std::vector<Label> y{0, 0, 1, 3, 3, 0, 0, 1};  // class 2 absent
  const Vector<double> p = Vector<double>::Zero(model.num_params());
  Vector<double> g = Vector<double>::Constant(model.num_params(), 9.0);
  CHECK(model.loss_and_gradient(as_span(p), X, y, as_span(g)) == Approx(std::log(4.0)).epsilon(1e-15));
  // dW[k, :] = (1/m) sum_i (1/C - [y_i = k]) x_i, db[k] = 1/C - freq_k.
  const auto dW = model.weight(as_span(std::as_const(g)));
  const auto db = model.bias(as_span(std::as_const(g)));
  for (int k = 0; k < C; ++k) {
    Vector<double> expected = Vector<double>::Zero(d);
    double freq = 0.0;
    for (Index i = 0; i < m; ++i) {
      const double coef = 0.25 - (y[static_cast<std::size_t>(i)] == k ? 1.0 : 0.0);
      expected += coef * X.col(i) / static_cast<double>(m);
      freq += (y[static_cast<std::size_t>(i)] == k) / static_cast<double>(m);
    }
    CHECK((dW.row(k).transpose() - expected).cwiseAbs().maxCoeff() <= 1e-15);
    CHECK(db(k) == Approx(0.25 - freq).margin(1e-15));
  }
  // All logits tie: every prediction is class 0 (4 zeros, 2 threes).
  const EvalResult r = model.evaluate(as_span(p), X, y);
  CHECK(r.correct == 4);
  CHECK(r.count == m);
  CHECK(r.loss_sum == Approx(m * std::log(4.0)).epsilon(1e-15));
}

TEST_CASE("SoftmaxRegression two-class case matches the logistic closed form", "[models][SoftmaxRegression]") {
  // W = [[1, 2], [0, -1]], b = [0.5, -0.5], x = [1, 1], y = 1: z = [3.5, -1.5].
  const SoftmaxRegression<double> model(2, 2);
  Vector<double> p(6);
  p << 1, 2, 0, -1, 0.5, -0.5;
  Matrix<double> X(2, 1);
  X << 1, 1;
  const std::vector<Label> y{1};
  Vector<double> g(6);
  const double loss = model.loss_and_gradient(as_span(std::as_const(p)), X, y, as_span(g));
  CHECK(loss == Approx(std::log1p(std::exp(5.0))).epsilon(1e-14));
  const double p1 = 1.0 / (1.0 + std::exp(5.0));  // softmax probability of the true class
  Vector<double> expected(6);
  expected << (1 - p1), (1 - p1), (p1 - 1), (p1 - 1), (1 - p1), (p1 - 1);
  CHECK((g - expected).cwiseAbs().maxCoeff() <= 1e-14);
  CHECK(model.evaluate(as_span(std::as_const(p)), X, y).correct == 0);
}

TEST_CASE("SoftmaxRegression gradient matches central finite differences", "[models][SoftmaxRegression][gradient]") {
  const Index d = GENERATE(as<Index>{}, 1, 6);
  const int C = GENERATE(2, 5);
  const Index m = GENERATE(as<Index>{}, 1, 7, 25);
  const bool all_classes = GENERATE(true, false);
  CAPTURE(d, C, m, all_classes);
  const SoftmaxRegression<double> model(d, C);
  auto rng = make_rng(17, static_cast<std::uint64_t>(m), static_cast<std::uint64_t>(d * 10 + C), Purpose::user);
  const Vector<double> p = normal_params(model.num_params(), rng);
  const Matrix<double> X = random_inputs<double>(d, m, rng);
  std::vector<Label> y = random_labels(m, C, rng);
  if (all_classes && m >= C) {
    for (int k = 0; k < C; ++k) y[static_cast<std::size_t>(k)] = k;
  } else if (!all_classes) {
    std::fill(y.begin(), y.end(), C - 1);  // one class only
  }
  Vector<double> g = Vector<double>::Constant(model.num_params(), std::numeric_limits<double>::quiet_NaN());
  model.loss_and_gradient(as_span(p), X, y, as_span(g));
  REQUIRE(g.allFinite());
  const Vector<double> fd = finite_difference_gradient(model, p, X, y);  // step 1e-6
  for (Index i = 0; i < p.size(); ++i) {
    CAPTURE(i);
    CHECK(g(i) == Approx(fd(i)).margin(1e-8).epsilon(1e-6));
  }
  CHECK(g.norm() > 1e-3);
}

TEST_CASE("SoftmaxRegression gradient sums to zero over classes and ignores a shared shift",
          "[models][SoftmaxRegression][gradient]") {
  const Index d = 4, m = 30;
  const int C = 3;
  const SoftmaxRegression<double> model(d, C);
  auto rng = make_rng(8, 0, 0, Purpose::user);
  const Vector<double> p = normal_params(model.num_params(), rng);
  const Matrix<double> X = random_inputs<double>(d, m, rng);
  const std::vector<Label> y = random_labels(m, C, rng);
  Vector<double> g(model.num_params()), g_shift(model.num_params());
  const double loss = model.loss_and_gradient(as_span(p), X, y, as_span(g));
  const auto dW = model.weight(as_span(std::as_const(g)));
  CHECK(dW.colwise().sum().cwiseAbs().maxCoeff() <= 1e-15);
  CHECK(std::abs(model.bias(as_span(std::as_const(g))).sum()) <= 1e-15);
  // Adding the same vector to every class's weights (and a constant to every bias) changes nothing.
  Vector<double> shifted = p;
  for (int k = 0; k < C; ++k) {
    model.weight(as_span(shifted)).row(k) += Eigen::RowVector4d(0.3, -1.0, 2.0, 0.5);
    model.bias(as_span(shifted))(k) += 4.0;
  }
  CHECK(model.loss_and_gradient(as_span(shifted), X, y, as_span(g_shift)) == Approx(loss).epsilon(1e-12));
  CHECK((g_shift - g).cwiseAbs().maxCoeff() <= 1e-12);
}

TEST_CASE("SoftmaxRegression evaluate and loss match a brute-force loop", "[models][SoftmaxRegression][evaluate]") {
  const Index d = 9;
  const int C = 6;
  const Index m = GENERATE(as<Index>{}, 1, 40, 2100);  // 2100 spans three scratch chunks
  const SoftmaxRegression<double> model(d, C);
  auto rng = make_rng(19, static_cast<std::uint64_t>(m), 0, Purpose::user);
  const Vector<double> p = normal_params(model.num_params(), rng, 1.0);
  const Matrix<double> X = random_inputs<double>(d, m, rng);
  const std::vector<Label> y = random_labels(m, C, rng);
  const EvalResult want = reference_evaluation([&](Index j) { return softmax_reference_logits(d, C, p, X, j); }, y);
  const EvalResult r = model.evaluate(as_span(p), X, y);
  CHECK(r.count == m);
  CHECK(r.correct == want.correct);
  CHECK(r.loss_sum == Approx(want.loss_sum).epsilon(1e-12));
  // Batch loss/gradient = mean of per-sample ones (across chunk boundaries too).
  const auto sums = per_sample_sums(model, p, X, y);
  Vector<double> g(model.num_params());
  const double loss = model.loss_and_gradient(as_span(p), X, y, as_span(g));
  CHECK(loss == Approx(want.loss_sum / static_cast<double>(m)).epsilon(1e-12));
  CHECK(loss == Approx(sums.loss / static_cast<double>(m)).epsilon(1e-12));
  CHECK((g - sums.gradient / static_cast<double>(m)).cwiseAbs().maxCoeff() <= 1e-12);
}

TEST_CASE("SoftmaxRegression handles empty batches and rejects bad input", "[models][SoftmaxRegression][errors]") {
  const SoftmaxRegression<float> model(3, 4);
  const Vector<float> p = Vector<float>::Ones(model.num_params());
  Vector<float> g = Vector<float>::Constant(model.num_params(), 2.0f);
  const std::vector<Label> none;
  CHECK(model.loss_and_gradient(as_span(p), Matrix<float>(3, 0), none, as_span(g)) == 0.0);
  CHECK(g.isZero(0.0f));
  const EvalResult e = model.evaluate(as_span(p), Matrix<float>(3, 0), none);
  CHECK(e.count == 0);
  CHECK(e.loss_sum == 0.0);

  const Matrix<float> X = Matrix<float>::Ones(3, 2);
  const std::vector<Label> y{3, 0};
  REQUIRE_NOTHROW(model.loss_and_gradient(as_span(p), X, y, as_span(g)));
  CHECK_THROWS_WITH(model.loss_and_gradient(as_span(p).first(15), X, y, as_span(g)),
                    "fedpp::SoftmaxRegression::loss_and_gradient: params must have num_params() = 16 entries, got 15");
  CHECK_THROWS_AS(model.loss_and_gradient(as_span(p), X, y, as_span(g).first(3)), DimensionError);
  CHECK_THROWS_WITH(model.evaluate(as_span(p), Matrix<float>::Ones(2, 2), y),
                    "fedpp::SoftmaxRegression::evaluate: X must have input_dim() = 3 rows, got 2");
  CHECK_THROWS_AS(model.evaluate(as_span(p), Matrix<float>::Ones(3, 3), y), DimensionError);
  CHECK_THROWS_WITH(model.evaluate(as_span(p), X, std::vector<Label>{0, 4}),
                    "fedpp::SoftmaxRegression::evaluate: y[1] must be in [0, 4), got 4");
  CHECK_THROWS_AS(model.loss_and_gradient(as_span(p), X, std::vector<Label>{-1, 0}, as_span(g)), InvalidArgument);
  Vector<float> both(2 * model.num_params());
  CHECK_THROWS_WITH(model.loss_and_gradient(as_span(std::as_const(both)).first(16), X, y,
                                            as_span(both).subspan(8, 16)),
                    Catch::Contains("overlap"));
  CHECK_NOTHROW(model.loss_and_gradient(as_span(std::as_const(both)).first(16), X, y, as_span(both).subspan(16, 16)));
}

TEST_CASE("SoftmaxRegression float matches double", "[models][SoftmaxRegression][float]") {
  const SoftmaxRegression<double> md(12, 5);
  const SoftmaxRegression<float> mf(12, 5);
  auto rng = make_rng(13, 0, 0, Purpose::user);
  const Vector<double> pd = normal_params(md.num_params(), rng);
  const Matrix<double> Xd = random_inputs<double>(12, 200, rng);
  const std::vector<Label> y = random_labels(200, 5, rng);
  Vector<double> gd(md.num_params());
  Vector<float> gf(mf.num_params());
  const Vector<float> pf = pd.cast<float>();
  const double ld = md.loss_and_gradient(as_span(pd), Xd, y, as_span(gd));
  const double lf = mf.loss_and_gradient(as_span(pf), Matrix<float>(Xd.cast<float>()), y, as_span(gf));
  CHECK(lf == Approx(ld).epsilon(1e-5));
  CHECK((gf.cast<double>() - gd).norm() <= 1e-5 * gd.norm());
}

TEST_CASE("SoftmaxRegression is safe to call from several threads", "[models][SoftmaxRegression][threads]") {
  const int eigen_threads = Eigen::nbThreads();
  Eigen::setNbThreads(1);
  const SoftmaxRegression<double> model(30, 7);
  auto rng = make_rng(14, 0, 0, Purpose::user);
  const Vector<double> p = normal_params(model.num_params(), rng);
  std::vector<Matrix<double>> Xs;
  std::vector<std::vector<Label>> ys;
  std::vector<Vector<double>> expected;
  for (Index m : {5, 300, 1300}) {
    Xs.push_back(random_inputs<double>(30, m, rng));
    ys.push_back(random_labels(m, 7, rng));
    expected.emplace_back(model.num_params());
    model.loss_and_gradient(as_span(p), Xs.back(), ys.back(), as_span(expected.back()));
  }
  std::vector<int> bad(3, 0);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < 3; ++t)
    threads.emplace_back([&, t] {
      Vector<double> g(model.num_params());
      for (std::size_t rep = 0; rep < 30; ++rep) {
        const std::size_t k = (t + rep) % 3;
        model.loss_and_gradient(as_span(p), Xs[k], ys[k], as_span(g));
        if (g != expected[k]) ++bad[t];
      }
    });
  for (auto& th : threads) th.join();
  Eigen::setNbThreads(eigen_threads);
  CHECK(bad == std::vector<int>{0, 0, 0});
}

TEST_CASE("SoftmaxRegression gradient descent separates Gaussian blobs", "[models][SoftmaxRegression][training]") {
  auto rng = make_rng(23, 0, 0, Purpose::synthetic);
  const Index d = 8, per_class = 50;
  const int C = 5;
  const Matrix<double> centers = 3.0 * random_inputs<double>(d, C, rng);
  Matrix<float> X(d, per_class * C);
  std::vector<Label> y;
  for (int k = 0; k < C; ++k)
    for (Index i = 0; i < per_class; ++i) {
      X.col(k * per_class + i) = (centers.col(k) + random_inputs<double>(d, 1, rng)).cast<float>();
      y.push_back(k);
    }
  const SoftmaxRegression<float> model(d, C);
  auto init_rng = make_rng(23, 0, 0, Purpose::model_init);
  Vector<float> p, g(model.num_params());
  model.init_params(p, init_rng);
  const EvalResult before = model.evaluate(as_span(std::as_const(p)), X, y);
  double previous = std::numeric_limits<double>::infinity();
  bool monotone = true;
  for (int step = 0; step < 300; ++step) {
    const double loss = model.loss_and_gradient(as_span(std::as_const(p)), X, y, as_span(g));
    monotone = monotone && loss <= previous;
    previous = loss;
    p -= 0.05f * g;
  }
  const EvalResult after = model.evaluate(as_span(std::as_const(p)), X, y);
  CHECK(monotone);  // small-step gradient descent on a convex smooth loss
  CHECK(after.loss() < 0.1 * before.loss());
  CHECK(after.accuracy() >= 0.99);
  CHECK(before.accuracy() < 0.9);
}

TEST_CASE("SoftmaxRegression init draws (2u - 1) * sqrt(6 / (d + C)) per weight, bias zero",
          "[models][SoftmaxRegression][init]") {
  const SoftmaxRegression<float> model(7, 3);
  Vector<float> p = Vector<float>::Constant(model.num_params(), std::numeric_limits<float>::quiet_NaN());
  auto rng = make_rng(2, 0, 0, Purpose::model_init);
  model.init_params(p, rng);
  REQUIRE(p.size() == 24);
  auto draws = make_rng(2, 0, 0, Purpose::model_init);
  const double a = std::sqrt(6.0 / 10.0);
  Index bad = 0;
  for (Index i = 0; i < 21; ++i) bad += p(i) != static_cast<float>((2.0 * draws.uniform() - 1.0) * a);
  CHECK(bad == 0);
  CHECK(p.tail(3).isZero(0.0f));
}
