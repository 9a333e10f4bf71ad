// Tests of fedpp::Dgc (Deep Gradient Compression): a step-by-step reference written here from the
// equations of algorithms.md 4.1-4.4, the reference code's sampled-threshold procedure, warm-up
// schedules, invariants, thread-count independence, option errors and a small convergence run.
#include "fedpp/compressors/dgc.hpp"

#include <catch2/catch.hpp>

#include "fedpp/data/synthetic.hpp"
#include "fedpp/models/softmax_regression.hpp"
#include "fedpp/optimizers/local_sgd.hpp"
#include "fedpp/runtime/client.hpp"
#include "support/compressor_common.hpp"
#include "support/checks.hpp"
#include "golden/dgc_inputs.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <limits>
#include <string>
#include <utility>
#include <vector>

using namespace fedpp;
using namespace fedpp_test;

namespace {

// ---- the step-by-step reference ----------------------------------------------------------------

struct RefState {
  std::vector<float> u, v;
};

// One DGC step (algorithms.md 4.1, 4.3) with exact top-k per segment; returns the (index, value) pairs.
std::vector<std::pair<Index, float>> ref_step(const std::vector<float>& x, RefState& st, const DgcOptions& o,
                                              double rho, const std::vector<Index>& seg_sizes) {
  std::vector<std::pair<Index, float>> sent;
  const float m = static_cast<float>(o.momentum);
  Index off = 0;
  for (Index n : seg_sizes) {
    std::vector<float> g(x.begin() + off, x.begin() + off + n);
    if (o.clip_norm > 0) {
      double ss = 0;
      for (float a : g) ss += static_cast<double>(a) * a;
      const double c = o.clip_norm / std::sqrt(static_cast<double>(o.num_workers)) / (std::sqrt(ss) + 1e-6);
      if (c < 1.0)
        for (float& a : g) a *= static_cast<float>(c);
    }
    std::vector<float> vseg(static_cast<std::size_t>(n));
    for (Index i = 0; i < n; ++i) {
      float& u = st.u[static_cast<std::size_t>(off + i)];
      float& v = st.v[static_cast<std::size_t>(off + i)];
      const float gi = g[static_cast<std::size_t>(i)];
      if (o.nesterov) {
        u = m * (u + gi);
        v = v + u + gi;
      } else {
        u = m * u + gi;
        v = v + u;
      }
      vseg[static_cast<std::size_t>(i)] = v;
    }
    const auto k = static_cast<Index>(std::ceil(static_cast<double>(n) * rho));
    for (Index i : brute_top_k(vseg, k)) {
      const auto gi = static_cast<std::size_t>(off + i);
      sent.emplace_back(off + i, st.v[gi]);
      st.v[gi] = 0;
      if (o.momentum_masking) st.u[gi] = 0;
    }
    off += n;
  }
  return sent;
}

ParameterLayout three_segments() {
  ParameterLayout l;
  l.add("w1", {40, 25});  // 1000
  l.add("b1", {7});       // 7
  l.add("w2", {1993});    // 1993
  return l;
}

// ---- golden values of the sampled threshold (algorithms.md 4.2) ---------------------------------
// Computed by the standalone program tests/golden/dgc_golden.cpp (no fedpp inside; how to rebuild
// it is at its top). The only fedpp data it uses is each case's sampling start, which the tests
// check fedpp draws.

struct DgcGoldenPlan {
  long long numel;
  double rho, sample_ratio;
  long long stride, num_samples, top_k_samples, num_selects;
};

struct DgcGoldenSelect {
  const char* name;
  int kind;
  unsigned long long seed;
  long long numel;
  double rho, sample_ratio, upper, lower;
  int max_iters;
  bool resample;
  unsigned long long rng_seed;
  long long start;
  struct {
    long long stride, num_samples, top_k_samples, num_selects;
  } plan;
  float sample_threshold;
  long long initial_count;
  int adaptations;
  bool resampled;
  float threshold;
  long long candidates;
  std::size_t first, count;
};

#include "golden/dgc_golden.inc"

// The DGC settings of one golden selection case (density, sampling and adaptation).
DgcOptions golden_select_options(const DgcGoldenSelect& g) {
  DgcOptions o;
  o.density = g.rho;
  o.sample_ratio = g.sample_ratio;
  o.upper_bound = g.upper;
  o.lower_bound = g.lower;
  o.max_adaptation_iters = g.max_iters;
  o.resample = g.resample;
  return o;
}

template <typename S>
std::vector<S> decode_dense(const Dgc& dgc, const Payload& p, Index d) {
  std::vector<S> out(static_cast<std::size_t>(d), S(7));
  dgc.decode(p, std::span<S>(out));
  return out;
}

}  // namespace

// ---- equations ------------------------------------------------------------------------------------

TEST_CASE("Dgc matches the step-by-step reference over rounds (exact top-k)", "[dgc]") {
  const ParameterLayout layout = three_segments();
  const std::vector<Index> sizes{1000, 7, 1993};
  const Index d = layout.total();
  const bool nesterov = GENERATE(false, true);
  const bool masking = GENERATE(true, false);
  const int clipping = GENERATE(0, 1);
  DgcOptions o;
  o.density = 0.01;
  o.nesterov = nesterov;
  o.momentum_masking = masking;
  o.threshold = DgcThreshold::exact;
  o.warmup = DgcWarmup::paper;
  if (clipping) {
    o.clip_norm = 40.0;  // per-segment threshold 40 / sqrt(4) = 20: clips the N(0, 1) segment of 1993 only
    o.num_workers = 4;
  }
  CAPTURE(nesterov, masking, clipping);
  const Dgc dgc(o, layout);
  auto st = dgc.make_state<float>(d);
  RefState ref{std::vector<float>(static_cast<std::size_t>(d)), std::vector<float>(static_cast<std::size_t>(d))};
  const double densities[] = {0.25, 0.0625, 0.015625, 0.01, 0.01, 0.01, 0.01, 0.01};
  Rng rng(3);
  for (int t = 0; t < 8; ++t) {
    CAPTURE(t);
    std::vector<float> x = gaussian<float>(d, 100 + static_cast<std::uint64_t>(t));
    for (Index i = 1000; i < 1007; ++i) x[static_cast<std::size_t>(i)] *= 0.01f;  // a small segment
    const auto expect = ref_step(x, ref, o, densities[t], sizes);
    const DgcSparse<float> got = dgc.compress(std::span<const float>(x), st, rng, static_cast<std::uint64_t>(t));
    REQUIRE(got.indices.size() == expect.size());
    Index expect_count = 0;
    for (Index n : sizes) expect_count += static_cast<Index>(std::ceil(static_cast<double>(n) * densities[t]));
    REQUIRE(static_cast<Index>(got.indices.size()) == expect_count);
    for (std::size_t j = 0; j < expect.size(); ++j) {
      REQUIRE(got.indices[j] == expect[j].first);
      REQUIRE(got.values[j] == expect[j].second);
    }
    for (Index i = 0; i < d; ++i) {
      REQUIRE(st.momentum[i] == ref.u[static_cast<std::size_t>(i)]);
      REQUIRE(st.velocity[i] == ref.v[static_cast<std::size_t>(i)]);
    }
    REQUIRE(st.steps == static_cast<std::uint64_t>(t + 1));
  }
}

TEST_CASE("Dgc clipping scales a segment by thr / (||g|| + 1e-6) with thr = clip_norm / sqrt(N)", "[dgc]") {
  DgcOptions o;
  o.density = 1.0;  // everything is sent: the payload is v = u = the clipped g after one step
  o.clip_norm = 3.0;
  o.num_workers = 9;  // per-segment threshold 1
  o.warmup = DgcWarmup::none;
  const Dgc dgc(o);
  auto st = dgc.make_state<double>(4);
  const std::vector<double> x{3.0, 4.0, 0.0, 0.0};  // norm 5
  Rng rng(1);
  const auto sp = dgc.compress(std::span<const double>(x), st, rng, 0);
  REQUIRE(sp.indices.size() == 4);
  const double c = 1.0 / (5.0 + 1e-6);
  CHECK(sp.values[0] == 3.0 * c);
  CHECK(sp.values[1] == 4.0 * c);
  // Below the threshold: unchanged.
  auto st2 = dgc.make_state<double>(4);
  const std::vector<double> y{0.3, 0.4, 0.0, 0.0};
  const auto sp2 = dgc.compress(std::span<const double>(y), st2, rng, 0);
  CHECK(sp2.values[0] == 0.3);
  CHECK(sp2.values[1] == 0.4);
}

TEST_CASE("Dgc invariants: sent + v = accumulated u, masked momentum and velocity are zero where sent", "[dgc]") {
  const bool nesterov = GENERATE(false, true);
  DgcOptions o;
  o.density = 0.003;
  o.nesterov = nesterov;
  const Dgc dgc(o);
  const Index d = 5000;
  auto st = dgc.make_state<double>(d);
  std::vector<double> acc(static_cast<std::size_t>(d), 0.0), sent(static_cast<std::size_t>(d), 0.0);
  for (int t = 0; t < 12; ++t) {
    Rng data(50 + static_cast<std::uint64_t>(t));
    std::vector<double> x(static_cast<std::size_t>(d));
    for (auto& a : x) a = data.normal();
    // What the step adds to v: u_new (plain) or u_new + g (Nesterov), from the state before the call.
    for (Index i = 0; i < d; ++i) {
      const double g = x[static_cast<std::size_t>(i)], u = st.momentum[i];
      acc[static_cast<std::size_t>(i)] += nesterov ? 0.9 * (u + g) + g : 0.9 * u + g;
    }
    Rng rng(7 + static_cast<std::uint64_t>(t));
    const auto sp = dgc.compress(std::span<const double>(x), st, rng, static_cast<std::uint64_t>(t));
    for (std::size_t j = 0; j < sp.indices.size(); ++j) {
      const Index i = sp.indices[j];
      if (j) REQUIRE(sp.indices[j - 1] < i);
      sent[static_cast<std::size_t>(i)] += sp.values[j];
      REQUIRE(st.velocity[i] == 0.0);
      REQUIRE(st.momentum[i] == 0.0);
    }
  }
  for (Index i = 0; i < d; ++i)
    REQUIRE(sent[static_cast<std::size_t>(i)] + st.velocity[i] ==
            Approx(acc[static_cast<std::size_t>(i)]).margin(1e-9).epsilon(1e-9));
}

// ---- sampled threshold ----------------------------------------------------------------------------

TEST_CASE("Dgc sampling plan equals the golden values of the reference's initialize", "[dgc]") {
  for (const DgcGoldenPlan& g : dgc_golden_plans) {
    CAPTURE(g.numel, g.rho, g.sample_ratio);
    DgcOptions o;
    o.sample_ratio = g.sample_ratio;
    const Dgc dgc(o);
    const DgcSamplingPlan p = dgc.plan(g.numel, g.rho);
    CHECK(p.numel == g.numel);
    CHECK(p.stride == g.stride);
    CHECK(p.num_samples == g.num_samples);
    CHECK(p.top_k_samples == g.top_k_samples);
    CHECK(p.num_selects == g.num_selects);
  }
}

TEST_CASE("Dgc sampled threshold, adaptation and selection equal the golden values", "[dgc]") {
  int adapted = 0, resampled = 0, capped = 0, raised = 0;
  for (const DgcGoldenSelect& g : dgc_golden_selects) {
    CAPTURE(g.name);
    DgcOptions o = golden_select_options(g);
    const Dgc dgc(o);
    const DgcSamplingPlan plan = dgc.plan(g.numel, g.rho);
    REQUIRE(plan.stride == g.plan.stride);
    REQUIRE(plan.num_samples == g.plan.num_samples);
    REQUIRE(plan.top_k_samples == g.plan.top_k_samples);
    REQUIRE(plan.num_selects == g.plan.num_selects);
    const bool sampled = plan.num_samples < g.numel;
    // The start is the one datum the golden program takes from fedpp: it must be what fedpp draws.
    Rng rng(g.rng_seed), peek = rng;
    if (sampled) REQUIRE(static_cast<long long>(peek.uniform_index(static_cast<std::uint64_t>(plan.stride))) == g.start);
    const std::vector<float> v =
        dgc_golden::make_input(g.kind, g.seed, static_cast<std::uint64_t>(g.numel), static_cast<std::uint64_t>(g.start),
                               static_cast<std::uint64_t>(plan.stride), static_cast<std::uint64_t>(plan.top_k_samples));
    std::vector<Index> got;
    DgcSelectInfo info;
    detail::dgc_select_sampled(std::span<const float>(v), plan, o, rng, got, &info);
    CHECK(info.start == g.start);
    CHECK(rng() == peek());  // one draw for a strided sample, none when the sample is the whole tensor
    CHECK(static_cast<float>(info.threshold) == g.threshold);
    CHECK(info.adaptations == g.adaptations);
    CHECK(info.resampled == g.resampled);
    CHECK(info.candidates == g.candidates);
    const std::vector<Index> expect(dgc_golden_indices + g.first, dgc_golden_indices + g.first + g.count);
    CHECK(got == expect);
    // The initial sampled threshold and what passes it: a zero-adaptation run shows them directly.
    if (g.adaptations == 0 && !g.resampled) CHECK(info.threshold == static_cast<double>(g.sample_threshold));
    DgcOptions once = o;
    once.max_adaptation_iters = 0;
    Rng rng0(g.rng_seed);
    detail::dgc_select_sampled(std::span<const float>(v), plan, once, rng0, got, &info);
    CHECK(static_cast<float>(info.threshold) == g.sample_threshold);
    CHECK(info.candidates == g.initial_count);
    adapted += g.adaptations > 0;
    resampled += g.resampled;
    capped += !g.resampled && g.candidates > g.plan.num_selects;
    raised += !g.resample && g.adaptations > 0;
  }
  // The cases cover every branch of the procedure.
  CHECK(adapted >= 3);
  CHECK(resampled >= 3);
  CHECK(capped >= 2);
  CHECK(raised >= 1);
}

TEST_CASE("Dgc sampled selection through compress equals the golden selection (momentum 0, one segment)", "[dgc]") {
  // With momentum 0 and a zero state, v = x: compress must send the golden indices and values.
  for (const DgcGoldenSelect& g : dgc_golden_selects) {
    CAPTURE(g.name);
    DgcOptions o = golden_select_options(g);
    o.momentum = 0.0;
    o.warmup = DgcWarmup::none;
    const Dgc dgc(o);
    const std::vector<float> x =
        dgc_golden::make_input(g.kind, g.seed, static_cast<std::uint64_t>(g.numel), static_cast<std::uint64_t>(g.start),
                               static_cast<std::uint64_t>(g.plan.stride), static_cast<std::uint64_t>(g.plan.top_k_samples));
    auto st = dgc.make_state<float>(g.numel);
    Rng rng(g.rng_seed);
    const DgcSparse<float> sp = dgc.compress(std::span<const float>(x), st, rng, 0);
    const std::vector<Index> expect(dgc_golden_indices + g.first, dgc_golden_indices + g.first + g.count);
    REQUIRE(sp.indices == expect);
    for (std::size_t j = 0; j < expect.size(); ++j) {
      const auto i = static_cast<std::size_t>(expect[j]);
      CHECK(sp.values[j] == x[i]);
      CHECK(st.velocity[expect[j]] == 0.0f);
    }
  }
}

TEST_CASE("Dgc exact and sampled selection agree with a brute-force top-k on tiny segments", "[dgc]") {
  // numel <= ceil(2 / rho): the sample is the whole segment, the threshold is the exact k-th value.
  DgcOptions o;
  o.density = 0.01;
  o.warmup = DgcWarmup::none;
  o.momentum = 0.0;
  for (auto mode : {DgcThreshold::sampled, DgcThreshold::exact}) {
    o.threshold = mode;
    const Dgc dgc(o);
    auto st = dgc.make_state<float>(150);
    const std::vector<float> x = gaussian<float>(150, 77);
    Rng rng(1);
    const auto sp = dgc.compress(std::span<const float>(x), st, rng, 0);
    CHECK(sp.indices == brute_top_k(x, 2));
  }
}

TEST_CASE("Dgc exact selection on large segments equals a brute-force top-k, ties to the lower index", "[dgc]") {
  const Index n = 150000;
  for (int variant = 0; variant < 4; ++variant) {
    CAPTURE(variant);
    std::vector<float> v = gaussian<float>(n, 60 + static_cast<std::uint64_t>(variant));
    if (variant == 1)  // coarse values: many ties at the k-th magnitude
      for (auto& a : v) a = std::round(a * 4.0f) / 4.0f;
    if (variant == 2)  // large values exactly on the pre-filter's sample grid: too few pass, full path
      for (Index i = 0; i < n; ++i) {
        float& a = v[static_cast<std::size_t>(i)];
        a = (i % 36 == 0) ? 5.0f + 0.1f * a : 0.001f * a;
      }
    if (variant == 3) std::fill(v.begin(), v.end(), 0.0f);  // all ties
    for (Index k : {Index{1}, Index{150}, Index{2000}}) {
      std::vector<Index> got;
      detail::dgc_select_exact(std::span<const float>(v), k, got);
      CHECK(got == brute_top_k(v, k));
    }
  }
}

// ---- warm-up --------------------------------------------------------------------------------------

TEST_CASE("Dgc warm-up schedules give the listed densities per round", "[dgc]") {
  DgcOptions o;  // defaults: paper schedule, 5 warm-up rounds, density 0.001
  {
    const Dgc dgc(o);
    const double expect[] = {0.25, 0.0625, 0.015625, 0.00390625, 0.001, 0.001, 0.001};
    for (std::uint64_t e = 0; e < 7; ++e) CHECK(dgc.density_at(e) == expect[e]);
  }
  {
    o.warmup = DgcWarmup::reference_formula;
    const Dgc dgc(o);
    const double expect[] = {0.316227766, 0.1, 0.0316227766, 0.01, 0.00316227766, 0.001, 0.001};
    for (std::uint64_t e = 0; e < 7; ++e) CHECK(dgc.density_at(e) == Approx(expect[e]).epsilon(1e-8));
  }
  {
    o.warmup = DgcWarmup::none;
    const Dgc dgc(o);
    CHECK(dgc.density_at(0) == 0.001);
  }
  {
    o.warmup = DgcWarmup::list;
    o.warmup_rounds = 5;
    o.warmup_densities = {1, 1, 1, 1, 1};  // the reference's wm5o: dense for 5 rounds
    const Dgc dgc(o);
    CHECK(dgc.density_at(4) == 1.0);
    CHECK(dgc.density_at(5) == 0.001);
  }
  {
    // The warm-up ends exactly at round W even where 4^-(W+1) is still above the target density.
    DgcOptions w = o;
    w.warmup = DgcWarmup::paper;
    w.warmup_rounds = 2;
    const Dgc dgc(w);
    CHECK(dgc.density_at(1) == 0.0625);
    CHECK(dgc.density_at(2) == 0.001);  // not max(4^-3, 0.001) = 0.015625
    w.warmup = DgcWarmup::list;
    w.warmup_densities = {0.5, 0.2, 0.9};  // more entries than rounds: the extra one is never used
    const Dgc listed(w);
    CHECK(listed.density_at(0) == 0.5);
    CHECK(listed.density_at(1) == 0.2);
    CHECK(listed.density_at(2) == 0.001);
  }
  {
    o.warmup = DgcWarmup::paper;
    o.density = 0.1;  // capped from below by the target
    const Dgc dgc(o);
    CHECK(dgc.density_at(0) == 0.25);
    CHECK(dgc.density_at(1) == 0.1);
  }
}

TEST_CASE("Dgc warm-up follows ctx.round (4-argument encode) or the participation count", "[dgc]") {
  DgcOptions o;
  o.threshold = DgcThreshold::exact;
  const Dgc dgc(o);
  const Index d = 4096;
  auto a = dgc.make_state<float>(d), b = dgc.make_state<float>(d);
  const std::uint64_t rounds[] = {2, 3, 7};
  const Index expect_by_round[] = {64, 16, 5};  // ceil(4096 * {0.015625, 0.00390625, 0.001})
  const Index expect_by_count[] = {1024, 256, 64};
  for (int t = 0; t < 3; ++t) {
    const std::vector<float> x = gaussian<float>(d, 5 + static_cast<std::uint64_t>(t));
    Rng r1(1), r2(1);
    const RoundContext ctx{rounds[t], 0, 0};
    const Payload pa = dgc.encode(std::span<const float>(x), a, r1, ctx);
    const Payload pb = dgc.encode(std::span<const float>(x), b, r2);
    CHECK(pa.header().count == static_cast<std::uint64_t>(expect_by_round[t]));
    CHECK(pb.header().count == static_cast<std::uint64_t>(expect_by_count[t]));
  }
  CHECK(a.steps == 3);
  CHECK(b.steps == 3);
}

// ---- payload ------------------------------------------------------------------------------------

TEST_CASE("Dgc payload decodes to the selected values, zero elsewhere", "[dgc]") {
  const ParameterLayout layout = three_segments();
  DgcOptions o;
  o.density = 0.02;
  const Dgc dgc(o, layout);
  const Index d = layout.total();
  auto s1 = dgc.make_state<float>(d), s2 = dgc.make_state<float>(d);
  for (int t = 0; t < 6; ++t) {
    const std::vector<float> x = gaussian<float>(d, 900 + static_cast<std::uint64_t>(t));
    Rng r1(t + 1), r2(t + 1);
    const auto sp = dgc.compress(std::span<const float>(x), s1, r1, static_cast<std::uint64_t>(t));
    const Payload p = dgc.encode(std::span<const float>(x), s2, r2);
    const PayloadHeader h = p.header();
    CHECK(h.codec == Codec::sparse);
    CHECK(h.dim == static_cast<std::uint64_t>(d));
    CHECK(h.count == sp.indices.size());
    std::vector<float> expect(static_cast<std::size_t>(d), 0.0f);
    for (std::size_t j = 0; j < sp.indices.size(); ++j) expect[static_cast<std::size_t>(sp.indices[j])] = sp.values[j];
    CHECK(decode_dense<float>(dgc, p, d) == expect);
  }
  // Decoding into the wrong dimension is a DecodeError.
  const std::vector<float> x = gaussian<float>(d, 1);
  Rng rng(1);
  const Payload p = dgc.encode(std::span<const float>(x), s2, rng);
  std::vector<float> wrong(static_cast<std::size_t>(d + 1));
  CHECK_THROWS_AS(dgc.decode(p, std::span<float>(wrong)), DecodeError);
}

TEST_CASE("Dgc double updates travel as f64 by default, and a zero update decodes to zeros", "[dgc]") {
  DgcOptions o;
  o.density = 0.01;
  o.warmup = DgcWarmup::none;
  const Dgc dgc(o);
  auto st = dgc.make_state<double>(1000);
  std::vector<double> x(1000);
  Rng data(3);
  for (auto& a : x) a = data.normal() * 1e-3;
  auto copy = st;
  Rng r1(2), r2(2);
  const auto sp = dgc.compress(std::span<const double>(x), copy, r1, 0);
  const Payload p = dgc.encode(std::span<const double>(x), st, r2);
  const auto dec = decode_dense<double>(dgc, p, 1000);
  for (std::size_t j = 0; j < sp.indices.size(); ++j) CHECK(dec[static_cast<std::size_t>(sp.indices[j])] == sp.values[j]);

  auto z = dgc.make_state<float>(3000);
  const std::vector<float> zeros(3000, 0.0f);
  Rng r3(1);
  const Payload pz = dgc.encode(std::span<const float>(zeros), z, r3);
  CHECK(decode_dense<float>(dgc, pz, 3000) == zeros);
}

// ---- determinism ----------------------------------------------------------------------------------

TEST_CASE("Dgc is bit-identical on 1 and 2 threads", "[dgc]") {
  ParameterLayout layout;
  layout.add("a", {70001});
  layout.add("b", {33});
  layout.add("c", {129966});
  const Index d = layout.total();
  auto run = [&](int threads, DgcThreshold mode) {
    set_max_threads(threads);
    DgcOptions o;
    o.threshold = mode;
    o.clip_norm = 100.0;
    o.num_workers = 4;
    const Dgc dgc(o, layout);
    auto st = dgc.make_state<float>(d);
    std::vector<std::uint8_t> bytes;
    for (int t = 0; t < 7; ++t) {
      const std::vector<float> x = gaussian<float>(d, 40 + static_cast<std::uint64_t>(t));
      Rng rng = make_rng(1, static_cast<std::uint64_t>(t), 3, Purpose::compression);
      const Payload p = dgc.encode(std::span<const float>(x), st, rng);
      bytes.insert(bytes.end(), p.data().begin(), p.data().end());
    }
    std::vector<float> state(st.momentum.data(), st.momentum.data() + d);
    state.insert(state.end(), st.velocity.data(), st.velocity.data() + d);
    return std::make_pair(bytes, state);
  };
  ThreadGuard guard;
  for (auto mode : {DgcThreshold::sampled, DgcThreshold::exact}) {
    const auto one = run(1, mode);
    const auto two = run(2, mode);
    CHECK(one.first == two.first);
    REQUIRE(one.second.size() == two.second.size());
    CHECK(std::memcmp(one.second.data(), two.second.data(), one.second.size() * sizeof(float)) == 0);
  }
}

// ---- errors ---------------------------------------------------------------------------------------

TEST_CASE("Dgc rejects bad options, naming the class, parameter and value", "[dgc]") {
  using Catch::Matchers::Contains;
  auto bad = [](auto mutate, const std::string& param, const std::string& value) {
    DgcOptions o;
    mutate(o);
    CAPTURE(param);
    CHECK_THROWS_AS(Dgc(o), InvalidArgument);
    CHECK_THROWS_WITH(Dgc(o), Contains("fedpp::Dgc") && Contains(param) && Contains("got " + value));
  };
  bad([](DgcOptions& o) { o.density = 0; }, "density", "0");
  bad([](DgcOptions& o) { o.density = 1.5; }, "density", "1.5");
  bad([](DgcOptions& o) { o.momentum = 1.0; }, "momentum", "1");
  bad([](DgcOptions& o) { o.momentum = -0.1; }, "momentum", "-0.1");
  bad([](DgcOptions& o) { o.clip_norm = -1; }, "clip_norm", "-1");
  bad([](DgcOptions& o) { o.num_workers = 0; }, "num_workers", "0");
  bad([](DgcOptions& o) { o.sample_ratio = 0.001; }, "sample_ratio", "0.001");
  bad([](DgcOptions& o) { o.upper_bound = 0.9; }, "upper_bound", "0.9");
  bad([](DgcOptions& o) { o.lower_bound = 0; }, "lower_bound", "0");
  bad([](DgcOptions& o) { o.max_adaptation_iters = -1; }, "max_adaptation_iters", "-1");
  bad(
      [](DgcOptions& o) {
        o.warmup = DgcWarmup::list;
        o.warmup_densities = {0.5, 0.1};
      },
      "warmup_densities", "2");
  bad([](DgcOptions& o) { o.warmup_densities = {0.5, 0.0}; }, "warmup_densities", "0");
  bad([](DgcOptions& o) { o.warmup_densities = {1.25}; }, "warmup_densities", "1.25");
  bad([](DgcOptions& o) { o.clip_norm = std::numeric_limits<double>::infinity(); }, "clip_norm", "inf");
  bad([](DgcOptions& o) { o.sample_ratio = 1.5; }, "sample_ratio", "1.5");
  bad([](DgcOptions& o) { o.upper_bound = std::numeric_limits<double>::infinity(); }, "upper_bound", "inf");
  bad([](DgcOptions& o) { o.lower_bound = 1.5; }, "lower_bound", "1.5");
  // The boundaries themselves are accepted.
  DgcOptions edge;
  edge.density = 1.0;
  edge.momentum = 0.0;
  edge.sample_ratio = 0.01;
  edge.upper_bound = 1.0;
  edge.lower_bound = 1.0;
  edge.max_adaptation_iters = 0;
  edge.warmup = DgcWarmup::list;
  edge.warmup_rounds = 1;
  edge.warmup_densities = {1.0};
  CHECK_NOTHROW(Dgc(edge));
  edge.sample_ratio = 1.0;
  CHECK_NOTHROW(Dgc(edge));
}

TEST_CASE("Dgc rejects non-finite updates and mismatched sizes without touching the state", "[dgc]") {
  const Dgc dgc;
  auto st = dgc.make_state<float>(100);
  std::vector<float> x = gaussian<float>(100, 1);
  x[37] = std::numeric_limits<float>::quiet_NaN();
  Rng rng(1);
  CHECK_THROWS_AS(dgc.encode(std::span<const float>(x), st, rng), InvalidArgument);
  CHECK_THROWS_WITH(dgc.encode(std::span<const float>(x), st, rng), Catch::Matchers::Contains("37"));
  x[37] = std::numeric_limits<float>::infinity();
  CHECK_THROWS_AS(dgc.encode(std::span<const float>(x), st, rng), InvalidArgument);
  CHECK(st.steps == 0);
  CHECK(st.velocity.isZero());
  CHECK(st.momentum.isZero());
  const std::vector<float> y(99, 1.0f);
  CHECK_THROWS_AS(dgc.encode(std::span<const float>(y), st, rng), DimensionError);
  CHECK_THROWS_WITH(dgc.encode(std::span<const float>(y), st, rng),
                    Catch::Matchers::Contains("fedpp::Dgc::encode: update size must equal the state dimension 100, got 99"));
  const Dgc with_layout(DgcOptions{}, three_segments());
  CHECK_THROWS_AS(with_layout.make_state<float>(2999), DimensionError);
  CHECK_THROWS_WITH(with_layout.make_state<float>(2999),
                    Catch::Matchers::Contains("dim must equal the layout's total 3000, got 2999"));
  CHECK_NOTHROW(with_layout.make_state<float>(3000));
  CHECK_THROWS_WITH(dgc.make_state<float>(-1), Catch::Matchers::Contains("fedpp::Dgc::make_state: dim must be >= 0, got -1"));
  x[37] = 1.0f;
  x[99] = -std::numeric_limits<float>::infinity();
  CHECK_THROWS_WITH(dgc.encode(std::span<const float>(x), st, rng),
                    Catch::Matchers::Contains("update must be finite, got a NaN or infinite value at index, got 99"));
  CHECK(st.steps == 0);
}

// ---- runtime and state ----------------------------------------------------------------------------

TEST_CASE("Dgc inside a Client: per-tensor segments, warm-up by the global round, state kept", "[dgc]") {
  const GaussianMixture mix(5, 20, 3.0, 11);
  const auto data = mix.generate<float>(60, 12);
  DatasetView<float> view{data, {}, {}};
  for (std::uint32_t i = 0; i < 60; ++i) view.indices.push_back(i);
  const SoftmaxRegression<float> model(20, 5);
  DgcOptions o;
  o.density = 0.01;
  const Dgc dgc(o, model.layout());
  Client<SoftmaxRegression<float>, LocalSgd, Dgc> client(3, model, view, LocalSgd(), dgc);
  Vector<float> global;
  Rng init(1);
  model.init_params(global, init);
  for (std::uint64_t round : {2u, 9u}) {
    const RoundRequest<float> req{round, 77, as_span(std::as_const(global))};
    const Reply r = client.handle(req);
    REQUIRE(r.status == ReplyStatus::ok);
    Index expect = 0;  // weight 5 x 20 and bias 5, density of the global round
    for (Index n : {Index{100}, Index{5}})
      expect += static_cast<Index>(std::ceil(static_cast<double>(n) * dgc.density_at(round)));
    CHECK(r.payload.header().count == static_cast<std::uint64_t>(expect));
    std::vector<float> out(static_cast<std::size_t>(model.num_params()));
    dgc.decode(r.payload, std::span<float>(out));
  }
  REQUIRE(client.compressor_state().has_value());
  CHECK(client.compressor_state()->steps == 2);
  CHECK(client.compressor_state()->velocity.size() == model.num_params());
}

namespace {
// Records what serialize() hands to the archive.
struct FieldRecorder {
  std::vector<const void*> fields;
  template <class... T>
  void operator()(T&... t) {
    (fields.push_back(static_cast<const void*>(&t)), ...);
  }
};
}  // namespace

TEST_CASE("DgcState::serialize lists momentum, velocity and steps", "[dgc]") {
  const Dgc dgc;
  auto st = dgc.make_state<float>(10);
  FieldRecorder rec;
  st.serialize(rec);
  REQUIRE(rec.fields.size() == 3);
  CHECK(rec.fields[0] == &st.momentum);
  CHECK(rec.fields[1] == &st.velocity);
  CHECK(rec.fields[2] == &st.steps);
}

// ---- small convergence run (algorithms.md 4, "small experiment", scaled down) ---------------------

namespace {

// Multinomial logistic regression, parameters [W (C x F, column-major), b (C)].
struct Softmax {
  int C;
  Index F;
  Index dim() const { return C * F + C; }
  // Mean loss over columns `cols` of X; writes the gradient when g != nullptr.
  double loss_grad(const std::vector<float>& w, const Matrix<float>& X, const std::vector<int>& y,
                   const std::vector<Index>& cols, std::vector<float>* g) const {
    Eigen::Map<const Matrix<float>> W(w.data(), C, F);
    Eigen::Map<const Vector<float>> b(w.data() + C * F, C);
    const auto B = static_cast<Index>(cols.size());
    Matrix<float> Xb(F, B);
    for (Index j = 0; j < B; ++j) Xb.col(j) = X.col(cols[static_cast<std::size_t>(j)]);
    Matrix<float> Z = W * Xb;
    Z.colwise() += b;
    double loss = 0;
    for (Index j = 0; j < B; ++j) {
      const float mx = Z.col(j).maxCoeff();
      Z.col(j) = (Z.col(j).array() - mx).exp().matrix();
      const float s = Z.col(j).sum();
      Z.col(j) /= s;
      const int yj = y[static_cast<std::size_t>(cols[static_cast<std::size_t>(j)])];
      loss -= std::log(std::max(static_cast<double>(Z(yj, j)), 1e-30));
      Z(yj, j) -= 1.0f;
    }
    if (g) {
      g->assign(static_cast<std::size_t>(dim()), 0.0f);
      Eigen::Map<Matrix<float>> GW(g->data(), C, F);
      Eigen::Map<Vector<float>> gb(g->data() + C * F, C);
      GW = Z * Xb.transpose() / static_cast<float>(B);
      gb = Z.rowwise().sum() / static_cast<float>(B);
    }
    return loss / static_cast<double>(B);
  }
};

enum class Method { dense, naive_top_k, gradient_dropping, dgc };

double train(Method method, double density) {
  const int C = 20, workers = 4, batch = 16, epochs = 40;
  const Index F = 50, per_worker = 250;
  const Softmax model{C, F};
  const Index n = per_worker * workers;
  // Gaussian classes: mean_c ~ N(0, 0.25^2 I), noise N(0, I).
  Rng gen(2024);
  Matrix<float> means(F, C);
  for (Index i = 0; i < means.size(); ++i) means.data()[i] = static_cast<float>(0.25 * gen.normal());
  Matrix<float> X(F, n);
  std::vector<int> y(static_cast<std::size_t>(n));
  for (Index j = 0; j < n; ++j) {
    y[static_cast<std::size_t>(j)] = static_cast<int>(j % C);
    for (Index r = 0; r < F; ++r) X(r, j) = means(r, j % C) + static_cast<float>(gen.normal());
  }
  const Index d = model.dim();
  std::vector<float> w(static_cast<std::size_t>(d), 0.0f), mom(static_cast<std::size_t>(d), 0.0f);
  const float lr = 0.05f, m = 0.9f;
  DgcOptions o;
  o.density = density;
  o.momentum = method == Method::gradient_dropping ? 0.0 : m;  // residual only: v accumulates raw gradients
  ParameterLayout layout;
  layout.add("W", {C, F});
  layout.add("b", {C});
  const Dgc dgc(o, layout);
  std::vector<DgcState<float>> states;
  for (int k = 0; k < workers; ++k) states.push_back(dgc.make_state<float>(d));
  std::vector<float> g, G(static_cast<std::size_t>(d));
  const int steps_per_epoch = static_cast<int>(per_worker / batch);
  std::uint64_t step = 0;
  for (int e = 0; e < epochs; ++e)
    for (int s = 0; s < steps_per_epoch; ++s, ++step) {
      std::fill(G.begin(), G.end(), 0.0f);
      for (int k = 0; k < workers; ++k) {
        Rng pick = make_rng(5, step, static_cast<std::uint64_t>(k), Purpose::shuffle);
        std::vector<Index> cols(static_cast<std::size_t>(batch));
        for (auto& c : cols)
          c = static_cast<Index>(k) * per_worker + static_cast<Index>(pick.uniform_index(per_worker));
        model.loss_grad(w, X, y, cols, &g);
        if (method == Method::dense) {
          for (Index i = 0; i < d; ++i) G[static_cast<std::size_t>(i)] += g[static_cast<std::size_t>(i)];
        } else if (method == Method::naive_top_k) {
          const auto kk = static_cast<Index>(std::ceil(static_cast<double>(d) * density));
          for (Index i : brute_top_k(g, kk)) G[static_cast<std::size_t>(i)] += g[static_cast<std::size_t>(i)];
        } else {  // DGC, or gradient dropping (the same with momentum 0 and the momentum after averaging)
          // Warm-up by epoch, as in the paper.
          Rng rng = make_rng(5, step, static_cast<std::uint64_t>(k), Purpose::compression);
          const auto sp = dgc.compress(std::span<const float>(g), states[static_cast<std::size_t>(k)], rng,
                                       static_cast<std::uint64_t>(e));
          for (std::size_t j = 0; j < sp.indices.size(); ++j)
            G[static_cast<std::size_t>(sp.indices[j])] += sp.values[j];
        }
      }
      for (auto& a : G) a /= static_cast<float>(workers);
      if (method == Method::dgc) {  // the momentum is already inside the sent values
        for (Index i = 0; i < d; ++i) w[static_cast<std::size_t>(i)] -= lr * G[static_cast<std::size_t>(i)];
      } else {  // momentum SGD on the aggregate
        for (Index i = 0; i < d; ++i) {
          auto& u = mom[static_cast<std::size_t>(i)];
          u = m * u + G[static_cast<std::size_t>(i)];
          w[static_cast<std::size_t>(i)] -= lr * u;
        }
      }
    }
  std::vector<Index> all(static_cast<std::size_t>(n));
  std::iota(all.begin(), all.end(), Index{0});
  return model.loss_grad(w, X, y, all, nullptr);
}

}  // namespace

TEST_CASE("Dgc small convergence run: close to dense momentum SGD, naive top-k clearly worse", "[dgc][convergence]") {
  const double density = 0.01;
  const double dense = train(Method::dense, density);
  const double naive = train(Method::naive_top_k, density);
  const double full = train(Method::dgc, density);
  const double dropping = train(Method::gradient_dropping, density);
  INFO("final training loss: dense " << dense << ", DGC " << full << ", naive top-k " << naive
                                     << ", gradient dropping " << dropping);
  CHECK(full <= dense * 1.05);
  CHECK(naive >= dense * 1.2);  // measured: dense 1.297, DGC 1.322, naive top-k 1.644
  CHECK(naive >= full * 1.15);
  CHECK(dropping < naive);  // the residual alone already helps (measured 1.327 here; algorithms.md: "in between")
}
