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
  const int threads = static_cast<int>(flags.get_int("threads", 0, "OpenMP threads (0: OMP_NUM_THREADS or all)"));
  const int reps = static_cast<int>(flags.get_int("reps", 15, "timed repetitions of each case"));
  const int warmup = static_cast<int>(flags.get_int("warmup", 2, "untimed repetitions first"));
  const int baseline_reps =
      static_cast<int>(flags.get_int("baseline-reps", 5, "repetitions of the naive baseline (0: skip it)"));
  const double target =
      std::stod(flags.get("target", "20", "pass when GM time / probe time (paired median) <= this"));
  const std::string json_path = flags.get("json", "", "write the JSON result to this file");
  const bool sweep = flags.get_bool("sweep", "also time each compiled sweep kernel (base, AVX2, AVX-512F)");
  if (flags.finish()) return 0;
  if (n < 1 || d < 1 || reps < 1 || warmup < 0 || iters < 1)
    throw std::invalid_argument("n, d, reps, iterations must be >= 1, warmup >= 0");
  if (threads > 0) set_max_threads(threads);

  const UpdateBatch<float> batch = dist::client_batch(n, d);
  const double bytes = static_cast<double>(n) * static_cast<double>(d) * sizeof(float);
  const double nu = 1e-6;
  const GeometricMedian gm(nu, iters, 0.0);  // tol = 0: exactly `iters` updates
  Vector<float> out_gm(d), out_cc(d);
  volatile double sink = 0.0;

  std::vector<Case> cases;
  cases.push_back({"probe (parallel sum)", [&] { sink = sink + probe_sum(batch.data(), n * d); }, {}});
  cases.push_back({"GeometricMedian (" + std::to_string(iters) + " it.)", [&] { gm.aggregate(batch, out_gm); }, {}});
  cases.push_back({"CenteredClipping (3 it., from 0)", [&] {
                     CenteredClipping cc(1.0, 3);
                     cc.aggregate(batch, out_cc);
                   },
                   {}});
  run_interleaved(cases, reps, warmup);

  std::cout << "bench_geometric_median: n=" << n << " d=" << d << " float, " << iters << " iterations, "
            << max_threads() << " threads, " << reps << " reps; " << cpu_model() << "\n";
  Json j;
  j.begin_object();
  write_context(j, "bench_geometric_median");
  j.begin_object("parameters");
  j.value("n", static_cast<long long>(n));
  j.value("d", static_cast<long long>(d));
  j.value("iterations", iters);
  j.value("nu", nu);
  j.value("start", "mean");
  j.value("passes_over_the_batch", iters + 1);
  j.value("scalar", "float");
  j.value("repetitions", reps);
  j.value("warmup", warmup);
#if FEDPP_DIST_DISPATCH
  j.value("kernel_isa", detail::dist_cpu_has_avx512() ? "avx512f (run-time dispatch)"
                        : detail::dist_cpu_has_avx2() ? "avx2 (run-time dispatch)"
                                                      : "base");
#else
  j.value("kernel_isa", "base (build flags)");
#endif
  j.value("bytes_read_per_pass", bytes);
  j.end_object();
  j.begin_array("results");
  dist::report(j, cases[0], bytes, nullptr);
  dist::report(j, cases[1], bytes, &cases[0]);
  dist::report(j, cases[2], bytes, &cases[0]);

  double max_rel_diff = 0.0, naive_over_fedpp = 0.0;
  if (baseline_reps > 0) {
    std::vector<double> z_naive;
    std::vector<Case> base;
    base.push_back({"probe (parallel sum)", [&] { sink = sink + probe_sum(batch.data(), n * d); }, {}});
    base.push_back({"naive Weiszfeld (2 passes/it.)", [&] { naive_weiszfeld(batch, nu, iters, z_naive); }, {}});
    base.push_back({"GeometricMedian", [&] { gm.aggregate(batch, out_gm); }, {}});
    run_interleaved(base, baseline_reps, 1);
    double scale = 0.0;
    for (Index k = 0; k < d; ++k) {
      scale = std::max(scale, std::fabs(z_naive[static_cast<std::size_t>(k)]));
      max_rel_diff = std::max(max_rel_diff, std::fabs(z_naive[static_cast<std::size_t>(k)] - out_gm(k)));
    }
    max_rel_diff /= scale;
    naive_over_fedpp = dist::paired_ratio(base[1].times, base[2].times);
    std::cout << " naive baseline (" << baseline_reps << " rounds with their own probe):\n";
    dist::report(j, base[1], bytes, &base[0]);
    std::cout << "  naive / fedpp (paired median): x" << std::setprecision(2) << naive_over_fedpp
              << "; max |difference| / max |z| = " << std::scientific << max_rel_diff << std::fixed << "\n";
  }
  j.end_array();

  const double ratio = dist::paired_ratio(cases[1].times, cases[0].times);
  const bool pass = ratio <= target;
  j.begin_object("target");
  j.value("metric", "median over repetitions of (GeometricMedian time / probe time in the same repetition)");
  j.value("ratio", ratio);
  j.value("max", target);
  j.value("pass", pass);
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
    v.push_back({"probe (parallel sum)", [&] { sink = sink + probe_sum(batch.data(), n * d); }, {}});
    std::vector<double> z;
    for (auto isa : {detail::DistIsa::base, detail::DistIsa::avx2, detail::DistIsa::avx512}) {
      if (!detail::dist_isa_available(isa)) continue;
      const char* nm = isa == detail::DistIsa::base ? "GM, base ISA" : isa == detail::DistIsa::avx2 ? "GM, AVX2" : "GM, AVX-512F";
      v.push_back({nm, [&, isa] {
                     detail::weiszfeld(batch, nu, iters, 0.0, Weighting::uniform, GeometricMedianStart::mean, z, isa);
                   },
                   {}});
    }
    run_interleaved(v, std::max(3, reps / 2), 1);
    std::cout << " sweep (same run, interleaved with its own probe):\n";
    j.begin_array("sweep");
    dist::report(j, v[0], bytes, nullptr);
    for (std::size_t k = 1; k < v.size(); ++k) dist::report(j, v[k], bytes, &v[0]);
    j.end_array();
  }
  j.end_object();

  std::cout << std::setprecision(2) << "  target: GM/probe (paired median) = " << ratio << " <= " << target << ": "
            << (pass ? "PASS" : "FAIL") << "\n";
  write_file(json_path, j.str());
  if (!json_path.empty()) std::cout << "  wrote " << json_path << "\n";
  return baseline_reps == 0 || max_rel_diff < 1e-6 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "bench_geometric_median: " << e.what() << "\n";
    return 2;
  }
}
