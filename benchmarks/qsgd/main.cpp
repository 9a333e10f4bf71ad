// bench_qsgd: QSGD encode (s = 8 levels, signs and levels bit-packed) of d floats, timed against a
// read-bandwidth probe (a parallel sum over the same buffer, same threads) and a naive baseline
// (one scalar loop drawing with std::mt19937 + std::uniform_real_distribution) in the same run,
// with interleaved repetitions. Reports min and median times and the paired-median ratio to the
// probe. See docs/compressors/quantization.md.
#include <cmath>
#include <cstring>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "common/bench.hpp"
#include "fedpp/compressors/qsgd.hpp"
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
            << " min " << std::setw(8) << 1e3 * s.min << " ms  median " << std::setw(8) << 1e3 * s.median << " ms  "
            << std::setw(6) << bytes / s.min * 1e-9 << " GB/s";
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
    std::cout << "  x" << std::setprecision(3) << s.min / p.min << " probe (min), x"
              << ratio_paired_median(c.times, probe->times) << " (paired)";
  }
  std::cout << "\n";
  j.begin_array("times_s");
  for (double t : c.times) j.value("", t);
  j.end_array();
  j.end_object();
}

// The naive baseline: whole-vector l2 norm, then per coordinate one std::uniform_real_distribution
// draw from std::mt19937, level = floor(r) + [u < r - floor(r)], stored as a signed byte (not packed).
void naive_qsgd(const std::vector<float>& x, int s, std::mt19937& gen, std::vector<std::int8_t>& out) {
  double sq = 0;
  for (float v : x) sq += static_cast<double>(v) * v;
  const double norm = std::sqrt(sq);
  std::uniform_real_distribution<float> unif(0.0f, 1.0f);
  for (std::size_t i = 0; i < x.size(); ++i) {
    const float r = norm > 0 ? static_cast<float>(std::abs(x[i]) * s / norm) : 0.0f;
    const float l = std::floor(r);
    const int level = static_cast<int>(l) + (unif(gen) < r - l ? 1 : 0);
    out[i] = static_cast<std::int8_t>(x[i] < 0 ? -level : level);
  }
}

int run(int argc, char** argv) {
  Flags flags(argc, argv, "bench_qsgd");
  const Index d = flags.get_int("d", 25000000, "update dimension (floats)");
  const int levels = static_cast<int>(flags.get_int("levels", 8, "QSGD levels s"));
  const Index bucket = flags.get_int("bucket", 512, "bucket size of the target case (0: whole vector)");
  const int threads = static_cast<int>(flags.get_int("threads", 0, "OpenMP threads (0: OMP_NUM_THREADS or all)"));
  const int reps = static_cast<int>(flags.get_int("reps", 11, "timed repetitions of each case"));
  const int warmup = static_cast<int>(flags.get_int("warmup", 1, "untimed repetitions first"));
  const double target = std::stod(flags.get("target", "10", "pass when median(encode time / probe time) <= this"));
  const std::string json_path = flags.get("json", "", "write the JSON result to this file");
  const bool no_naive = flags.get_bool("no-naive", "skip the naive baseline");
  if (flags.finish()) return 0;
  if (d < 1 || reps < 1 || warmup < 0 || levels < 1) throw std::invalid_argument("d, reps, levels >= 1, warmup >= 0");
  if (threads > 0) set_max_threads(threads);

  std::vector<float> x(static_cast<std::size_t>(d));
  {
    auto rng = make_rng(1, 0, 0, Purpose::user);
    for (auto& v : x) v = rng.uniform_float() - 0.5f;
  }
  const double bytes = static_cast<double>(d) * sizeof(float);
  const Qsgd q(static_cast<std::uint32_t>(levels), bucket);
  const Qsgd qwhole(static_cast<std::uint32_t>(levels), Qsgd::whole_vector);
  auto st = q.make_state<float>(d);
  Rng rng(7);
  Payload p, pw;
  std::vector<float> out(static_cast<std::size_t>(d));
  std::vector<std::int8_t> naive_out(static_cast<std::size_t>(d));
  std::mt19937 gen(7);
  volatile double sink = 0.0;
  const std::span<const float> xs(x);

  std::vector<Case> cases;
  cases.push_back({"probe (parallel sum)", [&] { sink = sink + probe_sum(x.data(), d); }, {}});
  cases.push_back({"Qsgd encode (bucket " + std::to_string(bucket) + ")", [&] { p = q.encode(xs, st, rng); }, {}});
  cases.push_back({"Qsgd encode (whole vector)", [&] { pw = qwhole.encode(xs, st, rng); }, {}});
  cases.push_back({"Qsgd decode (bucket " + std::to_string(bucket) + ")", [&] { q.decode(p, std::span<float>(out)); }, {}});
  if (!no_naive) cases.push_back({"naive (mt19937, 1 thread)", [&] { naive_qsgd(x, levels, gen, naive_out); }, {}});
  run_interleaved(cases, reps, warmup);

  const double ratio = ratio_paired_median(cases[1].times, cases[0].times);
  const bool pass = ratio <= target;
  std::cout << "bench_qsgd: d=" << d << " float, s=" << levels << ", " << max_threads() << " threads, " << reps
            << " reps; " << cpu_model() << "; payload " << p.bytes() << " bytes (whole vector: " << pw.bytes()
            << ")\n";
  Json j;
  j.begin_object();
  write_context(j, "bench_qsgd");
  j.begin_object("parameters");
  j.value("d", static_cast<long long>(d));
  j.value("scalar", "float");
  j.value("levels", levels);
  j.value("bucket", static_cast<long long>(bucket));
  j.value("coding", "packed");
  j.value("repetitions", reps);
  j.value("warmup", warmup);
  {
    const int isa = detail::qsgd_isa();
    j.value("kernel_isa", isa == 2 ? "avx512 (run-time dispatch)" : isa == 1 ? "avx2 (run-time dispatch)" : "base");
  }
  j.value("payload_bytes", static_cast<long long>(p.bytes()));
  j.value("payload_bytes_whole_vector", static_cast<long long>(pw.bytes()));
  j.value("bytes_read_per_call", bytes);
  j.end_object();
  j.begin_array("results");
  report_case(j, cases[0], bytes, nullptr);
  for (std::size_t k = 1; k < cases.size(); ++k) report_case(j, cases[k], bytes, &cases[0]);
  j.end_array();
  j.begin_object("target");
  j.value("metric", "median over repetitions of (Qsgd encode time, bucket " + std::to_string(bucket) +
                        ", / probe time in the same repetition)");
  j.value("ratio", ratio);
  j.value("max", target);
  j.value("pass", pass);
  j.end_object();
  j.end_object();
  std::cout << std::setprecision(3) << "  target: encode/probe (paired median) = " << ratio << " <= " << target << ": "
            << (pass ? "PASS" : "FAIL") << "\n";
  write_file(json_path, j.str());
  if (!json_path.empty()) std::cout << "  wrote " << json_path << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "bench_qsgd: " << e.what() << "\n";
    return 2;
  }
}
