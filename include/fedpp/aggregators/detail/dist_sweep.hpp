#pragma once
/// @file dist_sweep.hpp
/// Private kernel of the iterative distance rules (geometric median, centered clipping) and of
/// the norm-based pre-aggregators: one pass over a d x n column-major batch that, coordinate
/// block by coordinate block, optionally moves a double "center" z to
///     z'[j] = a * z[j] + (sum_i w_i x_i[j]) / denom
/// and then measures the squared distances ||x_i - z'||^2 (or the squared norms ||x_i||^2).
/// Both halves run on the same block while it is in cache, so an iteration of Weiszfeld or
/// centered clipping reads the batch from memory once. The cache block is sized so that the
/// block of all n columns takes about 512 KiB (a whole 1024-coordinate chunk for n <= 128
/// floats, 128 coordinates for n = 1000); each client's eight distance lanes are carried across
/// the blocks of a chunk, so the block size changes no bit.
///
/// Arithmetic (fixed; the same whatever the thread count or the instruction set):
/// - the weighted sum of coordinate j: acc = 0; for i in column order: acc = acc + p_i with
///   p_i = w_i * double(x_i[j]) rounded to double (never fused with the add); then
///   z'[j] = acc / denom when a == 0, else a * z[j] + acc / denom;
/// - distances are cut into chunks of `sweep_chunk` (1024) coordinates from 0; in a chunk,
///   eight double lanes l = 0..7 each sum, in coordinate order, the rounded squares
///   (double(x_i[j]) - z[j])^2 of the chunk's coordinates j with (j - start) % 8 == l; the chunk
///   partial is ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)) and the squared distance is
///   ((0 + partial_0) + partial_1) + ... in chunk order (summed after the pass, so threads never
///   share a sum).
/// x86-64 builds without AVX2/FMA in their flags also compile the pass for AVX2 and AVX-512F,
/// chosen at run time; products and squares are pinned with keep_in_register (no fused
/// multiply-add anywhere), so every version gives the same bits.

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <vector>

#include "fedpp/aggregators/detail/dist_simd.hpp"
#include "fedpp/aggregators/detail/weighted_sum.hpp"  // prefetch_ahead, prefetch_distance
#include "fedpp/core/config.hpp"
#include "fedpp/core/types.hpp"

namespace fedpp::detail {

/// Coordinates per distance chunk (part of the arithmetic: lanes restart per chunk).
inline constexpr Index sweep_chunk = 1024;

/// What one sweep pass does.
template <typename S>
struct SweepPass {
  const S* data = nullptr;     ///< d x n column-major batch
  Index d = 0;                 ///< rows
  Index n = 0;                 ///< columns
  double* center = nullptr;    ///< d values (read by distances, read/written by the update); null = zero center
  bool update = false;         ///< move the center first
  const double* w = nullptr;   ///< n update weights
  double denom = 1.0;          ///< update divisor
  double a = 0.0;              ///< weight of the old center in the update
  double* partial = nullptr;   ///< null: no distances; else n * num_chunks chunk partials (chunk-major)
  Index sub = 0;                ///< coordinates per cache block (multiple of 8, <= sweep_chunk); 0: automatic
};

/// Number of distance chunks for dimension d.
inline Index sweep_num_chunks(Index d) noexcept { return (d + sweep_chunk - 1) / sweep_chunk; }

/// Adds the rounded squares of 8 coordinates (x - z, or x when ZeroCenter) to the 8 lanes.
template <typename V, int H, typename S, bool ZeroCenter>
FEDPP_DIST_INLINE void sweep_sq_step(V (&acc)[H], const S* xs, const double* zs) noexcept {
  FEDPP_DIST_NO_CONTRACT
  constexpr int W = dist_width<V>;
  for (int h = 0; h < H; ++h) {
    V diff;
    dist_load_widen(diff, xs + h * W);
    if constexpr (!ZeroCenter) {
      V zv;
      dist_load(zv, zs + h * W);
      diff = diff - zv;
    }
    V sq = diff * diff;
    keep_in_register(sq);
    acc[h] += sq;
  }
}

/// Adds the rounded squares of len values of x - z (x when ZeroCenter) to the 8 lanes stored at
/// `lanes` (lane l takes the coordinates t with t % 8 == l; len is a multiple of 8 except at the
/// end of a chunk, where the ragged tail is zero padded).
template <typename V, typename S, bool ZeroCenter, bool Prefetch>
FEDPP_DIST_INLINE void sweep_sq_accumulate(double* lanes, const S* x, const double* z, Index len,
                                           std::size_t prefetch_bytes) noexcept {
  constexpr int H = 8 / dist_width<V>;
  V acc[H];
  for (int h = 0; h < H; ++h) dist_load(acc[h], lanes + h * dist_width<V>);
  constexpr Index line = 64 / static_cast<Index>(sizeof(S));
  Index t = 0;
  for (; t + 8 <= len; t += 8) {
    if constexpr (Prefetch)
      if (t % line == 0) prefetch_ahead(x + t, prefetch_bytes);
    sweep_sq_step<V, H, S, ZeroCenter>(acc, x + t, ZeroCenter ? nullptr : z + t);
  }
  if (t < len) {  // ragged end of the last chunk: zero padding adds +0 to every lane
    S xs[8] = {};
    double zs[8] = {};
    for (Index k = t; k < len; ++k) {
      xs[k - t] = x[k];
      if constexpr (!ZeroCenter) zs[k - t] = z[k];
    }
    sweep_sq_step<V, H, S, ZeroCenter>(acc, xs, zs);
  }
  for (int h = 0; h < H; ++h) std::memcpy(lanes + h * dist_width<V>, &acc[h], sizeof(V));
}

/// The fixed reduction of 8 lanes: ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)).
inline double sweep_reduce_lanes(const double* l) noexcept {
  return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

/// acc[j] += w_k * x_k[j] for the G columns x_k = col + k * stride, in column order, j < len.
template <typename V, int G, typename S>
FEDPP_DIST_INLINE void sweep_add_columns(double* FEDPP_RESTRICT acc, const S* col, Index stride, const double* w,
                                         Index len, std::size_t prefetch_bytes) noexcept {
  FEDPP_DIST_NO_CONTRACT
  constexpr int W = dist_width<V>;
  const S* x[G];
  V wv[G];
  for (int k = 0; k < G; ++k) {
    x[k] = col + k * stride;
    wv[k] = V{} + w[k];
  }
  constexpr Index line = 64 / static_cast<Index>(sizeof(S));
  Index j = 0;
  for (; j + W <= len; j += W) {
    if (j % line == 0)
      for (int k = 0; k < G; ++k) prefetch_ahead(x[k] + j, prefetch_bytes);
    V a;
    dist_load(a, acc + j);
    for (int k = 0; k < G; ++k) {
      V xv;
      dist_load_widen(xv, x[k] + j);
      V prod = wv[k] * xv;
      keep_in_register(prod);
      a += prod;
    }
    std::memcpy(acc + j, &a, sizeof(V));
  }
  for (; j < len; ++j) {
    double a = acc[j];
    for (int k = 0; k < G; ++k) {
      double prod = w[k] * static_cast<double>(x[k][j]);
      keep_in_register(prod);
      a += prod;
    }
    acc[j] = a;
  }
}

/// Adds all n columns (4 per pass over acc) in column order.
template <typename V, typename S>
FEDPP_DIST_INLINE void sweep_add_all(double* acc, const S* col, Index stride, const double* w, Index n, Index len,
                                     std::size_t pf) noexcept {
  Index i = 0;
  for (; i + 4 <= n; i += 4) sweep_add_columns<V, 4>(acc, col + i * stride, stride, w + i, len, pf);
  switch (n - i) {
    case 3: sweep_add_columns<V, 3>(acc, col + i * stride, stride, w + i, len, pf); break;
    case 2: sweep_add_columns<V, 2>(acc, col + i * stride, stride, w + i, len, pf); break;
    case 1: sweep_add_columns<V, 1>(acc, col + i * stride, stride, w + i, len, pf); break;
    default: break;
  }
}

/// z[j] = a * z[j] + acc[j] / denom for j < len, the product rounded on its own (never fused).
template <typename V>
FEDPP_DIST_INLINE void sweep_blend(double* FEDPP_RESTRICT z, const double* FEDPP_RESTRICT acc, double a, double denom,
                                   Index len) noexcept {
  FEDPP_DIST_NO_CONTRACT
  constexpr int W = dist_width<V>;
  const V av = V{} + a, dv = V{} + denom;
  Index j = 0;
  for (; j + W <= len; j += W) {
    V zv, cv;
    dist_load(zv, z + j);
    dist_load(cv, acc + j);
    V t = av * zv;
    keep_in_register(t);
    zv = t + cv / dv;
    std::memcpy(z + j, &zv, sizeof(V));
  }
  for (; j < len; ++j) {
    double t = a * z[j];
    keep_in_register(t);
    z[j] = t + acc[j] / denom;
  }
}

/// Chunks [c_lo, c_hi) of one pass, each walked in cache blocks of p.sub coordinates; `acc` has
/// room for p.sub doubles and `lanes` for 8 * n (each client's 8 distance lanes, carried across
/// the blocks of a chunk, so the block size changes no bit).
template <typename V, typename S>
FEDPP_DIST_INLINE void sweep_range_body(const SweepPass<S>& p, Index c_lo, Index c_hi, double* acc, double* lanes) {
  const std::size_t pf = std::min<std::size_t>(prefetch_distance, static_cast<std::size_t>(p.sub) * sizeof(S));
  for (Index c = c_lo; c < c_hi; ++c) {
    const Index c0 = c * sweep_chunk;
    const Index c1 = std::min(c0 + sweep_chunk, p.d);
    if (p.partial)
      for (Index k = 0; k < 8 * p.n; ++k) lanes[k] = 0.0;
    for (Index j0 = c0; j0 < c1; j0 += p.sub) {
      const Index len = std::min(p.sub, c1 - j0);
      if (p.update) {
        for (Index j = 0; j < len; ++j) acc[j] = 0.0;
        sweep_add_all<V>(acc, p.data + j0, p.d, p.w, p.n, len, pf);
        double* z = p.center + j0;
        const double denom = p.denom, a = p.a;
        if (a == 0.0) {
          for (Index j = 0; j < len; ++j) z[j] = acc[j] / denom;
        } else {
          sweep_blend<V>(z, acc, a, denom, len);
        }
      }
      if (p.partial) {
        const S* x = p.data + j0;
        if (p.center == nullptr) {
          for (Index i = 0; i < p.n; ++i)
            sweep_sq_accumulate<V, S, true, true>(lanes + 8 * i, x + i * p.d, nullptr, len, pf);
        } else if (p.update) {  // the block was just read by the update: it is in cache
          for (Index i = 0; i < p.n; ++i)
            sweep_sq_accumulate<V, S, false, false>(lanes + 8 * i, x + i * p.d, p.center + j0, len, pf);
        } else {
          for (Index i = 0; i < p.n; ++i)
            sweep_sq_accumulate<V, S, false, true>(lanes + 8 * i, x + i * p.d, p.center + j0, len, pf);
        }
      }
    }
    if (p.partial) {
      double* part = p.partial + c * p.n;
      for (Index i = 0; i < p.n; ++i) part[i] = sweep_reduce_lanes(lanes + 8 * i);
    }
  }
}

/// Signature of a compiled sweep range.
template <typename S>
using SweepRange = void (*)(const SweepPass<S>&, Index, Index, double*, double*);

/// sweep_range_body for the build's instruction set.
template <typename S>
void sweep_range_base(const SweepPass<S>& p, Index c_lo, Index c_hi, double* acc, double* lanes) {
#if FEDPP_DIST_VECTOR_EXT && defined(__AVX512F__)
  sweep_range_body<dist_v8d>(p, c_lo, c_hi, acc, lanes);
#elif FEDPP_DIST_VECTOR_EXT && defined(__AVX__)
  sweep_range_body<dist_v4d>(p, c_lo, c_hi, acc, lanes);
#elif FEDPP_DIST_VECTOR_EXT
  sweep_range_body<dist_v2d>(p, c_lo, c_hi, acc, lanes);
#else
  sweep_range_body<double>(p, c_lo, c_hi, acc, lanes);
#endif
}

#if FEDPP_DIST_DISPATCH
/// sweep_range_body compiled for AVX2.
template <typename S>
__attribute__((target("avx2"))) void sweep_range_avx2(const SweepPass<S>& p, Index c_lo, Index c_hi, double* acc,
                                                      double* lanes) {
  sweep_range_body<dist_v4d>(p, c_lo, c_hi, acc, lanes);
}
/// sweep_range_body compiled for AVX-512F.
template <typename S>
__attribute__((target("avx512f"))) void sweep_range_avx512(const SweepPass<S>& p, Index c_lo, Index c_hi,
                                                          double* acc, double* lanes) {
  sweep_range_body<dist_v8d>(p, c_lo, c_hi, acc, lanes);
}
#endif

/// The compiled sweep for `isa` (best: the fastest available; unavailable ones fall back to base).
template <typename S>
SweepRange<S> sweep_kernel(DistIsa isa = DistIsa::best) noexcept {
#if FEDPP_DIST_DISPATCH
  if ((isa == DistIsa::best || isa == DistIsa::avx512) && dist_cpu_has_avx512()) return &sweep_range_avx512<S>;
  if ((isa == DistIsa::best || isa == DistIsa::avx2) && dist_cpu_has_avx2()) return &sweep_range_avx2<S>;
#else
  (void)isa;
#endif
  return &sweep_range_base<S>;
}

/// Runs one pass over all chunks, split into one contiguous range of chunks per thread.
/**
 * Only speed depends on the split: every coordinate and every chunk partial is computed by
 * the same arithmetic whichever thread owns it.
 */
template <typename S>
void sweep_pass(const SweepPass<S>& pass, DistIsa isa = DistIsa::best) {
  const Index chunks = sweep_num_chunks(pass.d);
  if (chunks == 0) return;
  const SweepRange<S> range = sweep_kernel<S>(isa);
  // Cache block: the block of all n columns should fit in half an L2 (about 512 KiB), so the
  // distance half re-reads it from cache; a multiple of 8 in [64, sweep_chunk]. Speed only.
  SweepPass<S> p = pass;
  if (p.sub <= 0)
    p.sub = std::clamp<Index>((Index{1} << 19) / std::max<Index>(1, p.n * static_cast<Index>(sizeof(S))) / 8 * 8, 64,
                              sweep_chunk);
  p.sub = std::clamp<Index>(p.sub / 8 * 8, 8, sweep_chunk);
  // Each thread gets at least ~256 KiB of input, else the pass runs on one thread.
  const Index bytes_per_chunk = sweep_chunk * p.n * static_cast<Index>(sizeof(S));
  const Index min_chunks = std::max<Index>(1, (Index{1} << 18) / std::max<Index>(1, bytes_per_chunk));
  Index parts = std::min<Index>(max_threads(), chunks / min_chunks);
  if (parts < 1) parts = 1;
  const Index per = p.sub + 8 * p.n;  // per thread: the block accumulator, then the distance lanes
  std::vector<double> scratch(static_cast<std::size_t>(parts * per));
  if (parts == 1) {
    range(p, 0, chunks, scratch.data(), scratch.data() + p.sub);
    return;
  }
  FEDPP_OMP_PARALLEL_FOR
  for (Index t = 0; t < parts; ++t)
    range(p, chunks * t / parts, chunks * (t + 1) / parts, scratch.data() + t * per, scratch.data() + t * per + p.sub);
}

/// Sums chunk partials (chunk-major, n per chunk) into n squared distances, in chunk order.
inline void sweep_sum_partials(const std::vector<double>& partial, Index n, Index chunks, std::vector<double>& out) {
  out.assign(static_cast<std::size_t>(n), 0.0);
  for (Index c = 0; c < chunks; ++c)
    for (Index i = 0; i < n; ++i)
      out[static_cast<std::size_t>(i)] += partial[static_cast<std::size_t>(c * n + i)];
}

/// Squared Euclidean norms of the n columns of a d x n column-major matrix (arithmetic above).
template <typename S>
std::vector<double> column_sq_norms(const S* data, Index d, Index n, DistIsa isa = DistIsa::best) {
  const Index chunks = sweep_num_chunks(d);
  std::vector<double> partial(static_cast<std::size_t>(chunks * n)), out;
  SweepPass<S> p;
  p.data = data;
  p.d = d;
  p.n = n;
  p.partial = partial.data();
  sweep_pass(p, isa);
  sweep_sum_partials(partial, n, chunks, out);
  return out;
}

}  // namespace fedpp::detail
