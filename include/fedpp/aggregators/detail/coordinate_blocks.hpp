#pragma once
/// @file coordinate_blocks.hpp
/// Private kernel shared by the coordinate-wise rules (median, trimmed mean, Meamed, Bulyan...):
/// per coordinate, the order statistics of the values of a set of columns of a d x n
/// column-major batch, computed for many coordinates at once.
///
/// API (namespace fedpp::detail; stable, reuse it rather than copying it):
/// - `order_key<S>(x)` / `from_order_key<S>(k)`: float <-> int32, double <-> int64 keys whose
///   signed-integer order is IEEE totalOrder on non-NaN values (-0.0 sorts before +0.0).
///   Order statistics are taken in this order, so they are unique bit patterns.
/// - `ComparatorNetwork::sorter(m)`, `::selector(m, ranks)`, `::range_selector(m, first, last)`:
///   Batcher's merge-exchange sorting network on m inputs, optionally pruned to the comparators
///   that the wanted output ranks depend on.
/// - `for_each_sorted_tile<S>(data, d, columns, net, fn)`: splits the coordinates [0, d) into
///   tiles of `tile_lanes<S>` consecutive coordinates (64 floats / 32 doubles; one static
///   contiguous range of tiles per OpenMP thread), loads the values of `columns` (m =
///   columns.size() rows, any subset, order or repetition of the batch's columns) for the tile
///   as integer keys, applies `net` to all the tile's coordinates at once (SIMD), and calls
///   `fn(const SortedTile<S>& t)`. There, `t.value(r, l)` is the r-th smallest (0-based) of the m
///   values at coordinate `t.first + l` (l < t.count), for every rank r the network was built for
///   (every rank for a sorter); `t.row(r)` points at rank r's `SortedTile<S>::lanes` keys. `fn`
///   runs concurrently on different tiles: it may write only the outputs of its own coordinates
///   [first, first + count). Write the lambda as `[...](const SortedTile<S>& t)
///   FEDPP_TILE_CALLBACK {...}` so that it is compiled into each instruction-set kernel (without
///   the macro it still works, but runs as a call in the base instruction set). Large m
///   (> network_max_rows) uses a per-coordinate std::sort instead of a network; same result.
/// - Ready-made per-coordinate rules on top of it, each writing out[0..d):
///   `coordinate_median(data, d, columns, average, out)`,
///   `coordinate_trimmed_mean(data, d, columns, b, out)`,
///   `coordinate_mean_around_median(data, d, columns, k, average, out)` (Meamed; Bulyan's last
///   step is this over the selected columns with k = beta). Each takes an optional `TileIsa`
///   last (tests pin every instruction set; all give the same bits).
///
/// Determinism: every output depends only on the multiset of values of its coordinate (exactly,
/// not up to rounding): integer min/max are exact, the sums below run in a fixed (ascending)
/// order, and no multiply-add is contracted. So the thread count, the tile size and the
/// instruction set (x86-64 builds pick an AVX-512 or AVX2 kernel at run time, like
/// weighted_sum.hpp; define FEDPP_NO_ISA_DISPATCH to turn that off) never change a bit.
/// Inputs must be finite or at least not NaN (a NaN key would sort by its bit pattern).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <span>
#include <type_traits>
#include <vector>

#include "fedpp/aggregators/detail/weighted_sum.hpp"
#include "fedpp/core/config.hpp"
#include "fedpp/core/types.hpp"

#if !defined(FEDPP_NO_ISA_DISPATCH) && (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#if !defined(__AVX512F__) || !defined(__AVX512VL__) || !defined(__AVX512BW__) || !defined(__AVX512DQ__)
/// 1 when the tile kernels also have an AVX-512 version chosen at run time.
#define FEDPP_COORDINATE_AVX512 1
#else
#define FEDPP_COORDINATE_AVX512 0
#endif
#if !defined(__AVX2__)
/// 1 when the tile kernels also have an AVX2 version chosen at run time.
#define FEDPP_COORDINATE_AVX2 1
#else
#define FEDPP_COORDINATE_AVX2 0
#endif
#else
#define FEDPP_COORDINATE_AVX512 0
#define FEDPP_COORDINATE_AVX2 0
#endif

#if defined(__GNUC__) || defined(__clang__)
/// Put after a tile callback lambda's parameter list (`[&](const SortedTile<S>& t) FEDPP_TILE_CALLBACK {...}`)
/// so that it is compiled into each instruction-set kernel instead of being called in the base one.
#define FEDPP_TILE_CALLBACK __attribute__((always_inline))
#else
#define FEDPP_TILE_CALLBACK
#endif

namespace fedpp::detail {

// ---- order keys ---------------------------------------------------------------------------

/// Signed integer key type of scalar S (int32 for float, int64 for double).
template <typename S>
using order_key_t = std::conditional_t<sizeof(S) == 4, std::int32_t, std::int64_t>;

/// Signed-integer key whose order is IEEE totalOrder on non-NaN x (so -0.0 < +0.0).
template <typename S>
FEDPP_KERNEL_INLINE order_key_t<S> order_key(S x) noexcept {
  static_assert(std::is_floating_point_v<S> && (sizeof(S) == 4 || sizeof(S) == 8));
  using K = order_key_t<S>;
  K k;
  std::memcpy(&k, &x, sizeof k);
  // Negative values: flip every bit but the sign, so larger magnitudes get smaller keys.
  return k ^ static_cast<K>((k >> (8 * sizeof(K) - 1)) & std::numeric_limits<K>::max());
}

/// Inverse of order_key.
template <typename S>
FEDPP_KERNEL_INLINE S from_order_key(order_key_t<S> k) noexcept {
  using K = order_key_t<S>;
  k ^= static_cast<K>((k >> (8 * sizeof(K) - 1)) & std::numeric_limits<K>::max());
  S x;
  std::memcpy(&x, &k, sizeof x);
  return x;
}

/// The correctly rounded mean of a and b, without overflow (the value of std::midpoint(a, b)).
/**
 * Written branch-free so it vectorises: (a + b) / 2 is exact or correctly rounded unless a + b
 * overflows, and then a / 2 + b / 2 is (both halves are exact for such large values). Float
 * goes through double, where a + b is exact or correctly rounded and never overflows.
 */
template <typename S>
FEDPP_KERNEL_INLINE S midpoint_of(S a, S b) noexcept {
  if constexpr (sizeof(S) == 4) {
    return static_cast<S>((static_cast<double>(a) + static_cast<double>(b)) * 0.5);
  } else {
    const S m = (a + b) * S(0.5);
    const S h = a * S(0.5) + b * S(0.5);  // even if contracted to an FMA: a * 0.5 is exact where it is used
    return std::isinf(m) ? h : m;
  }
}

// ---- comparator networks --------------------------------------------------------------------

/// One compare-exchange: afterwards row lo holds the smaller, row hi the larger value.
struct Comparator {
  std::uint32_t lo;  ///< first row (the minimum goes here)
  std::uint32_t hi;  ///< second row (the maximum goes here), lo < hi
};

/// A sorting network on m inputs (Batcher's merge exchange, Knuth TAOCP 5.2.2 Algorithm M), or
/// the part of it that a set of output ranks depends on.
/**
 * Merge exchange sorts any m with about m log2(m)^2 / 4 comparators (1077 for m = 100) in
 * passes of disjoint comparators. Pruning walks it backwards and keeps a comparator only if one
 * of its rows is still needed: the median of 100 needs 889, ranks 10..89 need 1061.
 */
class ComparatorNetwork {
 public:
  /// The empty network on 0 inputs.
  ComparatorNetwork() = default;

  /// Full sorter: afterwards row r holds the r-th smallest value, for every r.
  static ComparatorNetwork sorter(Index m) { return ComparatorNetwork(m, merge_exchange(m)); }

  /// Pruned sorter: afterwards row r holds the r-th smallest value for each r in `ranks` (< m).
  static ComparatorNetwork selector(Index m, std::span<const Index> ranks) {
    std::vector<char> need(static_cast<std::size_t>(m), 0);
    for (Index r : ranks) need[static_cast<std::size_t>(r)] = 1;
    return ComparatorNetwork(m, prune(merge_exchange(m), need));
  }

  /// Pruned sorter for the ranks first..last-1.
  static ComparatorNetwork range_selector(Index m, Index first, Index last) {
    std::vector<char> need(static_cast<std::size_t>(m), 0);
    for (Index r = first; r < last; ++r) need[static_cast<std::size_t>(r)] = 1;
    return ComparatorNetwork(m, prune(merge_exchange(m), need));
  }

  /// Number of inputs (rows).
  [[nodiscard]] Index inputs() const noexcept { return m_; }
  /// The comparators, in the order they must be applied.
  [[nodiscard]] std::span<const Comparator> comparators() const noexcept { return comps_; }
  /// Number of comparators.
  [[nodiscard]] Index size() const noexcept { return static_cast<Index>(comps_.size()); }

 private:
  ComparatorNetwork(Index m, std::vector<Comparator> comps) : m_(m), comps_(std::move(comps)) {}

  static std::vector<Comparator> merge_exchange(Index m) {
    std::vector<Comparator> c;
    if (m < 2) return c;
    int t = 0;
    while ((Index{1} << t) < m) ++t;  // t = ceil(log2 m)
    for (Index p = Index{1} << (t - 1); p > 0; p >>= 1) {
      Index q = Index{1} << (t - 1), r = 0, dd = p;
      for (;;) {
        for (Index i = 0; i + dd < m; ++i)
          if ((i & p) == r) c.push_back({static_cast<std::uint32_t>(i), static_cast<std::uint32_t>(i + dd)});
        if (q == p) break;
        dd = q - p;
        q >>= 1;
        r = p;
      }
    }
    return c;
  }

  static std::vector<Comparator> prune(const std::vector<Comparator>& all, std::vector<char> need) {
    std::vector<Comparator> kept;
    for (auto it = all.rbegin(); it != all.rend(); ++it) {
      if (need[it->lo] || need[it->hi]) {
        kept.push_back(*it);
        need[it->lo] = need[it->hi] = 1;
      }
    }
    std::reverse(kept.begin(), kept.end());
    return kept;
  }

  Index m_ = 0;
  std::vector<Comparator> comps_;
};

// ---- tile programs ----------------------------------------------------------------------------

/// A comparator network in the form the tile kernels read: 16-bit row pairs, in network order.
/**
 * 16-bit rows keep the program small (it is read once per tile; 4 bytes per comparator).
 * (We also tried fusing pairs of layers into 4-row butterflies that load and store each row
 * once for four comparators: no gain on the machines measured, see docs/aggregators/coordinate.md.)
 */
struct TileProgram {
  std::vector<std::uint16_t> pairs;  ///< comparators, 2 rows each (the minimum goes to the first)

  /// The program of `net` (at most 65536 inputs).
  static TileProgram compile(const ComparatorNetwork& net) {
    TileProgram p;
    p.pairs.reserve(2 * net.comparators().size());
    for (const Comparator& c : net.comparators()) {
      p.pairs.push_back(static_cast<std::uint16_t>(c.lo));
      p.pairs.push_back(static_cast<std::uint16_t>(c.hi));
    }
    return p;
  }
  /// Number of comparators.
  [[nodiscard]] std::size_t size() const noexcept { return pairs.size() / 2; }
};

// ---- tiles ----------------------------------------------------------------------------------

/// Coordinates per tile: 256 bytes of keys per row (four cache lines, four AVX-512 registers:
/// 64 floats or 32 doubles). Wider rows amortise the comparator loop; 64 floats beat 16 and 32 by
/// 10-40% and a 100-row tile (25.6 KiB) still fits in L1.
template <typename S>
inline constexpr Index tile_lanes = 4 * 64 / static_cast<Index>(sizeof(S));

/// Keys between the starts of consecutive rows of a tile (padding rows to an odd number of
/// cache lines made no measurable difference, so rows are contiguous).
template <typename S>
inline constexpr Index tile_stride = tile_lanes<S>;

/// Largest m ordered by a network (tile: m x 256 bytes per thread, 4 MiB at the limit); more rows
/// use a per-coordinate std::sort of the tile's columns (same result, several times slower).
inline constexpr Index network_max_rows = 16384;

/// A tile after its network: `value(r, l)` is the r-th smallest of the m values at coordinate first + l.
template <typename S>
struct SortedTile {
  /// Coordinates per tile.
  static constexpr Index lanes = tile_lanes<S>;
  /// Keys from the start of one row to the next (lanes or more).
  static constexpr Index stride = tile_stride<S>;
  const order_key_t<S>* keys;  ///< m rows of `lanes` keys, `stride` apart
  Index rows;                  ///< m, the number of values per coordinate
  Index first;                 ///< first coordinate of the tile
  Index count;                 ///< coordinates in the tile (lanes >= count; the rest are padding)

  /// The r-th smallest value (0-based rank) at coordinate first + l (a rank the network produced).
  [[nodiscard]] FEDPP_KERNEL_INLINE S value(Index r, Index l) const noexcept {
    return from_order_key<S>(keys[r * stride + l]);
  }
  /// Row r's keys (lanes of them).
  [[nodiscard]] FEDPP_KERNEL_INLINE const order_key_t<S>* row(Index r) const noexcept { return keys + r * stride; }
};

/// Everything a tile loop needs besides the callback.
template <typename S>
struct TileJob {
  const S* data;                ///< d x n column-major batch
  Index d;                      ///< dimension (rows of the batch)
  const Index* columns;         ///< the m columns to read, in any order
  Index m;                      ///< number of columns
  const TileProgram* program;   ///< the network arranged for tiles
  bool use_network;             ///< false: per-coordinate std::sort (m > network_max_rows)
};

/// Applies comparators (pairs of rows, P keys apart) to a tile (VB: vector bytes of the target).
template <typename K, int Lanes, int P, int VB>
FEDPP_KERNEL_INLINE void apply_comparators(K* tile, const std::uint16_t* rows, std::size_t comps) noexcept {
#if defined(__GNUC__) || defined(__clang__)
  typedef K V __attribute__((vector_size(VB)));
  constexpr int per = VB / static_cast<int>(sizeof(K));
  static_assert(Lanes % per == 0);
  for (std::size_t q = 0; q < comps; ++q) {
    K* x = tile + static_cast<std::size_t>(rows[2 * q]) * P;
    K* y = tile + static_cast<std::size_t>(rows[2 * q + 1]) * P;
    for (int k = 0; k < Lanes; k += per) {
      V u, v;
      std::memcpy(&u, x + k, sizeof u);
      std::memcpy(&v, y + k, sizeof v);
      const V lo = u < v ? u : v;
      const V hi = u < v ? v : u;
      std::memcpy(x + k, &lo, sizeof lo);
      std::memcpy(y + k, &hi, sizeof hi);
    }
  }
#else
  for (std::size_t q = 0; q < comps; ++q) {
    K* x = tile + static_cast<std::size_t>(rows[2 * q]) * P;
    K* y = tile + static_cast<std::size_t>(rows[2 * q + 1]) * P;
    for (int l = 0; l < Lanes; ++l) {
      const K u = x[l], v = y[l];
      x[l] = u < v ? u : v;
      y[l] = u < v ? v : u;
    }
  }
#endif
}

/// Orders one loaded tile and hands it to fn.
template <typename S, int VB, typename Fn>
FEDPP_KERNEL_INLINE void finish_tile(const TileJob<S>& job, order_key_t<S>* tile, order_key_t<S>* scratch, Index j0,
                                     Index count, Fn& fn) {
  using K = order_key_t<S>;
  constexpr Index W = tile_lanes<S>;
  constexpr Index P = tile_stride<S>;
  const Index m = job.m;
  if (job.use_network) {
    apply_comparators<K, static_cast<int>(W), static_cast<int>(P), VB>(tile, job.program->pairs.data(),
                                                                       job.program->size());
  } else {
    for (Index l = 0; l < count; ++l) {  // transpose, sort, transpose back
      for (Index r = 0; r < m; ++r) scratch[r] = tile[r * P + l];
      std::sort(scratch, scratch + m);
      for (Index r = 0; r < m; ++r) tile[r * P + l] = scratch[r];
    }
  }
  const SortedTile<S> t{tile, m, j0, count};
  fn(t);
}

/// Tiles of lanes coordinates starting in [lo, hi): load, order, call fn.
template <typename S, int VB, typename Fn>
FEDPP_KERNEL_INLINE void tile_range_body(const TileJob<S>& job, Index lo, Index hi, order_key_t<S>* tile,
                                         order_key_t<S>* scratch, Fn& fn) {
  using K = order_key_t<S>;
  constexpr Index W = tile_lanes<S>;
  constexpr Index P = tile_stride<S>;
  constexpr std::size_t row_bytes = W * sizeof(S);  // a multiple of the 64-byte line
  // While loading a tile, prefetch the same rows 8 tiles ahead: a tile's network takes
  // microseconds, far more than a memory access, and the hardware prefetchers do not follow m
  // interleaved streams. (Measured: 10-15% faster than no prefetch; prefetching 2 or 16 tiles
  // ahead, into L2 only, spread over the network, or loading several tiles per column run did
  // not beat it.)
  constexpr std::size_t ahead = 8 * row_bytes;
  const Index m = job.m;
  for (Index j0 = lo; j0 < hi; j0 += W) {
    const Index count = hi - j0 < W ? hi - j0 : W;
    if (count == W) {
      for (Index r = 0; r < m; ++r) {
        const S* src = job.data + job.columns[r] * job.d + j0;
        for (std::size_t b = 0; b < row_bytes; b += 64) prefetch_ahead(src, ahead + b);
        K* dst = tile + r * P;
        for (Index l = 0; l < W; ++l) dst[l] = order_key<S>(src[l]);
      }
    } else {
      for (Index r = 0; r < m; ++r) {
        const S* src = job.data + job.columns[r] * job.d + j0;
        K* dst = tile + r * P;
        for (Index l = 0; l < W; ++l) dst[l] = l < count ? order_key<S>(src[l]) : K{0};
      }
    }
    finish_tile<S, VB>(job, tile, scratch, j0, count, fn);
  }
}

/// Signature of a tile-range kernel.
template <typename S, typename Fn>
using TileKernel = void (*)(const TileJob<S>&, Index, Index, order_key_t<S>*, order_key_t<S>*, Fn&);

/// tile_range_body for the build's instruction set.
template <typename S, typename Fn>
void tile_range_base(const TileJob<S>& job, Index lo, Index hi, order_key_t<S>* tile, order_key_t<S>* scratch,
                     Fn& fn) {
#if defined(__AVX512F__)
  tile_range_body<S, 64>(job, lo, hi, tile, scratch, fn);
#elif defined(__AVX2__)
  tile_range_body<S, 32>(job, lo, hi, tile, scratch, fn);
#else
  tile_range_body<S, 16>(job, lo, hi, tile, scratch, fn);
#endif
}

#if FEDPP_COORDINATE_AVX2
/// tile_range_body compiled for AVX2 (call only when the CPU has it).
template <typename S, typename Fn>
__attribute__((target("avx2"))) void tile_range_avx2(const TileJob<S>& job, Index lo, Index hi,
                                                     order_key_t<S>* tile, order_key_t<S>* scratch, Fn& fn) {
  tile_range_body<S, 32>(job, lo, hi, tile, scratch, fn);
}
#endif

#if FEDPP_COORDINATE_AVX512
/// tile_range_body compiled for AVX-512 F/VL/BW/DQ (call only when the CPU has them).
template <typename S, typename Fn>
__attribute__((target("avx512f,avx512vl,avx512bw,avx512dq"))) void tile_range_avx512(
    const TileJob<S>& job, Index lo, Index hi, order_key_t<S>* tile, order_key_t<S>* scratch, Fn& fn) {
  tile_range_body<S, 64>(job, lo, hi, tile, scratch, fn);
}
#endif

/// Instruction sets a tile kernel can be compiled for.
enum class TileIsa {
  best,    ///< the widest this CPU supports
  base,    ///< the build's flags
  avx2,    ///< AVX2 (x86-64)
  avx512   ///< AVX-512 F/VL/BW/DQ (x86-64)
};

/// True when a run-time-dispatched kernel for `isa` exists in this build and the CPU runs it
/// (best and base: always; a build whose flags already include the instruction set has no
/// separate kernel for it, its base kernel uses it).
inline bool cpu_supports(TileIsa isa) noexcept {
  switch (isa) {
    case TileIsa::best:
    case TileIsa::base:
      return true;
    case TileIsa::avx2:
#if FEDPP_COORDINATE_AVX2
      return __builtin_cpu_supports("avx2");
#else
      return false;  // no separate AVX2 kernel (the base one already uses it, or no dispatch)
#endif
    case TileIsa::avx512:
#if FEDPP_COORDINATE_AVX512
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
#else
      return false;  // no separate AVX-512 kernel
#endif
  }
  return false;
}

/// The kernel for `isa` (best: the widest the CPU runs; an unsupported one falls back to base).
template <typename S, typename Fn>
TileKernel<S, Fn> tile_kernel(TileIsa isa) noexcept {
  static const bool has512 = cpu_supports(TileIsa::avx512);
  static const bool has2 = cpu_supports(TileIsa::avx2);
#if FEDPP_COORDINATE_AVX512
  if ((isa == TileIsa::best || isa == TileIsa::avx512) && has512) return &tile_range_avx512<S, Fn>;
#endif
#if FEDPP_COORDINATE_AVX2
  if ((isa == TileIsa::best || isa == TileIsa::avx2 || isa == TileIsa::avx512) && has2) return &tile_range_avx2<S, Fn>;
#endif
  (void)isa;
  (void)has512;
  (void)has2;
  return &tile_range_base<S, Fn>;
}

/// The columns 0..n-1 (every client of a batch).
inline std::vector<Index> all_columns(Index n) {
  std::vector<Index> c(static_cast<std::size_t>(n));
  std::iota(c.begin(), c.end(), Index{0});
  return c;
}

/// Calls fn(const SortedTile<S>&) for every tile of coordinates after ordering `columns`' values by `net`.
/**
 * @param data d x n column-major values (column c at data + c * d).
 * @param columns the m = net.inputs() columns to read (each < n; repeats allowed).
 * @param net a network on m inputs; fn may read the ranks it produces.
 * @param fn called once per tile, concurrently on different tiles (static partition of the
 *        coordinates: one contiguous range per OpenMP thread); writes only its own coordinates.
 * @param isa instruction set of the kernel (tests pin each one; all give the same bits).
 * Memory: one tile (m * tile_lanes<S> keys, m * 256 bytes) per thread (plus m keys of scratch
 * above network_max_rows), and the network (4 bytes per comparator, about m log2(m)^2).
 */
template <typename S, typename Fn>
void for_each_sorted_tile(const S* data, Index d, std::span<const Index> columns, const ComparatorNetwork& net,
                          Fn&& fn, TileIsa isa = TileIsa::best) {
  using K = order_key_t<S>;
  using F = std::remove_reference_t<Fn>;
  constexpr Index W = tile_lanes<S>;
  constexpr Index P = tile_stride<S>;
  const Index m = static_cast<Index>(columns.size());
  if (d <= 0 || m == 0) return;
  const bool use_network = m <= network_max_rows;
  const TileProgram program = use_network ? TileProgram::compile(net) : TileProgram{};
  const TileJob<S> job{data, d, columns.data(), m, &program, use_network};
  const TileKernel<S, F> kernel = tile_kernel<S, F>(isa);
  // One contiguous range of whole tiles per thread (at least 64 tiles each).
  const Index tiles = (d + W - 1) / W;
  const Partition parts = partition_for_threads(tiles, 64);
  const std::size_t tile_len = static_cast<std::size_t>(m * P) + static_cast<std::size_t>(use_network ? 0 : m);
  // 64-byte aligned per-thread tiles: an extra 64 bytes of slack per part.
  constexpr std::size_t align_keys = 64 / sizeof(K);
  const std::size_t stride = (tile_len + align_keys - 1) / align_keys * align_keys;
  std::vector<K> buffer(static_cast<std::size_t>(parts.count) * stride + align_keys);
  K* base = buffer.data();
  while (reinterpret_cast<std::uintptr_t>(base) % 64 != 0) ++base;
  F& f = fn;
  if (parts.count == 1) {
    kernel(job, 0, d, base, base + m * P, f);
    return;
  }
  FEDPP_OMP_PARALLEL_FOR
  for (Index p = 0; p < parts.count; ++p) {
    const Index lo = parts.lo(p) * W;
    const Index hi = parts.hi(p, tiles) * W < d ? parts.hi(p, tiles) * W : d;
    K* tile = base + static_cast<std::size_t>(p) * stride;
    kernel(job, lo, hi, tile, tile + m * P, f);
  }
}

// ---- ready-made coordinate rules ---------------------------------------------------------------

/// out[j] = median over `columns` at coordinate j: the middle value (odd m), else the midpoint
/// of the two middle values (average = true) or the lower of them (average = false).
template <typename S>
void coordinate_median(const S* data, Index d, std::span<const Index> columns, bool average, S* out,
                       TileIsa isa = TileIsa::best) {
  const Index m = static_cast<Index>(columns.size());
  const Index lo = (m - 1) / 2, hi = m / 2;
  const bool mid = average && lo != hi;
  const Index ranks[2] = {lo, hi};
  const ComparatorNetwork net = ComparatorNetwork::selector(m, std::span<const Index>(ranks, mid ? 2 : 1));
  static constexpr Index W = tile_lanes<S>;
  for_each_sorted_tile<S>(
      data, d, columns, net,
      [out, lo, hi, mid](const SortedTile<S>& t) FEDPP_TILE_CALLBACK {
        S v[W];
        if (mid) {
          for (Index l = 0; l < W; ++l) v[l] = midpoint_of<S>(t.value(lo, l), t.value(hi, l));
        } else {
          for (Index l = 0; l < W; ++l) v[l] = t.value(lo, l);
        }
        std::memcpy(out + t.first, v, static_cast<std::size_t>(t.count) * sizeof(S));
      },
      isa);
}

/// out[j] = mean of the values of ranks b..m-b-1 (0-based) over `columns` at coordinate j,
/// summed in double in ascending order from +0.0 and divided by m - 2b. Requires 2b < m.
template <typename S>
void coordinate_trimmed_mean(const S* data, Index d, std::span<const Index> columns, Index b, S* out,
                             TileIsa isa = TileIsa::best) {
  const Index m = static_cast<Index>(columns.size());
  const ComparatorNetwork net = ComparatorNetwork::range_selector(m, b, m - b);
  const double kept = static_cast<double>(m - 2 * b);
  static constexpr Index W = tile_lanes<S>;
  for_each_sorted_tile<S>(
      data, d, columns, net,
      [out, b, m, kept](const SortedTile<S>& t) FEDPP_TILE_CALLBACK {
        double acc[W] = {};
        for (Index r = b; r < m - b; ++r)
          for (Index l = 0; l < W; ++l) acc[l] += static_cast<double>(t.value(r, l));
        S v[W];
        for (Index l = 0; l < W; ++l) v[l] = static_cast<S>(acc[l] / kept);
        std::memcpy(out + t.first, v, static_cast<std::size_t>(t.count) * sizeof(S));
      },
      isa);
}

/// out[j] = mean of the k values closest to the median of `columns`' values at coordinate j.
/**
 * The median is coordinate_median's (midpoint of the two middle values for even m when
 * `average`, else the lower one), rounded to S. Distances are computed in double; on equal
 * distance the smaller value is kept. The k kept values are a run x_(s)..x_(s+k-1) of the
 * sorted values, summed in double in ascending order and divided by k. Requires 1 <= k <= m.
 * This is Meamed's rule (k = n - f) and Bulyan's last step (over the selected columns, k = beta).
 */
template <typename S>
void coordinate_mean_around_median(const S* data, Index d, std::span<const Index> columns, Index k, bool average,
                                   S* out, TileIsa isa = TileIsa::best) {
  const Index m = static_cast<Index>(columns.size());
  const Index lo = (m - 1) / 2, hi = m / 2;
  const bool mid = average && lo != hi;
  const ComparatorNetwork net = ComparatorNetwork::sorter(m);
  const double kd = static_cast<double>(k);
  static constexpr Index W = tile_lanes<S>;
  for_each_sorted_tile<S>(
      data, d, columns, net,
      [out, lo, hi, mid, m, k, kd](const SortedTile<S>& t) FEDPP_TILE_CALLBACK {
        double c[W];
        for (Index l = 0; l < W; ++l)
          c[l] = static_cast<double>(mid ? midpoint_of<S>(t.value(lo, l), t.value(hi, l)) : t.value(lo, l));
        // Window start s = number of t < m - k whose value x_(t) is strictly farther below the
        // centre than x_(t+k) is above it (this count is monotone in t: the greedy two-pointer walk).
        Index s[W] = {};
        for (Index r = 0; r + k < m; ++r)
          for (Index l = 0; l < W; ++l) {
            const double below = c[l] - static_cast<double>(t.value(r, l));
            const double above = static_cast<double>(t.value(r + k, l)) - c[l];
            s[l] += below > above ? 1 : 0;
          }
        // Sum the run in ascending order; adding +0.0 for the other ranks leaves the sum's bits
        // unchanged (it starts at +0.0 and so never is -0.0), and keeps the loop branch-free.
        double acc[W] = {};
        for (Index r = 0; r < m; ++r)
          for (Index l = 0; l < W; ++l) {
            const double x = static_cast<double>(t.value(r, l));
            acc[l] += (r >= s[l] && r < s[l] + k) ? x : 0.0;
          }
        S v[W];
        for (Index l = 0; l < W; ++l) v[l] = static_cast<S>(acc[l] / kd);
        std::memcpy(out + t.first, v, static_cast<std::size_t>(t.count) * sizeof(S));
      },
      isa);
}

}  // namespace fedpp::detail
