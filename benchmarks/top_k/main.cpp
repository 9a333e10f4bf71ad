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
    j.value("ratio_to_probe_min", s.min / p.min);
    j.value("ratio_to_probe_median", s.median / p.median);
    j.value("ratio_to_probe_paired_median", ratio_paired_median(c.times, probe->times));
    std::cout << "  x" << std::setprecision(2) << s.min / p.min << " probe (min), x" << s.median / p.median
              << " (median), x" << ratio_paired_median(c.times, probe->times) << " (paired)";
  }
  std::cout << "\n";
  j.begin_array("times_s");
  for (double t : c.times) j.value("", t);
  j.end_array();
  j.end_object();
}

int run(int argc, char** argv) {
  Flags flags(argc, argv, "bench_top_k");
  const Index d = flags.get_int("d", 25000000, "vector dimension (floats)");
  const double density = std::stod(flags.get("density", "0.001", "fraction of coordinates kept"));
  const int threads = static_cast<int>(flags.get_int("threads", 0, "OpenMP threads (0: OMP_NUM_THREADS or all)"));
  const int reps = static_cast<int>(flags.get_int("reps", 15, "timed repetitions of each case"));
  const int warmup = static_cast<int>(flags.get_int("warmup", 2, "untimed repetitions first"));
  const double target = std::stod(
      flags.get("target", "15", "pass when the median over repetitions of top_k_indices time / probe time <= this"));
  const std::string json_path = flags.get("json", "", "write the JSON result to this file");
  const bool naive = !flags.get_bool("no-naive", "skip the std::nth_element baseline");
  if (flags.finish()) return 0;
  if (d < 1 || reps < 1 || warmup < 0) throw std::invalid_argument("d, reps must be >= 1, warmup >= 0");
  if (threads > 0) set_max_threads(threads);

  const TopK topk = TopK::density(density);
  const auto k = static_cast<std::size_t>(topk.k_for(d));
  // Gaussian values (a gradient-like distribution), seeded.
  std::vector<float> x(static_cast<std::size_t>(d));
  {
    Rng rng = make_rng(1, 0, 0, Purpose::user);
    for (auto& v : x) v = static_cast<float>(rng.normal());
  }
  const double bytes = static_cast<double>(d) * sizeof(float);
  volatile double sink = 0.0;
  std::vector<Index> fast, slow;
  std::vector<Index> scratch(static_cast<std::size_t>(d));
  TopK::State st;
  Rng rng(0);
  std::size_t payload_bytes = 0;

  std::vector<Case> cases;
  cases.push_back({"probe (parallel sum)", [&] { sink = sink + probe_sum(x.data(), d); }, {}});
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
  run_interleaved(cases, reps, warmup);
  const bool same = !naive || fast == slow;

  const double ratio = ratio_paired_median(cases[1].times, cases[0].times);
  const bool pass = ratio <= target;
  std::cout << "bench_top_k: d=" << d << " float, k=" << k << " (density " << density << "), " << max_threads()
            << " threads, " << reps << " reps; " << cpu_model() << "; load " << load_average() << "\n";
  Json j;
  j.begin_object();
  write_context(j, "bench_top_k");
  j.begin_object("parameters");
  j.value("d", static_cast<long long>(d));
  j.value("k", static_cast<long long>(k));
  j.value("density", density);
  j.value("scalar", "float");
  j.value("distribution", "standard normal");
  j.value("repetitions", reps);
  j.value("warmup", warmup);
  j.value("payload_bytes", static_cast<long long>(payload_bytes));
  j.value("bytes_read_per_call", bytes);
  j.end_object();
  j.begin_array("results");
  report_case(j, cases[0], bytes, nullptr);
  for (std::size_t c = 1; c < cases.size(); ++c) report_case(j, cases[c], bytes, &cases[0]);
  j.end_array();
  j.begin_object("target");
  j.value("metric", "median over repetitions of (top_k_indices time / probe time in the same repetition)");
  j.value("ratio", ratio);
  j.value("max", target);
  j.value("pass", pass);
  j.value("issue_reference", "numpy argpartition 270 ms; probe about 2-3 ms");
  j.end_object();
  j.begin_object("checks");
  j.value("same_indices_as_naive", same);
  j.end_object();
  j.end_object();
  std::cout << std::setprecision(3) << "  target: top_k_indices/probe (paired median) = " << ratio << " <= " << target
            << ": " << (pass ? "PASS" : "FAIL") << "; same indices as the naive baseline: " << (same ? "yes" : "NO")
            << "; payload " << payload_bytes << " bytes\n";
  write_file(json_path, j.str());
  if (!json_path.empty()) std::cout << "  wrote " << json_path << "\n";
  return same ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "bench_top_k: " << e.what() << "\n";
    return 2;
  }
}
