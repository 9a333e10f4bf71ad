#pragma once
// The compiled kernel versions the aggregator tests force one by one (all must give the same bits).
#include "fedpp/aggregators/detail/coordinate_blocks.hpp"
#include "fedpp/aggregators/detail/dist_simd.hpp"

namespace fedpp_test {

/// The distance-kernel versions to force (tests skip those this CPU cannot run).
inline constexpr fedpp::detail::DistIsa all_dist_isas[] = {fedpp::detail::DistIsa::base, fedpp::detail::DistIsa::avx2,
                                                           fedpp::detail::DistIsa::avx512};

/// The coordinate-wise tile-kernel versions to force (median, trimmed mean, Meamed).
inline constexpr fedpp::detail::TileIsa all_tile_isas[] = {fedpp::detail::TileIsa::base, fedpp::detail::TileIsa::avx2,
                                                           fedpp::detail::TileIsa::avx512};

}  // namespace fedpp_test
