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

double ratio_paired_median(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> r(a.size());
  for (std::size_t k = 0; k < a.size(); ++k) r[k] = a[k] / b[k];
  return stats(r).median;
}

// One row of the summary and one object of the JSON "results" array.
void report_case(Json& j, const Case& c, double bytes, const Case* probe) {
  const Stats s = stats(c.times);
  std::cout << "  " << std::left << std::setw(22) << c.name << std::right << std::fixed << std::setprecision(2)
            << " min " << std::setw(8) << 1e3 * s.min << " ms  median " << std::setw(8) << 1e3 * s.median << " ms  "
            << std::setw(6) << bytes / s.min * 1e-9 << " GB/s";
  j.begin_object();
  j.value("name", c.name);
  j.value("min_s", s.min);
  j.value("median_s", s.median);
  j.value("gbps_at_min", bytes / s.min * 1e-9);
  j.value("gbps_at_median", bytes / s.median * 1e-9);
  if (probe) {
    const Stats p = stats(probe->times);
    j.value("ratio_to_probe_min", s.min / p.min);
    j.value("ratio_to_probe_median", s.median / p.median);
    j.value("ratio_to_probe_paired_median", ratio_paired_median(c.times, probe->times));
    std::cout << "  x" << std::setprecision(3) << s.min / p.min << " probe (min), x" << s.median / p.median
              << " (median), x" << ratio_paired_median(c.times, probe->times) << " (paired)";
  }
  std::cout << "\n";
  j.begin_array("times_s");
  for (double t : c.times) j.value("", t);
  j.end_array();
  j.end_object();
}

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
  const int threads = static_cast<int>(flags.get_int("threads", 0, "OpenMP threads (0: OMP_NUM_THREADS or all)"));
  const int reps = static_cast<int>(flags.get_int("reps", 15, "timed repetitions of each case"));
  const int warmup = static_cast<int>(flags.get_int("warmup", 2, "untimed repetitions first"));
  const double target = std::stod(flags.get(
      "target", "1.15", "pass when the median over repetitions of batch time / probe time <= this"));
  const std::string json_path = flags.get("json", "", "write the JSON result to this file");
  const bool sweep = flags.get_bool("sweep", "also time other block sizes and column groups");
  if (flags.finish()) return 0;
  if (n < 1 || d < 1 || reps < 1 || warmup < 0) throw std::invalid_argument("n, d, reps must be >= 1, warmup >= 0");
  if (threads > 0) set_max_threads(threads);

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
  volatile double sink = 0.0;

  std::vector<Case> cases;
  cases.push_back({"probe (parallel sum)", [&] { sink = sink + probe_sum(batch.data(), n * d); }, {}});
  cases.push_back({"batch aggregate", [&] { mean.aggregate(batch, out_batch); }, {}});
  cases.push_back({"streaming Accumulator", [&] {
                     WeightedMean::Accumulator<float> acc(mean, d);
                     for (Index i = 0; i < n; ++i) acc.add(batch.column(i), batch.weights()[static_cast<std::size_t>(i)]);
                     acc.finish(out_stream);
                   },
                   {}});
  run_interleaved(cases, reps, warmup);
  const bool identical =
      std::memcmp(out_batch.data(), out_stream.data(), static_cast<std::size_t>(d) * sizeof(float)) == 0;

  const double ratio = ratio_paired_median(cases[1].times, cases[0].times);
  const bool pass = ratio <= target;

  std::cout << "bench_weighted_mean: n=" << n << " d=" << d << " float, " << max_threads() << " threads, " << reps
            << " reps; " << cpu_model() << "\n";
  Json j;
  j.begin_object();
  write_context(j, "bench_weighted_mean");
  j.begin_object("parameters");
  j.value("n", static_cast<long long>(n));
  j.value("d", static_cast<long long>(d));
  j.value("scalar", "float");
  j.value("repetitions", reps);
  j.value("warmup", warmup);
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
  j.begin_array("results");
  report_case(j, cases[0], bytes, nullptr);
  report_case(j, cases[1], bytes, &cases[0]);
  report_case(j, cases[2], bytes, &cases[0]);
  j.end_array();
  j.begin_object("target");
  j.value("metric", "median over repetitions of (batch aggregate time / probe time in the same repetition)");
  j.value("ratio", ratio);
  j.value("max", target);
  j.value("pass", pass);
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
    run_interleaved(v, reps, 1);
    std::cout << " sweep (same run, interleaved with its own probe):\n";
    j.begin_array("sweep");
    report_case(j, v[0], bytes, nullptr);
    for (std::size_t k = 1; k < v.size(); ++k) report_case(j, v[k], bytes, &v[0]);
    j.end_array();
  }
  j.end_object();

  std::cout << std::setprecision(3) << "  target: batch/probe (paired median) = " << ratio << " <= " << target << ": "
            << (pass ? "PASS" : "FAIL") << "; streaming bit-identical to batch: " << (identical ? "yes" : "NO") << "\n";
  write_file(json_path, j.str());
  if (!json_path.empty()) std::cout << "  wrote " << json_path << "\n";
  return identical ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "bench_weighted_mean: " << e.what() << "\n";
    return 2;
  }
}
