// bench_krum: Krum and Multi-Krum over n client updates of d floats, timed against the
// read-bandwidth probe (a parallel sum over the same buffer, same threads) in the same run with
// interleaved repetitions, and against a naive baseline (a brute-force double loop over the
// pairs, parallel over pairs) timed in the same process. The target is on the paired median of
// Krum time / probe time. See docs/aggregators/distance.md.
#include <cmath>
#include <iostream>
#include <string>
#include <vector>

#include "common/bench.hpp"
#include "common/dist.hpp"
#include "fedpp/aggregators/detail/pairwise.hpp"
#include "fedpp/aggregators/krum.hpp"

namespace {

using namespace fedpp;
using namespace fedpp::bench;

// The obvious implementation: for each pair i < j, sum (x_i[k] - x_j[k])^2 in double over k;
// pairs dealt to the threads dynamically; then the Krum scores and the argmin.
Index naive_krum(const UpdateBatch<float>& batch, Index f, Matrix<double>& D) {
  const Index n = batch.size(), d = batch.dim();
  D.setZero(n, n);
  std::vector<std::pair<Index, Index>> pairs;
  for (Index i = 0; i < n; ++i)
    for (Index j = i + 1; j < n; ++j) pairs.push_back({i, j});
  const auto np = static_cast<Index>(pairs.size());
#if FEDPP_HAS_OPENMP
#pragma omp parallel for schedule(dynamic)
#endif
  for (Index p = 0; p < np; ++p) {
    const auto [i, j] = pairs[static_cast<std::size_t>(p)];
    const float* a = batch.column(i).data();
    const float* b = batch.column(j).data();
    double s = 0.0;
    for (Index k = 0; k < d; ++k) {
      const double t = static_cast<double>(a[k]) - static_cast<double>(b[k]);
      s += t * t;
    }
    D(i, j) = s;
    D(j, i) = s;
  }
  const Index k = n - f - 2;
  Index best = 0;
  double best_score = 0.0;
  for (Index i = 0; i < n; ++i) {
    std::vector<double> row;
    for (Index j = 0; j < n; ++j)
      if (j != i) row.push_back(D(i, j));
    std::sort(row.begin(), row.end());
    double s = 0.0;
    for (Index t = 0; t < k; ++t) s += row[static_cast<std::size_t>(t)];
    if (i == 0 || s < best_score) {
      best = i;
      best_score = s;
    }
  }
  return best;
}

int run(int argc, char** argv) {
  Flags flags(argc, argv, "bench_krum");
  const Index n = flags.get_int("n", 100, "number of clients (columns)");
  const Index d = flags.get_int("d", 1000000, "update dimension (rows)");
  const long long f_flag = flags.get_int("f", -1, "declared Byzantine clients (-1: n / 10)");
  const Index f = f_flag < 0 ? n / 10 : static_cast<Index>(f_flag);
  const int threads = static_cast<int>(flags.get_int("threads", 0, "OpenMP threads (0: OMP_NUM_THREADS or all)"));
  const int reps = static_cast<int>(flags.get_int("reps", 15, "timed repetitions of each case"));
  const int warmup = static_cast<int>(flags.get_int("warmup", 2, "untimed repetitions first"));
  const int baseline_reps =
      static_cast<int>(flags.get_int("baseline-reps", 3, "repetitions of the naive baseline (0: skip it)"));
  const double target = std::stod(flags.get("target", "25", "pass when Krum time / probe time (paired median) <= this"));
  const std::string json_path = flags.get("json", "", "write the JSON result to this file");
  const bool sweep = flags.get_bool("sweep", "also time each compiled Gram kernel (base, AVX2, AVX-512F)");
  if (flags.finish()) return 0;
  if (n < 3 || d < 1 || reps < 1 || warmup < 0 || f < 0 || n < 2 * f + 3)
    throw std::invalid_argument("need n >= 2f + 3, n >= 3, d >= 1, reps >= 1, warmup >= 0");
  if (threads > 0) set_max_threads(threads);

  const UpdateBatch<float> batch = dist::client_batch(n, d);
  const double bytes = static_cast<double>(n) * static_cast<double>(d) * sizeof(float);
  const Krum krum(f);
  const MultiKrum multi(f);
  Vector<float> out_krum(d), out_multi(d);
  Index selected = -1;
  volatile double sink = 0.0;

  std::vector<Case> cases;
  cases.push_back({"probe (parallel sum)", [&] { sink = sink + probe_sum(batch.data(), n * d); }, {}});
  cases.push_back({"Krum aggregate", [&] { krum.aggregate(batch, out_krum); }, {}});
  cases.push_back({"MultiKrum aggregate (m = n - f)", [&] { multi.aggregate(batch, out_multi); }, {}});
  run_interleaved(cases, reps, warmup);
  selected = krum.select(batch);

  std::cout << "bench_krum: n=" << n << " d=" << d << " f=" << f << " float, " << max_threads() << " threads, " << reps
            << " reps; " << cpu_model() << "\n";
  Json j;
  j.begin_object();
  write_context(j, "bench_krum");
  j.begin_object("parameters");
  j.value("n", static_cast<long long>(n));
  j.value("d", static_cast<long long>(d));
  j.value("f", static_cast<long long>(f));
  j.value("neighbors", "n - f - 2 (sum)");
  j.value("scalar", "float");
  j.value("repetitions", reps);
  j.value("warmup", warmup);
  j.value("gram_block", static_cast<long long>(detail::gram_block));
  const detail::GramKernel<float> kern = detail::gram_kernel<float>();
  j.value("gram_tile", std::to_string(kern.rows) + "x" + std::to_string(kern.cols));
#if FEDPP_DIST_DISPATCH
  j.value("kernel_isa", detail::dist_cpu_has_avx512() ? "avx512f (run-time dispatch)"
                        : detail::dist_cpu_has_avx2() ? "avx2+fma (run-time dispatch)"
                                                      : "base");
#else
  j.value("kernel_isa", "base (build flags)");
#endif
  j.value("bytes_read_per_call", bytes);
  j.end_object();
  j.begin_array("results");
  dist::report(j, cases[0], bytes, nullptr);
  dist::report(j, cases[1], bytes, &cases[0]);
  dist::report(j, cases[2], bytes, &cases[0]);

  // The naive baseline, interleaved with its own probe rounds.
  bool same_choice = true;
  double naive_over_krum = 0.0;
  if (baseline_reps > 0) {
    Matrix<double> Dn;
    Index naive_sel = -1;
    std::vector<Case> base;
    base.push_back({"probe (parallel sum)", [&] { sink = sink + probe_sum(batch.data(), n * d); }, {}});
    base.push_back({"naive Krum (double loop over pairs)", [&] { naive_sel = naive_krum(batch, f, Dn); }, {}});
    base.push_back({"Krum aggregate", [&] { krum.aggregate(batch, out_krum); }, {}});
    run_interleaved(base, baseline_reps, 0);
    same_choice = naive_sel == selected;
    naive_over_krum = dist::paired_ratio(base[1].times, base[2].times);
    std::cout << " naive baseline (" << baseline_reps << " rounds with their own probe):\n";
    dist::report(j, base[1], bytes, &base[0]);
    std::cout << "  naive / fedpp Krum (paired median): x" << std::setprecision(1) << naive_over_krum
              << "; same selection: " << (same_choice ? "yes" : "NO") << "\n";
  }
  j.end_array();

  const double ratio = dist::paired_ratio(cases[1].times, cases[0].times);
  const bool pass = ratio <= target;
  j.begin_object("target");
  j.value("metric", "median over repetitions of (Krum aggregate time / probe time in the same repetition)");
  j.value("ratio", ratio);
  j.value("max", target);
  j.value("pass", pass);
  j.end_object();
  j.begin_object("checks");
  j.value("selected_index", static_cast<long long>(selected));
  j.value("naive_selects_the_same", same_choice);
  if (baseline_reps > 0) j.value("naive_over_fedpp_paired_median", naive_over_krum);
  j.end_object();

  if (sweep) {
    std::vector<Case> v;
    v.push_back({"probe (parallel sum)", [&] { sink = sink + probe_sum(batch.data(), n * d); }, {}});
    Matrix<double> G;
    for (auto isa : {detail::DistIsa::base, detail::DistIsa::avx2, detail::DistIsa::avx512}) {
      if (!detail::gram_isa_available<float>(isa)) continue;
      const char* nm = isa == detail::DistIsa::base ? "Gram, base ISA" : isa == detail::DistIsa::avx2 ? "Gram, AVX2+FMA" : "Gram, AVX-512F";
      v.push_back({nm, [&, isa] { detail::gram_matrix(batch.data(), d, n, G, isa); }, {}});
    }
    run_interleaved(v, std::max(3, reps / 3), 1);
    std::cout << " sweep (same run, interleaved with its own probe):\n";
    j.begin_array("sweep");
    dist::report(j, v[0], bytes, nullptr);
    for (std::size_t k = 1; k < v.size(); ++k) dist::report(j, v[k], bytes, &v[0]);
    j.end_array();
  }
  j.end_object();

  std::cout << std::setprecision(2) << "  target: Krum/probe (paired median) = " << ratio << " <= " << target << ": "
            << (pass ? "PASS" : "FAIL") << "\n";
  write_file(json_path, j.str());
  if (!json_path.empty()) std::cout << "  wrote " << json_path << "\n";
  return same_choice ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "bench_krum: " << e.what() << "\n";
    return 2;
  }
}
