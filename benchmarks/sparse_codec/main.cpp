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
#include "fedpp/compressors/top_k.hpp"
#include "fedpp/core/rng.hpp"

namespace {

using namespace fedpp;
using namespace fedpp::bench;

// The rows: times at 3 digits, no GB/s; the min, median and paired ratios to the probe.
constexpr RowStyle row_style{.name_width = 26,
                             .ms_width = 8,
                             .precision = 3,
                             .probe_text = ProbeText::min_median_paired,
                             .json_gbps_at_min = false};

int run(int argc, char** argv) {
  Flags flags(argc, argv, "bench_sparse_codec");
  const Index d = flags.get_int("d", 25000000, "vector dimension (floats)");
  const double density = flags.get_double("density", "0.001", "fraction of coordinates carried");
  const Timing timing = Timing::read(flags, 21, 3);
  const double max_ratio = flags.get_double(
      "target", "3", "pass when the median over repetitions of (encode+decode) / probe time <= this");
  const std::string json_path = json_flag(flags);
  if (flags.finish()) return 0;
  if (d < 1 || timing.reps < 1 || timing.warmup < 0) throw std::invalid_argument("d, reps must be >= 1, warmup >= 0");
  timing.apply_threads();

  const auto k = static_cast<std::uint64_t>(TopK::density_k(density, d));
  Rng rng = make_rng(1, 0, 0, Purpose::user);
  const std::vector<Index> idx = random_k_indices(static_cast<std::uint64_t>(d), k, rng);
  std::vector<float> vals(idx.size());
  for (auto& v : vals) v = static_cast<float>(rng.normal());
  std::vector<float> dense(static_cast<std::size_t>(d), 1.0f), out(static_cast<std::size_t>(d));
  Payload payload = encode_sparse<float>(static_cast<std::uint64_t>(d), idx, vals);
  const std::size_t payload_bytes = payload.bytes();

  std::vector<Case> cases;
  cases.push_back(probe_case(dense.data(), d));
  cases.push_back({"encode_sparse", [&] { payload = encode_sparse<float>(static_cast<std::uint64_t>(d), idx, vals); }, {}});
  cases.push_back({"decode_sparse", [&] { decode_sparse(payload, std::span<float>(out), "bench"); }, {}});
  cases.push_back({"encode + decode", [&] {
                     const Payload p = encode_sparse<float>(static_cast<std::uint64_t>(d), idx, vals);
                     decode_sparse(p, std::span<float>(out), "bench");
                   },
                   {}});
  run_interleaved(cases, timing.reps, timing.warmup);
  // Check: the decoded vector holds exactly the values at the indices.
  bool exact = true;
  std::size_t nonzero = 0;
  for (std::size_t i = 0; i < out.size(); ++i) nonzero += out[i] != 0.0f;
  for (std::size_t j = 0; j < idx.size(); ++j) exact = exact && out[static_cast<std::size_t>(idx[j])] == vals[j];
  exact = exact && nonzero == idx.size();

  const Target target{ratio_paired_median(cases[3].times, cases[0].times), max_ratio};
  std::cout << "bench_sparse_codec: d=" << d << " float, k=" << k << " (density " << density << "), payload "
            << payload_bytes << " bytes, " << max_threads() << " threads, " << timing.reps << " reps; " << cpu_model()
            << "; load " << load_average() << "\n";
  Json j = open_report("bench_sparse_codec");
  j.value("d", static_cast<long long>(d));
  j.value("k", static_cast<long long>(k));
  j.value("density", density);
  j.value("value_format", "f32");
  j.value("payload_bytes", static_cast<long long>(payload_bytes));
  timing.write(j);
  j.end_object();
  report_array(j, "results", cases, static_cast<double>(d) * sizeof(float), row_style);
  j.begin_object("target");
  target.write(j, "median over repetitions of ((encode + decode) time / probe time in the same repetition)");
  j.end_object();
  j.begin_object("checks");
  j.value("decoded_exactly", exact);
  j.end_object();
  j.end_object();
  target.print("(encode+decode)/probe (paired median)");
  std::cout << "; decoded exactly: " << (exact ? "yes" : "NO") << "\n";
  save_report(json_path, j);
  return exact ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) { return fedpp::bench::guarded_main("bench_sparse_codec", run, argc, argv); }
