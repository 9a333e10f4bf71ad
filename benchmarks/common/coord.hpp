#pragma once
// Helpers shared by bench_median and bench_trimmed_mean (the coordinate-wise rules): the input
// batch, the naive per-coordinate std::sort baseline, a blocked std::nth_element variant, and
// the report rows. Not part of the library.

#include <algorithm>
#include <cstring>
#include <iomanip>
#include <iostream>
#include <string>
#include <vector>

#include "common/bench.hpp"
#include "fedpp/aggregators/detail/coordinate_blocks.hpp"
#include "fedpp/core/rng.hpp"
#include "fedpp/core/update_batch.hpp"

namespace fedpp::bench {

/// n clients x d floats, uniform in [-0.5, 0.5), column i drawn from stream (seed 1, client i).
inline UpdateBatch<float> coordinate_batch(Index n, Index d) {
  UpdateBatch<float> batch(d, n);
  std::vector<float> col(static_cast<std::size_t>(d));
  for (Index i = 0; i < n; ++i) {
    auto rng = make_rng(1, 0, static_cast<std::uint64_t>(i), Purpose::user);
    for (auto& x : col) x = rng.uniform_float() - 0.5f;
    batch.push_back(static_cast<ClientId>(i), 1.0, col);
  }
  return batch;
}

/// The obvious implementation: per coordinate, gather the n strided values, std::sort them and
/// read the answer (`finish(sorted, n)`), coordinates split statically over the OpenMP threads.
template <typename Finish>
void naive_sorted(const float* data, Index d, Index n, float* out, Finish finish) {
#if FEDPP_HAS_OPENMP
#pragma omp parallel
#endif
  {
    std::vector<float> v(static_cast<std::size_t>(n));
#if FEDPP_HAS_OPENMP
#pragma omp for schedule(static)
#endif
    for (Index j = 0; j < d; ++j) {
      for (Index i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = data[i * d + j];
      std::sort(v.begin(), v.end());
      out[j] = finish(v.data(), n);
    }
  }
}

/// A faster obvious implementation: blocks of 256 coordinates transposed into a per-thread
/// buffer (one contiguous run of n values per coordinate), then `select(values, n)` per coordinate
/// (e.g. std::nth_element twice for an even-n median).
template <typename Select>
void blocked_select(const float* data, Index d, Index n, float* out, Select select) {
  constexpr Index block = 256;
  const Index blocks = (d + block - 1) / block;
#if FEDPP_HAS_OPENMP
#pragma omp parallel
#endif
  {
    std::vector<float> t(static_cast<std::size_t>(block * n));
#if FEDPP_HAS_OPENMP
#pragma omp for schedule(static)
#endif
    for (Index b = 0; b < blocks; ++b) {
      const Index j0 = b * block, len = std::min(block, d - j0);
      for (Index i = 0; i < n; ++i) {
        const float* src = data + i * d + j0;
        for (Index l = 0; l < len; ++l) t[static_cast<std::size_t>(l * n + i)] = src[l];
      }
      for (Index l = 0; l < len; ++l) out[j0 + l] = select(t.data() + l * n, n);
    }
  }
}

/// Median over rounds of a[k] / b[k].
inline double ratio_paired_median(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> r(a.size());
  for (std::size_t k = 0; k < a.size(); ++k) r[k] = a[k] / b[k];
  return stats(r).median;
}

/// One summary line and one JSON object: times, GB/s of update data, ratios to the probe (if
/// given) and to a baseline (if given).
inline void report_row(Json& j, const Case& c, double bytes, const Case* probe, const Case* baseline = nullptr) {
  const Stats s = stats(c.times);
  std::cout << "  " << std::left << std::setw(34) << c.name << std::right << std::fixed << std::setprecision(2)
            << " min " << std::setw(9) << 1e3 * s.min << " ms  median " << std::setw(9) << 1e3 * s.median << " ms  "
            << std::setw(6) << bytes / s.min * 1e-9 << " GB/s";
  j.begin_object();
  j.value("name", c.name);
  j.value("min_s", s.min);
  j.value("median_s", s.median);
  j.value("gbps_at_min", bytes / s.min * 1e-9);
  j.value("gbps_at_median", bytes / s.median * 1e-9);
  if (probe) {
    const Stats p = stats(probe->times);
    const double paired = ratio_paired_median(c.times, probe->times);
    j.value("ratio_to_probe_min", s.min / p.min);
    j.value("ratio_to_probe_median", s.median / p.median);
    j.value("ratio_to_probe_paired_median", paired);
    std::cout << "  x" << std::setprecision(2) << paired << " probe (paired)";
  }
  if (baseline) {
    const double speedup = ratio_paired_median(baseline->times, c.times);
    j.value("speedup_over_" + baseline->name, speedup);
    std::cout << ", " << std::setprecision(1) << speedup << "x faster than naive";
  }
  std::cout << "\n";
  j.begin_array("times_s");
  for (double t : c.times) j.value("", t);
  j.end_array();
  j.end_object();
}

/// Number of coordinates where a and b differ in bits.
inline long long mismatches(const std::vector<float>& a, const std::vector<float>& b) {
  long long bad = 0;
  for (std::size_t j = 0; j < a.size(); ++j)
    if (std::memcmp(&a[j], &b[j], sizeof(float)) != 0) ++bad;
  return bad;
}

/// Which tile kernel fedpp picks on this CPU.
inline std::string coordinate_kernel_isa() {
  if (fedpp::detail::cpu_supports(fedpp::detail::TileIsa::avx512)) return "avx512 (run-time dispatch)";
  if (fedpp::detail::cpu_supports(fedpp::detail::TileIsa::avx2)) return "avx2 (run-time dispatch)";
#if defined(__AVX512F__)
  return "avx512 (build flags)";
#elif defined(__AVX2__)
  return "avx2 (build flags)";
#else
  return "base (build flags)";
#endif
}

}  // namespace fedpp::bench
