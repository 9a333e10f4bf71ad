#pragma once
/// @file top_k.hpp
/// Exact top-k sparsification: keeps the k coordinates of largest magnitude (Stich, Cordonnier and
/// Jaggi, "Sparsified SGD with Memory", NeurIPS 2018), sent in the sparse wire format (sparse.hpp).

#include <algorithm>
#include <atomic>
#include <functional>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "fedpp/compressors/detail/sparse_budget.hpp"
#include "fedpp/compressors/sparse.hpp"
#include "fedpp/core/concepts.hpp"
#include "fedpp/core/config.hpp"
#include "fedpp/core/error.hpp"
#include "fedpp/core/payload.hpp"
#include "fedpp/core/rng.hpp"
#include "fedpp/core/types.hpp"

namespace fedpp {

namespace detail {

/// Unsigned integer with the bit pattern of S, and the magnitude key |x| as an integer.
template <typename S>
struct MagnitudeKey {
  static_assert(std::is_same_v<S, float> || std::is_same_v<S, double>, "float or double");
  using U = std::conditional_t<std::is_same_v<S, float>, std::uint32_t, std::uint64_t>;
  /// Number of bits of the key (the sign bit is dropped).
  static constexpr unsigned bits = 8 * sizeof(U) - 1;
  /// Keys at or above this are infinities or NaNs.
  static constexpr U nonfinite =
      static_cast<U>(std::is_same_v<S, float> ? std::uint64_t{0x7f800000u} : std::uint64_t{0x7ff0000000000000ULL});
  /// |x| as an integer; the order of keys is the order of magnitudes for finite values.
  static U of(S x) noexcept {
    U u;
    std::memcpy(&u, &x, sizeof(U));
    return u & ((U{1} << bits) - 1);
  }
};

/// Elements per chunk of the parallel passes (fixed, so results do not depend on the thread count).
inline constexpr std::int64_t top_k_chunk = std::int64_t{1} << 18;
/// Bits resolved by one histogram level (2048 bins of 32-bit counters: 8 KiB, fits L1).
inline constexpr unsigned top_k_radix_bits = 11;

/// Exact selection among candidates (strictly increasing indices that contain the top k of the whole
/// vector): keeps the k best by (magnitude descending, index ascending), returned in index order.
template <typename S>
std::vector<Index> select_among_candidates(const S* xs, const std::vector<Index>& cand, std::size_t k) {
  using Key = MagnitudeKey<S>;
  using U = typename Key::U;
  if (cand.size() <= k) return cand;
  std::vector<Index> work(cand);
  const auto better = [xs](Index a, Index b) {
    const U ka = Key::of(xs[a]);
    const U kb = Key::of(xs[b]);
    return ka != kb ? ka > kb : a < b;
  };
  std::nth_element(work.begin(), work.begin() + static_cast<std::ptrdiff_t>(k - 1), work.end(), better);
  // The k-th best is (tk, ik): keep every candidate at least as good, in the candidates' index order.
  const Index ik = work[k - 1];
  const U tk = Key::of(xs[ik]);
  std::vector<Index> out;
  out.reserve(k);
  for (const Index i : cand) {
    const U key = Key::of(xs[i]);
    if (key > tk || (key == tk && i <= ik)) out.push_back(i);
  }
  return out;
}

/// Fast path of top_k_indices for k much smaller than d: estimates a magnitude threshold from a fixed
/// sample (4096 evenly spaced runs of 16 elements), collects every index at or above it in one pass,
/// and selects exactly among them. Returns false (the caller falls back to radix select) when fewer
/// than k or more than a cap of entries pass, or on a non-finite entry. Exact whenever it returns true.
template <typename S>
bool top_k_by_sample(std::span<const S> x, std::size_t k, std::vector<Index>& result) {
  using Key = MagnitudeKey<S>;
  using U = typename Key::U;
  const auto d = static_cast<std::int64_t>(x.size());
  constexpr std::int64_t runs = 4096, run_len = 16;
  if (d < 64 * runs * run_len) return false;
  const S* xs = x.data();
  std::vector<U> sample(static_cast<std::size_t>(runs * run_len));
  const std::int64_t step = d / runs;
  for (std::int64_t r = 0; r < runs; ++r)
    for (std::int64_t j = 0; j < run_len; ++j)
      sample[static_cast<std::size_t>(r * run_len + j)] = Key::of(xs[r * step + j]);
  // Aim at about 1.5 k + 4 sigma entries above the threshold.
  const double m = static_cast<double>(sample.size());
  const double expect = m * static_cast<double>(k) / static_cast<double>(d);
  const double rank = 1.5 * expect + 4.0 * std::sqrt(expect) + 8.0;
  if (rank >= m / 4) return false;
  const auto r = static_cast<std::size_t>(rank);
  std::nth_element(sample.begin(), sample.begin() + static_cast<std::ptrdiff_t>(r), sample.end(), std::greater<U>());
  const U t = sample[r];
  if (t >= Key::nonfinite) return false;
  const std::uint64_t cap = 4 * static_cast<std::uint64_t>(k) + 4096;

  const std::int64_t nchunks = (d + top_k_chunk - 1) / top_k_chunk;
  std::vector<std::vector<Index>> cand(static_cast<std::size_t>(nchunks));
  std::vector<std::uint8_t> bad(static_cast<std::size_t>(nchunks), 0);
  std::atomic<std::uint64_t> total{0};
  std::atomic<bool> abort{false};
  FEDPP_OMP_PARALLEL_FOR
  for (std::int64_t c = 0; c < nchunks; ++c) {
    if (abort.load(std::memory_order_relaxed)) continue;
    auto& out = cand[static_cast<std::size_t>(c)];
    const std::int64_t b = c * top_k_chunk;
    const std::int64_t e = std::min(d, b + top_k_chunk);
    U worst = 0;
    std::int64_t i = b;
    for (; i + 16 <= e; i += 16) {
      U w = worst;
      unsigned any = 0;
      for (std::int64_t j = 0; j < 16; ++j) {
        const U key = Key::of(xs[i + j]);
        w = key > w ? key : w;
        any |= key >= t ? 1u : 0u;
      }
      worst = w;
      if (any != 0) [[unlikely]] {
        for (std::int64_t j = 0; j < 16; ++j)
          if (Key::of(xs[i + j]) >= t) out.push_back(i + j);
      }
    }
    for (; i < e; ++i) {
      const U key = Key::of(xs[i]);
      worst = std::max(worst, key);
      if (key >= t) out.push_back(i);
    }
    bad[static_cast<std::size_t>(c)] = worst >= Key::nonfinite;
    // total > cap exactly when the whole vector has more than cap candidates: deterministic.
    if (total.fetch_add(out.size(), std::memory_order_relaxed) + out.size() > cap)
      abort.store(true, std::memory_order_relaxed);
  }
  if (abort.load()) return false;
  for (const auto f : bad)
    if (f) return false;  // the radix path reports it
  std::vector<Index> all;
  all.reserve(static_cast<std::size_t>(total.load()));
  for (const auto& v : cand) all.insert(all.end(), v.begin(), v.end());
  if (all.size() < k) return false;
  result = select_among_candidates(xs, all, k);
  return true;
}

}  // namespace detail

/// Indices of the k entries of largest magnitude, in increasing order.
/**
 * Exact: keeps the k largest |x_i|; among equal magnitudes the lowest indices win (+0 and -0 tie).
 * k >= x.size() returns every index. For k <= d/64 on large inputs a threshold estimated from a fixed
 * sample usually lets one pass collect a few more than k candidates, among which the exact selection
 * runs (the candidates provably contain the top k when at least k pass). Otherwise, or when the
 * estimate fails (fewer than k or more than 4k + 4096 pass), radix select on the bit pattern of |x|:
 * histogram passes over fixed chunks (parallel with OpenMP, 2048 bins per level) narrow the k-th
 * magnitude down until few candidates remain, then one pass collects candidates in index order and a final exact selection
 * (magnitude descending, index ascending) runs on them. Results are identical for any thread count.
 * Memory: 8 KiB of counters per chunk of 2^18 elements plus the candidate lists (about k indices).
 * @throws InvalidArgument if x has a non-finite entry (`who` names the caller in the message).
 */
template <typename S>
std::vector<Index> top_k_indices(std::span<const S> x, std::size_t k, std::string_view who = "fedpp::top_k_indices") {
  using Key = detail::MagnitudeKey<S>;
  using U = typename Key::U;
  const auto d = static_cast<std::int64_t>(x.size());
  std::vector<Index> result;
  if (k >= x.size()) {
    if (!all_finite(x)) fail(who, "update must be finite, got a non-finite value");
    result.resize(x.size());
    for (std::int64_t i = 0; i < d; ++i) result[static_cast<std::size_t>(i)] = i;
    return result;
  }
  if (k == 0) {
    if (!all_finite(x)) fail(who, "update must be finite, got a non-finite value");
    return result;
  }
  if (k <= x.size() / 64 && detail::top_k_by_sample(x, k, result)) return result;
  const S* xs = x.data();
  const std::int64_t nchunks = (d + detail::top_k_chunk - 1) / detail::top_k_chunk;
  constexpr std::size_t nbins_max = std::size_t{1} << detail::top_k_radix_bits;
  std::vector<std::uint32_t> hist(static_cast<std::size_t>(nchunks) * nbins_max);
  std::vector<std::uint8_t> bad(static_cast<std::size_t>(nchunks), 0);

  // Path so far: keys whose top bits (key >> shift) equal `prefix` hold the k-th largest magnitude.
  unsigned shift = Key::bits;
  U prefix = 0;
  std::uint64_t needed = k;    // how many more to take among keys matching the prefix
  std::uint64_t in_bin = static_cast<std::uint64_t>(d);
  const std::uint64_t small = std::max<std::uint64_t>(4 * needed, 1u << 15);
  bool first = true;
  while (shift > 0) {
    const unsigned new_shift = shift > detail::top_k_radix_bits ? shift - detail::top_k_radix_bits : 0;
    const unsigned width = shift - new_shift;
    const U mask = static_cast<U>((U{1} << width) - 1);
    const std::size_t nbins = std::size_t{1} << width;
    const unsigned sh = shift;
    const unsigned nsh = new_shift;
    const U pre = prefix;
    const bool lvl0 = first;
    FEDPP_OMP_PARALLEL_FOR
    for (std::int64_t c = 0; c < nchunks; ++c) {
      std::uint32_t* h = hist.data() + static_cast<std::size_t>(c) * nbins_max;
      std::fill(h, h + nbins, 0u);
      const std::int64_t b = c * detail::top_k_chunk;
      const std::int64_t e = std::min(d, b + detail::top_k_chunk);
      if (lvl0) {
        U worst = 0;
        for (std::int64_t i = b; i < e; ++i) {
          const U key = Key::of(xs[i]);
          worst = std::max(worst, key);
          ++h[key >> nsh];
        }
        bad[static_cast<std::size_t>(c)] = worst >= Key::nonfinite;
      } else {
        for (std::int64_t i = b; i < e; ++i) {
          const U key = Key::of(xs[i]);
          if ((key >> sh) == pre) ++h[(key >> nsh) & mask];
        }
      }
    }
    if (first) {
      for (const auto f : bad)
        if (f) fail(who, "update must be finite, got a non-finite value");
      first = false;
    }
    // Merge (integer sums: order-independent) and find the bin holding the needed-th largest key.
    std::uint64_t above = 0;
    std::size_t bin = nbins;
    std::uint64_t count_bin = 0;
    for (std::size_t q = nbins; q-- > 0;) {
      std::uint64_t cnt = 0;
      for (std::int64_t c = 0; c < nchunks; ++c) cnt += hist[static_cast<std::size_t>(c) * nbins_max + q];
      if (above + cnt >= needed) {
        bin = q;
        count_bin = cnt;
        break;
      }
      above += cnt;
    }
    // bin < nbins always: the level's bins hold in_bin >= needed keys.
    needed -= above;
    prefix = static_cast<U>((prefix << width) | static_cast<U>(bin));
    shift = new_shift;
    in_bin = count_bin;
    if (in_bin <= small) break;
  }

  // Collect, per chunk and in index order: sure (top bits above the prefix) and maybe (equal).
  const bool exact = shift == 0;  // every "maybe" key is equal: take the lowest indices
  const std::uint64_t maybe_cap = exact ? needed : in_bin;
  std::vector<std::vector<Index>> sure(static_cast<std::size_t>(nchunks)), maybe(static_cast<std::size_t>(nchunks));
  {
    const unsigned sh = shift;
    const U pre = prefix;
    FEDPP_OMP_PARALLEL_FOR
    for (std::int64_t c = 0; c < nchunks; ++c) {
      auto& s = sure[static_cast<std::size_t>(c)];
      auto& m = maybe[static_cast<std::size_t>(c)];
      const std::int64_t b = c * detail::top_k_chunk;
      const std::int64_t e = std::min(d, b + detail::top_k_chunk);
      for (std::int64_t i = b; i < e; ++i) {
        const U top = static_cast<U>(Key::of(xs[i]) >> sh);
        if (top >= pre) [[unlikely]] {
          if (top > pre)
            s.push_back(i);
          else if (m.size() < maybe_cap)
            m.push_back(i);
        }
      }
    }
  }
  std::vector<Index> all_sure, all_maybe;
  all_sure.reserve(k);
  for (const auto& s : sure) all_sure.insert(all_sure.end(), s.begin(), s.end());
  for (const auto& m : maybe) all_maybe.insert(all_maybe.end(), m.begin(), m.end());
  if (exact) {
    all_maybe.resize(static_cast<std::size_t>(needed));  // first `needed` in index order
  } else {
    all_maybe = detail::select_among_candidates(xs, all_maybe, static_cast<std::size_t>(needed));
  }
  result.resize(all_sure.size() + all_maybe.size());
  std::merge(all_sure.begin(), all_sure.end(), all_maybe.begin(), all_maybe.end(), result.begin());
  return result;
}

/// Exact top-k sparsification (Stich et al., "Sparsified SGD with Memory", NeurIPS 2018).
/**
 * Keeps exactly the k entries of largest magnitude; ties (equal |x_i|, including +0 and -0) go to the
 * lowest indices. k is fixed (`TopK::count(k)`) or a density (`TopK::density(rho)`: k = ceil(rho d),
 * at least 1); k >= d keeps every coordinate. Values travel in the update's own precision unless a
 * ValueFormat is chosen (`with_format`). Biased: use it inside ErrorFeedback for convergence.
 * Wire format: the sparse payload of sparse.hpp (Codec::sparse); decode also checks that the
 * payload carries exactly k values for the expected dimension, in the configured value format. Stateless; deterministic for any
 * thread count. Non-finite input throws InvalidArgument.
 */
class TopK : public detail::SparseBudget<TopK> {
 public:
  /// The name in error messages.
  static constexpr std::string_view who = "fedpp::TopK";

  /// Per-client state: none.
  struct State {
    /// cereal serialisation (nothing to save).
    template <class Archive>
    void serialize(Archive& /*ar*/) {}
  };

  /// Keeps density 1 (every coordinate); prefer count() or density().
  TopK() = default;

  /// Creates the (empty) per-client state.
  template <typename S>
  [[nodiscard]] State make_state(Index /*dim*/) const noexcept {
    return {};
  }

  /// Encodes the k largest-magnitude entries of `x`.
  template <typename S>
  [[nodiscard]] Payload encode(std::span<const S> x, State& /*state*/, Rng& /*rng*/) const {
    const auto d = static_cast<Index>(x.size());
    const std::vector<Index> idx = top_k_indices(x, static_cast<std::size_t>(k_for(d)), who);
    std::vector<S> vals(idx.size());
    for (std::size_t j = 0; j < idx.size(); ++j) vals[j] = x[static_cast<std::size_t>(idx[j])];
    return encode_sparse<S>(x.size(), idx, vals, wire_format<S>());
  }

  /// Decodes into `out` (zero except at the kept coordinates); throws DecodeError on malformed input.
  template <typename S>
  void decode(const Payload& p, std::span<S> out) const {
    decode_budget(p, out, "fedpp::TopK::decode");
  }

  /// k = ceil(rho d) (products within 1e-12 relative of an integer round to it), in [1, d].
  [[nodiscard]] static Index density_k(double rho, Index d) noexcept { return detail::density_k(rho, d); }
};

static_assert(Compressor<TopK, float> && Compressor<TopK, double>);

}  // namespace fedpp
