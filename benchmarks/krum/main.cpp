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
  const Timing timing = Timing::read(flags, 15, 2);
  const int baseline_reps =
      static_cast<int>(flags.get_int("baseline-reps", 3, "repetitions of the naive baseline (0: skip it)"));
  const double max_ratio = flags.get_double("target", "25", "pass when Krum time / probe time (paired median) <= this");
  const std::string json_path = json_flag(flags);
  const bool sweep = flags.get_bool("sweep", "also time each compiled Gram kernel (base, AVX2, AVX-512F)");
  if (flags.finish()) return 0;
  if (n < 3 || d < 1 || timing.reps < 1 || timing.warmup < 0 || f < 0 || n < 2 * f + 3)
    throw std::invalid_argument("need n >= 2f + 3, n >= 3, d >= 1, reps >= 1, warmup >= 0");
  timing.apply_threads();

  const UpdateBatch<float> batch = dist::client_batch(n, d);
  const double bytes = static_cast<double>(n) * static_cast<double>(d) * sizeof(float);
  const Krum krum(f);
  const MultiKrum multi(f);
  Vector<float> out_krum(d), out_multi(d);
  Index selected = -1;

  std::vector<Case> cases;
  cases.push_back(probe_case(batch.data(), n * d));
  cases.push_back({"Krum aggregate", [&] { krum.aggregate(batch, out_krum); }, {}});
  cases.push_back({"MultiKrum aggregate (m = n - f)", [&] { multi.aggregate(batch, out_multi); }, {}});
  run_interleaved(cases, timing.reps, timing.warmup);
  selected = krum.select(batch);

  std::cout << "bench_krum: n=" << n << " d=" << d << " f=" << f << " float, " << max_threads() << " threads, "
            << timing.reps << " reps; " << cpu_model() << "\n";
  Json j = open_report("bench_krum");
  j.value("n", static_cast<long long>(n));
  j.value("d", static_cast<long long>(d));
  j.value("f", static_cast<long long>(f));
  j.value("neighbors", "n - f - 2 (sum)");
  j.value("scalar", "float");
  timing.write(j);
  j.value("gram_block", static_cast<long long>(detail::gram_block));
  const detail::GramKernel<float> kern = detail::gram_kernel<float>();
  j.value("gram_tile", std::to_string(kern.rows) + "x" + std::to_string(kern.cols));
  j.value("kernel_isa", dist::kernel_isa("avx2+fma"));
  j.value("bytes_read_per_call", bytes);
  j.end_object();
  j.begin_array("results");
  report_cases(j, cases, bytes, dist::row_style);

  // The naive baseline, interleaved with its own probe rounds.
  bool same_choice = true;
  double naive_over_krum = 0.0;
  if (baseline_reps > 0) {
    Matrix<double> Dn;
    Index naive_sel = -1;
    std::vector<Case> base;
    base.push_back(probe_case(batch.data(), n * d));
    base.push_back({"naive Krum (double loop over pairs)", [&] { naive_sel = naive_krum(batch, f, Dn); }, {}});
    base.push_back({"Krum aggregate", [&] { krum.aggregate(batch, out_krum); }, {}});
    run_interleaved(base, baseline_reps, 0);
    same_choice = naive_sel == selected;
    naive_over_krum = ratio_paired_median(base[1].times, base[2].times);
    std::cout << " naive baseline (" << baseline_reps << " rounds with their own probe):\n";
    report_case(j, base[1], bytes, &base[0], dist::row_style);
    std::cout << "  naive / fedpp Krum (paired median): x" << std::setprecision(1) << naive_over_krum
              << "; same selection: " << (same_choice ? "yes" : "NO") << "\n";
  }
  j.end_array();

  const Target target{ratio_paired_median(cases[1].times, cases[0].times), max_ratio};
  j.begin_object("target");
  target.write(j, "median over repetitions of (Krum aggregate time / probe time in the same repetition)");
  j.end_object();
  j.begin_object("checks");
  j.value("selected_index", static_cast<long long>(selected));
  j.value("naive_selects_the_same", same_choice);
  if (baseline_reps > 0) j.value("naive_over_fedpp_paired_median", naive_over_krum);
  j.end_object();

  if (sweep) {
    std::vector<Case> v;
    v.push_back(probe_case(batch.data(), n * d));
    Matrix<double> G;
    for (auto isa : {detail::DistIsa::base, detail::DistIsa::avx2, detail::DistIsa::avx512}) {
      if (!detail::gram_isa_available<float>(isa)) continue;
      const char* nm = isa == detail::DistIsa::base ? "Gram, base ISA" : isa == detail::DistIsa::avx2 ? "Gram, AVX2+FMA" : "Gram, AVX-512F";
      v.push_back({nm, [&, isa] { detail::gram_matrix(batch.data(), d, n, G, isa); }, {}});
    }
    run_interleaved(v, std::max(3, timing.reps / 3), 1);
    report_section(j, "sweep", " sweep (same run, interleaved with its own probe):\n", v, bytes, dist::row_style);
  }
  j.end_object();

  target.print("Krum/probe (paired median)", 2);
  std::cout << "\n";
  save_report(json_path, j);
  return same_choice ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) { return fedpp::bench::guarded_main("bench_krum", run, argc, argv); }
