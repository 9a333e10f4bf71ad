// bench_sparse_codec: encode + decode of a sparse payload (k = ceil(density d) of d floats, uniformly
// spread indices, f32 values) with fedpp's sparse wire format, timed against the read-bandwidth probe
// (a parallel sum over d floats, same threads) in the same run with interleaved repetitions. Decoding
// writes the full dense vector (zero fill + scatter), which dominates. See docs/compressors/sparse.md.
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "common/bench.hpp"
#include "fedpp/compressors/random_k.hpp"
#include "fedpp/compressors/sparse.hpp"
#include "fedpp/core/rng.hpp"

namespace {

using namespace fedpp;
using namespace fedpp::bench;

double ratio_paired_median(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> r(a.size());
  for (std::size_t k = 0; k < a.size(); ++k) r[k] = a[k] / b[k];
  return stats(r).median;
}

void report_case(Json& j, const Case& c, const Case* probe) {
  const Stats s = stats(c.times);
  std::cout << "  " << std::left << std::setw(26) << c.name << std::right << std::fixed << std::setprecision(3)
            << " min " << std::setw(8) << 1e3 * s.min << " ms  median " << std::setw(8) << 1e3 * s.median << " ms";
  j.begin_object();
  j.value("name", c.name);
  j.value("min_s", s.min);
  j.value("median_s", s.median);
  if (probe) {
    const Stats p = stats(probe->times);
    j.value("ratio_to_probe_min", s.min / p.min);
    j.value("ratio_to_probe_median", s.median / p.median);
    j.value("ratio_to_probe_paired_median", ratio_paired_median(c.times, probe->times));
    std::cout << "  x" << std::setprecision(2) << s.min / p.min << " probe (min), x" << s.median / p.median
              << " (median), x" << ratio_paired_median(c.times, probe->times) << " (paired)";
  }
  std::cout << "\n";
  j.begin_array("times_s");
  for (double t : c.times) j.value("", t);
  j.end_array();
  j.end_object();
}

int run(int argc, char** argv) {
  Flags flags(argc, argv, "bench_sparse_codec");
  const Index d = flags.get_int("d", 25000000, "vector dimension (floats)");
  const double density = std::stod(flags.get("density", "0.001", "fraction of coordinates carried"));
  const int threads = static_cast<int>(flags.get_int("threads", 0, "OpenMP threads (0: OMP_NUM_THREADS or all)"));
  const int reps = static_cast<int>(flags.get_int("reps", 21, "timed repetitions of each case"));
  const int warmup = static_cast<int>(flags.get_int("warmup", 3, "untimed repetitions first"));
  const double target = std::stod(
      flags.get("target", "3", "pass when the median over repetitions of (encode+decode) / probe time <= this"));
  const std::string json_path = flags.get("json", "", "write the JSON result to this file");
  if (flags.finish()) return 0;
  if (d < 1 || reps < 1 || warmup < 0) throw std::invalid_argument("d, reps must be >= 1, warmup >= 0");
  if (threads > 0) set_max_threads(threads);

  const auto k = static_cast<std::uint64_t>(TopK::density_k(density, d));
  Rng rng = make_rng(1, 0, 0, Purpose::user);
  const std::vector<Index> idx = random_k_indices(static_cast<std::uint64_t>(d), k, rng);
  std::vector<float> vals(idx.size());
  for (auto& v : vals) v = static_cast<float>(rng.normal());
  std::vector<float> dense(static_cast<std::size_t>(d), 1.0f), out(static_cast<std::size_t>(d));
  volatile double sink = 0.0;
  Payload payload = encode_sparse<float>(static_cast<std::uint64_t>(d), idx, vals);
  const std::size_t payload_bytes = payload.bytes();

  std::vector<Case> cases;
  cases.push_back({"probe (parallel sum)", [&] { sink = sink + probe_sum(dense.data(), d); }, {}});
  cases.push_back({"encode_sparse", [&] { payload = encode_sparse<float>(static_cast<std::uint64_t>(d), idx, vals); }, {}});
  cases.push_back({"decode_sparse", [&] { decode_sparse(payload, std::span<float>(out), "bench"); }, {}});
  cases.push_back({"encode + decode", [&] {
                     const Payload p = encode_sparse<float>(static_cast<std::uint64_t>(d), idx, vals);
                     decode_sparse(p, std::span<float>(out), "bench");
                   },
                   {}});
  run_interleaved(cases, reps, warmup);
  // Check: the decoded vector holds exactly the values at the indices.
  bool exact = true;
  std::size_t nonzero = 0;
  for (std::size_t i = 0; i < out.size(); ++i) nonzero += out[i] != 0.0f;
  for (std::size_t j = 0; j < idx.size(); ++j) exact = exact && out[static_cast<std::size_t>(idx[j])] == vals[j];
  exact = exact && nonzero == idx.size();

  const double ratio = ratio_paired_median(cases[3].times, cases[0].times);
  const bool pass = ratio <= target;
  std::cout << "bench_sparse_codec: d=" << d << " float, k=" << k << " (density " << density << "), payload "
            << payload_bytes << " bytes, " << max_threads() << " threads, " << reps << " reps; " << cpu_model()
            << "; load " << load_average() << "\n";
  Json j;
  j.begin_object();
  write_context(j, "bench_sparse_codec");
  j.begin_object("parameters");
  j.value("d", static_cast<long long>(d));
  j.value("k", static_cast<long long>(k));
  j.value("density", density);
  j.value("value_format", "f32");
  j.value("payload_bytes", static_cast<long long>(payload_bytes));
  j.value("repetitions", reps);
  j.value("warmup", warmup);
  j.end_object();
  j.begin_array("results");
  report_case(j, cases[0], nullptr);
  for (std::size_t c = 1; c < cases.size(); ++c) report_case(j, cases[c], &cases[0]);
  j.end_array();
  j.begin_object("target");
  j.value("metric", "median over repetitions of ((encode + decode) time / probe time in the same repetition)");
  j.value("ratio", ratio);
  j.value("max", target);
  j.value("pass", pass);
  j.end_object();
  j.begin_object("checks");
  j.value("decoded_exactly", exact);
  j.end_object();
  j.end_object();
  std::cout << std::setprecision(3) << "  target: (encode+decode)/probe (paired median) = " << ratio << " <= " << target
            << ": " << (pass ? "PASS" : "FAIL") << "; decoded exactly: " << (exact ? "yes" : "NO") << "\n";
  write_file(json_path, j.str());
  if (!json_path.empty()) std::cout << "  wrote " << json_path << "\n";
  return exact ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "bench_sparse_codec: " << e.what() << "\n";
    return 2;
  }
}
