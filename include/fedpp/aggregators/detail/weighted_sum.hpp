#pragma once
/// @file weighted_sum.hpp
/// Private kernels of the weighted mean: a fixed multiply-add and blocked column sums.
///
/// Every coordinate j goes through the same sequence whatever the blocking, the column
/// grouping or the thread count: acc = 0; acc = madd(acc, w_i, double(x_i[j])) for i = 0..n-1;
/// out[j] = S(acc / sum_w). The batch kernel and the streaming accumulator both call
/// add_columns below, so the two forms agree bit for bit.
///
/// x86-64 builds without AVX2 in their flags (the default -march=x86-64) also compile the block
/// kernel for AVX2 and pick it at run time when the CPU has it (GCC and Clang; define
/// FEDPP_NO_ISA_DISPATCH to turn this off). It does the same IEEE multiplies and adds in wider
/// registers (AVX2 brings no FMA), so it gives the same bits as the SSE2 kernel; it matters for
/// speed because SSE2 converts only two floats to double per instruction.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

#include "fedpp/core/config.hpp"
#include "fedpp/core/types.hpp"

#if !defined(FEDPP_NO_ISA_DISPATCH) && (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && \
    !defined(__AVX2__)
/// 1 when the block kernel has an AVX2 version chosen at run time.
#define FEDPP_WEIGHTED_SUM_AVX2 1
#else
#define FEDPP_WEIGHTED_SUM_AVX2 0
#endif

#if defined(__GNUC__) || defined(__clang__)
/// Forces inlining, so the kernel bodies take the instruction set of the function they are inlined into.
#define FEDPP_KERNEL_INLINE __attribute__((always_inline)) inline
#else
#define FEDPP_KERNEL_INLINE inline
#endif

namespace fedpp::detail {

/// True when madd() is a fused multiply-add on this target, false when it is a multiply then an add.
#if defined(__FP_FAST_FMA) || defined(FP_FAST_FMA) || defined(__FMA__) || defined(__ARM_FEATURE_FMA)
inline constexpr bool madd_is_fused = true;
#else
inline constexpr bool madd_is_fused = false;
#endif

/// acc + w * x with one rounding behaviour fixed at compile time.
/**
 * Where the target has a hardware FMA the compiler could contract `acc + w * x` in one loop
 * and not in another (-ffp-contract=fast is GCC's default for C++), so there we call std::fma
 * explicitly; where it has none, no contraction is possible and a plain multiply and add is used.
 */
FEDPP_KERNEL_INLINE double madd(double acc, double w, double x) noexcept {
  if constexpr (madd_is_fused) {
    return std::fma(w, x, acc);
  } else {
    return acc + w * x;
  }
}

/// Hints the CPU to fetch the cache line `bytes` past `p` (a hint only: it never faults, and the
/// address is formed with integer arithmetic, so no pointer past an array is created).
FEDPP_KERNEL_INLINE void prefetch_ahead(const void* p, std::size_t bytes) noexcept {
#if defined(__GNUC__) || defined(__clang__)
  __builtin_prefetch(reinterpret_cast<const void*>(reinterpret_cast<std::uintptr_t>(p) + bytes), 0, 3);
#else
  (void)p;
  (void)bytes;
#endif
}

/// Bytes ahead of the current position that add_columns prefetches in each column: one 4 KiB page,
/// since hardware prefetchers stop at page boundaries.
inline constexpr std::size_t prefetch_distance = 4096;

/// acc[j] = madd(...madd(acc[j], w[0], x_0[j])..., w[G-1], x_{G-1}[j]) for j < len, x_k = col + k * stride.
template <int G, typename S, bool Prefetch = true>
FEDPP_KERNEL_INLINE void add_columns(double* FEDPP_RESTRICT acc, const S* FEDPP_RESTRICT col, Index stride,
                                     const double* w, Index len) noexcept {
  static_assert(G >= 1 && G <= 8);
  const S* x[G];
  double wk[G];
  for (int k = 0; k < G; ++k) {
    x[k] = col + k * stride;
    wk[k] = w[k];
  }
  constexpr Index line = 64 / static_cast<Index>(sizeof(S));  // coordinates per cache line of a column
  Index j = 0;
  for (; j + line <= len; j += line) {
    if constexpr (Prefetch)
      for (int k = 0; k < G; ++k) prefetch_ahead(x[k] + j, prefetch_distance);
    for (Index i = j; i < j + line; ++i) {
      double a = acc[i];
      for (int k = 0; k < G; ++k) a = madd(a, wk[k], static_cast<double>(x[k][i]));
      acc[i] = a;
    }
  }
  for (; j < len; ++j) {
    double a = acc[j];
    for (int k = 0; k < G; ++k) a = madd(a, wk[k], static_cast<double>(x[k][j]));
    acc[j] = a;
  }
}

/// Adds columns [0, n) of a column-major block (column i at col + i * stride) into acc, in column order.
template <int G, typename S>
FEDPP_KERNEL_INLINE void add_all_columns(double* FEDPP_RESTRICT acc, const S* col, Index stride, const double* w, Index n,
                            Index len) noexcept {
  Index i = 0;
  for (; i + G <= n; i += G) add_columns<G>(acc, col + i * stride, stride, w + i, len);
  switch (n - i) {  // 0 <= n - i < G
    case 7: add_columns<7>(acc, col + i * stride, stride, w + i, len); break;
    case 6: add_columns<6>(acc, col + i * stride, stride, w + i, len); break;
    case 5: add_columns<5>(acc, col + i * stride, stride, w + i, len); break;
    case 4: add_columns<4>(acc, col + i * stride, stride, w + i, len); break;
    case 3: add_columns<3>(acc, col + i * stride, stride, w + i, len); break;
    case 2: add_columns<2>(acc, col + i * stride, stride, w + i, len); break;
    case 1: add_columns<1>(acc, col + i * stride, stride, w + i, len); break;
    default: break;
  }
}

/// out[j] = S(acc[j] / sum_w) for j < len.
template <typename S>
FEDPP_KERNEL_INLINE void scale_out(S* FEDPP_RESTRICT out, const double* FEDPP_RESTRICT acc, double sum_w, Index len) noexcept {
  for (Index j = 0; j < len; ++j) out[j] = static_cast<S>(acc[j] / sum_w);
}

/// A split of [0, d) into `count` contiguous parts of `len` coordinates (the last may be shorter).
struct Partition {
  Index count;  ///< number of parts (>= 1)
  Index len;    ///< coordinates per part, a multiple of 16 unless there is one part

  /// Start of part p.
  [[nodiscard]] Index lo(Index p) const noexcept { return p * len; }
  /// End of part p (clamped to d).
  [[nodiscard]] Index hi(Index p, Index d) const noexcept { return (p + 1) * len < d ? (p + 1) * len : d; }
};

/// Splits [0, d) into at most max_threads() parts of at least `min_len` coordinates each, one per
/// thread under a static schedule, so the threads get equal shares. Only speed depends on it.
inline Partition partition_for_threads(Index d, Index min_len) noexcept {
  const Index threads = max_threads();
  Index count = d / min_len;
  if (count > threads) count = threads;
  if (count <= 1) return {1, d};
  Index len = (d + count - 1) / count;
  len = (len + 15) / 16 * 16;
  return {(d + len - 1) / len, len};
}

/// Coordinates per block when the L2 size is unknown (256 KiB of double accumulator).
inline constexpr Index fallback_block = 32768;

/// Coordinates per block: half the L2 cache in doubles, in [8192, 65536], or fallback_block.
/**
 * Larger blocks make longer contiguous runs per column (the hardware prefetchers like them)
 * while the block's accumulator must stay in L2. Only speed depends on it.
 */
inline Index default_block() noexcept {
  static const Index block = [] {
    long l2 = 0;
#if defined(_SC_LEVEL2_CACHE_SIZE)
    l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
    if (l2 <= 0) return fallback_block;
    const Index b = static_cast<Index>(l2) / 2 / static_cast<Index>(sizeof(double)) / 16 * 16;
    return b < 8192 ? Index{8192} : (b > 65536 ? Index{65536} : b);
  }();
  return block;
}

/// Weighted mean of coordinates [lo, hi) of the n columns of a d x n column-major matrix, in
/// equal blocks of at most `block` (a multiple of 16) coordinates whose accumulator (`acc`, room for `block`
/// doubles) stays in cache while G columns at a time stream through it.
template <int G, typename S>
FEDPP_KERNEL_INLINE void weighted_mean_range_body(const S* data, Index d, Index n, const double* w, double sum_w,
                                                  S* out, Index lo, Index hi, Index block, double* acc) {
  const Index total = hi - lo;
  const Index nblocks = (total + block - 1) / block;
  const Index blen = ((total + nblocks - 1) / nblocks + 15) / 16 * 16;  // <= block, a multiple of 16
  for (Index j0 = lo; j0 < hi; j0 += blen) {
    const Index len = (hi - j0 < blen) ? hi - j0 : blen;
    for (Index j = 0; j < len; ++j) acc[j] = 0.0;
    add_all_columns<G>(acc, data + j0, d, w, n, len);
    scale_out(out + j0, acc, sum_w, len);
  }
}

/// weighted_mean_range_body compiled for the build's instruction set.
template <int G, typename S>
void weighted_mean_range_base(const S* data, Index d, Index n, const double* w, double sum_w, S* out, Index lo,
                              Index hi, Index block, double* acc) {
  weighted_mean_range_body<G>(data, d, n, w, sum_w, out, lo, hi, block, acc);
}

#if FEDPP_WEIGHTED_SUM_AVX2
/// weighted_mean_range_body compiled for AVX2 (call only when cpu_has_avx2()).
template <int G, typename S>
__attribute__((target("avx2"))) void weighted_mean_range_avx2(const S* data, Index d, Index n, const double* w,
                                                              double sum_w, S* out, Index lo, Index hi, Index block,
                                                              double* acc) {
  weighted_mean_range_body<G>(data, d, n, w, sum_w, out, lo, hi, block, acc);
}

/// True when the CPU (and OS) support AVX2; checked once.
inline bool cpu_has_avx2() noexcept {
  static const bool has = __builtin_cpu_supports("avx2");
  return has;
}
#endif

/// Signature of a range kernel.
template <typename S>
using RangeKernel = void (*)(const S*, Index, Index, const double*, double, S*, Index, Index, Index, double*);

/// The fastest range kernel this CPU runs (all of them give the same bits).
template <int G, typename S>
RangeKernel<S> best_range_kernel() noexcept {
#if FEDPP_WEIGHTED_SUM_AVX2
  if (cpu_has_avx2()) return &weighted_mean_range_avx2<G, S>;
#endif
  return &weighted_mean_range_base<G, S>;
}

/// Weighted mean of the n columns of a d x n column-major matrix (weights w, sum_w = their sum).
/**
 * The coordinates are split into one contiguous part per OpenMP thread (static schedule); each
 * thread walks its part in blocks of at most `block` coordinates, keeping the block's double
 * accumulator in cache while G columns at a time stream through it. Neither the split, the
 * block size, G, the thread count nor the kernel's instruction set changes any coordinate's result.
 * @tparam G columns added per pass over a block (1..8).
 * @param block most coordinates per block (accumulator of `block` doubles per thread).
 * @param range the range kernel (default: the fastest for this CPU; tests pass each one).
 */
template <int G, typename S>
void weighted_mean_blocked(const S* data, Index d, Index n, const double* w, double sum_w, S* out,
                           Index block = default_block(), RangeKernel<S> range = best_range_kernel<G, S>()) {
  block = block < 16 ? 16 : block / 16 * 16;
  const Partition parts = partition_for_threads(d, 4096);
  const Index acc_len = parts.len < block ? parts.len : block;
  std::vector<double> scratch(static_cast<std::size_t>(parts.count * acc_len));  // one accumulator per part
  if (parts.count == 1) {
    range(data, d, n, w, sum_w, out, 0, d, block, scratch.data());
    return;
  }
  double* acc = scratch.data();
  FEDPP_OMP_PARALLEL_FOR
  for (Index p = 0; p < parts.count; ++p)
    range(data, d, n, w, sum_w, out, parts.lo(p), parts.hi(p, d), block, acc + p * acc_len);
}

}  // namespace fedpp::detail
