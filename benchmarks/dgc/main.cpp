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

double ratio_paired_median(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> r(a.size());
  for (std::size_t k = 0; k < a.size(); ++k) r[k] = a[k] / b[k];
  return stats(r).median;
}

void report_case(Json& j, const Case& c, double bytes, const Case* probe) {
  const Stats s = stats(c.times);
  std::cout << "  " << std::left << std::setw(34) << c.name << std::right << std::fixed << std::setprecision(2)
            << " min " << std::setw(8) << 1e3 * s.min << " ms  median " << std::setw(8) << 1e3 * s.median << " ms";
  j.begin_object();
  j.value("name", c.name);
  j.value("min_s", s.min);
  j.value("median_s", s.median);
  j.value("gbps_at_min", bytes / s.min * 1e-9);
  if (probe) {
    const Stats p = stats(probe->times);
    const double paired = ratio_paired_median(c.times, probe->times);
    j.value("ratio_to_probe_min", s.min / p.min);
    j.value("ratio_to_probe_median", s.median / p.median);
    j.value("ratio_to_probe_paired_median", paired);
    std::cout << "  x" << std::setprecision(2) << paired << " probe (paired median)";
  }
  std::cout << "\n";
  j.begin_array("times_s");
  for (double t : c.times) j.value("", t);
  j.end_array();
  j.end_object();
}

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
  const int threads = static_cast<int>(flags.get_int("threads", 0, "OpenMP threads (0: OMP_NUM_THREADS or all)"));
  const int reps = static_cast<int>(flags.get_int("reps", 15, "timed repetitions of each case"));
  const int warmup = static_cast<int>(flags.get_int("warmup", 1, "untimed repetitions first"));
  const double target = std::stod(
      flags.get("target", "5", "pass when the median over repetitions of selection time / probe time <= this"));
  const bool naive = !flags.get_bool("no-naive", "skip the single-threaded nth_element baseline");
  const std::string json_path = flags.get("json", "", "write the JSON result to this file");
  if (flags.finish()) return 0;
  if (d < 1 || reps < 1 || warmup < 0) throw std::invalid_argument("d, reps must be >= 1, warmup >= 0");
  if (threads > 0) set_max_threads(threads);

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

  volatile double sink = 0.0;
  std::uint64_t counter = 0;
  std::vector<Index> sel, sel_exact, sel_naive;
  std::vector<float> vals;
  std::vector<float> mag(static_cast<std::size_t>(d));
  std::size_t payload_bytes = 0;
  Index min_count = d, max_count = 0;
  int resamples = 0, selections = 0;

  std::vector<Case> cases;
  cases.push_back({"probe (parallel sum)", [&] { sink = sink + probe_sum(v.data(), d); }, {}});
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
  run_interleaved(cases, reps, warmup);

  const double ratio = ratio_paired_median(cases[1].times, cases[0].times);
  const double ratio_full = ratio_paired_median(cases.back().times, cases[0].times);
  const bool pass = ratio <= target;
  const Index k = plan.num_selects;
  const bool counts_ok = min_count >= static_cast<Index>(std::ceil(0.8 * static_cast<double>(k))) && max_count <= k;
  const bool exact_ok = static_cast<Index>(sel_exact.size()) == k;

  std::cout << "bench_dgc: d=" << d << " float, density " << density << " (k=" << k << "), " << max_threads()
            << " threads, " << reps << " reps; " << cpu_model() << "; load " << load_average() << "\n";
  Json j;
  j.begin_object();
  write_context(j, "bench_dgc");
  j.begin_object("parameters");
  j.value("d", static_cast<long long>(d));
  j.value("scalar", "float");
  j.value("density", density);
  j.value("num_selects", static_cast<long long>(k));
  j.value("sample_ratio", o.sample_ratio);
  j.value("sample_stride", static_cast<long long>(plan.stride));
  j.value("num_samples", static_cast<long long>(plan.num_samples));
  j.value("top_k_samples", static_cast<long long>(plan.top_k_samples));
  j.value("repetitions", reps);
  j.value("warmup", warmup);
  j.value("velocity_data", "N(0, 1) floats");
  j.end_object();
  j.begin_array("results");
  report_case(j, cases[0], bytes, nullptr);
  for (std::size_t c = 1; c < cases.size(); ++c) report_case(j, cases[c], bytes, &cases[0]);
  j.end_array();
  j.begin_object("target");
  j.value("metric", "median over repetitions of (DGC sampled selection time / probe time in the same repetition)");
  j.value("ratio", ratio);
  j.value("max", target);
  j.value("pass", pass);
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

  std::cout << std::setprecision(3) << "  target: sampled selection / probe (paired median) = " << ratio
            << " <= " << target << ": " << (pass ? "PASS" : "FAIL") << "; full encode / probe = " << ratio_full
            << "; sampled counts in [" << min_count << ", " << max_count << "] (k = " << k << ", " << resamples
            << " re-selections); payload " << payload_bytes << " bytes\n";
  write_file(json_path, j.str());
  if (!json_path.empty()) std::cout << "  wrote " << json_path << "\n";
  return counts_ok && exact_ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "bench_dgc: " << e.what() << "\n";
    return 2;
  }
}
