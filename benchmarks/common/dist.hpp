#pragma once
// Helpers shared by bench_krum and bench_geometric_median (the distance-based rules): the input
// batch, paired ratios and report rows, the JSON header block. Not part of the library.

#include <cstdint>
#include <iomanip>
#include <iostream>
#include <string>
#include <vector>

#include "common/bench.hpp"
#include "fedpp/core/rng.hpp"
#include "fedpp/core/update_batch.hpp"

namespace fedpp::bench::dist {

/// n clients x d floats: client i's update is a shared direction plus its own noise
/// (uniform in [-0.5, 0.5) each), so distances are of the order of the norms, as for gradients.
inline UpdateBatch<float> client_batch(Index n, Index d) {
  UpdateBatch<float> batch(d, n);
  std::vector<float> common(static_cast<std::size_t>(d)), col(static_cast<std::size_t>(d));
  auto crng = make_rng(1, 0, server_stream, Purpose::user);
  for (auto& x : common) x = crng.uniform_float() - 0.5f;
  for (Index i = 0; i < n; ++i) {
    auto rng = make_rng(1, 0, static_cast<std::uint64_t>(i), Purpose::user);
    for (std::size_t j = 0; j < col.size(); ++j) col[j] = common[j] + rng.uniform_float() - 0.5f;
    batch.push_back(static_cast<ClientId>(i), 1.0, col);
  }
  return batch;
}

/// Median over rounds of a[k] / b[k].
inline double paired_ratio(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> r;
  for (std::size_t k = 0; k < a.size() && k < b.size(); ++k) r.push_back(a[k] / b[k]);
  return stats(r).median;
}

/// Prints one summary line and writes one object of a JSON "results" array; with a probe, the
/// three ratios to it (min/min, median/median, paired median).
inline void report(Json& j, const Case& c, double bytes, const Case* probe) {
  const Stats s = stats(c.times);
  std::cout << "  " << std::left << std::setw(34) << c.name << std::right << std::fixed << std::setprecision(2)
            << " min " << std::setw(9) << 1e3 * s.min << " ms  median " << std::setw(9) << 1e3 * s.median << " ms";
  j.begin_object();
  j.value("name", c.name);
  j.value("repetitions", static_cast<long long>(c.times.size()));
  j.value("min_s", s.min);
  j.value("median_s", s.median);
  j.value("gbps_at_min", bytes / s.min * 1e-9);
  if (probe) {
    const Stats p = stats(probe->times);
    const double paired = paired_ratio(c.times, probe->times);
    j.value("ratio_to_probe_min", s.min / p.min);
    j.value("ratio_to_probe_median", s.median / p.median);
    j.value("ratio_to_probe_paired_median", paired);
    std::cout << "  x" << std::setprecision(2) << s.min / p.min << " probe (min), x" << s.median / p.median
              << " (median), x" << paired << " (paired)";
  } else {
    std::cout << "  " << std::setprecision(1) << bytes / s.min * 1e-9 << " GB/s";
  }
  std::cout << "\n";
  j.begin_array("times_s");
  for (double t : c.times) j.value("", t);
  j.end_array();
  j.end_object();
}

}  // namespace fedpp::bench::dist
