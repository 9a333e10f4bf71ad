// Standalone generator of the DGC golden values (tests/golden/dgc_golden.inc), written from the
// definitions of the team reference notes (shared/reference/algorithms.md) section 4.2 (the reference code's
// `DGCCompressor.initialize` sampling plan and `_sparsify` threshold, adaptation and selection).
// It does NOT include fedpp: the test compares fedpp against what this program computes.
//
// Build and run from the repository root (any C++20 compiler):
//   g++ -std=c++20 -O2 -o /tmp/dgc_golden tests/golden/dgc_golden.cpp
//   /tmp/dgc_golden > tests/golden/dgc_golden.inc
// The output must equal the committed file (regenerate and `git diff` after changing this program).
//
// Data taken from fedpp: the sampling start of each case (`start` below) is the value that
// fedpp::Rng(rng_seed).uniform_index(stride) returns; the test checks that fedpp draws exactly it,
// then everything else (plan, sampled threshold, adaptation, re-selection, cap) is computed here.
// Threshold arithmetic is in float, as the reference does on float tensors: thr <- float(thr * float(bound)).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <numeric>
#include <vector>

#include "dgc_inputs.hpp"

namespace {

struct Plan {
  std::int64_t stride, num_samples, top_k_samples, num_selects;
};

// algorithms.md 4.2, `initialize`.
Plan make_plan(std::int64_t numel, double rho, double sample_ratio) {
  const double sr = std::clamp(sample_ratio, 0.01, 1.0);
  Plan p{1, numel, 0, 0};
  if (sr < 1.0) {
    const auto pct = static_cast<std::int64_t>(std::ceil(static_cast<double>(numel) * sr));
    const auto cpr = static_cast<std::int64_t>(std::ceil(2.0 / rho));
    if (numel > cpr) {
      const std::int64_t want = std::max(pct, cpr);
      p.stride = static_cast<std::int64_t>(std::ceil(static_cast<double>(numel) / static_cast<double>(want) / 32.0)) * 32 + 1;
      p.num_samples = numel / p.stride;
      while (p.num_samples < want) {
        p.stride -= 8;
        p.num_samples = numel / p.stride;
      }
    }
  }
  p.top_k_samples = static_cast<std::int64_t>(std::ceil(static_cast<double>(p.num_samples) * rho));
  p.num_selects = static_cast<std::int64_t>(std::ceil(static_cast<double>(numel) * rho));
  return p;
}

struct SelectCase {
  const char* name;
  int kind;
  std::uint64_t seed;
  std::int64_t numel;
  double rho, sample_ratio, upper, lower;
  int max_iters;
  bool resample;
  std::uint64_t rng_seed;
  std::int64_t start;  // fedpp::Rng(rng_seed).uniform_index(stride) (data; 0 when the sample is the whole tensor)
};

struct Result {
  Plan plan;
  float sample_threshold = 0;
  std::int64_t initial_count = 0;
  int adaptations = 0;
  bool resampled = false;
  float threshold = 0;
  std::int64_t candidates = 0;
  std::vector<std::int64_t> idx;
};

// algorithms.md 4.2, `_sparsify` with strided sampling.
Result select(const SelectCase& c) {
  Result r;
  r.plan = make_plan(c.numel, c.rho, c.sample_ratio);
  const Plan& p = r.plan;
  const std::vector<float> v = dgc_golden::make_input(c.kind, c.seed, static_cast<std::uint64_t>(c.numel),
                                                      static_cast<std::uint64_t>(c.start),
                                                      static_cast<std::uint64_t>(p.stride),
                                                      static_cast<std::uint64_t>(p.top_k_samples));
  std::vector<float> imp(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) imp[i] = std::fabs(v[i]);
  // samples = imp[start::stride]
  std::vector<float> samples;
  for (std::int64_t i = c.start; i < c.numel; i += p.stride) samples.push_back(imp[static_cast<std::size_t>(i)]);
  std::sort(samples.begin(), samples.end(), std::greater<float>());
  float thr = samples[static_cast<std::size_t>(p.top_k_samples - 1)];  // min of the top_k_samples largest
  r.sample_threshold = thr;
  auto mask = [&](float t) {
    std::vector<std::int64_t> out;
    for (std::int64_t i = 0; i < c.numel; ++i)
      if (imp[static_cast<std::size_t>(i)] >= t) out.push_back(i);
    return out;
  };
  std::vector<std::int64_t> idx = mask(thr);
  r.initial_count = static_cast<std::int64_t>(idx.size());
  const std::int64_t k = p.num_selects;
  if (c.numel > p.num_samples) {
    for (int it = 0; it < c.max_iters; ++it) {
      const auto n = static_cast<std::int64_t>(idx.size());
      if (n > k) {
        if (static_cast<double>(n) > c.upper * static_cast<double>(k)) {
          if (c.resample) {
            // exact top-k of imp among the candidates, ties to the lower index
            std::vector<std::int64_t> order = idx;
            std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) {
              return imp[static_cast<std::size_t>(a)] > imp[static_cast<std::size_t>(b)];
            });
            order.resize(static_cast<std::size_t>(k));
            std::sort(order.begin(), order.end());
            idx = order;
            r.resampled = true;
            break;
          }
          thr = thr * static_cast<float>(c.upper);
        } else {
          break;
        }
      } else if (static_cast<double>(n) < c.lower * static_cast<double>(k)) {
        thr = thr * static_cast<float>(c.lower);
      } else {
        break;
      }
      idx = mask(thr);
      ++r.adaptations;
    }
  }
  r.candidates = static_cast<std::int64_t>(idx.size());
  if (static_cast<std::int64_t>(idx.size()) > k) idx.resize(static_cast<std::size_t>(k));  // hard cap, index order
  r.threshold = thr;
  r.idx = idx;
  return r;
}

}  // namespace

int main() {
  struct PlanCase {
    std::int64_t numel;
    double rho, sample_ratio;
  };
  const PlanCase plans[] = {
      {25000000, 0.001, 0.01}, {1500, 0.001, 0.01},  {2000, 0.001, 0.01},   {2001, 0.001, 0.01},
      {3000, 0.01, 0.01},      {100000, 0.001, 0.01}, {200000, 0.01, 0.01}, {1234567, 0.0625, 0.01},
      {20000, 0.01, 0.05},     {100000, 0.01, 1.0},   {7, 0.25, 0.01},      {1000000, 0.003, 0.02},
  };
  // name, kind, seed, numel, rho, sample_ratio, upper, lower, max_iters, resample, rng_seed, start
  const SelectCase cases[] = {
      {"uniform a", dgc_golden::uniform_signed, 1, 20000, 0.01, 0.01, 1.3, 0.8, 10, true, 11, 21},
      {"uniform b", dgc_golden::uniform_signed, 2, 20000, 0.01, 0.01, 1.3, 0.8, 10, true, 12, 93},
      {"uniform c", dgc_golden::uniform_signed, 3, 20000, 0.01, 0.01, 1.3, 0.8, 10, true, 13, 54},
      {"uniform d", dgc_golden::uniform_signed, 4, 20000, 0.01, 0.01, 1.3, 0.8, 10, true, 14, 67},
      {"uniform e", dgc_golden::uniform_signed, 5, 20000, 0.01, 0.01, 1.3, 0.8, 10, true, 15, 6},
      {"uniform f", dgc_golden::uniform_signed, 6, 20000, 0.01, 0.01, 1.3, 0.8, 10, true, 16, 1},
      {"spiky samples: lowered, then re-selected", dgc_golden::spiky, 7, 20000, 0.01, 0.01, 1.3, 0.8, 10, true, 17, 27},
      {"spiky samples, two adaptations at most", dgc_golden::spiky, 7, 20000, 0.01, 0.01, 1.3, 0.8, 2, true, 17, 27},
      {"all ties: first k indices", dgc_golden::ties, 8, 20000, 0.01, 0.01, 1.3, 0.8, 10, true, 18, 88},
      {"resample off a", dgc_golden::uniform_signed, 1, 20000, 0.01, 0.01, 1.3, 0.8, 10, false, 11, 21},
      {"resample off b", dgc_golden::uniform_signed, 2, 20000, 0.01, 0.01, 1.3, 0.8, 10, false, 12, 93},
      {"narrow band", dgc_golden::uniform_signed, 9, 20000, 0.01, 0.01, 1.05, 0.95, 10, false, 19, 91},
      {"tiny tensor: ties cut by the cap", dgc_golden::tiny_ties, 10, 150, 0.01, 0.01, 1.3, 0.8, 10, true, 20, 0},
      {"whole tensor sampled (sample_ratio 1)", dgc_golden::uniform_signed, 11, 5000, 0.01, 1.0, 1.3, 0.8, 10, true, 21, 0},
      {"large, rho 0.001", dgc_golden::uniform_signed, 12, 200000, 0.001, 0.01, 1.3, 0.8, 10, true, 22, 50},
  };
  std::printf("// Generated by tests/golden/dgc_golden.cpp (see its header); do not edit.\n");
  std::printf("// Sampling plans: numel, rho, sample_ratio -> stride, num_samples, top_k_samples, num_selects.\n");
  std::printf("inline constexpr DgcGoldenPlan dgc_golden_plans[] = {\n");
  for (const auto& pc : plans) {
    const Plan p = make_plan(pc.numel, pc.rho, pc.sample_ratio);
    std::printf("    {%lld, %a, %a, %lld, %lld, %lld, %lld},\n", static_cast<long long>(pc.numel), pc.rho,
                pc.sample_ratio, static_cast<long long>(p.stride), static_cast<long long>(p.num_samples),
                static_cast<long long>(p.top_k_samples), static_cast<long long>(p.num_selects));
  }
  std::printf("};\n\n");
  std::vector<std::int64_t> all;
  std::printf("// Sampled selections: inputs (kind, seed, numel, options, rng seed, start), then the sampled\n");
  std::printf("// threshold, the count passing it, adaptations, re-selection, final threshold, candidates\n");
  std::printf("// before the cap, and the slice [first, first + count) of dgc_golden_indices.\n");
  std::printf("inline constexpr DgcGoldenSelect dgc_golden_selects[] = {\n");
  for (const auto& c : cases) {
    const Result r = select(c);
    std::printf("    {\"%s\", %d, %llu, %lld, %a, %a, %a, %a, %d, %s, %llu, %lld,\n", c.name, c.kind,
                static_cast<unsigned long long>(c.seed), static_cast<long long>(c.numel), c.rho, c.sample_ratio,
                c.upper, c.lower, c.max_iters, c.resample ? "true" : "false",
                static_cast<unsigned long long>(c.rng_seed), static_cast<long long>(c.start));
    std::printf("     {%lld, %lld, %lld, %lld}, %af, %lld, %d, %s, %af, %lld, %zu, %zu},\n",
                static_cast<long long>(r.plan.stride), static_cast<long long>(r.plan.num_samples),
                static_cast<long long>(r.plan.top_k_samples), static_cast<long long>(r.plan.num_selects),
                static_cast<double>(r.sample_threshold), static_cast<long long>(r.initial_count), r.adaptations,
                r.resampled ? "true" : "false", static_cast<double>(r.threshold),
                static_cast<long long>(r.candidates), all.size(), r.idx.size());
    all.insert(all.end(), r.idx.begin(), r.idx.end());
  }
  std::printf("};\n\n");
  std::printf("inline constexpr long long dgc_golden_indices[] = {");
  for (std::size_t j = 0; j < all.size(); ++j) std::printf("%s%lld,", j % 12 == 0 ? "\n    " : " ", static_cast<long long>(all[j]));
  std::printf("\n};\n");
  return 0;
}
