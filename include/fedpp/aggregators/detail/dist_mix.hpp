#pragma once
/// @file dist_mix.hpp
/// Private kernels of the pre-aggregators: means of listed columns (NNM, bucketing) and
/// per-column rescaling (norm clipping, ARC).
///
/// mix_columns arithmetic, per output column o with list L_o and coordinate j:
/// acc = 0; for i in L_o in list order: acc = acc + double(x_i[j]); out_o[j] = S(acc / |L_o|).
/// With an ascending list this is WeightedMean(Weighting::uniform)'s arithmetic on those columns
/// (a multiply by 1 is exact), so the two give the same bits. Coordinates are independent, so
/// the blocking, the thread count and the compiled version (base, AVX2, AVX-512F: plain adds,
/// nothing to fuse) change no bit.

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <vector>

#include "fedpp/aggregators/detail/dist_simd.hpp"
#include "fedpp/aggregators/detail/weighted_sum.hpp"  // partition_for_threads, prefetch_ahead
#include "fedpp/core/config.hpp"
#include "fedpp/core/types.hpp"

namespace fedpp::detail {

/// acc[j] += x_k[j] for the G listed columns, in list order, j < len.
template <typename V, int G, typename S>
FEDPP_DIST_INLINE void mix_add(double* FEDPP_RESTRICT acc, const S* const* x, Index len) noexcept {
  constexpr int W = dist_width<V>;
  Index j = 0;
  for (; j + W <= len; j += W) {
    V a;
    dist_load(a, acc + j);
    for (int k = 0; k < G; ++k) {
      V xv;
      dist_load_widen(xv, x[k] + j);
      a += xv;
    }
    std::memcpy(acc + j, &a, sizeof(V));
  }
  for (; j < len; ++j) {
    double a = acc[j];
    for (int k = 0; k < G; ++k) a += static_cast<double>(x[k][j]);
    acc[j] = a;
  }
}

/// Coordinates [lo, hi) of every output, in blocks of `block`; acc has room for `block` doubles.
template <typename V, typename S>
FEDPP_DIST_INLINE void mix_range_body(const S* data, Index d, const std::vector<std::vector<Index>>& lists, S* out,
                                      Index lo, Index hi, Index block, double* acc) {
  for (Index j0 = lo; j0 < hi; j0 += block) {
    const Index len = std::min(block, hi - j0);
    for (std::size_t o = 0; o < lists.size(); ++o) {
      const std::vector<Index>& l = lists[o];
      for (Index j = 0; j < len; ++j) acc[j] = 0.0;
      std::size_t k = 0;
      const S* x[4];
      for (; k + 4 <= l.size(); k += 4) {
        for (int g = 0; g < 4; ++g) x[g] = data + l[k + static_cast<std::size_t>(g)] * d + j0;
        mix_add<V, 4>(acc, x, len);
      }
      const std::size_t rest = l.size() - k;
      for (std::size_t g = 0; g < rest; ++g) x[g] = data + l[k + g] * d + j0;
      if (rest == 3) mix_add<V, 3>(acc, x, len);
      if (rest == 2) mix_add<V, 2>(acc, x, len);
      if (rest == 1) mix_add<V, 1>(acc, x, len);
      const double cnt = static_cast<double>(l.size());
      S* o_col = out + static_cast<Index>(o) * d + j0;
      for (Index j = 0; j < len; ++j) o_col[j] = static_cast<S>(acc[j] / cnt);
    }
  }
}

/// Signature of a compiled mix range.
template <typename S>
using MixRange = void (*)(const S*, Index, const std::vector<std::vector<Index>>&, S*, Index, Index, Index, double*);

/// mix_range_body for the build's instruction set.
template <typename S>
void mix_range_base(const S* data, Index d, const std::vector<std::vector<Index>>& lists, S* out, Index lo, Index hi,
                    Index block, double* acc) {
#if FEDPP_DIST_VECTOR_EXT && defined(__AVX__)
  mix_range_body<dist_v4d>(data, d, lists, out, lo, hi, block, acc);
#elif FEDPP_DIST_VECTOR_EXT
  mix_range_body<dist_v2d>(data, d, lists, out, lo, hi, block, acc);
#else
  mix_range_body<double>(data, d, lists, out, lo, hi, block, acc);
#endif
}

#if FEDPP_DIST_DISPATCH
/// mix_range_body compiled for AVX2.
template <typename S>
__attribute__((target("avx2"))) void mix_range_avx2(const S* data, Index d,
                                                    const std::vector<std::vector<Index>>& lists, S* out, Index lo,
                                                    Index hi, Index block, double* acc) {
  mix_range_body<dist_v4d>(data, d, lists, out, lo, hi, block, acc);
}
/// mix_range_body compiled for AVX-512F.
template <typename S>
__attribute__((target("avx512f"))) void mix_range_avx512(const S* data, Index d,
                                                         const std::vector<std::vector<Index>>& lists, S* out,
                                                         Index lo, Index hi, Index block, double* acc) {
  mix_range_body<dist_v8d>(data, d, lists, out, lo, hi, block, acc);
}
#endif

/// The compiled mix for `isa` (best: the fastest available; unavailable ones fall back to base).
template <typename S>
MixRange<S> mix_kernel(DistIsa isa = DistIsa::best) noexcept {
#if FEDPP_DIST_DISPATCH
  if ((isa == DistIsa::best || isa == DistIsa::avx512) && dist_cpu_has_avx512()) return &mix_range_avx512<S>;
  if ((isa == DistIsa::best || isa == DistIsa::avx2) && dist_cpu_has_avx2()) return &mix_range_avx2<S>;
#else
  (void)isa;
#endif
  return &mix_range_base<S>;
}

/// Writes, for each list, the mean of the listed columns of a d x n column-major matrix into the
/// matching column of `out` (d x lists.size(), column-major; must not overlap `data`).
/**
 * Arithmetic in the file comment. Every list must be non-empty. Coordinates are processed in
 * blocks small enough for the block of all input columns to stay in cache (only speed depends
 * on the block), one contiguous part per thread.
 */
template <typename S>
void mix_columns(const S* data, Index d, Index n, const std::vector<std::vector<Index>>& lists, S* out,
                 DistIsa isa = DistIsa::best) {
  if (d == 0 || lists.empty()) return;
  const MixRange<S> range = mix_kernel<S>(isa);
  Index block = (Index{1} << 19) / std::max<Index>(1, n * static_cast<Index>(sizeof(S)));
  block = std::clamp<Index>(block / 16 * 16, 256, 65536);
  const Partition parts = partition_for_threads(d, 4096);
  const Index acc_len = std::min(block, parts.len);
  std::vector<double> scratch(static_cast<std::size_t>(parts.count * acc_len));
  if (parts.count == 1) {
    range(data, d, lists, out, 0, d, acc_len, scratch.data());
    return;
  }
  FEDPP_OMP_PARALLEL_FOR
  for (Index p = 0; p < parts.count; ++p)
    range(data, d, lists, out, parts.lo(p), parts.hi(p, d), acc_len, scratch.data() + p * acc_len);
}

/// Multiplies column i (d values at data + i * d) by scales[i] for every i with scales[i] != 1:
/// x[j] = S(double(x[j]) * scale), in place.
template <typename S>
void scale_columns(S* data, Index d, const std::vector<double>& scales) {
  std::vector<Index> todo;
  for (std::size_t i = 0; i < scales.size(); ++i)
    if (scales[i] != 1.0) todo.push_back(static_cast<Index>(i));
  const auto cnt = static_cast<Index>(todo.size());
  const Index total = cnt * d;
  if (total == 0) return;
  const Partition parts = partition_for_threads(total, 1 << 16);
  auto run = [&](Index lo, Index hi) {  // flat range over the listed columns
    for (Index k = lo / d; k < cnt && k * d < hi; ++k) {
      const Index c = todo[static_cast<std::size_t>(k)];
      const double s = scales[static_cast<std::size_t>(c)];
      const Index a = std::max(lo, k * d) - k * d, b = std::min(hi, (k + 1) * d) - k * d;
      S* x = data + c * d;
      for (Index j = a; j < b; ++j) x[j] = static_cast<S>(static_cast<double>(x[j]) * s);
    }
  };
  if (parts.count == 1) {
    run(0, total);
    return;
  }
  FEDPP_OMP_PARALLEL_FOR
  for (Index p = 0; p < parts.count; ++p) run(parts.lo(p), parts.hi(p, total));
}

}  // namespace fedpp::detail
