// Tests of fedpp::Mlp: layout, initialisation, exact gradients (finite differences), brute-force
// forward references, error cases, thread safety and training on synthetic problems.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <span>
#include <thread>
#include <utility>
#include <vector>

#include "fedpp/models/mlp.hpp"
#include "fedpp/models/softmax_regression.hpp"
#include "support/model_common.hpp"
#include "support/random.hpp"

using namespace fedpp;
using namespace fedpp_test;

namespace {

// Initial parameters plus noise everywhere, so biases are not zero.
template <typename M>
Vector<typename M::Scalar> perturbed_init_params(const M& model, Rng& rng, double noise = 0.3) {
  Vector<typename M::Scalar> p;
  model.init_params(p, rng);
  for (Index i = 0; i < p.size(); ++i) p(i) += static_cast<typename M::Scalar>(noise * rng.normal());
  return p;
}

// Logits of sample j by explicit loops over the flat vector (weights row-major, then bias).
template <typename S>
std::vector<double> mlp_reference_logits(const std::vector<Index>& sizes, const Vector<S>& p, const Matrix<S>& X,
                                         Index j) {
  std::vector<double> a(static_cast<std::size_t>(X.rows()));
  for (Index i = 0; i < X.rows(); ++i) a[static_cast<std::size_t>(i)] = static_cast<double>(X(i, j));
  Index off = 0;
  const std::size_t L = sizes.size() - 1;
  for (std::size_t l = 1; l <= L; ++l) {
    const Index in = sizes[l - 1], out = sizes[l];
    std::vector<double> z(static_cast<std::size_t>(out));
    for (Index k = 0; k < out; ++k) {
      double s = static_cast<double>(p(off + out * in + k));
      for (Index i = 0; i < in; ++i) s += static_cast<double>(p(off + k * in + i)) * a[static_cast<std::size_t>(i)];
      z[static_cast<std::size_t>(k)] = (l < L) ? std::max(s, 0.0) : s;
    }
    off += out * in + out;
    a = std::move(z);
  }
  return a;
}

struct Problem {
  Matrix<float> X;
  std::vector<Label> y;
};

// Two-dimensional XOR with a margin: class = [x0 > 0] xor [x1 > 0], |x0|, |x1| >= 0.2.
Problem make_xor(Index m, Rng& rng) {
  Problem pr{Matrix<float>(2, m), std::vector<Label>(static_cast<std::size_t>(m))};
  for (Index j = 0; j < m; ++j) {
    double a = 0, b = 0;
    while (std::abs(a) < 0.2 || std::abs(b) < 0.2) {
      a = 2 * rng.uniform() - 1;
      b = 2 * rng.uniform() - 1;
    }
    pr.X(0, j) = static_cast<float>(a);
    pr.X(1, j) = static_cast<float>(b);
    pr.y[static_cast<std::size_t>(j)] = static_cast<Label>((a > 0) != (b > 0));
  }
  return pr;
}

// Full-batch gradient descent; returns the training accuracy.
template <typename M>
double train_full_batch(const M& model, const Problem& pr, int steps, float lr, std::uint64_t seed) {
  auto rng = make_rng(seed, 0, 0, Purpose::model_init);
  Vector<float> p, g;
  model.init_params(p, rng);
  g.resize(p.size());
  for (int t = 0; t < steps; ++t) {
    model.loss_and_gradient(as_span(std::as_const(p)), pr.X, pr.y, as_span(g));
    p -= lr * g;
  }
  return model.evaluate(as_span(std::as_const(p)), pr.X, pr.y).accuracy();
}

}  // namespace

TEST_CASE("Mlp validates its layer sizes", "[models][Mlp]") {
  CHECK_THROWS_WITH(Mlp<>({}), Catch::Contains("fedpp::Mlp") && Catch::Contains("sizes") && Catch::EndsWith("got 0"));
  CHECK_THROWS_WITH(Mlp<>({784}), Catch::Contains("at least 2") && Catch::EndsWith("got 1"));
  CHECK_THROWS_WITH(Mlp<>({784, 0, 10}), Catch::Contains("fedpp::Mlp: sizes[1] must be > 0, got 0"));
  CHECK_THROWS_WITH(Mlp<>({-3, 10}), Catch::Contains("sizes[0] must be > 0, got -3"));
  CHECK_THROWS_WITH(Mlp<>({784, 1}), Catch::Contains("num_classes") && Catch::EndsWith("got 1"));
  CHECK_THROWS_AS(Mlp<>({4, Index{1} << 40}), InvalidArgument);
  CHECK_THROWS_WITH(Mlp<>({Index{1} << 40, Index{1} << 40, 2}), Catch::Contains("overflow"));
  CHECK_NOTHROW(Mlp<double>({1, 2}));
}

TEST_CASE("Mlp layout names, shapes and offsets", "[models][Mlp][layout]") {
  Mlp model({784, 200, 10});  // CTAD picks the float default
  STATIC_REQUIRE(std::is_same_v<decltype(model)::Scalar, float>);
  CHECK(model.input_dim() == 784);
  CHECK(model.num_classes() == 10);
  CHECK(model.num_layers() == 2);
  CHECK(model.num_params() == 784 * 200 + 200 + 200 * 10 + 10);
  const auto& layout = model.layout();
  REQUIRE(layout.size() == 4);
  CHECK(layout.total() == model.num_params());
  const std::vector<std::string> names{"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"};
  const std::vector<std::vector<Index>> shapes{{200, 784}, {200}, {10, 200}, {10}};
  Index off = 0;
  for (std::size_t i = 0; i < layout.size(); ++i) {
    CHECK(layout.segments()[i].name == names[i]);
    CHECK(layout.segments()[i].shape == shapes[i]);
    CHECK(layout.segments()[i].offset == off);
    off += layout.segments()[i].size();
  }
  CHECK(off == model.num_params());

  const Mlp<double> deep({5, 4, 3, 2, 6});
  CHECK(deep.num_params() == 4 * 6 + 3 * 5 + 2 * 4 + 6 * 3);
  CHECK(deep.layout().total() == deep.num_params());
  CHECK(deep.layout().at("fc4.bias").offset == deep.num_params() - 6);
  CHECK(deep.sizes() == std::vector<Index>{5, 4, 3, 2, 6});
}

TEST_CASE("Mlp weight and bias views address the row-major segments", "[models][Mlp]") {
  const Mlp<double> model({3, 4, 2});
  Vector<double> p(model.num_params());
  for (Index i = 0; i < p.size(); ++i) p(i) = static_cast<double>(i);
  const auto& seg = model.layout().at("fc2.weight");
  auto W2 = model.weight(as_span(std::as_const(p)), 1);
  REQUIRE(W2.rows() == 2);
  REQUIRE(W2.cols() == 4);
  for (Index k = 0; k < 2; ++k)
    for (Index j = 0; j < 4; ++j) CHECK(W2(k, j) == p(seg.offset + k * 4 + j));
  CHECK(model.bias(as_span(std::as_const(p)), 0)(3) == p(model.layout().at("fc1.bias").offset + 3));
  model.weight(as_span(p), 0)(1, 2) = -7.0;  // mutable views write through
  CHECK(p(1 * 3 + 2) == -7.0);
  CHECK_THROWS_WITH(model.weight(as_span(p), 2), Catch::Contains("fedpp::Mlp::weight") && Catch::EndsWith("got 2"));
  CHECK_THROWS_AS(model.bias(as_span(p), -1), InvalidArgument);
  Vector<double> short_p(5);
  CHECK_THROWS_AS(model.bias(as_span(short_p), 0), DimensionError);
}

TEST_CASE("Mlp init is deterministic, bounded and scaled per layer", "[models][Mlp][init]") {
  const Mlp<double> model({100, 300, 10});
  const Vector<double> a = seeded_init_params(model, 7), b = seeded_init_params(model, 7),
                       c = seeded_init_params(model, 8);
  REQUIRE(a.size() == model.num_params());
  CHECK(a == b);
  CHECK((a - c).cwiseAbs().maxCoeff() > 0.01);

  const auto w1 = model.weight(as_span(std::as_const(a)), 0);
  const auto w2 = model.weight(as_span(std::as_const(a)), 1);
  const double he = std::sqrt(6.0 / 100.0), glorot = std::sqrt(6.0 / (300.0 + 10.0));
  CHECK(w1.cwiseAbs().maxCoeff() <= he);
  CHECK(w1.cwiseAbs().maxCoeff() > 0.99 * he);
  CHECK(w2.cwiseAbs().maxCoeff() <= glorot);
  CHECK(w2.cwiseAbs().maxCoeff() > 0.95 * glorot);
  // Uniform(-a, a) has variance a^2 / 3.
  CHECK(w1.array().square().mean() == Approx(he * he / 3).epsilon(0.03));
  CHECK(w1.mean() == Approx(0.0).margin(0.01));
  CHECK(model.bias(as_span(std::as_const(a)), 0).isZero(0.0));
  CHECK(model.bias(as_span(std::as_const(a)), 1).isZero(0.0));

  // Resizes whatever it is given; float init is the double init rounded.
  Vector<float> f(3);
  auto r4 = make_rng(7, 0, 0, Purpose::model_init);
  Mlp<float>({100, 300, 10}).init_params(f, r4);
  REQUIRE(f.size() == a.size());
  CHECK(f == a.cast<float>());
}

TEST_CASE("Mlp gradient matches central finite differences", "[models][Mlp][gradient]") {
  const auto sizes = GENERATE(std::vector<Index>{4, 3}, std::vector<Index>{5, 7, 3}, std::vector<Index>{6, 5, 4, 3, 4},
                              std::vector<Index>{3, 8, 2});
  const Index m = GENERATE(as<Index>{}, 1, 7, 20);
  const bool all_classes = GENERATE(true, false);
  CAPTURE(sizes, m, all_classes);
  const Mlp<double> model(sizes);
  auto rng = make_rng(11, static_cast<std::uint64_t>(m), sizes.size(), Purpose::user);
  const Vector<double> p = perturbed_init_params(model, rng);
  const Matrix<double> X = random_inputs<double>(model.input_dim(), m, rng);
  std::vector<Label> y = random_labels(m, model.num_classes(), rng);
  if (all_classes && m >= model.num_classes()) {
    for (int k = 0; k < model.num_classes(); ++k) y[static_cast<std::size_t>(k)] = k;
  } else if (!all_classes) {
    for (auto& v : y) v = std::min<Label>(v, 1);  // only classes 0 and 1 appear
  }

  Vector<double> g = Vector<double>::Constant(model.num_params(), std::numeric_limits<double>::quiet_NaN());
  const double loss = model.loss_and_gradient(as_span(p), X, y, as_span(g));
  const Vector<double> fd = finite_difference_gradient(model, p, X, y);
  REQUIRE(g.allFinite());
  CHECK(loss > 0.0);
  for (Index i = 0; i < g.size(); ++i) {
    CAPTURE(i);
    CHECK(g(i) == Approx(fd(i)).margin(1e-7).epsilon(1e-5));
  }
  // The gradient is far from trivially zero.
  CHECK(g.norm() > 1e-3);
}

TEST_CASE("Mlp at zero parameters has loss log(C) and a closed-form gradient", "[models][Mlp][gradient]") {
  const Mlp<double> model({6, 5, 4, 3});
  auto rng = make_rng(3, 0, 0, Purpose::user);
  const Index m = 12;
  const Matrix<double> X = random_inputs<double>(6, m, rng);
  const std::vector<Label> y{0, 1, 1, 2, 0, 0, 1, 1, 1, 0, 0, 0};
  const Vector<double> p = Vector<double>::Zero(model.num_params());
  Vector<double> g(model.num_params());
  const double loss = model.loss_and_gradient(as_span(p), X, y, as_span(g));
  CHECK(loss == Approx(std::log(3.0)).epsilon(1e-14));
  // Hidden activations are zero, so only the output bias has a gradient: 1/C - frequency.
  const auto& out_bias = model.layout().at("fc3.bias");
  const double freq[3] = {6.0 / 12, 5.0 / 12, 1.0 / 12};
  for (Index k = 0; k < 3; ++k) CHECK(g(out_bias.offset + k) == Approx(1.0 / 3 - freq[k]).margin(1e-15));
  CHECK(g.head(out_bias.offset).isZero(0.0));
  // All logits tie: every prediction is class 0.
  const EvalResult r = model.evaluate(as_span(p), X, y);
  CHECK(r.correct == 6);
  CHECK(r.loss_sum == Approx(12 * std::log(3.0)).epsilon(1e-14));
}

TEST_CASE("Mlp evaluate matches a per-sample brute-force loop", "[models][Mlp][evaluate]") {
  const auto sizes = GENERATE(std::vector<Index>{7, 4}, std::vector<Index>{7, 9, 5}, std::vector<Index>{7, 6, 6, 6, 5});
  const Index m = GENERATE(as<Index>{}, 1, 33, 2500);  // 2500 spans several scratch chunks
  CAPTURE(sizes, m);
  const Mlp<double> model(sizes);
  auto rng = make_rng(5, static_cast<std::uint64_t>(m), sizes.size(), Purpose::user);
  const Vector<double> p = perturbed_init_params(model, rng, 1.0);
  const Matrix<double> X = random_inputs<double>(7, m, rng);
  const std::vector<Label> y = random_labels(m, model.num_classes(), rng);
  const EvalResult want = reference_evaluation([&](Index j) { return mlp_reference_logits(sizes, p, X, j); }, y);
  const EvalResult r = model.evaluate(as_span(p), X, y);
  CHECK(r.count == m);
  CHECK(r.correct == want.correct);
  CHECK(r.loss_sum == Approx(want.loss_sum).epsilon(1e-12));
  // The mean loss of loss_and_gradient agrees.
  Vector<double> g(model.num_params());
  CHECK(model.loss_and_gradient(as_span(p), X, y, as_span(g)) ==
        Approx(want.loss_sum / static_cast<double>(m)).epsilon(1e-12));
  if (m > 100) CHECK(want.correct > 0);
}

TEST_CASE("Mlp evaluate breaks arg-max ties towards the lowest class", "[models][Mlp][evaluate]") {
  // One layer, zero weights, bias {1, 3, 3, 0}: classes 1 and 2 tie, class 1 wins.
  const Mlp<double> model({2, 4});
  Vector<double> p = Vector<double>::Zero(model.num_params());
  model.bias(as_span(p), 0) << 1.0, 3.0, 3.0, 0.0;
  const Matrix<double> X = Matrix<double>::Ones(2, 4);
  const std::vector<Label> y{0, 1, 2, 3};
  const EvalResult r = model.evaluate(as_span(std::as_const(p)), X, y);
  CHECK(r.correct == 1);
  CHECK(r.count == 4);
  const double lse = std::log(std::exp(1.0) + 2 * std::exp(3.0) + 1.0);
  CHECK(r.loss_sum == Approx(4 * lse - (1.0 + 3.0 + 3.0 + 0.0)).epsilon(1e-14));
}

TEST_CASE("Mlp batch loss and gradient are the means of per-sample ones", "[models][Mlp][gradient]") {
  const Mlp<double> model({5, 6, 4, 3});
  auto rng = make_rng(9, 0, 0, Purpose::user);
  const Vector<double> p = perturbed_init_params(model, rng);
  const Index m = GENERATE(as<Index>{}, 9, 1500);  // 1500 is processed in two chunks
  const Matrix<double> X = random_inputs<double>(5, m, rng);
  const std::vector<Label> y = random_labels(m, 3, rng);
  const auto sums = per_sample_sums(model, p, X, y);
  Vector<double> g(model.num_params());
  const double loss = model.loss_and_gradient(as_span(p), X, y, as_span(g));
  CHECK(loss == Approx(sums.loss / static_cast<double>(m)).epsilon(1e-12));
  CHECK((g - sums.gradient / static_cast<double>(m)).cwiseAbs().maxCoeff() <=
        1e-12 * std::max(1.0, g.cwiseAbs().maxCoeff()));
}

TEST_CASE("Mlp accepts a column block of a larger matrix", "[models][Mlp]") {
  const Mlp<double> model({4, 5, 3});
  auto rng = make_rng(2, 0, 0, Purpose::user);
  const Vector<double> p = perturbed_init_params(model, rng);
  const Matrix<double> big = random_inputs<double>(4, 30, rng);
  const Matrix<double> copy = big.middleCols(10, 8);
  const std::vector<Label> y = random_labels(8, 3, rng);
  Vector<double> g1(model.num_params()), g2(model.num_params());
  const double l1 = model.loss_and_gradient(as_span(p), big.middleCols(10, 8), y, as_span(g1));
  const double l2 = model.loss_and_gradient(as_span(p), copy, y, as_span(g2));
  CHECK(l1 == l2);
  CHECK(g1 == g2);
  // A row block has an inner stride: Ref copies it, results agree within rounding.
  const Matrix<double> tall = random_inputs<double>(8, 8, rng);
  const Matrix<double> top = tall.topRows(4);
  CHECK(model.loss_and_gradient(as_span(p), tall.topRows(4), y, as_span(g1)) ==
        Approx(model.loss_and_gradient(as_span(p), top, y, as_span(g2))).epsilon(1e-14));
}

TEST_CASE("Mlp empty batch gives zero loss and a zero gradient", "[models][Mlp]") {
  const Mlp<float> model({3, 4, 2});
  Vector<float> p = Vector<float>::Ones(model.num_params());
  Vector<float> g = Vector<float>::Constant(model.num_params(), 5.0f);
  const Matrix<float> X(3, 0);
  const std::vector<Label> y;
  CHECK(model.loss_and_gradient(as_span(std::as_const(p)), X, y, as_span(g)) == 0.0);
  CHECK(g.isZero(0.0f));
  const EvalResult r = model.evaluate(as_span(std::as_const(p)), X, y);
  CHECK(r.count == 0);
  CHECK(r.correct == 0);
  CHECK(r.loss_sum == 0.0);
  // Sizes are still checked.
  CHECK_THROWS_AS(model.evaluate(as_span(std::as_const(p)), Matrix<float>(0, 0), y), DimensionError);
}

TEST_CASE("Mlp rejects mismatched sizes, bad labels and aliasing", "[models][Mlp][errors]") {
  const Mlp<double> model({4, 5, 3});
  Vector<double> p = Vector<double>::Zero(model.num_params());
  Vector<double> g(model.num_params());
  const Matrix<double> X = Matrix<double>::Ones(4, 3);
  const std::vector<Label> y{0, 2, 1};
  const auto cp = as_span(std::as_const(p));
  REQUIRE_NOTHROW(model.loss_and_gradient(cp, X, y, as_span(g)));

  CHECK_THROWS_AS(model.loss_and_gradient(cp.first(10), X, y, as_span(g)), DimensionError);
  CHECK_THROWS_WITH(model.loss_and_gradient(cp.first(10), X, y, as_span(g)),
                    Catch::Contains("fedpp::Mlp::loss_and_gradient") && Catch::Contains("params") &&
                        Catch::Contains("43") && Catch::EndsWith("got 10"));
  CHECK_THROWS_WITH(model.loss_and_gradient(cp, X, y, as_span(g).first(42)),
                    Catch::Contains("grad") && Catch::EndsWith("got 42"));
  const Matrix<double> X5 = Matrix<double>::Ones(5, 3);
  CHECK_THROWS_AS(model.loss_and_gradient(cp, X5, y, as_span(g)), DimensionError);
  CHECK_THROWS_WITH(model.evaluate(cp, X5, y), Catch::Contains("fedpp::Mlp::evaluate") && Catch::Contains("rows") &&
                                                   Catch::EndsWith("got 5"));
  const std::vector<Label> y2{0, 1};
  CHECK_THROWS_AS(model.loss_and_gradient(cp, X, y2, as_span(g)), DimensionError);
  CHECK_THROWS_WITH(model.evaluate(cp, X, y2), Catch::Contains("label") && Catch::EndsWith("got 2"));
  const std::vector<Label> bad_hi{0, 3, 1}, bad_lo{0, 1, -1};
  CHECK_THROWS_WITH(model.loss_and_gradient(cp, X, bad_hi, as_span(g)),
                    Catch::Contains("y[1] must be in [0, 3)") && Catch::EndsWith("got 3"));
  CHECK_THROWS_WITH(model.evaluate(cp, X, bad_lo), Catch::Contains("y[2]") && Catch::EndsWith("got -1"));
  try {
    (void)model.evaluate(cp, X, bad_hi);
    FAIL("no throw");
  } catch (const DimensionError&) {
    FAIL("a bad label is not a dimension error");
  } catch (const InvalidArgument&) {
  }
  CHECK_THROWS_WITH(model.loss_and_gradient(cp, X, y, as_span(p)), Catch::Contains("overlap"));
}

TEST_CASE("Mlp with two sizes is SoftmaxRegression", "[models][Mlp][SoftmaxRegression]") {
  const Mlp<double> mlp({6, 4});
  const SoftmaxRegression<double> sr(6, 4);
  REQUIRE(mlp.num_params() == sr.num_params());
  Vector<double> a = seeded_init_params(mlp, 4);
  const Vector<double> b = seeded_init_params(sr, 4);
  CHECK(a == b);
  auto rng = make_rng(4, 1, 0, Purpose::user);
  a = perturbed_init_params(mlp, rng);
  const Matrix<double> X = random_inputs<double>(6, 17, rng);
  const std::vector<Label> y = random_labels(17, 4, rng);
  Vector<double> ga(a.size()), gb(a.size());
  CHECK(mlp.loss_and_gradient(as_span(a), X, y, as_span(ga)) == sr.loss_and_gradient(as_span(a), X, y, as_span(gb)));
  CHECK(ga == gb);
}

TEST_CASE("Mlp results do not depend on earlier calls or on the calling thread", "[models][Mlp][threads]") {
  // One Eigen thread, so that GEMM blocking cannot differ between the threads compared here.
  const int eigen_threads = Eigen::nbThreads();
  Eigen::setNbThreads(1);
  const Mlp<float> model({20, 32, 16, 5});
  auto rng = make_rng(6, 0, 0, Purpose::user);
  const Vector<float> p = perturbed_init_params(model, rng);
  constexpr int tasks = 4;
  std::vector<Matrix<float>> Xs;
  std::vector<std::vector<Label>> ys;
  for (int t = 0; t < tasks; ++t) {
    const Index m = 16 + 500 * t;
    Xs.push_back(random_inputs<float>(20, m, rng));
    ys.push_back(random_labels(m, 5, rng));
  }
  std::vector<Vector<float>> expected(tasks, Vector<float>(model.num_params()));
  std::vector<double> expected_loss(tasks);
  std::vector<Index> expected_correct(tasks);
  for (int t = 0; t < tasks; ++t) {
    expected_loss[static_cast<std::size_t>(t)] =
        model.loss_and_gradient(as_span(p), Xs[static_cast<std::size_t>(t)], ys[static_cast<std::size_t>(t)],
                                as_span(expected[static_cast<std::size_t>(t)]));
    expected_correct[static_cast<std::size_t>(t)] =
        model.evaluate(as_span(p), Xs[static_cast<std::size_t>(t)], ys[static_cast<std::size_t>(t)]).correct;
  }
  // The same thread again, after a larger batch grew its scratch: bit-identical.
  Vector<float> g(model.num_params());
  CHECK(model.loss_and_gradient(as_span(p), Xs[0], ys[0], as_span(g)) == expected_loss[0]);
  CHECK(g == expected[0]);

  std::vector<int> mismatches(tasks, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < tasks; ++t) {
    threads.emplace_back([&, t] {
      const auto u = static_cast<std::size_t>(t);
      Vector<float> gt(model.num_params());
      for (int rep = 0; rep < 20; ++rep) {
        const std::size_t k = (u + static_cast<std::size_t>(rep)) % tasks;
        const double loss = model.loss_and_gradient(as_span(p), Xs[k], ys[k], as_span(gt));
        const EvalResult r = model.evaluate(as_span(p), Xs[k], ys[k]);
        if (loss != expected_loss[k] || gt != expected[k] || r.correct != expected_correct[k]) ++mismatches[u];
      }
    });
  }
  for (auto& th : threads) th.join();
  Eigen::setNbThreads(eigen_threads);
  for (int t = 0; t < tasks; ++t) CHECK(mismatches[static_cast<std::size_t>(t)] == 0);
}

TEST_CASE("Mlp float matches double", "[models][Mlp][float]") {
  const Mlp<double> md({8, 16, 12, 4});
  const Mlp<float> mf({8, 16, 12, 4});
  auto rng = make_rng(12, 0, 0, Purpose::user);
  const Vector<double> pd = perturbed_init_params(md, rng);
  const Matrix<double> Xd = random_inputs<double>(8, 300, rng);
  const std::vector<Label> y = random_labels(300, 4, rng);
  const Vector<float> pf = pd.cast<float>();
  const Matrix<float> Xf = Xd.cast<float>();
  Vector<double> gd(md.num_params());
  Vector<float> gf(mf.num_params());
  const double ld = md.loss_and_gradient(as_span(pd), Xd, y, as_span(gd));
  const double lf = mf.loss_and_gradient(as_span(pf), Xf, y, as_span(gf));
  CHECK(lf == Approx(ld).epsilon(1e-5));
  CHECK((gf.cast<double>() - gd).norm() <= 1e-4 * gd.norm());
  const EvalResult ed = md.evaluate(as_span(pd), Xd, y), ef = mf.evaluate(as_span(pf), Xf, y);
  CHECK(ef.loss_sum == Approx(ed.loss_sum).epsilon(1e-5));
  CHECK(std::abs(ef.correct - ed.correct) <= 1);
}

TEST_CASE("Mlp logits far from zero stay finite (log-sum-exp)", "[models][Mlp][stability]") {
  // Output bias of +-1000 would overflow a naive exp in both float and double.
  const Mlp<float> model({2, 3, 3});
  Vector<float> p = Vector<float>::Zero(model.num_params());
  model.bias(as_span(p), 1) << 1000.0f, -1000.0f, 990.0f;
  const Matrix<float> X = Matrix<float>::Ones(2, 3);
  const std::vector<Label> y{0, 1, 2};
  Vector<float> g(model.num_params());
  const double loss = model.loss_and_gradient(as_span(std::as_const(p)), X, y, as_span(g));
  // Per-sample losses: ~0, 2000, 10 (each + log(1 + e^-10) ~ 4.5e-5).
  CHECK(loss == Approx((0.0 + 2000.0 + 10.0) / 3).epsilon(1e-5));
  CHECK(g.allFinite());
  const auto db = model.bias(as_span(std::as_const(g)), 1);
  CHECK(db(0) == Approx(2.0 / 3).margin(1e-4));  // (p0 - 1 + p0 + p0) / 3 with p0 ~ 1
  CHECK(db(1) == Approx(-1.0 / 3).margin(1e-4));
  CHECK(db(2) == Approx(-1.0 / 3).margin(1e-4));
  const EvalResult r = model.evaluate(as_span(std::as_const(p)), X, y);
  CHECK(std::isfinite(r.loss_sum));
  CHECK(r.correct == 1);
}

TEST_CASE("Mlp gradient descent learns XOR, which softmax regression cannot", "[models][Mlp][training]") {
  auto rng = make_rng(21, 0, 0, Purpose::synthetic);
  const Problem xor_problem = make_xor(400, rng);
  const double mlp_accuracy = train_full_batch(Mlp<float>({2, 32, 2}), xor_problem, 400, 0.5f, 1);
  const double linear_accuracy = train_full_batch(SoftmaxRegression<float>(2, 2), xor_problem, 400, 0.5f, 1);
  CHECK(mlp_accuracy >= 0.99);
  CHECK(linear_accuracy < 0.8);
}

TEST_CASE("Mlp gradient descent fits separable Gaussian blobs", "[models][Mlp][training]") {
  auto rng = make_rng(22, 0, 0, Purpose::synthetic);
  const Index d = 10, per_class = 60;
  const int classes = 4;
  Problem pr{Matrix<float>(d, per_class * classes), {}};
  const Matrix<double> centers = 3.0 * random_inputs<double>(d, classes, rng);
  for (int k = 0; k < classes; ++k)
    for (Index i = 0; i < per_class; ++i) {
      pr.X.col(k * per_class + i) = (centers.col(k) + random_inputs<double>(d, 1, rng)).cast<float>();
      pr.y.push_back(k);
    }
  CHECK(train_full_batch(Mlp<float>({d, 16, 8, classes}), pr, 300, 0.1f, 2) >= 0.99);
}

TEST_CASE("Mlp loss, gradient and evaluation of a hand-computed 2-2-2 network", "[models][Mlp][gradient]") {
  // W1 = [[1, -1], [0.5, 0.25]], b1 = [1, 0], W2 = [[2, 3], [-1, 1]], b2 = [0.5, -0.5].
  // Sample 1: x = (1, 2), y = 1. z1 = (1 - 2 + 1, 0.5 + 0.5 + 0) = (0, 1), a1 = (0, 1) (unit 1 sits
  //   exactly at the ReLU kink, whose derivative is taken as 0); z2 = (3.5, 0.5); loss log(1 + e^3);
  //   with q = 1 / (1 + e^-3): dz2 = (q, -q), dW2 = [[0, q], [0, -q]], da1 = W2^T dz2 = (3q, 2q),
  //   dz1 = (0, 2q), dW1 = [[0, 0], [2q, 4q]], db1 = (0, 2q).
  // Sample 2: x = (0, 0), y = 0. z1 = b1 = (1, 0), a1 = (1, 0); z2 = (2.5, -1.5); loss log(1 + e^-4);
  //   with r = 1 / (1 + e^4): dz2 = (-r, r), dW2 = [[-r, 0], [r, 0]], da1 = (-3r, -2r),
  //   dz1 = (-3r, 0) (unit 2 at the kink), dW1 = 0 (x = 0), db1 = (-3r, 0).
  // The batch gradient is the mean of the two.
  const Mlp<double> model({2, 2, 2});
  REQUIRE(model.num_params() == 12);
  Vector<double> p(12);
  p << 1, -1, 0.5, 0.25, 1, 0, 2, 3, -1, 1, 0.5, -0.5;
  Matrix<double> X(2, 2);
  X << 1, 0,  //
      2, 0;
  const std::vector<Label> y{1, 0};
  const double q = 1.0 / (1.0 + std::exp(-3.0)), r = 1.0 / (1.0 + std::exp(4.0));
  Vector<double> want(12);
  want << 0, 0, 2 * q, 4 * q,  // dW1
      -3 * r, 2 * q,           // db1
      -r, q, r, -q,            // dW2
      q - r, r - q;            // db2
  want /= 2.0;
  Vector<double> g(12);
  const double loss = model.loss_and_gradient(as_span(std::as_const(p)), X, y, as_span(g));
  CHECK(loss == Approx((std::log1p(std::exp(3.0)) + std::log1p(std::exp(-4.0))) / 2).epsilon(1e-15));
  CHECK((g - want).cwiseAbs().maxCoeff() <= 1e-15);
  const EvalResult e = model.evaluate(as_span(std::as_const(p)), X, y);
  CHECK(e.count == 2);
  CHECK(e.correct == 1);  // sample 1 is predicted 0, sample 2 is predicted 0
  CHECK(e.loss_sum == Approx(std::log1p(std::exp(3.0)) + std::log1p(std::exp(-4.0))).epsilon(1e-15));
}

TEST_CASE("Mlp init draws (2u - 1) * a per weight in flat order and zeroes every bias", "[models][Mlp][init]") {
  // The documented rule: one rng.uniform() u per weight, layer by layer; He bound sqrt(6 / fan_in)
  // for layers feeding a ReLU, Glorot bound sqrt(6 / (fan_in + fan_out)) for the output layer.
  const Mlp<double> model({3, 4, 5, 2});
  Vector<double> p = Vector<double>::Constant(model.num_params(), std::numeric_limits<double>::quiet_NaN());
  auto rng = make_rng(5, 0, 0, Purpose::model_init);
  model.init_params(p, rng);
  REQUIRE(p.size() == model.num_params());
  auto draws = make_rng(5, 0, 0, Purpose::model_init);
  const std::vector<std::pair<Index, Index>> layers{{3, 4}, {4, 5}, {5, 2}};  // (fan_in, fan_out)
  Index off = 0, bad = 0;
  for (std::size_t l = 0; l < layers.size(); ++l) {
    const auto [in, out] = layers[l];
    const double a = l + 1 < layers.size() ? std::sqrt(6.0 / static_cast<double>(in))
                                           : std::sqrt(6.0 / static_cast<double>(in + out));
    for (Index i = 0; i < in * out; ++i) bad += p(off++) != (2.0 * draws.uniform() - 1.0) * a;
    for (Index i = 0; i < out; ++i) bad += p(off++) != 0.0;
  }
  CHECK(off == model.num_params());
  CHECK(bad == 0);
}
