#pragma once
// The compiled kernel versions the aggregator tests force one by one (all must give the same bits),
// and the checks that say, in the test output, which version this machine could not run.
#include <catch2/catch.hpp>

#include "fedpp/aggregators/detail/coordinate_blocks.hpp"
#include "fedpp/aggregators/detail/dist_simd.hpp"
#include "fedpp/aggregators/detail/flag_gram.hpp"
#include "fedpp/aggregators/detail/pairwise.hpp"

namespace fedpp_test {

/// The distance-kernel versions to force (tests skip those this CPU cannot run, with a warning).
inline constexpr fedpp::detail::DistIsa all_dist_isas[] = {fedpp::detail::DistIsa::base, fedpp::detail::DistIsa::avx2,
                                                           fedpp::detail::DistIsa::avx512};

/// The coordinate-wise tile-kernel versions to force (median, trimmed mean, Meamed).
inline constexpr fedpp::detail::TileIsa all_tile_isas[] = {fedpp::detail::TileIsa::base, fedpp::detail::TileIsa::avx2,
                                                           fedpp::detail::TileIsa::avx512};

/// Name of an instruction-set choice, for the skip warnings.
template <typename Isa>
const char* isa_name(Isa isa) {
  switch (static_cast<int>(isa)) {
    case 0:
      return "best";
    case 1:
      return "base";
    case 2:
      return "AVX2";
    default:
      return "AVX-512";
  }
}

/// True when `available`; otherwise emits a Catch2 warning naming the kernel and the ISA (so a CI
/// log shows what did not run) and returns false.
template <typename Isa>
bool isa_runs(bool available, const char* kernel, Isa isa) {
  if (!available) WARN("skipped the " << isa_name(isa) << " " << kernel << " kernel: not in this build or not on this CPU");
  return available;
}

/// True when the distance kernels (sweep, mix, clipping, Weiszfeld) for `isa` run here; else a warning.
inline bool dist_isa_runs(fedpp::detail::DistIsa isa) {
  return isa_runs(fedpp::detail::dist_isa_available(isa), "distance", isa);
}

/// True when the Gram kernel for `isa` and scalar S runs here; else a warning.
template <typename S>
bool gram_isa_runs(fedpp::detail::DistIsa isa) {
  return isa_runs(fedpp::detail::gram_isa_available<S>(isa), sizeof(S) == 4 ? "float Gram" : "double Gram", isa);
}

/// True when a separately compiled coordinate tile kernel for `isa` runs here (best and base always
/// do; an unavailable one would silently fall back to base); else a warning.
inline bool tile_isa_runs(fedpp::detail::TileIsa isa) {
  return isa_runs(fedpp::detail::cpu_supports(isa), "coordinate tile", isa);
}

/// True when the Flag Gram kernel for `isa` runs here; else a warning.
inline bool flag_isa_runs(fedpp::detail::FlagGramIsa isa) {
  return isa_runs(fedpp::detail::flag_isa_available(isa), "Flag Gram", isa);
}

}  // namespace fedpp_test
