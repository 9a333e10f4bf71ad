// ErrorFeedback (Mem-SGD / EF) and Ef21: invariants, step-by-step recurrences, error handling,
// and the least-squares experiment of algorithms.md section 5.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include "fedpp/compressors/error_feedback.hpp"
#include "fedpp/compressors/identity.hpp"
#include "support/lossy_compressors.hpp"

#include "fedpp/compressors/sign.hpp"
#include "fedpp/compressors/top_k.hpp"
#include "support/checks.hpp"

using namespace fedpp;
using fedpp_test::TestGrid;
using fedpp_test::TestTopK;

namespace {

template <typename S>
Vector<S> random_vector(Index d, Rng& rng, double scale = 1.0) {
  Vector<S> v(d);
  for (Index i = 0; i < d; ++i) v(i) = static_cast<S>(scale * rng.normal());
  return v;
}

template <typename C, typename S>
Vector<S> decoded(const C& c, const Payload& p, Index d) {
  Vector<S> out(d);
  c.decode(p, as_span(out));
  return out;
}

// A compressor with a round-aware overload that records the rounds it was given.
struct CtxRecorder {
  struct State {
    std::vector<std::uint64_t> rounds;
  };
  template <typename S>
  State make_state(Index) const {
    return {};
  }
  template <typename S>
  Payload encode(std::span<const S> x, State& st, Rng& rng) const {
    st.rounds.push_back(~0ULL);
    Identity::State s;
    return Identity().encode(x, s, rng);
  }
  template <typename S>
  Payload encode(std::span<const S> x, State& st, Rng& rng, const RoundContext& ctx) const {
    st.rounds.push_back(ctx.round);
    Identity::State s;
    return Identity().encode(x, s, rng);
  }
  template <typename S>
  void decode(const Payload& p, std::span<S> out) const {
    Identity().decode(p, out);
  }
};
static_assert(CompressorWithContext<CtxRecorder, float>);

// Checks sum(decoded) + memory == sum(inputs) against a long double reference, with the documented
// bound: per round and coordinate at most one rounding of p = x + e and one of e = p - decoded,
// each <= eps_M / 2 * |value| (values bounded by max |p|).
template <typename S, typename C, typename Mem>
void check_ef_invariant(const C& inner, Index d, int rounds, std::uint64_t seed) {
  using EF = ErrorFeedback<C, Mem>;
  using M = typename EF::template memory_scalar<S>;
  EF ef(inner);
  auto st = ef.template make_state<S>(d);
  std::vector<long double> sum_x(static_cast<std::size_t>(d), 0.0L), sum_sent(static_cast<std::size_t>(d), 0.0L);
  long double bound = 0.0L;
  Rng data(seed);
  for (int t = 0; t < rounds; ++t) {
    const Vector<S> x = random_vector<S>(d, data, 1.0 + t % 7);
    Rng crng = make_rng(seed, static_cast<std::uint64_t>(t), 0, Purpose::compression);
    const Vector<M> before = st.memory;
    const Payload p = ef.encode(as_span(x), st, crng);
    const Vector<S> sent = decoded<EF, S>(ef, p, d);
    long double pmax = 0.0L;
    for (Index i = 0; i < d; ++i) {
      sum_x[static_cast<std::size_t>(i)] += static_cast<long double>(x(i));
      sum_sent[static_cast<std::size_t>(i)] += static_cast<long double>(sent(i));
      pmax = std::max({pmax, std::abs(static_cast<long double>(x(i)) + before(i)),
                       std::abs(static_cast<long double>(st.memory(i)))});
    }
    bound += 2.0L * static_cast<long double>(std::numeric_limits<M>::epsilon()) * pmax;
  }
  long double worst = 0.0L;
  for (Index i = 0; i < d; ++i) {
    const auto k = static_cast<std::size_t>(i);
    worst = std::max(worst, std::abs(sum_sent[k] + static_cast<long double>(st.memory(i)) - sum_x[k]));
  }
  INFO("worst deviation " << static_cast<double>(worst) << ", documented bound " << static_cast<double>(bound));
  CHECK(worst <= bound);
  CHECK(st.memory.cwiseAbs().maxCoeff() > 0);  // the compressor really was lossy
}

}  // namespace

TEST_CASE("ErrorFeedback around Identity is Identity with zero memory", "[compressors][error_feedback]") {
  Rng rng(1);
  const Vector<float> x = random_vector<float>(37, rng);
  ErrorFeedback<Identity> ef;
  auto st = ef.make_state<float>(37);
  Identity::State ist;
  for (int t = 0; t < 3; ++t) {
    const Payload p = ef.encode(as_span(x), st, rng);
    const Payload q = Identity().encode(as_span(x), ist, rng);
    CHECK(fedpp_test::bytes_of(p) == fedpp_test::bytes_of(q));
    CHECK(st.memory.isZero(0.0));
    CHECK(decoded<ErrorFeedback<Identity>, float>(ef, p, 37) == x);
  }
}

TEST_CASE("ErrorFeedback invariant: sum of sent + memory = sum of inputs", "[compressors][error_feedback]") {
  SECTION("top-k, float updates, double memory") { check_ef_invariant<float, TestTopK, double>(TestTopK{5}, 64, 300, 3); }
  SECTION("top-k, float updates, float memory") { check_ef_invariant<float, TestTopK, float>(TestTopK{5}, 64, 300, 4); }
  SECTION("top-k, double updates") { check_ef_invariant<double, TestTopK, double>(TestTopK{3}, 50, 300, 5); }
  SECTION("stochastic grid quantiser (quantisation error goes to memory)") {
    check_ef_invariant<float, TestGrid, double>(TestGrid{0.5}, 40, 300, 6);
    check_ef_invariant<double, TestGrid, double>(TestGrid{0.375}, 40, 300, 7);
  }
  SECTION("library TopK") { check_ef_invariant<float, TopK, double>(TopK::density(0.05), 200, 200, 8); }
  SECTION("library TopK with f16 values") {
    check_ef_invariant<float, TopK, double>(TopK::count(7).with_format(ValueFormat::f16), 100, 200, 10);
  }
  SECTION("library ScaledSign") { check_ef_invariant<float, ScaledSign, double>(ScaledSign(), 200, 200, 9); }
}

TEST_CASE("ErrorFeedback follows p = x + e, e = p - C(p) step by step", "[compressors][error_feedback]") {
  const Index d = 20;
  TestTopK topk{4};
  ErrorFeedback<TestTopK> ef(topk);
  auto st = ef.make_state<double>(d);
  Vector<double> e = Vector<double>::Zero(d);
  Rng data(11), rng(0);
  for (int t = 0; t < 25; ++t) {
    const Vector<double> x = random_vector<double>(d, data);
    const Vector<double> p = x + e;
    Vector<double> c = Vector<double>::Zero(d);
    for (Index i : topk.select<double>(as_span(p))) c(i) = p(i);
    e = p - c;
    const Payload pay = ef.encode(as_span(x), st, rng);
    CHECK(decoded<ErrorFeedback<TestTopK>, double>(ef, pay, d) == c);
    CHECK(st.memory == e);
    CHECK(st.inner.encodes == static_cast<std::uint64_t>(t + 1));
  }
}

TEST_CASE("ErrorFeedback rejects bad input before touching its state", "[compressors][error_feedback]") {
  ErrorFeedback<TestTopK> ef(TestTopK{2});
  auto st = ef.make_state<float>(8);
  Rng rng(2);
  const Vector<float> x = random_vector<float>(8, rng);
  (void)ef.encode(as_span(x), st, rng);
  const Vector<double> mem = st.memory;
  Vector<float> bad = x;
  bad(3) = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH(ef.encode(as_span(std::as_const(bad)), st, rng),
                    Catch::Contains("fedpp::ErrorFeedback: update must be finite"));
  CHECK(st.memory == mem);
  CHECK(st.inner.encodes == 1);
  Vector<float> longer = Vector<float>::Ones(9);
  CHECK_THROWS_AS(ef.encode(as_span(std::as_const(longer)), st, rng), DimensionError);
  CHECK_THROWS_WITH(ef.encode(as_span(std::as_const(longer)), st, rng), Catch::Contains("got 9"));
  CHECK(st.memory == mem);
  // p overflowing float is refused by the inner encoder; the memory is still unchanged.
  ErrorFeedback<TestTopK> ef2(TestTopK{1});
  auto st2 = ef2.make_state<float>(2);
  st2.memory << 3e38, 0.0;
  Vector<float> big(2);
  big << 3e38f, 1.0f;
  CHECK_THROWS_AS(ef2.encode(as_span(std::as_const(big)), st2, rng), InvalidArgument);
  CHECK(st2.memory(0) == 3e38);
  CHECK_THROWS_WITH(ef.make_state<float>(-1), Catch::Contains("dim must be >= 0") && Catch::Contains("got -1"));
  // A zero vector gives a valid payload that decodes to zeros.
  ErrorFeedback<TestTopK> ef3(TestTopK{2});
  auto st3 = ef3.make_state<float>(5);
  const Vector<float> zero = Vector<float>::Zero(5);
  CHECK(decoded<ErrorFeedback<TestTopK>, float>(ef3, ef3.encode(as_span(zero), st3, rng), 5).isZero(0.0));
}

TEST_CASE("ErrorFeedback and Ef21 forward the round context to a round-aware inner compressor",
          "[compressors][error_feedback]") {
  Rng rng(0);
  const Vector<float> x = Vector<float>::Ones(4);
  ErrorFeedback<CtxRecorder> ef;
  auto st = ef.make_state<float>(4);
  (void)ef.encode(as_span(x), st, rng, RoundContext{7, 1, 2});
  (void)ef.encode(as_span(x), st, rng);
  (void)ef.encode(as_span(x), st, rng, RoundContext{9, 1, 2});
  CHECK(st.inner.rounds == std::vector<std::uint64_t>{7, ~0ULL, 9});
  Ef21<CtxRecorder> ef21;
  auto st21 = ef21.make_state<float>(4);
  (void)ef21.encode(as_span(x), st21, rng, RoundContext{3, 1, 2});
  CHECK(st21.inner.rounds == std::vector<std::uint64_t>{3});
}

TEST_CASE("Ef21 follows c = C(x - g), g += c on the client and the server", "[compressors][ef21]") {
  const Index d = 30;
  TestTopK topk{3};
  Ef21<TestTopK> ef(topk);
  auto st = ef.make_state<float>(d);
  auto dst = ef.make_decoder_state<float>(d);
  Vector<double> g = Vector<double>::Zero(d);  // reference, same precision as the default memory
  Rng data(21), rng(0);
  for (int t = 0; t < 40; ++t) {
    const Vector<float> x = random_vector<float>(d, data) + Vector<float>::Constant(d, 0.5f * static_cast<float>(t % 3));
    const Vector<float> diff = (x.cast<double>() - g).cast<float>();
    Vector<float> c = Vector<float>::Zero(d);
    for (Index i : topk.select<float>(as_span(diff))) c(i) = diff(i);
    g += c.cast<double>();
    const Payload p = ef.encode(as_span(x), st, rng);
    CHECK(decoded<Ef21<TestTopK>, float>(ef, p, d) == c);  // stateless decode: the increment
    CHECK(st.g == g);
    Vector<float> out(d);
    ef.decode(p, as_span(out), dst);
    CHECK(dst.g == st.g);  // server and client estimates stay bit-identical
    CHECK(out == g.cast<float>());
  }
  // The estimate tracks a constant input: x - g -> 0 geometrically for top-k.
  const Vector<float> x = random_vector<float>(d, data);
  for (int t = 0; t < 200; ++t) (void)ef.encode(as_span(x), st, rng);
  CHECK((st.g - x.cast<double>()).norm() <= 1e-6 * x.norm());
}

TEST_CASE("Ef21 server decode rejects malformed payloads without touching its state", "[compressors][ef21]") {
  Ef21<TestTopK> ef(TestTopK{2});
  auto st = ef.make_state<double>(6);
  auto dst = ef.make_decoder_state<double>(6);
  Rng rng(4);
  const Vector<double> x = random_vector<double>(6, rng);
  Vector<double> out(6);
  ef.decode(ef.encode(as_span(x), st, rng), as_span(out), dst);
  const Vector<double> g = dst.g;
  CHECK_THROWS_AS(ef.decode(Payload(std::vector<std::uint8_t>{5, 0, 200}), as_span(out), dst), DecodeError);
  CHECK(dst.g == g);
  auto wrong = ef.make_decoder_state<double>(5);
  CHECK_THROWS_WITH(ef.decode(ef.encode(as_span(x), st, rng), as_span(out), wrong),
                    Catch::Contains("fedpp::Ef21::decode") && Catch::Contains("got 5"));
  Vector<double> bad = x;
  bad(0) = INFINITY;
  const Vector<double> gc = st.g;
  CHECK_THROWS_WITH(ef.encode(as_span(std::as_const(bad)), st, rng), Catch::Contains("fedpp::Ef21: update must be finite"));
  CHECK(st.g == gc);
}

namespace {

// Least squares with n heterogeneous workers (algorithms.md section 5, "small experiments"):
// f_i(x) = 1/2 || D_i (H x - z_i) ||^2 with H = H_2 H_1 two Householder reflections (orthogonal and
// dense, applied in O(d)), D_i^2 = diag(a_i), a_ij in [0.5, 1.5], and worker targets z_i far apart.
// f = mean_i f_i has the closed-form minimiser x* = H^T (sum_i a_i z_i / sum_i a_i).
struct LeastSquares {
  Index d = 1000;
  int n = 10;
  std::vector<Vector<double>> a, z;
  Vector<double> v1, v2;

  LeastSquares(Index dim, int workers, std::uint64_t seed) : d(dim), n(workers) {
    Rng rng(seed);
    v1 = random_vector<double>(d, rng).normalized();
    v2 = random_vector<double>(d, rng).normalized();
    const Vector<double> common = random_vector<double>(d, rng);
    for (int i = 0; i < n; ++i) {
      Vector<double> ai(d);
      for (Index j = 0; j < d; ++j) ai(j) = 0.5 + rng.uniform();
      a.push_back(ai);
      z.push_back(common + 3.0 * random_vector<double>(d, rng));
    }
  }
  static Vector<double> reflect(const Vector<double>& v, const Vector<double>& x) { return x - 2.0 * v.dot(x) * v; }
  Vector<double> h(const Vector<double>& x) const { return reflect(v2, reflect(v1, x)); }
  Vector<double> ht(const Vector<double>& y) const { return reflect(v1, reflect(v2, y)); }
  Vector<double> grad(int i, const Vector<double>& x) const {
    return ht(a[static_cast<std::size_t>(i)].cwiseProduct(h(x) - z[static_cast<std::size_t>(i)]));
  }
  Vector<double> optimum() const {
    Vector<double> num = Vector<double>::Zero(d), den = Vector<double>::Zero(d);
    for (int i = 0; i < n; ++i) {
      num += a[static_cast<std::size_t>(i)].cwiseProduct(z[static_cast<std::size_t>(i)]);
      den += a[static_cast<std::size_t>(i)];
    }
    return ht(num.cwiseQuotient(den));
  }
  // L of f and sqrt(mean_i L_i^2) (the L_i are the largest a_ij, H being orthogonal).
  double smooth() const {
    Vector<double> s = Vector<double>::Zero(d);
    for (const auto& ai : a) s += ai;
    return s.maxCoeff() / n;
  }
  double smooth_tilde() const {
    double s = 0;
    for (const auto& ai : a) s += ai.maxCoeff() * ai.maxCoeff();
    return std::sqrt(s / n);
  }
};

template <typename C, bool Stateful>
struct ServerStateOf {
  using type = int;
};
template <typename C>
struct ServerStateOf<C, true> {
  using type = decoder_state_t<C, double>;
};

// Federated GD: each worker sends comp(-gamma * grad_i(x)); x += mean of the decoded updates.
// Returns ||x - x*|| / ||x*|| for the last iterate and for the mean of the last half of the iterates.
struct LsResult {
  double last = 0, averaged = 0;
};

template <typename C>
LsResult run_least_squares(const LeastSquares& pb, const C& comp, double gamma, int rounds) {
  std::vector<compressor_state_t<C, double>> states;
  for (int i = 0; i < pb.n; ++i) states.push_back(comp.template make_state<double>(pb.d));
  [[maybe_unused]] std::vector<typename ServerStateOf<C, StatefulDecoder<C, double>>::type> server_states;
  if constexpr (StatefulDecoder<C, double>)
    for (int i = 0; i < pb.n; ++i) server_states.push_back(comp.template make_decoder_state<double>(pb.d));
  Vector<double> x = Vector<double>::Zero(pb.d), out(pb.d), mean(pb.d), avg = Vector<double>::Zero(pb.d);
  for (int t = 0; t < rounds; ++t) {
    mean.setZero();
    for (int i = 0; i < pb.n; ++i) {
      const Vector<double> u = -gamma * pb.grad(i, x);
      Rng rng = make_rng(1, static_cast<std::uint64_t>(t), static_cast<std::uint64_t>(i), Purpose::compression);
      const Payload p = comp.encode(as_span(u), states[static_cast<std::size_t>(i)], rng);
      if constexpr (StatefulDecoder<C, double>)
        comp.decode(p, as_span(out), server_states[static_cast<std::size_t>(i)]);
      else
        comp.decode(p, as_span(out));
      mean += out;
    }
    x += mean / pb.n;
    if (2 * t >= rounds) avg += x;
  }
  avg /= static_cast<double>(rounds - (rounds + 1) / 2);
  const Vector<double> xs = pb.optimum();
  return {(x - xs).norm() / xs.norm(), (avg - xs).norm() / xs.norm()};
}

}  // namespace

TEST_CASE("least squares, 10 heterogeneous workers, top-k 1%: memory fixes the bias", "[compressors][ef21]") {
  const LeastSquares pb(1000, 10, 2024);
  const TestTopK topk{10};  // k = 1% of d
  // EF21's theory step: gamma = 1 / (L + Lt sqrt(beta / theta)), alpha = k / d.
  const double alpha = 0.01, theta = 1 - std::sqrt(1 - alpha), beta = (1 - alpha) / (1 - std::sqrt(1 - alpha));
  const double gamma = 1.0 / (pb.smooth() + pb.smooth_tilde() * std::sqrt(beta / theta));
  const int rounds = 6000;
  const LsResult gd = run_least_squares(pb, Identity(), gamma, rounds);
  const LsResult plain = run_least_squares(pb, topk, gamma, rounds);
  const LsResult ef = run_least_squares(pb, ErrorFeedback<TestTopK>(topk), gamma, rounds);
  const LsResult ef21 = run_least_squares(pb, Ef21<TestTopK>(topk), gamma, rounds);
  INFO("gamma " << gamma << "; relative error after " << rounds << " rounds (last iterate / mean of the last half): GD "
                << gd.last << " / " << gd.averaged << ", top-k " << plain.last << " / " << plain.averaged << ", EF "
                << ef.last << " / " << ef.averaged << ", EF21 " << ef21.last << " / " << ef21.averaged);
  CHECK(gd.last < 1e-6);
  // Without memory top-k stalls far from the optimum (the workers' large coordinates cancel out).
  CHECK(plain.last > 0.5);
  CHECK(plain.averaged > 0.5);
  // EF (constant step): the iterate oscillates in an O(gamma) neighbourhood; the averaged iterate
  // converges to the optimum (Stich et al.'s averaged iterates, O(1/T)).
  CHECK(ef.last < 0.1);
  CHECK(ef.averaged < 5e-3);
  CHECK(ef.averaged < plain.averaged / 100);
  // EF21 converges linearly to the optimum with the theory step size.
  CHECK(ef21.last < 1e-6);
}

TEST_CASE("EF-SignSGD reaches the optimum where scaled sign alone does not", "[compressors][error_feedback]") {
  // The heterogeneous least squares above (d = 200): the mean of the workers' scaled signs is a
  // biased direction, so plain sign compression stalls; with memory (Karimireddy et al. 2019) the
  // averaged iterate converges to the optimum.
  const LeastSquares pb(200, 10, 7);
  const double gamma = 0.02;
  const int rounds = 4000;
  const LsResult gd = run_least_squares(pb, Identity(), gamma, rounds);
  const LsResult sign = run_least_squares(pb, ScaledSign(), gamma, rounds);
  const LsResult ef = run_least_squares(pb, ErrorFeedback<ScaledSign>(), gamma, rounds);
  INFO("gamma " << gamma << "; relative error after " << rounds << " rounds (last / averaged): GD " << gd.last
                << " / " << gd.averaged << ", sign " << sign.last << " / " << sign.averaged << ", EF-sign " << ef.last
                << " / " << ef.averaged);
  CHECK(gd.last < 1e-10);
  CHECK(sign.last > 0.3);
  CHECK(sign.averaged > 0.3);
  CHECK(ef.last < 0.1);
  CHECK(ef.averaged < 2e-3);
  CHECK(ef.averaged < sign.averaged / 100);
}
