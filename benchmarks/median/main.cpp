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
  const Timing timing = Timing::read(flags, 15, 2);
  const double max_ratio = flags.get_double(
      "target", "8", "pass when the median over repetitions of median time / probe time <= this");
  const std::string json_path = json_flag(flags);
  const bool variants = flags.get_bool("variants", "also time other approaches and kernels (investigation)");
  const bool no_naive = flags.get_bool("no-naive", "skip the naive std::sort baseline (slow for large n)");
  if (flags.finish()) return 0;
  if (n < 1 || d < 1 || timing.reps < 1 || timing.warmup < 0)
    throw std::invalid_argument("n, d, reps must be >= 1, warmup >= 0");
  timing.apply_threads();

  const UpdateBatch<float> batch = coordinate_batch(n, d);
  const double bytes = static_cast<double>(n) * static_cast<double>(d) * sizeof(float);
  CoordOutputs out(d);
  const CoordinateMedian median;
  const auto midpoint_sorted = [](const float* v, Index m) { return std::midpoint(v[(m - 1) / 2], v[m / 2]); };

  std::vector<Case> cases;
  cases.push_back(probe_case(batch.data(), n * d));
  cases.push_back({"fedpp CoordinateMedian", [&] { median.aggregate(batch, out.fedpp); }, {}});
  if (!no_naive)
    cases.push_back({"naive std::sort", [&] { naive_sorted(batch.data(), d, n, out.naive.data(), midpoint_sorted); }, {}});
  run_interleaved(cases, timing.reps, timing.warmup);
  const long long diff_naive = out.check_naive(!no_naive);

  const Target target{ratio_paired_median(cases[1].times, cases[0].times), max_ratio};
  const std::vector<Index> columns = detail::all_columns(n);
  const Index med_ranks[2] = {(n - 1) / 2, n / 2};
  const Index comparators = detail::ComparatorNetwork::selector(n, std::span<const Index>(med_ranks, 2)).size();

  std::cout << "bench_median: n=" << n << " d=" << d << " float, " << max_threads() << " threads, " << timing.reps
            << " reps; " << cpu_model() << "; kernel " << coordinate_kernel_isa() << ", " << comparators
            << " comparators\n";
  Json j = open_report("bench_median");
  j.value("n", static_cast<long long>(n));
  j.value("d", static_cast<long long>(d));
  j.value("scalar", "float");
  j.value("convention", "average");
  timing.write(j);
  write_coord_kernel(j, comparators, bytes);
  j.end_object();
  report_coord_results(j, cases, bytes);
  write_coord_target(j, target,
                     "median over repetitions of (CoordinateMedian time / probe time in the same repetition)",
                     "median <= 8x the read-bandwidth probe, 2 threads, n=100, d=1e6 float; torch.median takes 1060 ms",
                     diff_naive);

  long long diff_variants = 0;
  if (variants) {
    std::vector<Case> v;
    v.push_back(probe_case(batch.data(), n * d));
    v.push_back({"fedpp CoordinateMedian", [&] { median.aggregate(batch, out.fedpp); }, {}});
    v.push_back({"fedpp lower convention", [&] {
                   CoordinateMedian(MedianConvention::lower).aggregate(batch, out.fedpp);
                 },
                 {}});
    for (auto isa : {detail::TileIsa::base, detail::TileIsa::avx2}) {
      const std::string name = isa == detail::TileIsa::base ? "fedpp kernel, base ISA" : "fedpp kernel, AVX2";
      v.push_back({name, [&, isa] {
                     detail::coordinate_median<float>(batch.data(), d, columns, true, out.variant.data(), isa);
                   },
                   {}});
    }
    v.push_back({"blocked nth_element", [&] {
                   blocked_select(batch.data(), d, n, out.variant.data(), [](float* x, Index m) {
                     std::nth_element(x, x + m / 2, x + m);
                     const float hi = x[m / 2];
                     if (m % 2) return hi;
                     const float lo = *std::max_element(x, x + m / 2);
                     return std::midpoint(lo, hi);
                   });
                 },
                 {}});
    diff_variants = report_coord_variants(j, v, timing.reps, bytes, out);
  }
  j.end_object();

  print_coord_target(target, "median/probe (paired median)", diff_naive);
  save_report(json_path, j);
  return diff_naive > 0 || diff_variants > 0 ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) { return fedpp::bench::guarded_main("bench_median", run, argc, argv); }
