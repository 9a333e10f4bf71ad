#pragma once
/// @file sparse_quantized.hpp
/// Composition: exact top-k sparsification followed by QSGD quantisation of the kept values
/// (top-k: Stich, Cordonnier, Jaggi, NeurIPS 2018; QSGD: Alistarh et al., NeurIPS 2017).
/// Wire format: docs/compressors/quantization.md.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "fedpp/compressors/qsgd.hpp"
#include "fedpp/compressors/sparse.hpp"
#include "fedpp/compressors/top_k.hpp"
#include "fedpp/core/concepts.hpp"
#include "fedpp/core/payload.hpp"

namespace fedpp {

/// Top-k, then the k kept values QSGD-quantised with s levels (one bucket, l2 norm, bit-packed).
/**
 * Selection is TopK's (exact, ties to the lowest index; k from TopK::count or TopK::density).
 * The kept values v (in index order) are quantised as one QSGD bucket: norm ||v||_2 rounded up to
 * float32, level of value j = floor(s|v_j|/norm) + [u_j < frac], with u_j the counter-based draw of
 * position j (detail::qsgd_random_bits(key, j), key = one draw from the Rng). Given the selection,
 * the decoded values are unbiased estimates of the kept values; the selection itself is biased
 * (use ErrorFeedback around it). Deterministic for any thread count.
 */
class SparseQsgd {
 public:
  /// Per-client state: none.
  struct State {
    /// Serialises nothing (no fields).
    template <class Archive>
    void serialize(Archive& /*ar*/) {}
  };

  /**
   * @param selector the top-k rule (its value format is ignored: values travel quantised).
   * @param levels QSGD levels s in [1, 2^24].
   * @throws InvalidArgument when levels is out of range.
   */
  explicit SparseQsgd(TopK selector = TopK::density(0.01), std::uint32_t levels = 8)
      : selector_(selector), levels_(levels) {
    require(levels >= 1 && levels <= detail::qsgd_max_levels, "fedpp::SparseQsgd", "levels must be in [1, 16777216]",
            levels);
  }

  /// The top-k rule.
  [[nodiscard]] const TopK& selector() const noexcept { return selector_; }
  /// Number of levels s.
  [[nodiscard]] std::uint32_t levels() const noexcept { return levels_; }

  /// Creates the (empty) per-client state.
  template <typename S>
  [[nodiscard]] State make_state(Index /*dim*/) const noexcept {
    return {};
  }

  /// Selects, quantises and encodes `x`; throws InvalidArgument on non-finite input.
  template <typename S>
  [[nodiscard]] Payload encode(std::span<const S> x, State& /*state*/, Rng& rng) const {
    static_assert(std::is_same_v<S, float> || std::is_same_v<S, double>, "SparseQsgd supports float and double");
    constexpr std::string_view who = "fedpp::SparseQsgd";
    if (!all_finite(x)) fail(who, "input must be finite (NaN or infinity found)", x.size());
    const auto d = static_cast<Index>(x.size());
    const std::vector<Index> idx = top_k_indices(x, static_cast<std::size_t>(selector_.k_for(d)), who);
    const std::uint64_t k = idx.size();
    std::vector<S> vals(k);
    for (std::size_t j = 0; j < k; ++j) vals[j] = x[static_cast<std::size_t>(idx[j])];
    const std::uint64_t b = std::max<std::uint64_t>(k, 1);
    std::vector<float> norm;
    if (!detail::qsgd_norms(std::span<const S>(vals), b, QsgdNorm::l2, norm))
      fail(who, "the norm of the kept values exceeds the float32 range", "overflow");
    if (norm.empty()) norm.push_back(0.0f);
    const std::uint64_t key = rng();
    const unsigned w = 1 + detail::qsgd_level_bits(levels_);
    const std::uint64_t body = detail::qsgd_packed_bytes(k, w);
    Payload p;
    auto& buf = p.buffer();
    ByteWriter wr(buf);
    PayloadHeader{Codec::sparse_qsgd, 1, x.size(), k}.write(wr);
    detail::write_sparse_indices(wr, x.size(), idx);
    wr.put_varint(levels_);
    wr.put(norm[0]);
    const std::size_t at = buf.size();
    buf.resize(at + body);
    detail::qsgd_quantize_packed(std::span<const S>(vals), norm.data(), b, levels_, key, buf.data() + at);
    return p;
  }

  /// Decodes into `out` (zero except at the kept coordinates); throws DecodeError on malformed input.
  /** The payload must carry exactly k = selector().k_for(dim) values. */
  template <typename S>
  void decode(const Payload& p, std::span<S> out) const {
    static_assert(std::is_same_v<S, float> || std::is_same_v<S, double>, "SparseQsgd supports float and double");
    constexpr std::string_view who = "fedpp::SparseQsgd::decode";
    ByteReader r(p.data(), who);
    const PayloadHeader h = PayloadHeader::read(r);
    if (h.codec != Codec::sparse_qsgd) fail<DecodeError>(who, "unexpected codec", static_cast<unsigned>(h.codec));
    if (h.version != 1) fail<DecodeError>(who, "unsupported version", static_cast<unsigned>(h.version));
    const std::uint64_t d = out.size();
    if (h.dim != d) fail<DecodeError>(who, "dimension must be " + std::to_string(d), h.dim);
    const auto k = static_cast<std::uint64_t>(selector_.k_for(static_cast<Index>(d)));
    if (h.count != k) fail<DecodeError>(who, "count must be k = " + std::to_string(k), h.count);
    std::vector<Index> idx;
    detail::read_sparse_indices(r, d, k, idx, who);
    const std::uint64_t s64 = r.get_varint();
    if (s64 < 1 || s64 > detail::qsgd_max_levels) fail<DecodeError>(who, "levels must be in [1, 16777216]", s64);
    const auto s = static_cast<std::uint32_t>(s64);
    const float norm = r.get<float>();
    if (!std::isfinite(norm) || std::signbit(norm))
      fail<DecodeError>(who, "norm must be finite and non-negative", norm);
    const unsigned w = 1 + detail::qsgd_level_bits(s);
    const std::uint64_t body = detail::qsgd_packed_bytes(k, w);
    if (r.remaining() != body)
      fail<DecodeError>(who, "packed body must be " + std::to_string(body) + " bytes", r.remaining());
    const auto bytes = r.get_bytes(body);
    std::vector<S> vals(k);
    const std::uint64_t bad =
        detail::qsgd_dequantize_packed(bytes, &norm, std::max<std::uint64_t>(k, 1), s, std::span<S>(vals));
    if (bad != k) fail<DecodeError>(who, "level above s or signed zero level at kept value", bad);
    const unsigned tail = static_cast<unsigned>((k * w) % 8);
    if (tail != 0 && (bytes[body - 1] >> tail) != 0) fail<DecodeError>(who, "non-zero padding bits", bytes[body - 1]);
    detail::parallel_zero(out);
    for (std::size_t j = 0; j < k; ++j) out[static_cast<std::size_t>(idx[j])] = vals[j];
  }

 private:
  TopK selector_;
  std::uint32_t levels_;
};

static_assert(Compressor<SparseQsgd, float> && Compressor<SparseQsgd, double>);

}  // namespace fedpp
