#pragma once
/// @file flag_gram.hpp
/// Private kernel of the Flag aggregator: the Gram matrix Z^T Z (double) of the columns
/// Z = [X | E], where X is the d x n batch and E holds m optional extra columns (the start of
/// the IRLS iteration: an explicit d x m matrix or the reference-mode random start, generated
/// on the fly and never stored).
///
/// Arithmetic (fixed; the same whatever the thread count, the tiling or the instruction set,
/// provided the multiply-add is fused, see below): the coordinates are cut into panels of
/// `flag_panel` (1024) starting at 0. For a pair of columns (p, q) and a panel, L lanes
/// (L = 16 for float, 8 for double) each accumulate in S, in increasing coordinate order,
/// acc_l = fma(z_p[k], z_q[k], acc_l) over the panel's coordinates k with (k - start) % L == l
/// (acc_l starts at +0). The panel partial is reduced in S by the fixed tree
/// h_l = acc_l + acc_{l+L/2}, then l + L/4, ..., down to one value, converted to double, and
/// added to the pair's chunk sum. The panels are grouped into `chunks` contiguous chunks (a
/// number that depends only on d and N = n + m, never on the thread count); each chunk sums its
/// panel partials in panel order starting from 0, and G(p, q) is the sum of the chunk sums in
/// chunk order. The float lanes keep the 2-flop-per-lane speed of single precision; the partials
/// (at most 64 terms per lane) and everything after them are in double, so the relative error of
/// an entry is about sqrt(64) * 2^-24 of sum_k |z_p[k] z_q[k]| for float inputs.
///
/// Kernels: x86-64 builds (GCC/Clang) compile the tile kernel for AVX-512F and for AVX2+FMA and
/// pick one at run time (FEDPP_NO_ISA_DISPATCH turns this off); both use fused multiply-adds
/// and the lane layout above, so they give the same bits. The portable kernel uses std::fma
/// where the build targets a hardware FMA (FP_FAST_FMA/FP_FAST_FMAF; then it gives the same bits)
/// and a multiply then an add otherwise (then its results differ from the others by rounding).
///
/// Parallelism: one static contiguous range of chunks per OpenMP thread; each chunk owns its own
/// N x N double partial, so no two threads write the same memory, and the final chunk sum runs
/// in a fixed order. Memory: chunks * N * N doubles (at most 32 MiB, at most 64 chunks) plus,
/// per thread, m * flag_panel values of the generated random start.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "fedpp/core/config.hpp"
#include "fedpp/core/rng.hpp"
#include "fedpp/core/types.hpp"

#if !defined(FEDPP_NO_ISA_DISPATCH) && (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
/// 1 when the Flag Gram kernel has AVX2+FMA and AVX-512F versions chosen at run time.
#define FEDPP_FLAG_DISPATCH 1
#include <immintrin.h>
#else
#define FEDPP_FLAG_DISPATCH 0
#endif

#if defined(__GNUC__) && !defined(__clang__)
#define FEDPP_FLAG_UNROLL _Pragma("GCC unroll 16")
#elif defined(__clang__)
#define FEDPP_FLAG_UNROLL _Pragma("unroll")
#else
#define FEDPP_FLAG_UNROLL
#endif

namespace fedpp::detail {

/// Coordinates per panel of the Flag Gram computation (lanes restart per panel; also the block
/// of the random start generator).
inline constexpr Index flag_panel = 1024;
/// Most chunks (partial Gram matrices) of one Gram computation.
inline constexpr Index flag_max_chunks = 64;
/// Most bytes of chunk partials of one Gram computation.
inline constexpr double flag_chunk_bytes = 32.0 * 1024 * 1024;

/// Lanes per pair and panel: 16 for float, 8 for double.
template <typename S>
inline constexpr int flag_lanes = static_cast<int>(64 / sizeof(S));

/// Which tile kernel computes the Flag Gram matrix.
enum class FlagGramIsa {
  best,      ///< the fastest this CPU runs
  portable,  ///< plain C++ (the build's instruction set)
  avx2,      ///< AVX2 + FMA; only where the CPU has them
  avx512     ///< AVX-512F; only where the CPU has it
};

/// One uniform value of the random start as the generator draws it: U[0,1) float minus 0.5.
/**
 * The reference (Almasi et al.) draws `torch.rand(d, m) - 0.5` after `torch.manual_seed(1)`;
 * C++ cannot reproduce torch's generator, so fedpp uses its own fixed stream: column j's values
 * on panel b (coordinates b * flag_panel ...) are successive `Rng::uniform_float() - 0.5f` of
 * `Rng(mix64(mix64(key ^ b) ^ (j + 0x5851f42d4c957f2d)))`. Every value is a float, exact in double.
 */
inline Rng flag_start_stream(std::uint64_t key, Index panel, Index column) noexcept {
  const std::uint64_t b = static_cast<std::uint64_t>(panel), j = static_cast<std::uint64_t>(column);
  return Rng(mix64(mix64(key ^ b) ^ (j + 0x5851f42d4c957f2dULL)));
}

/// Writes the `len` random-start values of column `column` on panel `panel` into out.
template <typename S>
void flag_start_panel(std::uint64_t key, Index panel, Index column, Index len, S* out) noexcept {
  Rng rng = flag_start_stream(key, panel, column);
  for (Index k = 0; k < len; ++k) out[k] = static_cast<S>(rng.uniform_float() - 0.5f);
}

/// The columns whose Gram matrix is computed: the batch plus m optional extra columns.
template <typename S>
struct FlagColumns {
  const S* batch = nullptr;    ///< d x n column-major
  Index d = 0;                 ///< rows
  Index n = 0;                 ///< batch columns
  Index m = 0;                 ///< extra columns (0: none)
  const S* extra = nullptr;    ///< d x m column-major extra columns, or nullptr for the random start
  std::uint64_t key = 0;       ///< random start key (when extra == nullptr and m > 0)
};

// ---- tile kernels -------------------------------------------------------------------------
// A tile kernel computes, for RI columns a[0..RI) and RJ columns b[0..RJ) over `len` (<= flag_panel)
// coordinates, the RI x RJ panel partials (double) into out[i * RJ + j], with the lane layout and
// reduction tree of the file comment.

/// True when the portable kernel's multiply-add is fused (the build targets a hardware FMA); then
/// it gives the same bits as the SIMD kernels.
#if defined(FP_FAST_FMA) || defined(__FP_FAST_FMA) || defined(__FMA__) || defined(__ARM_FEATURE_FMA)
inline constexpr bool flag_madd_is_fused = true;
#else
inline constexpr bool flag_madd_is_fused = false;
#endif

/// a * b + c with the rounding of the build: one fused operation where the target has a hardware
/// FMA, a multiply then an add otherwise.
template <typename S>
inline S flag_madd(S a, S b, S c) noexcept {
  if constexpr (flag_madd_is_fused) {
    return std::fma(a, b, c);
  } else {
    return a * b + c;
  }
}

/// The portable tile kernel (any S).
template <typename S, int RI, int RJ>
void flag_tile_portable(const S* const* a, const S* const* b, Index len, double* out) noexcept {
  constexpr int L = flag_lanes<S>;
  S acc[RI][RJ][L];
  for (int i = 0; i < RI; ++i)
    for (int j = 0; j < RJ; ++j)
      for (int l = 0; l < L; ++l) acc[i][j][l] = S(0);
  Index k = 0;
  for (; k + L <= len; k += L)
    for (int i = 0; i < RI; ++i)
      for (int j = 0; j < RJ; ++j)
        for (int l = 0; l < L; ++l) acc[i][j][l] = flag_madd(a[i][k + l], b[j][k + l], acc[i][j][l]);
  const int rem = static_cast<int>(len - k);
  for (int i = 0; i < RI; ++i)
    for (int j = 0; j < RJ; ++j)
      for (int l = 0; l < rem; ++l) acc[i][j][l] = flag_madd(a[i][k + l], b[j][k + l], acc[i][j][l]);
  for (int i = 0; i < RI; ++i)
    for (int j = 0; j < RJ; ++j) {
      S h[L];
      for (int l = 0; l < L; ++l) h[l] = acc[i][j][l];
      for (int w = L / 2; w >= 1; w /= 2)
        for (int l = 0; l < w; ++l) h[l] = h[l] + h[l + w];
      out[i * RJ + j] = static_cast<double>(h[0]);
    }
}

#if FEDPP_FLAG_DISPATCH
/// Sum of 8 floats by the fixed tree (l, l+4), (l, l+2), (l, l+1).
__attribute__((target("avx2"), always_inline)) inline float flag_hsum8(__m256 s8) noexcept {
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  const __m128 s1 = _mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 0x55));
  return _mm_cvtss_f32(s1);
}
/// Sum of 4 doubles by the fixed tree (l, l+2), (l, l+1).
__attribute__((target("avx2"), always_inline)) inline double flag_hsum4d(__m256d s4) noexcept {
  const __m128d s2 = _mm_add_pd(_mm256_castpd256_pd128(s4), _mm256_extractf128_pd(s4, 1));
  const __m128d s1 = _mm_add_sd(s2, _mm_unpackhi_pd(s2, s2));
  return _mm_cvtsd_f64(s1);
}

/// Lane mask for the last `rem` (< 8) elements, as AVX2 maskload wants it.
__attribute__((target("avx2"), always_inline)) inline __m256i flag_mask8(int rem) noexcept {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(rem), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
__attribute__((target("avx2"), always_inline)) inline __m256i flag_mask4d(int rem) noexcept {
  return _mm256_cmpgt_epi64(_mm256_set1_epi64x(rem), _mm256_setr_epi64x(0, 1, 2, 3));
}

/// AVX2+FMA tile kernel, float: each 16-lane accumulator is two 8-float registers (lanes 0-7, 8-15).
template <int RI, int RJ>
__attribute__((target("avx2,fma"))) void flag_tile_avx2_f(const float* const* a, const float* const* b, Index len,
                                                           double* out) noexcept {
  __m256 acc[RI][RJ][2];
  FEDPP_FLAG_UNROLL
  for (int i = 0; i < RI; ++i)
    FEDPP_FLAG_UNROLL
    for (int j = 0; j < RJ; ++j) acc[i][j][0] = acc[i][j][1] = _mm256_setzero_ps();
  Index k = 0;
  for (; k + 16 <= len; k += 16) {
    FEDPP_FLAG_UNROLL
    for (int h = 0; h < 2; ++h) {
      __m256 va[RI];
      FEDPP_FLAG_UNROLL
      for (int i = 0; i < RI; ++i) va[i] = _mm256_loadu_ps(a[i] + k + 8 * h);
      FEDPP_FLAG_UNROLL
      for (int j = 0; j < RJ; ++j) {
        const __m256 vb = _mm256_loadu_ps(b[j] + k + 8 * h);
        FEDPP_FLAG_UNROLL
        for (int i = 0; i < RI; ++i) acc[i][j][h] = _mm256_fmadd_ps(va[i], vb, acc[i][j][h]);
      }
    }
  }
  if (k < len) {
    const int rem = static_cast<int>(len - k);
    for (int h = 0; h < 2; ++h) {
      const int r = std::clamp(rem - 8 * h, 0, 8);
      if (r == 0) break;
      const __m256i mask = flag_mask8(r);
      __m256 va[RI];
      for (int i = 0; i < RI; ++i) va[i] = _mm256_maskload_ps(a[i] + k + 8 * h, mask);
      for (int j = 0; j < RJ; ++j) {
        const __m256 vb = _mm256_maskload_ps(b[j] + k + 8 * h, mask);
        for (int i = 0; i < RI; ++i) acc[i][j][h] = _mm256_fmadd_ps(va[i], vb, acc[i][j][h]);
      }
    }
  }
  for (int i = 0; i < RI; ++i)
    for (int j = 0; j < RJ; ++j)
      out[i * RJ + j] = static_cast<double>(flag_hsum8(_mm256_add_ps(acc[i][j][0], acc[i][j][1])));
}

/// AVX2+FMA tile kernel, double: each 8-lane accumulator is two 4-double registers.
template <int RI, int RJ>
__attribute__((target("avx2,fma"))) void flag_tile_avx2_d(const double* const* a, const double* const* b, Index len,
                                                           double* out) noexcept {
  __m256d acc[RI][RJ][2];
  FEDPP_FLAG_UNROLL
  for (int i = 0; i < RI; ++i)
    FEDPP_FLAG_UNROLL
    for (int j = 0; j < RJ; ++j) acc[i][j][0] = acc[i][j][1] = _mm256_setzero_pd();
  Index k = 0;
  for (; k + 8 <= len; k += 8) {
    FEDPP_FLAG_UNROLL
    for (int h = 0; h < 2; ++h) {
      __m256d va[RI];
      FEDPP_FLAG_UNROLL
      for (int i = 0; i < RI; ++i) va[i] = _mm256_loadu_pd(a[i] + k + 4 * h);
      FEDPP_FLAG_UNROLL
      for (int j = 0; j < RJ; ++j) {
        const __m256d vb = _mm256_loadu_pd(b[j] + k + 4 * h);
        FEDPP_FLAG_UNROLL
        for (int i = 0; i < RI; ++i) acc[i][j][h] = _mm256_fmadd_pd(va[i], vb, acc[i][j][h]);
      }
    }
  }
  if (k < len) {
    const int rem = static_cast<int>(len - k);
    for (int h = 0; h < 2; ++h) {
      const int r = std::clamp(rem - 4 * h, 0, 4);
      if (r == 0) break;
      const __m256i mask = flag_mask4d(r);
      __m256d va[RI];
      for (int i = 0; i < RI; ++i) va[i] = _mm256_maskload_pd(a[i] + k + 4 * h, mask);
      for (int j = 0; j < RJ; ++j) {
        const __m256d vb = _mm256_maskload_pd(b[j] + k + 4 * h, mask);
        for (int i = 0; i < RI; ++i) acc[i][j][h] = _mm256_fmadd_pd(va[i], vb, acc[i][j][h]);
      }
    }
  }
  for (int i = 0; i < RI; ++i)
    for (int j = 0; j < RJ; ++j) out[i * RJ + j] = flag_hsum4d(_mm256_add_pd(acc[i][j][0], acc[i][j][1]));
}

/// AVX-512F tile kernel, float: one 16-float register per accumulator.
template <int RI, int RJ>
__attribute__((target("avx512f"))) void flag_tile_avx512_f(const float* const* a, const float* const* b, Index len,
                                                            double* out) noexcept {
  __m512 acc[RI][RJ];
  FEDPP_FLAG_UNROLL
  for (int i = 0; i < RI; ++i)
    FEDPP_FLAG_UNROLL
    for (int j = 0; j < RJ; ++j) acc[i][j] = _mm512_setzero_ps();
  Index k = 0;
  for (; k + 16 <= len; k += 16) {
    __m512 va[RI];
    FEDPP_FLAG_UNROLL
    for (int i = 0; i < RI; ++i) va[i] = _mm512_loadu_ps(a[i] + k);
    FEDPP_FLAG_UNROLL
    for (int j = 0; j < RJ; ++j) {
      const __m512 vb = _mm512_loadu_ps(b[j] + k);
      FEDPP_FLAG_UNROLL
      for (int i = 0; i < RI; ++i) acc[i][j] = _mm512_fmadd_ps(va[i], vb, acc[i][j]);
    }
  }
  if (k < len) {
    const auto mask = static_cast<__mmask16>((1u << (len - k)) - 1u);
    __m512 va[RI];
    for (int i = 0; i < RI; ++i) va[i] = _mm512_maskz_loadu_ps(mask, a[i] + k);
    for (int j = 0; j < RJ; ++j) {
      const __m512 vb = _mm512_maskz_loadu_ps(mask, b[j] + k);
      for (int i = 0; i < RI; ++i) acc[i][j] = _mm512_fmadd_ps(va[i], vb, acc[i][j]);
    }
  }
  for (int i = 0; i < RI; ++i)
    for (int j = 0; j < RJ; ++j) {
      // Masked extracts: the unmasked ones trip GCC 12's -Wuninitialized (undefined pass-through).
      const __m512d v = _mm512_castps_pd(acc[i][j]);
      const __m256 lo = _mm256_castpd_ps(_mm512_mask_extractf64x4_pd(_mm256_setzero_pd(), 0xFF, v, 0));
      const __m256 hi = _mm256_castpd_ps(_mm512_mask_extractf64x4_pd(_mm256_setzero_pd(), 0xFF, v, 1));
      out[i * RJ + j] = static_cast<double>(flag_hsum8(_mm256_add_ps(lo, hi)));
    }
}

/// AVX-512F tile kernel, double: one 8-double register per accumulator.
template <int RI, int RJ>
__attribute__((target("avx512f"))) void flag_tile_avx512_d(const double* const* a, const double* const* b, Index len,
                                                            double* out) noexcept {
  __m512d acc[RI][RJ];
  FEDPP_FLAG_UNROLL
  for (int i = 0; i < RI; ++i)
    FEDPP_FLAG_UNROLL
    for (int j = 0; j < RJ; ++j) acc[i][j] = _mm512_setzero_pd();
  Index k = 0;
  for (; k + 8 <= len; k += 8) {
    __m512d va[RI];
    FEDPP_FLAG_UNROLL
    for (int i = 0; i < RI; ++i) va[i] = _mm512_loadu_pd(a[i] + k);
    FEDPP_FLAG_UNROLL
    for (int j = 0; j < RJ; ++j) {
      const __m512d vb = _mm512_loadu_pd(b[j] + k);
      FEDPP_FLAG_UNROLL
      for (int i = 0; i < RI; ++i) acc[i][j] = _mm512_fmadd_pd(va[i], vb, acc[i][j]);
    }
  }
  if (k < len) {
    const auto mask = static_cast<__mmask8>((1u << (len - k)) - 1u);
    __m512d va[RI];
    for (int i = 0; i < RI; ++i) va[i] = _mm512_maskz_loadu_pd(mask, a[i] + k);
    for (int j = 0; j < RJ; ++j) {
      const __m512d vb = _mm512_maskz_loadu_pd(mask, b[j] + k);
      for (int i = 0; i < RI; ++i) acc[i][j] = _mm512_fmadd_pd(va[i], vb, acc[i][j]);
    }
  }
  for (int i = 0; i < RI; ++i)
    for (int j = 0; j < RJ; ++j) {
      const __m256d lo = _mm512_mask_extractf64x4_pd(_mm256_setzero_pd(), 0xFF, acc[i][j], 0);
      const __m256d hi = _mm512_mask_extractf64x4_pd(_mm256_setzero_pd(), 0xFF, acc[i][j], 1);
      out[i * RJ + j] = flag_hsum4d(_mm256_add_pd(lo, hi));
    }
}

/// True when the CPU and OS support AVX2 and FMA; checked once.
inline bool flag_cpu_has_avx2() noexcept {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
}
/// True when the CPU and OS support AVX-512F; checked once.
inline bool flag_cpu_has_avx512() noexcept {
  static const bool has = __builtin_cpu_supports("avx512f");
  return has;
}
#endif  // FEDPP_FLAG_DISPATCH

/// Signature of a tile kernel.
template <typename S>
using FlagTileFn = void (*)(const S* const*, const S* const*, Index, double*) noexcept;

/// A tile kernel and its tile shape (RI x RJ) and name.
template <typename S>
struct FlagTileKernel {
  int ri;              ///< columns a per tile
  int rj;              ///< columns b per tile
  FlagTileFn<S> fn;    ///< the kernel
  FlagGramIsa isa;     ///< which one it is (never best)
};

/// True when `isa` can run on this CPU (best and portable always can).
inline bool flag_isa_available(FlagGramIsa isa) noexcept {
  switch (isa) {
    case FlagGramIsa::best:
    case FlagGramIsa::portable:
      return true;
#if FEDPP_FLAG_DISPATCH
    case FlagGramIsa::avx2:
      return flag_cpu_has_avx2();
    case FlagGramIsa::avx512:
      return flag_cpu_has_avx512();
#endif
    default:
      return false;
  }
}

/// The kernel for `isa` (best: the fastest available); an unavailable isa gives the portable one.
template <typename S>
FlagTileKernel<S> flag_tile_kernel(FlagGramIsa isa = FlagGramIsa::best) noexcept {
  static_assert(std::is_same_v<S, float> || std::is_same_v<S, double>);
#if FEDPP_FLAG_DISPATCH
  if ((isa == FlagGramIsa::best || isa == FlagGramIsa::avx512) && flag_cpu_has_avx512()) {
    if constexpr (std::is_same_v<S, float>) return {5, 5, &flag_tile_avx512_f<5, 5>, FlagGramIsa::avx512};
    else return {5, 5, &flag_tile_avx512_d<5, 5>, FlagGramIsa::avx512};
  }
  if ((isa == FlagGramIsa::best || isa == FlagGramIsa::avx2) && flag_cpu_has_avx2()) {
    if constexpr (std::is_same_v<S, float>) return {2, 3, &flag_tile_avx2_f<2, 3>, FlagGramIsa::avx2};
    else return {2, 3, &flag_tile_avx2_d<2, 3>, FlagGramIsa::avx2};
  }
#else
  (void)isa;
#endif
  return {2, 2, &flag_tile_portable<S, 2, 2>, FlagGramIsa::portable};
}

/// Number of chunks (partial Gram matrices) for d coordinates and N columns (see file comment).
inline Index flag_chunks(Index d, Index N) noexcept {
  const Index panels = (d + flag_panel - 1) / flag_panel;
  const double per_chunk = 8.0 * static_cast<double>(N) * static_cast<double>(N);
  Index cap = static_cast<Index>(flag_chunk_bytes / std::max(per_chunk, 1.0));
  cap = std::clamp<Index>(cap, 1, flag_max_chunks);
  return std::max<Index>(1, std::min(panels, cap));
}

/// Gram matrix G = Z^T Z (N x N, double, symmetric) of Z = [batch | extra columns], N = n + m.
/**
 * Arithmetic, determinism and memory as in the file comment.
 * @param isa tile kernel (tests force each one; AVX2 and AVX-512 give the same bits).
 */
template <typename S>
void flag_gram(const FlagColumns<S>& cols, Matrix<double>& G, FlagGramIsa isa = FlagGramIsa::best) {
  const Index d = cols.d, n = cols.n, m = cols.m, N = n + m;
  G.setZero(N, N);
  if (N == 0 || d == 0) return;
  const FlagTileKernel<S> kern = flag_tile_kernel<S>(isa);
  // Tiles of a column partition into RI x RJ blocks that hold at least one entry with j >= i,
  // ordered by blocks of columns j whose panel slices fit in half of a 1 MiB L2 (then by row
  // group i, then j), so a tile row re-reads its j columns from L2. Only speed depends on the order.
  const Index jb_cols = std::max<Index>(kern.rj, (512 * 1024 / (flag_panel * static_cast<Index>(sizeof(S)))) /
                                                     kern.rj * kern.rj);
  std::vector<Index> tiles;
  for (Index jb = 0; jb < N; jb += jb_cols)
    for (Index i0 = 0; i0 < N; i0 += kern.ri)
      for (Index j0 = jb; j0 < std::min(N, jb + jb_cols); j0 += kern.rj)
        if (j0 + kern.rj - 1 >= i0) {
          tiles.push_back(i0);
          tiles.push_back(j0);
        }
  const Index ntiles = static_cast<Index>(tiles.size() / 2);
  const Index panels = (d + flag_panel - 1) / flag_panel;
  const Index nchunks = flag_chunks(d, N);
  const std::size_t NN = static_cast<std::size_t>(N * N);
  std::vector<double> partial(NN * static_cast<std::size_t>(nchunks), 0.0);

  auto run_chunk = [&](Index c, std::vector<S>& rbuf, std::vector<const S*>& ptr) {
    double* acc = partial.data() + static_cast<std::size_t>(c) * NN;
    const Index p_lo = panels * c / nchunks, p_hi = panels * (c + 1) / nchunks;
    double part[8 * 8];
    for (Index p = p_lo; p < p_hi; ++p) {
      const Index k0 = p * flag_panel, len = std::min(flag_panel, d - k0);
      for (Index col = 0; col < n; ++col) ptr[static_cast<std::size_t>(col)] = cols.batch + col * d + k0;
      for (Index e = 0; e < m; ++e) {
        if (cols.extra) {
          ptr[static_cast<std::size_t>(n + e)] = cols.extra + e * d + k0;
        } else {
          S* dst = rbuf.data() + e * flag_panel;
          flag_start_panel(cols.key, p, e, len, dst);
          ptr[static_cast<std::size_t>(n + e)] = dst;
        }
      }
      for (Index t = 0; t < ntiles; ++t) {
        const Index i0 = tiles[static_cast<std::size_t>(2 * t)], j0 = tiles[static_cast<std::size_t>(2 * t + 1)];
        const S* a[8];
        const S* b[8];
        for (int i = 0; i < kern.ri; ++i) a[i] = ptr[static_cast<std::size_t>(std::min(i0 + i, N - 1))];
        for (int j = 0; j < kern.rj; ++j) b[j] = ptr[static_cast<std::size_t>(std::min(j0 + j, N - 1))];
        kern.fn(a, b, len, part);
        for (int i = 0; i < kern.ri; ++i) {
          const Index gi = i0 + i;
          if (gi >= N) break;
          for (int j = 0; j < kern.rj; ++j) {
            const Index gj = j0 + j;
            if (gj >= N) break;
            acc[gi + gj * N] += part[i * kern.rj + j];
          }
        }
      }
    }
  };

  const bool parallel = nchunks > 1 && static_cast<double>(d) * static_cast<double>(NN) > 2e6;
  if (!parallel) {
    std::vector<S> rbuf(static_cast<std::size_t>(m * flag_panel));
    std::vector<const S*> ptr(static_cast<std::size_t>(N));
    for (Index c = 0; c < nchunks; ++c) run_chunk(c, rbuf, ptr);
  } else {
#if FEDPP_HAS_OPENMP
#pragma omp parallel
#endif
    {
      std::vector<S> rbuf(static_cast<std::size_t>(m * flag_panel));
      std::vector<const S*> ptr(static_cast<std::size_t>(N));
#if FEDPP_HAS_OPENMP
#pragma omp for schedule(static)
#endif
      for (Index c = 0; c < nchunks; ++c) run_chunk(c, rbuf, ptr);
    }
  }
  // G = sum of the chunk partials in chunk order (upper triangle), then mirrored.
  double* g = G.data();  // zero
  for (Index c = 0; c < nchunks; ++c) {
    const double* pc = partial.data() + static_cast<std::size_t>(c) * NN;
    for (std::size_t e = 0; e < NN; ++e) g[e] += pc[e];
  }
  for (Index j = 0; j < N; ++j)
    for (Index i = j + 1; i < N; ++i) G(i, j) = G(j, i);
}

}  // namespace fedpp::detail
