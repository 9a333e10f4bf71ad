// bench_dgc: Deep Gradient Compression on d floats (default 25e6) at density 0.001:
//  - the sampled-threshold selection (the reference's `_sparsify`: strided sample, threshold,
//    adaptation, indices and values) on a fixed velocity vector,
//  - fedpp's exact top-k selection (DgcThreshold::exact),
//  - a naive baseline: copy |v|, std::nth_element (one thread), then collect the indices,
//  - the full DGC encode (finite check, momentum, velocity, selection, masking, sparse payload),
// each timed against the read-bandwidth probe (a parallel sum over the same d floats, same threads)
// in the same run with interleaved repetitions. The target is on the sampled selection:
// median over repetitions of (selection time / probe time) <= 5. See docs/compressors/dgc.md.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "common/bench.hpp"
#include "fedpp/compressors/dgc.hpp"
#include "fedpp/core/rng.hpp"

namespace {

using namespace fedpp;
using namespace fedpp::bench;

// The rows: times at 2 digits, the paired ratio to the probe.
constexpr RowStyle row_style{.ms_width = 8};

// Fills x with N(0, scale^2) draws, one stream per block of 2^16 values (thread-count independent).
void fill_normal(std::vector<float>& x, std::uint64_t seed, double scale) {
  const auto n = static_cast<std::int64_t>(x.size());
  const std::int64_t block = 1 << 16, nb = (n + block - 1) / block;
  FEDPP_OMP_PARALLEL_FOR
  for (std::int64_t b = 0; b < nb; ++b) {
    Rng rng = make_rng(seed, 0, static_cast<std::uint64_t>(b), Purpose::user);
    for (std::int64_t i = b * block; i < std::min(n, (b + 1) * block); ++i)
      x[static_cast<std::size_t>(i)] = static_cast<float>(scale * rng.normal());
  }
}

int run(int argc, char** argv) {
  Flags flags(argc, argv, "bench_dgc");
  const Index d = flags.get_int("d", 25000000, "update dimension");
  const double density = std::stod(flags.get("density", "0.001", "DGC density (fraction sent)"));
  const Timing timing = Timing::read(flags, 15, 1);
  const double max_ratio =
      flags.get_double("target", "5", "pass when the median over repetitions of selection time / probe time <= this");
  const bool naive = !flags.get_bool("no-naive", "skip the single-threaded nth_element baseline");
  const std::string json_path = json_flag(flags);
  if (flags.finish()) return 0;
  if (d < 1 || timing.reps < 1 || timing.warmup < 0) throw std::invalid_argument("d, reps must be >= 1, warmup >= 0");
  timing.apply_threads();

  std::vector<float> v(static_cast<std::size_t>(d)), x(static_cast<std::size_t>(d));
  fill_normal(v, 1, 1.0);  // a velocity vector
  fill_normal(x, 2, 0.01);  // a client update (the "gradient")
  const double bytes = static_cast<double>(d) * sizeof(float);
  const std::span<const float> vs(v);

  DgcOptions o;
  o.density = density;
  o.warmup = DgcWarmup::none;
  const Dgc dgc(o);
  const DgcSamplingPlan plan = dgc.plan(d, density);
  DgcOptions oe = o;
  oe.threshold = DgcThreshold::exact;
  auto state = dgc.make_state<float>(d);

  std::uint64_t counter = 0;
  std::vector<Index> sel, sel_exact, sel_naive;
  std::vector<float> vals;
  std::vector<float> mag(static_cast<std::size_t>(d));
  std::size_t payload_bytes = 0;
  Index min_count = d, max_count = 0;
  int resamples = 0, selections = 0;

  std::vector<Case> cases;
  cases.push_back(probe_case(v.data(), d));
  cases.push_back({"DGC sampled selection", [&] {
                     Rng rng = make_rng(7, counter++, 0, Purpose::compression);
                     DgcSelectInfo info;
                     detail::dgc_select_sampled(vs, plan, o, rng, sel, &info);
                     vals.resize(sel.size());
                     for (std::size_t j = 0; j < sel.size(); ++j) vals[j] = v[static_cast<std::size_t>(sel[j])];
                     min_count = std::min(min_count, static_cast<Index>(sel.size()));
                     max_count = std::max(max_count, static_cast<Index>(sel.size()));
                     resamples += info.resampled;
                     ++selections;
                   },
                   {}});
  cases.push_back({"fedpp exact top-k selection", [&] {
                     detail::dgc_select_exact(vs, plan.num_selects, sel_exact);
                     vals.resize(sel_exact.size());
                     for (std::size_t j = 0; j < sel_exact.size(); ++j)
                       vals[j] = v[static_cast<std::size_t>(sel_exact[j])];
                   },
                   {}});
  if (naive)
    cases.push_back({"naive nth_element on |v| copy (1 thr)", [&] {
                       for (Index i = 0; i < d; ++i) mag[static_cast<std::size_t>(i)] = std::abs(v[static_cast<std::size_t>(i)]);
                       const auto k = static_cast<std::size_t>(plan.num_selects);
                       std::nth_element(mag.begin(), mag.begin() + static_cast<std::ptrdiff_t>(k - 1), mag.end(),
                                        std::greater<float>());
                       const float t = mag[k - 1];
                       sel_naive.clear();
                       for (Index i = 0; i < d && sel_naive.size() < k; ++i)
                         if (std::abs(v[static_cast<std::size_t>(i)]) >= t) sel_naive.push_back(i);
                     },
                     {}});
  cases.push_back({"full DGC encode (payload)", [&] {
                     Rng rng = make_rng(9, state.steps, 0, Purpose::compression);
                     const Payload p = dgc.encode(std::span<const float>(x), state, rng);
                     payload_bytes = p.bytes();
                   },
                   {}});
  run_interleaved(cases, timing.reps, timing.warmup);

  const Target target{ratio_paired_median(cases[1].times, cases[0].times), max_ratio};
  const double ratio_full = ratio_paired_median(cases.back().times, cases[0].times);
  const Index k = plan.num_selects;
  const bool counts_ok = min_count >= static_cast<Index>(std::ceil(0.8 * static_cast<double>(k))) && max_count <= k;
  const bool exact_ok = static_cast<Index>(sel_exact.size()) == k;

  std::cout << "bench_dgc: d=" << d << " float, density " << density << " (k=" << k << "), " << max_threads()
            << " threads, " << timing.reps << " reps; " << cpu_model() << "; load " << load_average() << "\n";
  Json j = open_report("bench_dgc");
  j.value("d", static_cast<long long>(d));
  j.value("scalar", "float");
  j.value("density", density);
  j.value("num_selects", static_cast<long long>(k));
  j.value("sample_ratio", o.sample_ratio);
  j.value("sample_stride", static_cast<long long>(plan.stride));
  j.value("num_samples", static_cast<long long>(plan.num_samples));
  j.value("top_k_samples", static_cast<long long>(plan.top_k_samples));
  timing.write(j);
  j.value("velocity_data", "N(0, 1) floats");
  j.end_object();
  report_array(j, "results", cases, bytes, row_style);
  j.begin_object("target");
  target.write(j, "median over repetitions of (DGC sampled selection time / probe time in the same repetition)");
  j.value("full_encode_ratio", ratio_full);
  j.end_object();
  j.begin_object("checks");
  j.value("sampled_count_min", static_cast<long long>(min_count));
  j.value("sampled_count_max", static_cast<long long>(max_count));
  j.value("sampled_resamples", resamples);
  j.value("sampled_selections", selections);
  j.value("sampled_counts_in_0.8k_to_k", counts_ok);
  j.value("exact_count_is_k", exact_ok);
  j.value("payload_bytes", static_cast<long long>(payload_bytes));
  j.value("dense_bytes", static_cast<long long>(d) * 4);
  j.end_object();
  j.end_object();

  target.print("sampled selection / probe (paired median)");
  std::cout << "; full encode / probe = " << ratio_full << "; sampled counts in [" << min_count << ", " << max_count
            << "] (k = " << k << ", " << resamples << " re-selections); payload " << payload_bytes << " bytes\n";
  save_report(json_path, j);
  return counts_ok && exact_ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) { return fedpp::bench::guarded_main("bench_dgc", run, argc, argv); }
