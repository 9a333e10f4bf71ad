// bench_geometric_median: the geometric median (smoothed Weiszfeld, 10 iterations from the
// mean) of n client updates of d floats, timed against the read-bandwidth probe (a parallel sum
// over the same buffer, same threads) in the same run with interleaved repetitions, and against
// a naive baseline (two passes per iteration: distances, then the weighted mean) in the same
// process. Also times centered clipping (3 iterations). See docs/aggregators/distance.md.
#include <cmath>
#include <iostream>
#include <string>
#include <vector>

#include "common/bench.hpp"
#include "common/dist.hpp"
#include "fedpp/aggregators/centered_clipping.hpp"
#include "fedpp/aggregators/geometric_median.hpp"

namespace {

using namespace fedpp;
using namespace fedpp::bench;

// The obvious implementation: start at the mean; each iteration computes the n distances to z
// (one pass, clients split over the threads) and then the weighted mean (a second pass,
// coordinates split over the threads), all in double.
void naive_weiszfeld(const UpdateBatch<float>& batch, double nu, int iters, std::vector<double>& z) {
  const Index n = batch.size(), d = batch.dim();
  z.assign(static_cast<std::size_t>(d), 0.0);
  std::vector<double> beta(static_cast<std::size_t>(n), 1.0 / static_cast<double>(n));
  auto weighted_mean = [&](double sum_beta) {
#if FEDPP_HAS_OPENMP
#pragma omp parallel for schedule(static)
#endif
    for (Index j = 0; j < d; ++j) {
      double acc = 0.0;
      for (Index i = 0; i < n; ++i) acc += beta[static_cast<std::size_t>(i)] * batch.data()[i * d + j];
      z[static_cast<std::size_t>(j)] = acc / sum_beta;
    }
  };
  weighted_mean(1.0);
  for (int t = 0; t < iters; ++t) {
#if FEDPP_HAS_OPENMP
#pragma omp parallel for schedule(static)
#endif
    for (Index i = 0; i < n; ++i) {
      const float* x = batch.data() + i * d;
      double s = 0.0;
      for (Index j = 0; j < d; ++j) {
        const double u = static_cast<double>(x[j]) - z[static_cast<std::size_t>(j)];
        s += u * u;
      }
      beta[static_cast<std::size_t>(i)] = (1.0 / static_cast<double>(n)) / std::max(nu, std::sqrt(s));
    }
    double sum_beta = 0.0;
    for (double b : beta) sum_beta += b;
    weighted_mean(sum_beta);
  }
}

int run(int argc, char** argv) {
  Flags flags(argc, argv, "bench_geometric_median");
  const Index n = flags.get_int("n", 100, "number of clients (columns)");
  const Index d = flags.get_int("d", 1000000, "update dimension (rows)");
  const int iters = static_cast<int>(flags.get_int("iterations", 10, "Weiszfeld iterations"));
  const Timing timing = Timing::read(flags, 15, 2);
  const int baseline_reps =
      static_cast<int>(flags.get_int("baseline-reps", 5, "repetitions of the naive baseline (0: skip it)"));
  const double max_ratio = flags.get_double("target", "20", "pass when GM time / probe time (paired median) <= this");
  const std::string json_path = json_flag(flags);
  const bool sweep = flags.get_bool("sweep", "also time each compiled sweep kernel (base, AVX2, AVX-512F)");
  if (flags.finish()) return 0;
  if (n < 1 || d < 1 || timing.reps < 1 || timing.warmup < 0 || iters < 1)
    throw std::invalid_argument("n, d, reps, iterations must be >= 1, warmup >= 0");
  timing.apply_threads();

  const UpdateBatch<float> batch = dist::client_batch(n, d);
  const double bytes = static_cast<double>(n) * static_cast<double>(d) * sizeof(float);
  const double nu = 1e-6;
  const GeometricMedian gm(nu, iters, 0.0);  // tol = 0: exactly `iters` updates
  Vector<float> out_gm(d), out_cc(d);

  std::vector<Case> cases;
  cases.push_back(probe_case(batch.data(), n * d));
  cases.push_back({"GeometricMedian (" + std::to_string(iters) + " it.)", [&] { gm.aggregate(batch, out_gm); }, {}});
  cases.push_back({"CenteredClipping (3 it., from 0)", [&] {
                     CenteredClipping cc(1.0, 3);
                     cc.aggregate(batch, out_cc);
                   },
                   {}});
  run_interleaved(cases, timing.reps, timing.warmup);

  std::cout << "bench_geometric_median: n=" << n << " d=" << d << " float, " << iters << " iterations, "
            << max_threads() << " threads, " << timing.reps << " reps; " << cpu_model() << "\n";
  Json j = open_report("bench_geometric_median");
  j.value("n", static_cast<long long>(n));
  j.value("d", static_cast<long long>(d));
  j.value("iterations", iters);
  j.value("nu", nu);
  j.value("start", "mean");
  j.value("passes_over_the_batch", iters + 1);
  j.value("scalar", "float");
  timing.write(j);
  j.value("kernel_isa", dist::kernel_isa("avx2"));
  j.value("bytes_read_per_pass", bytes);
  j.end_object();
  j.begin_array("results");
  report_cases(j, cases, bytes, dist::row_style);

  double max_rel_diff = 0.0, naive_over_fedpp = 0.0;
  if (baseline_reps > 0) {
    std::vector<double> z_naive;
    std::vector<Case> base;
    base.push_back(probe_case(batch.data(), n * d));
    base.push_back({"naive Weiszfeld (2 passes/it.)", [&] { naive_weiszfeld(batch, nu, iters, z_naive); }, {}});
    base.push_back({"GeometricMedian", [&] { gm.aggregate(batch, out_gm); }, {}});
    run_interleaved(base, baseline_reps, 1);
    double scale = 0.0;
    for (Index k = 0; k < d; ++k) {
      scale = std::max(scale, std::fabs(z_naive[static_cast<std::size_t>(k)]));
      max_rel_diff = std::max(max_rel_diff, std::fabs(z_naive[static_cast<std::size_t>(k)] - out_gm(k)));
    }
    max_rel_diff /= scale;
    naive_over_fedpp = ratio_paired_median(base[1].times, base[2].times);
    std::cout << " naive baseline (" << baseline_reps << " rounds with their own probe):\n";
    report_case(j, base[1], bytes, &base[0], dist::row_style);
    std::cout << "  naive / fedpp (paired median): x" << std::setprecision(2) << naive_over_fedpp
              << "; max |difference| / max |z| = " << std::scientific << max_rel_diff << std::fixed << "\n";
  }
  j.end_array();

  const Target target{ratio_paired_median(cases[1].times, cases[0].times), max_ratio};
  j.begin_object("target");
  target.write(j, "median over repetitions of (GeometricMedian time / probe time in the same repetition)");
  j.end_object();
  j.begin_object("checks");
  if (baseline_reps > 0) {
    j.value("naive_max_abs_difference_over_max_abs", max_rel_diff);
    j.value("agrees_with_naive", max_rel_diff < 1e-6);
    j.value("naive_over_fedpp_paired_median", naive_over_fedpp);
  }
  j.end_object();

  if (sweep) {
    std::vector<Case> v;
    v.push_back(probe_case(batch.data(), n * d));
    std::vector<double> z;
    for (auto isa : {detail::DistIsa::base, detail::DistIsa::avx2, detail::DistIsa::avx512}) {
      if (!detail::dist_isa_available(isa)) continue;
      const char* nm = isa == detail::DistIsa::base ? "GM, base ISA" : isa == detail::DistIsa::avx2 ? "GM, AVX2" : "GM, AVX-512F";
      v.push_back({nm, [&, isa] {
                     detail::weiszfeld(batch, nu, iters, 0.0, Weighting::uniform, GeometricMedianStart::mean, z, isa);
                   },
                   {}});
    }
    run_interleaved(v, std::max(3, timing.reps / 2), 1);
    report_section(j, "sweep", " sweep (same run, interleaved with its own probe):\n", v, bytes, dist::row_style);
  }
  j.end_object();

  target.print("GM/probe (paired median)", 2);
  std::cout << "\n";
  save_report(json_path, j);
  return baseline_reps == 0 || max_rel_diff < 1e-6 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) { return fedpp::bench::guarded_main("bench_geometric_median", run, argc, argv); }
