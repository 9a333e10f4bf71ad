#pragma once
// Helpers shared by bench_krum and bench_geometric_median (the distance-based rules): the input
// batch, the style of the report rows and the kernel in use. Not part of the library.

#include <cstdint>
#include <string>
#include <vector>

#include "common/bench.hpp"
#include "fedpp/aggregators/detail/dist_simd.hpp"
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

/// The report rows of the distance-based drivers: the repetition count in the JSON; with a probe,
/// the three ratios to it (min/min, median/median, paired median); without, the GB/s.
inline constexpr RowStyle row_style{.gbps_without_probe = true,
                                    .probe_text = ProbeText::min_median_paired,
                                    .json_repetitions = true};

/// Which distance kernel fedpp picks on this CPU (`avx2` names the AVX2 kernel, e.g. "avx2+fma").
inline std::string kernel_isa([[maybe_unused]] const std::string& avx2) {
#if FEDPP_DIST_DISPATCH
  return fedpp::detail::dist_cpu_has_avx512() ? "avx512f (run-time dispatch)"
         : fedpp::detail::dist_cpu_has_avx2() ? avx2 + " (run-time dispatch)"
                                              : "base";
#else
  return "base (build flags)";
#endif
}

}  // namespace fedpp::bench::dist
