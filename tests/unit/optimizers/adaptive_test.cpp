// FedAdagrad, FedYogi, FedAdam (Reddi et al. 2021, Algorithm 2): single steps and several steps
// against independent long-double references, Yogi's sign rule with ties, bias correction, state
// fields, option errors, and a seeded simulation on 1 and 2 threads.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "fedpp/data/synthetic.hpp"
#include "fedpp/models/softmax_regression.hpp"
#include "fedpp/optimizers/adaptive.hpp"
#include "fedpp/runtime/simulation.hpp"
#include "support/blobs.hpp"
#include "support/optimizer_reference.hpp"

using namespace fedpp;

namespace {

// Independent long-double implementation of the equations of Algorithm 2.
struct RefAdaptive {
  AdaptiveRule rule;
  long double lr, b1, b2, tau;
  bool bias;
  std::vector<long double> x, m, v;
  int t = 0;
  void step(const std::vector<long double>& d) {
    ++t;
    for (std::size_t i = 0; i < x.size(); ++i) {
      const long double d2 = d[i] * d[i];
      m[i] = b1 * m[i] + (1 - b1) * d[i];
      if (rule == AdaptiveRule::adagrad) {
        v[i] = v[i] + d2;
      } else if (rule == AdaptiveRule::yogi) {
        const long double diff = v[i] - d2;
        const long double sgn = diff > 0 ? 1.0L : (diff < 0 ? -1.0L : 0.0L);
        v[i] = v[i] - (1 - b2) * d2 * sgn;
      } else {
        v[i] = b2 * v[i] + (1 - b2) * d2;
      }
      long double mh = m[i], vh = v[i];
      if (bias) {
        mh /= 1 - std::pow(b1, static_cast<long double>(t));
        if (rule != AdaptiveRule::adagrad) vh /= 1 - std::pow(b2, static_cast<long double>(t));
      }
      x[i] += lr * mh / (std::sqrt(vh) + tau);
    }
  }
};

// Runs `steps` random steps of optimizer Opt and its reference, comparing x, m and v each time.
template <AdaptiveRule R>
void check_against_reference(const AdaptiveServerOptions& o, int steps, std::uint64_t seed) {
  const AdaptiveServer<R> opt(o);
  const Index n = 6;
  Rng rng(seed);
  Vector<double> x(n);
  for (Index i = 0; i < n; ++i) x[i] = rng.normal();
  auto st = opt.template make_state<double>(n);
  RefAdaptive ref{R, o.lr, o.beta1, o.beta2, o.tau, o.bias_correction, fedpp_test::to_ld(x),
                  std::vector<long double>(static_cast<std::size_t>(n), 0.0L),
                  std::vector<long double>(static_cast<std::size_t>(n), static_cast<long double>(o.tau) * o.tau)};
  for (int t = 0; t < steps; ++t) {
    Vector<double> u(n);
    // Mix scales so Yogi's v meets updates both above and below it.
    for (Index i = 0; i < n; ++i) u[i] = rng.normal() * (i % 2 ? 1e-3 : 1.0);
    opt.step(x, u, st, static_cast<std::uint64_t>(t));
    ref.step(fedpp_test::to_ld(u));
    for (Index i = 0; i < n; ++i) {
      const auto k = static_cast<std::size_t>(i);
      CHECK(x[i] == Approx(static_cast<double>(ref.x[k])).epsilon(1e-12).margin(1e-15));
      CHECK(st.m[i] == Approx(static_cast<double>(ref.m[k])).epsilon(1e-12).margin(1e-18));
      CHECK(st.v[i] == Approx(static_cast<double>(ref.v[k])).epsilon(1e-12).margin(1e-18));
    }
  }
  CHECK(st.steps == static_cast<std::uint64_t>(steps));
}

}  // namespace

TEST_CASE("adaptive defaults are the paper's and v starts at tau^2", "[optimizers][adaptive]") {
  const FedAdam adam;
  CHECK(adam.options().lr == 1e-2);
  CHECK(adam.options().beta1 == 0.9);
  CHECK(adam.options().beta2 == 0.99);
  CHECK(adam.options().tau == 1e-3);
  CHECK_FALSE(adam.options().bias_correction);
  const auto st = adam.make_state<float>(3);
  CHECK(st.m.isZero());
  CHECK(st.v == Vector<double>::Constant(3, 1e-6));
  CHECK(st.steps == 0);
  CHECK(FedAdam::name == "fedpp::FedAdam");
  CHECK(FedYogi::name == "fedpp::FedYogi");
  CHECK(FedAdagrad::name == "fedpp::FedAdagrad");
}

TEST_CASE("one FedAdam / FedYogi / FedAdagrad step matches the equations", "[optimizers][adaptive]") {
  // Hand-expanded single step from x = 1, m = 0, v = tau^2 with update d.
  const long double lr = 0.1L, b1 = 0.9L, b2 = 0.99L, tau = 1e-3L, d = 0.5L, v0 = tau * tau;
  const long double m1 = (1 - b1) * d;
  const long double v_adam = b2 * v0 + (1 - b2) * d * d;
  const long double v_yogi = v0 + (1 - b2) * d * d;  // v0 < d^2: sign = -1, v grows
  const long double v_adagrad = v0 + d * d;
  const AdaptiveServerOptions o{.lr = 0.1};
  auto one = [&](auto opt) {
    auto st = opt.template make_state<float>(1);
    Vector<float> x = Vector<float>::Constant(1, 1.0f);
    const Vector<float> u = Vector<float>::Constant(1, 0.5f);
    opt.step(x, u, st, 0);
    return std::pair{x[0], st.v[0]};
  };
  const auto [xa, va] = one(FedAdam(o));
  const auto [xy, vy] = one(FedYogi(o));
  const auto [xg, vg] = one(FedAdagrad(o));
  CHECK(va == Approx(static_cast<double>(v_adam)).epsilon(1e-14));
  CHECK(vy == Approx(static_cast<double>(v_yogi)).epsilon(1e-14));
  CHECK(vg == Approx(static_cast<double>(v_adagrad)).epsilon(1e-14));
  // float params: one rounding to float of the double result.
  CHECK(xa == static_cast<float>(1 + lr * m1 / (std::sqrt(v_adam) + tau)));
  CHECK(xy == static_cast<float>(1 + lr * m1 / (std::sqrt(v_yogi) + tau)));
  CHECK(xg == static_cast<float>(1 + lr * m1 / (std::sqrt(v_adagrad) + tau)));
  // Adagrad's v only grows, so its first step is the smallest of the three.
  CHECK(xg < xa);
}

TEST_CASE("adaptive optimizers follow their recurrences over several steps", "[optimizers][adaptive]") {
  for (bool bias : {false, true}) {
    CAPTURE(bias);
    const AdaptiveServerOptions o{.lr = 0.03, .beta1 = 0.8, .beta2 = 0.95, .tau = 1e-2, .bias_correction = bias};
    check_against_reference<AdaptiveRule::adam>(o, 12, 1);
    check_against_reference<AdaptiveRule::yogi>(o, 12, 2);
    check_against_reference<AdaptiveRule::adagrad>(o, 12, 3);
  }
  check_against_reference<AdaptiveRule::yogi>(AdaptiveServerOptions{}, 20, 4);
}

TEST_CASE("FedYogi's sign rule: v moves toward d^2 additively and stays on ties", "[optimizers][adaptive][FedYogi]") {
  const FedYogi yogi({.lr = 1.0, .beta1 = 0.0, .beta2 = 0.5, .tau = 0.5});  // v starts at 0.25
  auto st = yogi.make_state<double>(3);
  Vector<double> x = Vector<double>::Zero(3);
  Vector<double> u(3);
  u << 1.0, 0.5, 0.25;  // d^2 = 1 (> v), 0.25 (= v, tie), 0.0625 (< v)
  yogi.step(x, u, st, 0);
  CHECK(st.v[0] == 0.25 + 0.5 * 1.0);       // sign(v - d^2) = -1: v += (1 - b2) d^2
  CHECK(st.v[1] == 0.25);                   // tie: sign 0, v unchanged
  CHECK(st.v[2] == 0.25 - 0.5 * 0.0625);    // sign +1: v -= (1 - b2) d^2
  // Adam would have decayed v toward d^2 multiplicatively instead.
  const FedAdam adam({.lr = 1.0, .beta1 = 0.0, .beta2 = 0.5, .tau = 0.5});
  auto sa = adam.make_state<double>(3);
  Vector<double> xa = Vector<double>::Zero(3);
  adam.step(xa, u, sa, 0);
  CHECK(sa.v[0] == 0.5 * 0.25 + 0.5 * 1.0);
  CHECK(sa.v[1] == 0.25);  // b2 v + (1 - b2) v = v on a tie as well
  // x = lr * d / (sqrt(v) + tau) with beta1 = 0 (exact in binary).
  CHECK(x[1] == 0.5 / (0.5 + 0.5));
  // A second tie step keeps v fixed again; a zero update leaves Yogi's v unchanged.
  u << 0.0, 0.5, 0.0;
  const Vector<double> v_before = st.v;
  yogi.step(x, u, st, 1);
  CHECK(st.v == v_before);
}

TEST_CASE("FedAdagrad on a constant update: v_t = tau^2 + t d^2 in closed form", "[optimizers][adaptive][FedAdagrad]") {
  const double lr = 0.2, tau = 1e-3, d = -0.3, b1 = 0.9;
  const FedAdagrad opt({.lr = lr, .beta1 = b1, .tau = tau});
  auto st = opt.make_state<double>(1);
  Vector<double> x = Vector<double>::Zero(1);
  const Vector<double> u = Vector<double>::Constant(1, d);
  long double expect = 0;
  for (int t = 1; t <= 15; ++t) {
    opt.step(x, u, st, 0);
    const long double vt = static_cast<long double>(tau) * tau + t * static_cast<long double>(d) * d;
    const long double mt = d * (1 - std::pow(static_cast<long double>(b1), t));
    expect += lr * mt / (std::sqrt(vt) + tau);
    CHECK(st.v[0] == Approx(static_cast<double>(vt)).epsilon(1e-13));
    CHECK(st.m[0] == Approx(static_cast<double>(mt)).epsilon(1e-13));
    CHECK(x[0] == Approx(static_cast<double>(expect)).epsilon(1e-12));
  }
  CHECK(x[0] < 0);  // moves in the direction of the update
}

TEST_CASE("adaptive state lists m, v and steps, and sizes are checked", "[optimizers][adaptive]") {
  const FedYogi opt;
  auto st = opt.make_state<float>(4);
  fedpp_test::FieldRecorder rec;
  st.serialize(rec);
  REQUIRE(rec.fields.size() == 3);
  CHECK(rec.fields[0] == &st.m);
  CHECK(rec.fields[1] == &st.v);
  CHECK(rec.fields[2] == &st.steps);

  Vector<float> x = Vector<float>::Zero(4), u = Vector<float>::Zero(3);
  CHECK_THROWS_AS(opt.step(x, u, st, 0), DimensionError);
  auto small = opt.make_state<float>(3);
  u = Vector<float>::Zero(4);
  CHECK_THROWS_AS(opt.step(x, u, small, 0), DimensionError);
  CHECK_THROWS_AS(opt.make_state<float>(-2), InvalidArgument);
}

TEST_CASE("adaptive optimizers reject invalid options naming class, parameter and value", "[optimizers][adaptive]") {
  const double inf = std::numeric_limits<double>::infinity();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_WITH(FedAdam({.lr = 0.0}), "fedpp::FedAdam: lr must be finite and > 0, got 0");
  CHECK_THROWS_WITH(FedYogi({.lr = -0.5}), "fedpp::FedYogi: lr must be finite and > 0, got -0.5");
  CHECK_THROWS_WITH(FedAdagrad({.lr = inf}), "fedpp::FedAdagrad: lr must be finite and > 0, got inf");
  CHECK_THROWS_WITH(FedAdam({.beta1 = 1.0}), "fedpp::FedAdam: beta1 must be in [0, 1), got 1");
  CHECK_THROWS_WITH(FedYogi({.beta1 = -0.25}), "fedpp::FedYogi: beta1 must be in [0, 1), got -0.25");
  CHECK_THROWS_WITH(FedAdam({.beta2 = 1.5}), "fedpp::FedAdam: beta2 must be in [0, 1), got 1.5");
  CHECK_THROWS_WITH(FedAdagrad({.tau = 0.0}), "fedpp::FedAdagrad: tau must be finite and > 0, got 0");
  CHECK_THROWS_WITH(FedYogi({.tau = -1e-3}), "fedpp::FedYogi: tau must be finite and > 0, got -0.001");
  CHECK_THROWS_AS(FedAdam({.beta2 = nan}), InvalidArgument);
  CHECK_THROWS_AS(FedAdam({.tau = inf}), InvalidArgument);
  CHECK_NOTHROW(FedAdam({.lr = 1.0, .beta1 = 0.0, .beta2 = 0.0, .tau = 1e-9}));
}

TEST_CASE("FedAdam and FedYogi train in a seeded simulation, bit-identical on 1 and 2 threads",
          "[optimizers][adaptive][simulation]") {
  const GaussianMixture mix(4, 10, 3.0, 5);
  const auto train = mix.generate<float>(800, 6);
  const auto test = mix.generate<float>(400, 7);
  const auto shards = fedpp_test::contiguous_split(train, 20);
  const SoftmaxRegression<float> model(10, 4);
  std::vector<Vector<float>> adam_finals, yogi_finals;
  for (int threads : {1, 2}) {
    Simulation sim(model, shards, test, {.rounds = 10, .fraction = 0.25, .seed = 17, .threads = threads});
    const double initial = model.evaluate(as_span(sim.initial_params()), test->features, test->labels).loss();
    const LocalSgd local({.lr = 0.05, .epochs = 1, .batch_size = 10});
    const auto ra = sim.run(local, FedAdam({.lr = 0.1}));  // policies in any order
    const auto ry = sim.run(FedYogi({.lr = 0.1}), local);
    for (const auto* r : {&ra, &ry}) {
      REQUIRE(r->history.size() == 10);
      CHECK(r->final_test.loss() < 0.7 * initial);
      CHECK(r->final_accuracy() > 0.6);  // chance is 0.25
    }
    CHECK(ra.params != ry.params);
    adam_finals.push_back(ra.params);
    yogi_finals.push_back(ry.params);
  }
  CHECK(adam_finals[0] == adam_finals[1]);
  CHECK(yogi_finals[0] == yogi_finals[1]);
}
