#pragma once
/// @file pairwise.hpp
/// Private kernel of the distance-based rules (Krum, Multi-Krum, Bulyan, NNM): the Gram matrix
/// of the n columns of a d x n column-major batch and, from it, the n x n matrix of squared
/// Euclidean distances ||a||^2 + ||b||^2 - 2 a.b.
///
/// Arithmetic (fixed; the same whatever the thread count, the tiling or the instruction set):
/// the coordinates are cut into blocks of `gram_block` (1024) starting at 0. For a pair (p, q)
/// and a block, eight double lanes l = 0..7 each sum, in increasing coordinate order, the
/// products double(x_p[j]) * double(x_q[j]) of the block's coordinates j with (j - start) % 8 == l;
/// the block's partial is ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)); and
/// G(p, q) = ((0 + partial_0) + partial_1) + ... in block order. For float inputs every product
/// is exact in double, so the only roundings are those of the double sums (a fused multiply-add
/// gives the same bits as a multiply then an add, and the kernels use either). Then
/// D(p, q) = max(0, (G(p, p) + G(q, q)) - 2 G(p, q)) for p != q and D(p, p) = 0 exactly.
///
/// The work is split into R x C tiles of pairs of the lower triangle; each thread owns a fixed,
/// contiguous range of tiles for the whole computation and walks all coordinate blocks, first
/// converting the block of the columns it needs to double (a private L x n scratch), then
/// adding each tile's block partials to its own entries of G. No two threads write the same
/// entry and no entry's sum depends on which thread computed it, so the result is bit-identical
/// on any thread count.
///
/// x86-64 builds without AVX2 in their flags also compile the tile kernel for AVX2 (+FMA for
/// float inputs) and AVX-512F (float inputs), chosen at run time (FEDPP_NO_ISA_DISPATCH turns
/// this off); all give the same bits (see above; double inputs use the AVX2 kernel without FMA).

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <type_traits>
#include <vector>

#include "fedpp/aggregators/detail/dist_simd.hpp"
#include "fedpp/core/config.hpp"
#include "fedpp/core/types.hpp"

namespace fedpp::detail {

/// Coordinates per block of the Gram computation (part of the arithmetic: lanes restart per block).
inline constexpr Index gram_block = 1024;
/// Double lanes per pair and block.
inline constexpr int gram_lanes = 8;

/// Block partials of an R x C tile of pairs: out[p][q] = sum over the block of a_p[j] * b_q[j]
/// with the lane structure of the file comment; len is a multiple of 8 (zero padded).
/// V holds W doubles; H = 8 / W registers make the 8 lanes of one pair.
template <typename V, int R, int C>
FEDPP_DIST_INLINE void gram_tile(const double* const* a, const double* const* b, Index len,
                                     double (*out)[C]) noexcept {
  FEDPP_DIST_NO_CONTRACT
  constexpr int W = static_cast<int>(sizeof(V) / sizeof(double));
  constexpr int H = gram_lanes / W;
  static_assert(W * H == gram_lanes);
  V acc[R][C][H];
  for (int p = 0; p < R; ++p)
    for (int q = 0; q < C; ++q)
      for (int h = 0; h < H; ++h) acc[p][q][h] = V{};  // +0.0 in every lane
  for (Index t = 0; t < len; t += gram_lanes) {
    for (int h = 0; h < H; ++h) {
      V bv[C];
      for (int q = 0; q < C; ++q) dist_load(bv[q], b[q] + t + h * W);
      for (int p = 0; p < R; ++p) {
        V av;
        dist_load(av, a[p] + t + h * W);
        keep_in_register(av);
        for (int q = 0; q < C; ++q) acc[p][q][h] += av * bv[q];
      }
    }
  }
  for (int p = 0; p < R; ++p)
    for (int q = 0; q < C; ++q) out[p][q] = dist_reduce8<V, H>(acc[p][q]);
}

/// One tile range over all blocks: the per-thread body of gram_matrix.
/**
 * Tiles are (i0, j0) pairs of first row/column; rows i0..i0+R-1 and columns j0..j0+C-1 (indices
 * >= n read a zero column). Converts, per block, the columns [0, ncols) into `scratch`
 * (ncols * gram_block doubles) and adds each tile's partials into G(i, j) for j <= i < n.
 */
template <typename V, int R, int C, typename S>
FEDPP_DIST_INLINE void gram_range_body(const S* data, Index d, Index n, const Index* tiles, Index ntiles,
                                           Index ncols, double* scratch, const double* zeros, double* G) {
  for (Index b0 = 0; b0 < d; b0 += gram_block) {
    const Index len = std::min(gram_block, d - b0);
    const Index padded = (len + gram_lanes - 1) / gram_lanes * gram_lanes;
    for (Index c = 0; c < ncols; ++c) {
      const S* src = data + c * d + b0;
      double* dst = scratch + c * gram_block;
      for (Index j = 0; j < len; ++j) dst[j] = static_cast<double>(src[j]);
      for (Index j = len; j < padded; ++j) dst[j] = 0.0;
    }
    for (Index t = 0; t < ntiles; ++t) {
      const Index i0 = tiles[2 * t], j0 = tiles[2 * t + 1];
      const double* a[R];
      const double* bq[C];
      for (int p = 0; p < R; ++p) a[p] = i0 + p < n ? scratch + (i0 + p) * gram_block : zeros;
      for (int q = 0; q < C; ++q) bq[q] = j0 + q < n ? scratch + (j0 + q) * gram_block : zeros;
      double part[R][C];
      gram_tile<V, R, C>(a, bq, padded, part);
      for (int p = 0; p < R; ++p)
        for (int q = 0; q < C; ++q) {
          const Index i = i0 + p, j = j0 + q;
          if (i < n && j <= i) G[i + j * n] += part[p][q];
        }
    }
  }
}

/// Signature of a per-thread Gram range function.
template <typename S>
using GramRange = void (*)(const S*, Index, Index, const Index*, Index, Index, double*, const double*, double*);

/// A tiling: tile shape plus the range function that uses it.
template <typename S>
struct GramKernel {
  int rows;            ///< R
  int cols;            ///< C
  GramRange<S> range;  ///< the per-thread body
};

/// gram_range_body for the build's instruction set.
template <typename S>
void gram_range_base(const S* data, Index d, Index n, const Index* tiles, Index ntiles, Index ncols, double* scratch,
                     const double* zeros, double* G) {
#if FEDPP_DIST_VECTOR_EXT && defined(__AVX512F__)
  gram_range_body<dist_v8d, 4, 4>(data, d, n, tiles, ntiles, ncols, scratch, zeros, G);
#elif FEDPP_DIST_VECTOR_EXT && defined(__AVX__)
  gram_range_body<dist_v4d, 3, 2>(data, d, n, tiles, ntiles, ncols, scratch, zeros, G);
#elif FEDPP_DIST_VECTOR_EXT
  gram_range_body<dist_v2d, 2, 1>(data, d, n, tiles, ntiles, ncols, scratch, zeros, G);
#else
  gram_range_body<double, 1, 1>(data, d, n, tiles, ntiles, ncols, scratch, zeros, G);
#endif
}

/// Tile shape of gram_range_base.
inline constexpr int gram_base_rows =
#if FEDPP_DIST_VECTOR_EXT && defined(__AVX512F__)
    4;
#elif FEDPP_DIST_VECTOR_EXT && defined(__AVX__)
    3;
#elif FEDPP_DIST_VECTOR_EXT
    2;
#else
    1;
#endif
/// Tile shape of gram_range_base.
inline constexpr int gram_base_cols =
#if FEDPP_DIST_VECTOR_EXT && defined(__AVX512F__)
    4;
#elif FEDPP_DIST_VECTOR_EXT && defined(__AVX__)
    2;
#elif FEDPP_DIST_VECTOR_EXT
    1;
#else
    1;
#endif

#if FEDPP_DIST_DISPATCH
/// gram_range_body compiled for AVX2 with FMA (float inputs: products are exact, so FMA changes no bit).
template <typename S>
__attribute__((target("avx2,fma"))) void gram_range_avx2fma(const S* data, Index d, Index n, const Index* tiles,
                                                             Index ntiles, Index ncols, double* scratch,
                                                             const double* zeros, double* G) {
  gram_range_body<dist_v4d, 3, 2>(data, d, n, tiles, ntiles, ncols, scratch, zeros, G);
}
/// gram_range_body compiled for AVX2 without FMA (double inputs: the same roundings as the base kernel).
template <typename S>
__attribute__((target("avx2"))) void gram_range_avx2(const S* data, Index d, Index n, const Index* tiles, Index ntiles,
                                                     Index ncols, double* scratch, const double* zeros, double* G) {
  gram_range_body<dist_v4d, 3, 2>(data, d, n, tiles, ntiles, ncols, scratch, zeros, G);
}
/// gram_range_body compiled for AVX-512F (float inputs only).
template <typename S>
__attribute__((target("avx512f"))) void gram_range_avx512(const S* data, Index d, Index n, const Index* tiles,
                                                           Index ntiles, Index ncols, double* scratch,
                                                           const double* zeros, double* G) {
  gram_range_body<dist_v8d, 4, 4>(data, d, n, tiles, ntiles, ncols, scratch, zeros, G);
}
#endif

/// True when `isa` can run here for scalar type S (base always can).
template <typename S>
bool gram_isa_available(DistIsa isa) noexcept {
  switch (isa) {
    case DistIsa::best:
    case DistIsa::base:
      return true;
#if FEDPP_DIST_DISPATCH
    case DistIsa::avx2:
      return dist_cpu_has_avx2();
    case DistIsa::avx512:
      return std::is_same_v<S, float> && dist_cpu_has_avx512();
#endif
    default:
      return false;
  }
}

/// The kernel for `isa` (best: the fastest available); falls back to base when unavailable.
template <typename S>
GramKernel<S> gram_kernel(DistIsa isa = DistIsa::best) noexcept {
#if FEDPP_DIST_DISPATCH
  if constexpr (std::is_same_v<S, float>) {
    if ((isa == DistIsa::best || isa == DistIsa::avx512) && dist_cpu_has_avx512())
      return {4, 4, &gram_range_avx512<S>};
    if ((isa == DistIsa::best || isa == DistIsa::avx2) && dist_cpu_has_avx2()) return {3, 2, &gram_range_avx2fma<S>};
  } else {
    if ((isa == DistIsa::best || isa == DistIsa::avx2) && dist_cpu_has_avx2()) return {3, 2, &gram_range_avx2<S>};
  }
#else
  (void)isa;
#endif
  return {gram_base_rows, gram_base_cols, &gram_range_base<S>};
}

/// Gram matrix G = X^T X (n x n, double, symmetric) of the n columns of a d x n column-major matrix.
/**
 * Arithmetic and determinism as in the file comment. Memory: G plus, per thread, a scratch of
 * gram_block doubles per column it touches (8 KiB per column).
 * @param isa tile kernel to use (tests force each one; results are identical).
 */
template <typename S>
void gram_matrix(const S* data, Index d, Index n, Matrix<double>& G, DistIsa isa = DistIsa::best) {
  G.setZero(n, n);
  if (n == 0 || d == 0) return;
  const GramKernel<S> k = gram_kernel<S>(isa);
  // Tiles of the lower triangle, row-group by row-group.
  std::vector<Index> tiles;
  for (Index i0 = 0; i0 < n; i0 += k.rows) {
    const Index last_row = std::min(i0 + k.rows - 1, n - 1);
    for (Index j0 = 0; j0 <= last_row; j0 += k.cols) {
      tiles.push_back(i0);
      tiles.push_back(j0);
    }
  }
  const Index ntiles = static_cast<Index>(tiles.size() / 2);
  // One contiguous range of tiles per thread; only speed depends on the split.
  Index parts = std::min<Index>(max_threads(), ntiles);
  // Each part must have enough work to pay for its own pass over the data.
  const double work = static_cast<double>(ntiles) * k.rows * k.cols * static_cast<double>(d);
  if (work < 4e6) parts = 1;
  if (parts < 1) parts = 1;
  const std::vector<double> zeros(static_cast<std::size_t>(gram_block), 0.0);
  double* g = G.data();
  auto run_part = [&](Index p) {
    const Index lo = ntiles * p / parts, hi = ntiles * (p + 1) / parts;
    if (lo >= hi) return;
    Index max_col = 0;  // columns [0, ncols) cover every row and column of the range's tiles
    for (Index t = lo; t < hi; ++t) max_col = std::max(max_col, tiles[static_cast<std::size_t>(2 * t)] + k.rows);
    const Index ncols = std::min(max_col, n);
    std::vector<double> scratch(static_cast<std::size_t>(ncols * gram_block));
    k.range(data, d, n, tiles.data() + 2 * lo, hi - lo, ncols, scratch.data(), zeros.data(), g);
  };
  if (parts == 1) {
    run_part(0);
  } else {
    FEDPP_OMP_PARALLEL_FOR
    for (Index p = 0; p < parts; ++p) run_part(p);
  }
  for (Index j = 0; j < n; ++j)
    for (Index i = j + 1; i < n; ++i) G(j, i) = G(i, j);
}

/// Squared distances from a Gram matrix: D(p, q) = max(0, (G(p,p) + G(q,q)) - 2 G(p,q)), D(p, p) = 0.
inline void distances_from_gram(const Matrix<double>& G, Matrix<double>& D) {
  const Index n = G.rows();
  D.resize(n, n);
  for (Index q = 0; q < n; ++q)
    for (Index p = 0; p < n; ++p) {
      if (p == q) {
        D(p, q) = 0.0;
        continue;
      }
      const double v = (G(p, p) + G(q, q)) - 2.0 * G(p, q);
      D(p, q) = v > 0.0 ? v : 0.0;
    }
}

/// n x n squared Euclidean distances between the columns of a d x n column-major matrix.
/**
 * Symmetric, exact zeros on the diagonal, never negative; see the file comment for the
 * arithmetic. Optionally also returns the squared norms (the Gram diagonal).
 */
template <typename S>
void pairwise_sq_distances(const S* data, Index d, Index n, Matrix<double>& D, Vector<double>* sq_norms = nullptr,
                           DistIsa isa = DistIsa::best) {
  Matrix<double> G;
  gram_matrix(data, d, n, G, isa);
  distances_from_gram(G, D);
  if (sq_norms) *sq_norms = G.diagonal();
}

}  // namespace fedpp::detail
