#pragma once
// Helpers shared by bench_median and bench_trimmed_mean (the coordinate-wise rules): the input
// batch, the naive per-coordinate std::sort baseline, a blocked std::nth_element variant, and
// the style of the report rows. Not part of the library.

#include <algorithm>
#include <cstring>
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

/// The report rows of the coordinate-wise drivers: GB/s of update data at the min and the median,
/// the paired ratio to the probe, and (report_case's `baseline`) the speed-up over the naive code.
inline constexpr RowStyle coord_row{.gbps_column = true, .probe_text = ProbeText::paired, .json_gbps_at_median = true};

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

/// Where the coordinate-wise drivers' cases write: fedpp's rule, the naive code and the variants.
struct CoordOutputs {
  Vector<float> fedpp;            ///< fedpp's rule (the variants of fedpp's own kernel overwrite it)
  std::vector<float> naive;       ///< the naive std::sort code
  std::vector<float> variant;     ///< the other variants (the last one run)
  std::vector<float> fedpp_copy;  ///< fedpp's output of the main run, kept for the checks

  /// Room for d coordinates in each.
  explicit CoordOutputs(Index d)
      : fedpp(d),
        naive(static_cast<std::size_t>(d)),
        variant(static_cast<std::size_t>(d)),
        fedpp_copy(static_cast<std::size_t>(d)) {}
  /// After the main run: keeps fedpp's output; returns the coordinates where the naive one differs (-1: not run).
  long long check_naive(bool naive_ran) {
    std::copy(fedpp.data(), fedpp.data() + fedpp.size(), fedpp_copy.begin());
    return naive_ran ? mismatches(fedpp_copy, naive) : -1;
  }
};

/// The kernel's entries of the "parameters" object: tile lanes, comparators, ISA and bytes read per call.
inline void write_coord_kernel(Json& j, Index comparators, double bytes) {
  j.value("tile_lanes", static_cast<long long>(detail::tile_lanes<float>));
  j.value("network_comparators", static_cast<long long>(comparators));
  j.value("kernel_isa", coordinate_kernel_isa());
  j.value("bytes_read_per_call", bytes);
}

/// The "results" array: the probe (cases[0]), fedpp's rule (cases[1]) with its speed-up over the naive
/// code when that ran (cases[2]), and the naive code.
inline void report_coord_results(Json& j, const std::vector<Case>& cases, double bytes) {
  const Case* naive = cases.size() > 2 ? &cases[2] : nullptr;
  j.begin_array("results");
  report_case(j, cases[0], bytes, nullptr, coord_row);
  report_case(j, cases[1], bytes, &cases[0], coord_row, naive);
  if (naive) report_case(j, *naive, bytes, &cases[0], coord_row);
  j.end_array();
}

/// The "target" object (with the issue's wording) and the "checks" object (coordinates differing from naive).
inline void write_coord_target(Json& j, const Target& target, const std::string& metric, const std::string& issue,
                               long long diff_naive) {
  j.begin_object("target");
  target.write(j, metric);
  j.value("issue", issue);
  j.end_object();
  j.begin_object("checks");
  j.value("coordinates_differing_from_naive_std_sort", diff_naive);
  j.end_object();
}

/// The --variants section: runs `cases` (the probe first) interleaved, reports them under "variants" and
/// returns the coordinates where the last case's output differs from the main run's ("variant_checks").
inline long long report_coord_variants(Json& j, std::vector<Case>& cases, int reps, double bytes,
                                       const CoordOutputs& out) {
  run_interleaved(cases, reps, 1);
  const long long differing = mismatches(out.fedpp_copy, out.variant);
  report_section(j, "variants", " variants (same run, interleaved with their own probe):\n", cases, bytes, coord_row);
  j.begin_object("variant_checks");
  j.value("nth_element_coordinates_differing", differing);
  j.end_object();
  return differing;
}

/// The closing line: the target's PASS/FAIL line and the coordinates differing from the naive code.
inline void print_coord_target(const Target& target, const std::string& what, long long diff_naive) {
  target.print(what);
  std::cout << "; coordinates differing from naive std::sort: " << diff_naive << "\n";
}

}  // namespace fedpp::bench
