// bench_median: fedpp::CoordinateMedian of n client updates of d floats (UpdateBatch<float>),
// timed against the read-bandwidth probe (a parallel sum over the same buffer, same threads) and
// against the naive per-coordinate std::sort, all in the same run with interleaved repetitions.
// Reports min and median times, GB/s of update data, the paired-median ratio to the probe (the
// issue's target: <= 8) and the speed-up over the naive code. See docs/aggregators/coordinate.md.
#include <algorithm>
#include <iostream>
#include <numeric>
#include <string>
#include <vector>

#include "common/bench.hpp"
#include "common/coord.hpp"
#include "fedpp/aggregators/coordinate_median.hpp"

namespace {

using namespace fedpp;
using namespace fedpp::bench;

int run(int argc, char** argv) {
  Flags flags(argc, argv, "bench_median");
  const Index n = flags.get_int("n", 100, "number of clients (columns)");
  const Index d = flags.get_int("d", 1000000, "update dimension (rows)");
  const int threads = static_cast<int>(flags.get_int("threads", 0, "OpenMP threads (0: OMP_NUM_THREADS or all)"));
  const int reps = static_cast<int>(flags.get_int("reps", 15, "timed repetitions of each case"));
  const int warmup = static_cast<int>(flags.get_int("warmup", 2, "untimed repetitions first"));
  const double target = std::stod(
      flags.get("target", "8", "pass when the median over repetitions of median time / probe time <= this"));
  const std::string json_path = flags.get("json", "", "write the JSON result to this file");
  const bool variants = flags.get_bool("variants", "also time other approaches and kernels (investigation)");
  const bool no_naive = flags.get_bool("no-naive", "skip the naive std::sort baseline (slow for large n)");
  if (flags.finish()) return 0;
  if (n < 1 || d < 1 || reps < 1 || warmup < 0) throw std::invalid_argument("n, d, reps must be >= 1, warmup >= 0");
  if (threads > 0) set_max_threads(threads);

  const UpdateBatch<float> batch = coordinate_batch(n, d);
  const double bytes = static_cast<double>(n) * static_cast<double>(d) * sizeof(float);
  const std::size_t ud = static_cast<std::size_t>(d);
  Vector<float> out_fedpp(d);
  std::vector<float> out_naive(ud), out_variant(ud), out_fedpp_copy(ud);
  volatile double sink = 0.0;
  const CoordinateMedian median;
  const auto midpoint_sorted = [](const float* v, Index m) { return std::midpoint(v[(m - 1) / 2], v[m / 2]); };

  std::vector<Case> cases;
  cases.push_back({"probe (parallel sum)", [&] { sink = sink + probe_sum(batch.data(), n * d); }, {}});
  cases.push_back({"fedpp CoordinateMedian", [&] { median.aggregate(batch, out_fedpp); }, {}});
  if (!no_naive)
    cases.push_back({"naive std::sort", [&] { naive_sorted(batch.data(), d, n, out_naive.data(), midpoint_sorted); }, {}});
  run_interleaved(cases, reps, warmup);
  std::copy(out_fedpp.data(), out_fedpp.data() + d, out_fedpp_copy.begin());
  const long long diff_naive = no_naive ? -1 : mismatches(out_fedpp_copy, out_naive);

  const double ratio = ratio_paired_median(cases[1].times, cases[0].times);
  const bool pass = ratio <= target;
  const std::vector<Index> columns = detail::all_columns(n);
  const Index med_ranks[2] = {(n - 1) / 2, n / 2};
  const Index comparators = detail::ComparatorNetwork::selector(n, std::span<const Index>(med_ranks, 2)).size();

  std::cout << "bench_median: n=" << n << " d=" << d << " float, " << max_threads() << " threads, " << reps
            << " reps; " << cpu_model() << "; kernel " << coordinate_kernel_isa() << ", " << comparators
            << " comparators\n";
  Json j;
  j.begin_object();
  write_context(j, "bench_median");
  j.begin_object("parameters");
  j.value("n", static_cast<long long>(n));
  j.value("d", static_cast<long long>(d));
  j.value("scalar", "float");
  j.value("convention", "average");
  j.value("repetitions", reps);
  j.value("warmup", warmup);
  j.value("tile_lanes", static_cast<long long>(detail::tile_lanes<float>));
  j.value("network_comparators", static_cast<long long>(comparators));
  j.value("kernel_isa", coordinate_kernel_isa());
  j.value("bytes_read_per_call", bytes);
  j.end_object();
  j.begin_array("results");
  report_row(j, cases[0], bytes, nullptr);
  report_row(j, cases[1], bytes, &cases[0], no_naive ? nullptr : &cases[2]);
  if (!no_naive) report_row(j, cases[2], bytes, &cases[0]);
  j.end_array();
  j.begin_object("target");
  j.value("metric", "median over repetitions of (CoordinateMedian time / probe time in the same repetition)");
  j.value("ratio", ratio);
  j.value("max", target);
  j.value("pass", pass);
  j.value("issue", "median <= 8x the read-bandwidth probe, 2 threads, n=100, d=1e6 float; torch.median takes 1060 ms");
  j.end_object();
  j.begin_object("checks");
  j.value("coordinates_differing_from_naive_std_sort", diff_naive);
  j.end_object();

  long long diff_variants = 0;
  if (variants) {
    std::vector<Case> v;
    v.push_back({"probe (parallel sum)", [&] { sink = sink + probe_sum(batch.data(), n * d); }, {}});
    v.push_back({"fedpp CoordinateMedian", [&] { median.aggregate(batch, out_fedpp); }, {}});
    v.push_back({"fedpp lower convention", [&] {
                   CoordinateMedian(MedianConvention::lower).aggregate(batch, out_fedpp);
                 },
                 {}});
    for (auto isa : {detail::TileIsa::base, detail::TileIsa::avx2}) {
      const std::string name = isa == detail::TileIsa::base ? "fedpp kernel, base ISA" : "fedpp kernel, AVX2";
      v.push_back({name, [&, isa] {
                     detail::coordinate_median<float>(batch.data(), d, columns, true, out_variant.data(), isa);
                   },
                   {}});
    }
    v.push_back({"blocked nth_element", [&] {
                   blocked_select(batch.data(), d, n, out_variant.data(), [](float* x, Index m) {
                     std::nth_element(x, x + m / 2, x + m);
                     const float hi = x[m / 2];
                     if (m % 2) return hi;
                     const float lo = *std::max_element(x, x + m / 2);
                     return std::midpoint(lo, hi);
                   });
                 },
                 {}});
    run_interleaved(v, reps, 1);
    diff_variants = mismatches(out_fedpp_copy, out_variant);  // the last variant's output
    std::cout << " variants (same run, interleaved with their own probe):\n";
    j.begin_array("variants");
    report_row(j, v[0], bytes, nullptr);
    for (std::size_t k = 1; k < v.size(); ++k) report_row(j, v[k], bytes, &v[0]);
    j.end_array();
    j.begin_object("variant_checks");
    j.value("nth_element_coordinates_differing", diff_variants);
    j.end_object();
  }
  j.end_object();

  std::cout << std::setprecision(3) << "  target: median/probe (paired median) = " << ratio << " <= " << target << ": "
            << (pass ? "PASS" : "FAIL") << "; coordinates differing from naive std::sort: " << diff_naive << "\n";
  write_file(json_path, j.str());
  if (!json_path.empty()) std::cout << "  wrote " << json_path << "\n";
  return diff_naive > 0 || diff_variants > 0 ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "bench_median: " << e.what() << "\n";
    return 2;
  }
}
