// bench_weighted_mean: FedAvg's weighted mean of n client updates of d floats (UpdateBatch<float>),
// batch and streaming forms, timed against a read-bandwidth probe (a parallel sum over the same
// buffer, same threads) in the same run with interleaved repetitions. Reports min and median
// times, GB/s of update data read, and the ratio mean_time / probe_time. See docs/performance.md.
#include <cmath>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "common/bench.hpp"
#include "fedpp/aggregators/weighted_mean.hpp"
#include "fedpp/core/rng.hpp"

namespace {

using namespace fedpp;
using namespace fedpp::bench;

// The rows: a GB/s column and the GB/s at the median; the min, median and paired ratios to the
// probe at 3 digits.
constexpr RowStyle row_style{.name_width = 22,
                             .ms_width = 8,
                             .gbps_column = true,
                             .probe_text = ProbeText::min_median_paired,
                             .probe_precision = 3,
                             .json_gbps_at_median = true};

// Block-size / column-group variants of the batch kernel, for --sweep (investigation only: they
// all give the same bits, only their speed differs).
template <int G>
Case variant(const UpdateBatch<float>& batch, const std::vector<double>& w, double sum_w, Vector<float>& out,
             Index block, bool base_isa = false) {
  const detail::RangeKernel<float> kernel =
      base_isa ? &detail::weighted_mean_range_base<G, float> : detail::best_range_kernel<G, float>();
  std::string name = "blocked B=";
  name += std::to_string(block);
  name += " G=";
  name += std::to_string(G);
  if (base_isa) name += " base ISA";
  return {name,
          [&batch, &w, sum_w, &out, block, kernel] {
            detail::weighted_mean_blocked<G>(batch.data(), batch.dim(), batch.size(), w.data(), sum_w, out.data(),
                                             block, kernel);
          },
          {}};
}

int run(int argc, char** argv) {
  Flags flags(argc, argv, "bench_weighted_mean");
  const Index n = flags.get_int("n", 100, "number of clients (columns)");
  const Index d = flags.get_int("d", 1000000, "update dimension (rows)");
  const Timing timing = Timing::read(flags, 15, 2);
  const double max_ratio =
      flags.get_double("target", "1.15", "pass when the median over repetitions of batch time / probe time <= this");
  const std::string json_path = json_flag(flags);
  const bool sweep = flags.get_bool("sweep", "also time other block sizes and column groups");
  if (flags.finish()) return 0;
  if (n < 1 || d < 1 || timing.reps < 1 || timing.warmup < 0)
    throw std::invalid_argument("n, d, reps must be >= 1, warmup >= 0");
  timing.apply_threads();

  // Updates: column i is client i's, values uniform in [-0.5, 0.5), weight = a sample count.
  UpdateBatch<float> batch(d, n);
  {
    std::vector<float> col(static_cast<std::size_t>(d));
    for (Index i = 0; i < n; ++i) {
      auto rng = make_rng(1, 0, static_cast<std::uint64_t>(i), Purpose::user);
      for (auto& x : col) x = rng.uniform_float() - 0.5f;
      batch.push_back(static_cast<ClientId>(i), static_cast<double>(1 + rng.uniform_index(100)), col);
    }
  }
  const double bytes = static_cast<double>(n) * static_cast<double>(d) * sizeof(float);
  const WeightedMean mean;
  Vector<float> out_batch(d), out_stream(d), out_variant(d);

  std::vector<Case> cases;
  cases.push_back(probe_case(batch.data(), n * d));
  cases.push_back({"batch aggregate", [&] { mean.aggregate(batch, out_batch); }, {}});
  cases.push_back({"streaming Accumulator", [&] {
                     WeightedMean::Accumulator<float> acc(mean, d);
                     for (Index i = 0; i < n; ++i) acc.add(batch.column(i), batch.weights()[static_cast<std::size_t>(i)]);
                     acc.finish(out_stream);
                   },
                   {}});
  run_interleaved(cases, timing.reps, timing.warmup);
  const bool identical =
      std::memcmp(out_batch.data(), out_stream.data(), static_cast<std::size_t>(d) * sizeof(float)) == 0;

  const Target target{ratio_paired_median(cases[1].times, cases[0].times), max_ratio};

  std::cout << "bench_weighted_mean: n=" << n << " d=" << d << " float, " << max_threads() << " threads, "
            << timing.reps << " reps; " << cpu_model() << "\n";
  Json j = open_report("bench_weighted_mean");
  j.value("n", static_cast<long long>(n));
  j.value("d", static_cast<long long>(d));
  j.value("scalar", "float");
  timing.write(j);
  j.value("block_size", static_cast<long long>(WeightedMean::block_size()));
  j.value("column_group", WeightedMean::column_group);
  j.value("madd_fused", detail::madd_is_fused);
#if FEDPP_WEIGHTED_SUM_AVX2
  j.value("kernel_isa", detail::cpu_has_avx2() ? "avx2 (run-time dispatch)" : "base");
#else
  j.value("kernel_isa", "base (build flags)");
#endif
  j.value("bytes_read_per_call", bytes);
  j.end_object();
  report_array(j, "results", cases, bytes, row_style);
  j.begin_object("target");
  target.write(j, "median over repetitions of (batch aggregate time / probe time in the same repetition)");
  j.end_object();
  j.begin_object("checks");
  j.value("streaming_bit_identical_to_batch", identical);
  j.end_object();

  if (sweep) {
    std::vector<double> w(batch.weights().begin(), batch.weights().end());
    double sum_w = 0.0;
    for (double x : w) sum_w += x;
    std::vector<Case> v;
    v.push_back(cases[0]);
    v.back().times.clear();
    v.push_back(variant<8>(batch, w, sum_w, out_variant, 2048));
    for (Index block : {8192, 16384, 32768, 65536, 131072}) {
      v.push_back(variant<4>(batch, w, sum_w, out_variant, block));
      v.push_back(variant<8>(batch, w, sum_w, out_variant, block));
    }
    v.push_back(variant<2>(batch, w, sum_w, out_variant, 65536));
    v.push_back(variant<4>(batch, w, sum_w, out_variant, 65536, /*base_isa=*/true));
    run_interleaved(v, timing.reps, 1);
    report_section(j, "sweep", " sweep (same run, interleaved with its own probe):\n", v, bytes, row_style);
  }
  j.end_object();

  target.print("batch/probe (paired median)");
  std::cout << "; streaming bit-identical to batch: " << (identical ? "yes" : "NO") << "\n";
  save_report(json_path, j);
  return identical ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) { return fedpp::bench::guarded_main("bench_weighted_mean", run, argc, argv); }
