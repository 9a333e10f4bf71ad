#pragma once
/// @file sign.hpp
/// Scaled sign compression (1 bit per coordinate plus a float32 scale), the compressor of
/// EF-SignSGD: Karimireddy, Rebjock, Stich, Jaggi, "Error Feedback Fixes SignSGD and other Gradient
/// Compression Schemes", ICML 2019. Wire format: docs/compressors/quantization.md.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "fedpp/core/concepts.hpp"
#include "fedpp/core/config.hpp"
#include "fedpp/core/error.hpp"
#include "fedpp/core/layout.hpp"
#include "fedpp/core/payload.hpp"
#include "fedpp/core/types.hpp"

namespace fedpp {

namespace detail {

/// Sum of |x_i| over x[0, n) in double, in a fixed order (8 interleaved partial sums).
template <typename S>
double sum_abs(const S* x, std::uint64_t n) noexcept {
  double acc[8] = {};
  std::uint64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (unsigned k = 0; k < 8; ++k) acc[k] += std::abs(static_cast<double>(x[i + k]));
  for (; i < n; ++i) acc[0] += std::abs(static_cast<double>(x[i]));
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

/// How ScaledSign marks coordinates that are exactly zero.
enum class SignZeros : std::uint8_t {
  none = 0,    ///< no zero coordinate: the sign bitmap alone
  list = 1,    ///< varint count + delta-coded varint positions, then the sign bitmap
  bitmap = 2,  ///< a zero bitmap of dim bits, then the sign bitmap
  all = 3      ///< every coordinate is zero: nothing after the scales
};

}  // namespace detail

/// Scaled sign: C(p) = (||p||_1 / d) sign(p), per segment when a layout is given (EF-SignSGD, ICML 2019).
/**
 * The decoded value of coordinate i in segment k (the whole vector when no layout is given) is
 * `+scale_k`, `-scale_k` or 0 (sign(0) = 0, as the paper recommends), where scale_k =
 * float32(sum_{i in k} |p_i| / n_k): the mean absolute value computed in double (fixed summation
 * order) and rounded to the nearest float32. Positions of exact zeros travel only when zeros
 * exist, so the common case costs one bit per coordinate plus the scales. The compressor is
 * biased (E[C(p)] != p); use it inside ErrorFeedback.
 */
class ScaledSign {
 public:
  /// Per-client state: none.
  struct State {
    /// Serialises nothing (no fields).
    template <class Archive>
    void serialize(Archive& /*ar*/) {}
  };

  /// One scale for the whole vector.
  ScaledSign() = default;

  /// One scale per segment of `layout` (layer-wise scaling, as in the paper's experiments).
  /** @throws InvalidArgument when the layout has no segments. */
  explicit ScaledSign(ParameterLayout layout) : layout_(std::move(layout)), layered_(true) {
    require(layout_.size() > 0, "fedpp::ScaledSign", "layout must have at least one segment", layout_.size());
  }

  /// True when scales are per segment.
  [[nodiscard]] bool layer_wise() const noexcept { return layered_; }

  /// Creates the (empty) per-client state.
  template <typename S>
  [[nodiscard]] State make_state(Index /*dim*/) const noexcept {
    return {};
  }

  /// Encodes `x`; throws InvalidArgument on non-finite input, DimensionError on a layout mismatch.
  template <typename S>
  [[nodiscard]] Payload encode(std::span<const S> x, State& /*state*/, Rng& /*rng*/) const {
    static_assert(std::is_same_v<S, float> || std::is_same_v<S, double>, "ScaledSign supports float and double");
    constexpr std::string_view who = "fedpp::ScaledSign";
    const std::uint64_t d = x.size();
    if (!all_finite(x)) fail(who, "input must be finite (NaN or infinity found)", d);
    const auto seg = segments(d, who, false);
    // Scales: fixed sub-blocks of 8192 per segment, summed in order.
    constexpr std::uint64_t sub = 8192;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> blocks;  // [lo, hi) per sub-block
    std::vector<std::size_t> first(seg.size() + 1, 0);
    for (std::size_t k = 0; k < seg.size(); ++k) {
      first[k] = blocks.size();
      for (std::uint64_t lo = seg[k].first; lo < seg[k].second; lo += sub) blocks.emplace_back(lo, std::min(lo + sub, seg[k].second));
    }
    first[seg.size()] = blocks.size();
    std::vector<double> part(blocks.size());
    const auto nblocks = static_cast<std::int64_t>(blocks.size());
    FEDPP_OMP_PARALLEL_FOR
    for (std::int64_t j = 0; j < nblocks; ++j) {
      const auto& bl = blocks[static_cast<std::size_t>(j)];
      part[static_cast<std::size_t>(j)] = detail::sum_abs(x.data() + bl.first, bl.second - bl.first);
    }
    std::vector<float> scales(seg.size());
    for (std::size_t k = 0; k < seg.size(); ++k) {
      double sum = 0;
      for (std::size_t j = first[k]; j < first[k + 1]; ++j) sum += part[j];
      const std::uint64_t n = seg[k].second - seg[k].first;
      const double mean = n == 0 ? 0.0 : sum / static_cast<double>(n);
      // Values beyond the float32 range (double input only) would round to infinity.
      if (!(mean < 0x1.ffffff0p127)) fail(who, "a scale exceeds the float32 range in segment", k);
      scales[k] = static_cast<float>(mean);
    }
    // Zeros.
    std::vector<std::uint64_t> zeros;
    for (std::uint64_t i = 0; i < d; ++i)
      if (x[i] == S(0)) zeros.push_back(i);
    const std::uint64_t nbits_bytes = (d + 7) / 8;
    auto mode = detail::SignZeros::none;
    std::uint64_t list_bytes = 0;
    if (!zeros.empty() && zeros.size() == d) {
      mode = detail::SignZeros::all;
    } else if (!zeros.empty()) {
      list_bytes = varint_len(zeros.size());
      std::uint64_t prev = 0;
      for (std::size_t j = 0; j < zeros.size(); ++j) {
        list_bytes += varint_len(zeros[j] - prev);
        prev = zeros[j] + 1;
      }
      mode = list_bytes <= nbits_bytes ? detail::SignZeros::list : detail::SignZeros::bitmap;
    }
    Payload p;
    auto& buf = p.buffer();
    buf.reserve(24 + 4 * scales.size() + 2 * nbits_bytes);
    ByteWriter w(buf);
    PayloadHeader{Codec::sign, 1, d, d}.write(w);
    w.put(static_cast<std::uint8_t>(mode));
    w.put_varint(scales.size());
    w.put_array(std::span<const float>(scales));
    if (mode == detail::SignZeros::all) return p;
    if (mode == detail::SignZeros::list) {
      w.put_varint(zeros.size());
      std::uint64_t prev = 0;
      for (std::uint64_t z : zeros) {
        w.put_varint(z - prev);
        prev = z + 1;
      }
    } else if (mode == detail::SignZeros::bitmap) {
      const std::size_t at = buf.size();
      buf.resize(at + nbits_bytes, 0);
      for (std::uint64_t z : zeros) buf[at + z / 8] = static_cast<std::uint8_t>(buf[at + z / 8] | (1u << (z % 8)));
    }
    const std::size_t at = buf.size();
    buf.resize(at + nbits_bytes);
    std::uint8_t* out = buf.data() + at;
    const S* px = x.data();
    const auto nbytes = static_cast<std::int64_t>(nbits_bytes);
    FEDPP_OMP_PARALLEL_FOR
    for (std::int64_t j = 0; j < nbytes; ++j) {
      const std::uint64_t lo = static_cast<std::uint64_t>(j) * 8, hi = std::min(d, lo + 8);
      unsigned byte = 0;
      for (std::uint64_t i = lo; i < hi; ++i) byte |= (px[i] < S(0) ? 1u : 0u) << (i - lo);
      out[j] = static_cast<std::uint8_t>(byte);
    }
    return p;
  }

  /// Decodes into `out` (its size is the expected dimension); throws DecodeError on malformed input.
  template <typename S>
  void decode(const Payload& p, std::span<S> out) const {
    static_assert(std::is_same_v<S, float> || std::is_same_v<S, double>, "ScaledSign supports float and double");
    constexpr std::string_view who = "fedpp::ScaledSign::decode";
    ByteReader r(p.data(), who);
    const PayloadHeader h = PayloadHeader::read(r);
    if (h.codec != Codec::sign) fail<DecodeError>(who, "unexpected codec", static_cast<unsigned>(h.codec));
    if (h.version != 1) fail<DecodeError>(who, "unsupported version", static_cast<unsigned>(h.version));
    const std::uint64_t d = out.size();
    if (h.dim != d) fail<DecodeError>(who, "dimension must be " + std::to_string(d), h.dim);
    if (h.count != d) fail<DecodeError>(who, "count must equal the dimension", h.count);
    const auto mode_byte = r.get<std::uint8_t>();
    if (mode_byte > 3) fail<DecodeError>(who, "zero mode must be 0-3", static_cast<unsigned>(mode_byte));
    const auto mode = static_cast<detail::SignZeros>(mode_byte);
    const auto seg = segments(d, who, true);
    const std::uint64_t nseg = r.get_varint();
    if (nseg != seg.size()) fail<DecodeError>(who, "number of scales must be " + std::to_string(seg.size()), nseg);
    std::vector<float> scales(seg.size());
    r.get_array(std::span<float>(scales));
    for (std::size_t k = 0; k < scales.size(); ++k)
      if (!std::isfinite(scales[k]) || std::signbit(scales[k]))
        fail<DecodeError>(who, "scales must be finite and non-negative, segment " + std::to_string(k) + " has", scales[k]);
    const std::uint64_t nbits_bytes = (d + 7) / 8;
    if (mode == detail::SignZeros::all) {
      if (d == 0) fail<DecodeError>(who, "all-zero mode needs a positive dimension", d);
      for (float s : scales)
        if (s != 0.0f) fail<DecodeError>(who, "all-zero mode needs zero scales, got a scale", s);
      r.expect_end();
      std::fill(out.begin(), out.end(), S(0));
      return;
    }
    std::vector<std::uint8_t> zero_map;  // empty: no zeros
    if (mode == detail::SignZeros::list) {
      const std::uint64_t z = r.get_varint();
      if (z == 0 || z >= d) fail<DecodeError>(who, "zero count must be in [1, dim)", z);
      if (z > r.remaining()) fail<DecodeError>(who, "truncated input: zero positions missing, count", z);
      zero_map.assign(nbits_bytes, 0);
      std::uint64_t next = 0;
      for (std::uint64_t j = 0; j < z; ++j) {
        const std::uint64_t gap = r.get_varint();
        if (gap >= d - next) fail<DecodeError>(who, "zero position past the dimension at entry", j);
        const std::uint64_t i = next + gap;
        zero_map[i / 8] = static_cast<std::uint8_t>(zero_map[i / 8] | (1u << (i % 8)));
        next = i + 1;
      }
    } else if (mode == detail::SignZeros::bitmap) {
      const auto b = r.get_bytes(nbits_bytes);
      zero_map.assign(b.begin(), b.end());
      check_padding(zero_map, d, who, "zero bitmap");
    }
    const auto signs = r.get_bytes(nbits_bytes);
    r.expect_end();
    check_padding(std::vector<std::uint8_t>(signs.end() - (nbits_bytes ? 1 : 0), signs.end()), d, who, "sign bitmap");
    for (std::size_t k = 0; k < seg.size(); ++k) {
      const S scale = static_cast<S>(scales[k]);
      for (std::uint64_t i = seg[k].first; i < seg[k].second; ++i) {
        const bool neg = (signs[i / 8] >> (i % 8)) & 1u;
        const bool zero = !zero_map.empty() && ((zero_map[i / 8] >> (i % 8)) & 1u);
        if (zero && neg) fail<DecodeError>(who, "a zero coordinate carries a sign bit at", i);
        out[i] = zero ? S(0) : (neg ? -scale : scale);
      }
    }
  }

 private:
  static std::uint64_t varint_len(std::uint64_t v) noexcept {
    std::uint64_t n = 1;
    while (v >= 0x80) {
      v >>= 7;
      ++n;
    }
    return n;
  }

  // The padding bits above bit d of the last byte of a d-bit bitmap (given as its last byte or all of it) must be 0.
  static void check_padding(const std::vector<std::uint8_t>& tail, std::uint64_t d, std::string_view who,
                            std::string_view what) {
    const unsigned used = static_cast<unsigned>(d % 8);
    if (used != 0 && !tail.empty() && (tail.back() >> used) != 0)
      fail<DecodeError>(who, std::string(what) + " has non-zero padding bits", static_cast<unsigned>(tail.back()));
  }

  // [lo, hi) of each scaled segment for dimension d.
  std::vector<std::pair<std::uint64_t, std::uint64_t>> segments(std::uint64_t d, std::string_view who,
                                                                bool decoding) const {
    if (!layered_) return {{0, d}};
    if (static_cast<std::uint64_t>(layout_.total()) != d) {
      const std::string what = "dimension must equal the layout's total " + std::to_string(layout_.total());
      if (decoding) fail<DecodeError>(who, what, d);
      fail<DimensionError>(who, what, d);
    }
    std::vector<std::pair<std::uint64_t, std::uint64_t>> s;
    for (const auto& g : layout_.segments())
      s.emplace_back(static_cast<std::uint64_t>(g.offset), static_cast<std::uint64_t>(g.offset + g.size()));
    return s;
  }

  ParameterLayout layout_;
  bool layered_ = false;
};

static_assert(Compressor<ScaledSign, float> && Compressor<ScaledSign, double>);

}  // namespace fedpp
