// bench_trimmed_mean: fedpp::TrimmedMean (beta = 0.1, b = floor(0.1 n) per side) of n client
// updates of d floats, timed against the read-bandwidth probe and the naive per-coordinate
// std::sort, in the same run with interleaved repetitions. Reports min and median times, GB/s,
// the paired-median ratio to the probe (the target: <= 8) and the speed-up over the
// naive code. See docs/aggregators/coordinate.md.
#include <algorithm>
#include <iostream>
#include <string>
#include <vector>

#include "common/bench.hpp"
#include "common/coord.hpp"
#include "fedpp/aggregators/trimmed_mean.hpp"

namespace {

using namespace fedpp;
using namespace fedpp::bench;

int run(int argc, char** argv) {
  Flags flags(argc, argv, "bench_trimmed_mean");
  const Index n = flags.get_int("n", 100, "number of clients (columns)");
  const Index d = flags.get_int("d", 1000000, "update dimension (rows)");
  const double beta = flags.get_double("beta", "0.1", "fraction trimmed per side");
  const Timing timing = Timing::read(flags, 15, 2);
  const double max_ratio = flags.get_double(
      "target", "8", "pass when the median over repetitions of trimmed-mean time / probe time <= this");
  const std::string json_path = json_flag(flags);
  const bool variants = flags.get_bool("variants", "also time other approaches and kernels (investigation)");
  const bool no_naive = flags.get_bool("no-naive", "skip the naive std::sort baseline (slow for large n)");
  if (flags.finish()) return 0;
  if (n < 1 || d < 1 || timing.reps < 1 || timing.warmup < 0)
    throw std::invalid_argument("n, d, reps must be >= 1, warmup >= 0");
  timing.apply_threads();

  const TrimmedMean trimmed(beta);
  const Index b = trimmed.trimmed_per_side(n);
  const UpdateBatch<float> batch = coordinate_batch(n, d);
  const double bytes = static_cast<double>(n) * static_cast<double>(d) * sizeof(float);
  CoordOutputs out(d);
  // The reference arithmetic: the kept sorted values summed in double in ascending order.
  const auto trimmed_sorted = [b](const float* v, Index m) {
    double acc = 0.0;
    for (Index r = b; r < m - b; ++r) acc += static_cast<double>(v[r]);
    return static_cast<float>(acc / static_cast<double>(m - 2 * b));
  };

  std::vector<Case> cases;
  cases.push_back(probe_case(batch.data(), n * d));
  cases.push_back({"fedpp TrimmedMean", [&] { trimmed.aggregate(batch, out.fedpp); }, {}});
  if (!no_naive)
    cases.push_back({"naive std::sort", [&] { naive_sorted(batch.data(), d, n, out.naive.data(), trimmed_sorted); }, {}});
  run_interleaved(cases, timing.reps, timing.warmup);
  const long long diff_naive = out.check_naive(!no_naive);

  const Target target{ratio_paired_median(cases[1].times, cases[0].times), max_ratio};
  const std::vector<Index> columns = detail::all_columns(n);
  const Index comparators = detail::ComparatorNetwork::range_selector(n, b, n - b).size();

  std::cout << "bench_trimmed_mean: n=" << n << " d=" << d << " float, beta=" << beta << " (b=" << b << "), "
            << max_threads() << " threads, " << timing.reps << " reps; " << cpu_model() << "; kernel "
            << coordinate_kernel_isa() << ", " << comparators << " comparators\n";
  Json j = open_report("bench_trimmed_mean");
  j.value("n", static_cast<long long>(n));
  j.value("d", static_cast<long long>(d));
  j.value("scalar", "float");
  j.value("beta", beta);
  j.value("trimmed_per_side", static_cast<long long>(b));
  timing.write(j);
  write_coord_kernel(j, comparators, bytes);
  j.end_object();
  report_coord_results(j, cases, bytes);
  write_coord_target(j, target,
                     "median over repetitions of (TrimmedMean time / probe time in the same repetition)",
                     "trimmed mean beta=0.1 <= 8x the read-bandwidth probe, 2 threads, n=100, d=1e6 float; "
                     "numpy sort takes 265 ms",
                     diff_naive);

  long long diff_variants = 0;
  if (variants) {
    std::vector<Case> v;
    v.push_back(probe_case(batch.data(), n * d));
    v.push_back({"fedpp TrimmedMean", [&] { trimmed.aggregate(batch, out.fedpp); }, {}});
    for (auto isa : {detail::TileIsa::base, detail::TileIsa::avx2}) {
      const std::string name = isa == detail::TileIsa::base ? "fedpp kernel, base ISA" : "fedpp kernel, AVX2";
      v.push_back({name, [&, isa] {
                     detail::coordinate_trimmed_mean<float>(batch.data(), d, columns, b, out.variant.data(), isa);
                   },
                   {}});
    }
    // Two selections and a partial sort of the kept part (the sum must run in ascending order).
    v.push_back({"blocked nth_element + sort", [&] {
                   blocked_select(batch.data(), d, n, out.variant.data(), [b, &trimmed_sorted](float* x, Index m) {
                     if (b > 0) {
                       std::nth_element(x, x + b, x + m);
                       std::nth_element(x + b, x + (m - b), x + m);
                     }
                     std::sort(x + b, x + (m - b));
                     return trimmed_sorted(x, m);
                   });
                 },
                 {}});
    diff_variants = report_coord_variants(j, v, timing.reps, bytes, out);
  }
  j.end_object();

  print_coord_target(target, "trimmed mean/probe (paired median)", diff_naive);
  save_report(json_path, j);
  return diff_naive > 0 || diff_variants > 0 ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) { return fedpp::bench::guarded_main("bench_trimmed_mean", run, argc, argv); }
