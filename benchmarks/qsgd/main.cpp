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

// The rows: a GB/s column; the min and paired ratios to the probe, at 3 digits.
constexpr RowStyle row_style{
    .ms_width = 8, .gbps_column = true, .probe_text = ProbeText::min_paired, .probe_precision = 3};

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
  const Timing timing = Timing::read(flags, 11, 1);
  const double max_ratio = flags.get_double("target", "10", "pass when median(encode time / probe time) <= this");
  const std::string json_path = json_flag(flags);
  const bool no_naive = flags.get_bool("no-naive", "skip the naive baseline");
  if (flags.finish()) return 0;
  if (d < 1 || timing.reps < 1 || timing.warmup < 0 || levels < 1)
    throw std::invalid_argument("d, reps, levels >= 1, warmup >= 0");
  timing.apply_threads();

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
  const std::span<const float> xs(x);

  std::vector<Case> cases;
  cases.push_back(probe_case(x.data(), d));
  cases.push_back({"Qsgd encode (bucket " + std::to_string(bucket) + ")", [&] { p = q.encode(xs, st, rng); }, {}});
  cases.push_back({"Qsgd encode (whole vector)", [&] { pw = qwhole.encode(xs, st, rng); }, {}});
  cases.push_back({"Qsgd decode (bucket " + std::to_string(bucket) + ")", [&] { q.decode(p, std::span<float>(out)); }, {}});
  if (!no_naive) cases.push_back({"naive (mt19937, 1 thread)", [&] { naive_qsgd(x, levels, gen, naive_out); }, {}});
  run_interleaved(cases, timing.reps, timing.warmup);

  const Target target{ratio_paired_median(cases[1].times, cases[0].times), max_ratio};
  std::cout << "bench_qsgd: d=" << d << " float, s=" << levels << ", " << max_threads() << " threads, " << timing.reps
            << " reps; " << cpu_model() << "; payload " << p.bytes() << " bytes (whole vector: " << pw.bytes()
            << ")\n";
  Json j = open_report("bench_qsgd");
  j.value("d", static_cast<long long>(d));
  j.value("scalar", "float");
  j.value("levels", levels);
  j.value("bucket", static_cast<long long>(bucket));
  j.value("coding", "packed");
  timing.write(j);
  {
    const int isa = detail::qsgd_isa();
    j.value("kernel_isa", isa == 2 ? "avx512 (run-time dispatch)" : isa == 1 ? "avx2 (run-time dispatch)" : "base");
  }
  j.value("payload_bytes", static_cast<long long>(p.bytes()));
  j.value("payload_bytes_whole_vector", static_cast<long long>(pw.bytes()));
  j.value("bytes_read_per_call", bytes);
  j.end_object();
  report_array(j, "results", cases, bytes, row_style);
  j.begin_object("target");
  target.write(j, "median over repetitions of (Qsgd encode time, bucket " + std::to_string(bucket) +
                     ", / probe time in the same repetition)");
  j.end_object();
  j.end_object();
  target.print("encode/probe (paired median)");
  std::cout << "\n";
  save_report(json_path, j);
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return fedpp::bench::guarded_main("bench_qsgd", run, argc, argv); }
