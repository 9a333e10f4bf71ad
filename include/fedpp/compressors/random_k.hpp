#pragma once
/// @file random_k.hpp
/// Random-k sparsification: k coordinates drawn uniformly without replacement (Stich, Cordonnier and
/// Jaggi, "Sparsified SGD with Memory", NeurIPS 2018), sent in the sparse wire format (sparse.hpp).

#include <algorithm>
#include <bit>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "fedpp/compressors/detail/sparse_budget.hpp"
#include "fedpp/compressors/sparse.hpp"
#include "fedpp/core/concepts.hpp"
#include "fedpp/core/error.hpp"
#include "fedpp/core/payload.hpp"
#include "fedpp/core/rng.hpp"
#include "fedpp/core/types.hpp"

namespace fedpp {

/// k distinct indices drawn uniformly from [0, d) with `rng`, in increasing order.
/**
 * Floyd's algorithm (Bentley and Floyd, "Programming Pearls: A sample of brilliance", CACM 1987):
 * for j = d-k, ..., d-1 draw t uniform in [0, j]; keep t if new, else keep j. Every k-subset is equally
 * likely. Uses exactly k calls to `rng.uniform_index`, a bitmap of d bits (d/8 bytes) and O(k + d/64)
 * time. k >= d returns every index without drawing.
 */
inline std::vector<Index> random_k_indices(std::uint64_t d, std::uint64_t k, Rng& rng) {
  std::vector<Index> out;
  if (k >= d) {
    out.resize(static_cast<std::size_t>(d));
    for (std::uint64_t i = 0; i < d; ++i) out[static_cast<std::size_t>(i)] = static_cast<Index>(i);
    return out;
  }
  std::vector<std::uint64_t> taken(static_cast<std::size_t>((d + 63) / 64), 0);
  for (std::uint64_t j = d - k; j < d; ++j) {
    std::uint64_t t = rng.uniform_index(j + 1);
    if ((taken[t >> 6] >> (t & 63)) & 1u) t = j;
    taken[t >> 6] |= std::uint64_t{1} << (t & 63);
  }
  out.resize(static_cast<std::size_t>(k));
  std::size_t n = 0;
  for (std::size_t q = 0; q < taken.size(); ++q) {
    std::uint64_t w = taken[q];
    while (w != 0) {
      out[n++] = static_cast<Index>(64 * q + static_cast<std::size_t>(std::countr_zero(w)));
      w &= w - 1;
    }
  }
  return out;
}

/// Random-k sparsification (Stich et al., "Sparsified SGD with Memory", NeurIPS 2018).
/**
 * Keeps k coordinates chosen uniformly without replacement from the Rng passed to encode (the client's
 * compression stream: reproducible for a seed). k is fixed (`RandomK::count(k)`) or a density
 * (`RandomK::density(rho)`: k = ceil(rho d), at least 1); k >= d keeps every coordinate.
 * `unbiased(true)` scales the kept values by d/k so that E[decode(encode(x))] = x (variance grows by
 * d/k); the default is unscaled, as in Mem-SGD, where the error memory absorbs the bias.
 * Values travel in the update's own precision unless a ValueFormat is chosen (`with_format`).
 * Wire format: the sparse payload of sparse.hpp; decode checks that it carries exactly k values in the configured value format.
 * Non-finite input throws InvalidArgument.
 */
class RandomK : public detail::SparseBudget<RandomK> {
 public:
  /// The name in error messages.
  static constexpr std::string_view who = "fedpp::RandomK";

  /// Per-client state: none.
  struct State {
    /// cereal serialisation (nothing to save).
    template <class Archive>
    void serialize(Archive& /*ar*/) {}
  };

  /// Keeps density 1 (every coordinate); prefer count() or density().
  RandomK() = default;

  /// A copy that scales kept values by d/k (unbiased) or not (default).
  [[nodiscard]] RandomK unbiased(bool on = true) const {
    RandomK t = *this;
    t.unbiased_ = on;
    return t;
  }

  /// Whether kept values are scaled by d/k.
  [[nodiscard]] bool is_unbiased() const noexcept { return unbiased_; }

  /// Creates the (empty) per-client state.
  template <typename S>
  [[nodiscard]] State make_state(Index /*dim*/) const noexcept {
    return {};
  }

  /// Encodes k uniformly chosen entries of `x` (scaled by d/k when unbiased).
  template <typename S>
  [[nodiscard]] Payload encode(std::span<const S> x, State& /*state*/, Rng& rng) const {
    if (!all_finite(x)) fail(who, "update must be finite, got a non-finite value");
    const auto d = static_cast<Index>(x.size());
    const auto k = k_for(d);
    const std::vector<Index> idx =
        random_k_indices(static_cast<std::uint64_t>(d), static_cast<std::uint64_t>(k), rng);
    const double scale = unbiased_ && k > 0 ? static_cast<double>(d) / static_cast<double>(k) : 1.0;
    std::vector<S> vals(idx.size());
    for (std::size_t j = 0; j < idx.size(); ++j)
      vals[j] = static_cast<S>(static_cast<double>(x[static_cast<std::size_t>(idx[j])]) * scale);
    return encode_sparse<S>(x.size(), idx, vals, wire_format<S>());
  }

  /// Decodes into `out` (zero except at the kept coordinates); throws DecodeError on malformed input.
  template <typename S>
  void decode(const Payload& p, std::span<S> out) const {
    decode_budget(p, out, "fedpp::RandomK::decode");
  }

 private:
  bool unbiased_ = false;
};

static_assert(Compressor<RandomK, float> && Compressor<RandomK, double>);

}  // namespace fedpp
