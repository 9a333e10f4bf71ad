// bench_top_k: exact top-k selection (fedpp::top_k_indices, radix select on |x|) of k = ceil(density d)
// entries of d floats, and the full TopK::encode (selection + sparse payload), timed against the
// read-bandwidth probe (a parallel sum over the same buffer, same threads) and a naive baseline
// (std::nth_element over a copy of the index array, like numpy's argpartition) in the same run with
// interleaved repetitions. Reports min/median times and the ratio time / probe time. See
// docs/compressors/sparse.md.
#include <algorithm>
#include <cmath>
#include <iostream>
#include <numeric>
#include <string>
#include <vector>

#include "common/bench.hpp"
#include "fedpp/compressors/top_k.hpp"
#include "fedpp/core/rng.hpp"

namespace {

using namespace fedpp;
using namespace fedpp::bench;

// The rows: times at 2 digits; the min, median and paired ratios to the probe.
constexpr RowStyle row_style{.ms_width = 8, .probe_text = ProbeText::min_median_paired};

int run(int argc, char** argv) {
  Flags flags(argc, argv, "bench_top_k");
  const Index d = flags.get_int("d", 25000000, "vector dimension (floats)");
  const double density = flags.get_double("density", "0.001", "fraction of coordinates kept");
  const Timing timing = Timing::read(flags, 15, 2);
  const double max_ratio = flags.get_double(
      "target", "15", "pass when the median over repetitions of top_k_indices time / probe time <= this");
  const std::string json_path = json_flag(flags);
  const bool naive = !flags.get_bool("no-naive", "skip the std::nth_element baseline");
  if (flags.finish()) return 0;
  if (d < 1 || timing.reps < 1 || timing.warmup < 0) throw std::invalid_argument("d, reps must be >= 1, warmup >= 0");
  timing.apply_threads();

  const TopK topk = TopK::density(density);
  const auto k = static_cast<std::size_t>(topk.k_for(d));
  // Gaussian values (a gradient-like distribution), seeded.
  std::vector<float> x(static_cast<std::size_t>(d));
  {
    Rng rng = make_rng(1, 0, 0, Purpose::user);
    for (auto& v : x) v = static_cast<float>(rng.normal());
  }
  const double bytes = static_cast<double>(d) * sizeof(float);
  std::vector<Index> fast, slow;
  std::vector<Index> scratch(static_cast<std::size_t>(d));
  TopK::State st;
  Rng rng(0);
  std::size_t payload_bytes = 0;

  std::vector<Case> cases;
  cases.push_back(probe_case(x.data(), d));
  cases.push_back({"fedpp top_k_indices", [&] { fast = top_k_indices<float>(x, k); }, {}});
  cases.push_back({"fedpp TopK::encode (select+payload)",
                   [&] { payload_bytes = topk.encode(std::span<const float>(x), st, rng).bytes(); },
                   {}});
  if (naive)
    cases.push_back({"naive nth_element on index copy", [&] {
                       std::iota(scratch.begin(), scratch.end(), Index{0});
                       const float* xs = x.data();
                       auto better = [xs](Index a, Index b) {
                         const float fa = std::abs(xs[a]), fb = std::abs(xs[b]);
                         return fa != fb ? fa > fb : a < b;
                       };
                       std::nth_element(scratch.begin(), scratch.begin() + static_cast<std::ptrdiff_t>(k) - 1,
                                        scratch.end(), better);
                       slow.assign(scratch.begin(), scratch.begin() + static_cast<std::ptrdiff_t>(k));
                       std::sort(slow.begin(), slow.end());
                     },
                     {}});
  run_interleaved(cases, timing.reps, timing.warmup);
  const bool same = !naive || fast == slow;

  const Target target{ratio_paired_median(cases[1].times, cases[0].times), max_ratio};
  std::cout << "bench_top_k: d=" << d << " float, k=" << k << " (density " << density << "), " << max_threads()
            << " threads, " << timing.reps << " reps; " << cpu_model() << "; load " << load_average() << "\n";
  Json j = open_report("bench_top_k");
  j.value("d", static_cast<long long>(d));
  j.value("k", static_cast<long long>(k));
  j.value("density", density);
  j.value("scalar", "float");
  j.value("distribution", "standard normal");
  timing.write(j);
  j.value("payload_bytes", static_cast<long long>(payload_bytes));
  j.value("bytes_read_per_call", bytes);
  j.end_object();
  report_array(j, "results", cases, bytes, row_style);
  j.begin_object("target");
  target.write(j, "median over repetitions of (top_k_indices time / probe time in the same repetition)");
  j.value("issue_reference", "numpy argpartition 270 ms; probe about 2-3 ms");
  j.end_object();
  j.begin_object("checks");
  j.value("same_indices_as_naive", same);
  j.end_object();
  j.end_object();
  target.print("top_k_indices/probe (paired median)");
  std::cout << "; same indices as the naive baseline: " << (same ? "yes" : "NO") << "; payload " << payload_bytes
            << " bytes\n";
  save_report(json_path, j);
  return same ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) { return fedpp::bench::guarded_main("bench_top_k", run, argc, argv); }
