#pragma once
/// @file identity.hpp
/// The identity compressor: the update travels dense, in its own precision or as f32/f64/f16/bf16.

#include <optional>
#include <span>
#include <type_traits>

#include "fedpp/compressors/sparse.hpp"
#include "fedpp/core/concepts.hpp"
#include "fedpp/core/payload.hpp"

namespace fedpp {

/// Sends the update dense, in its own precision (default) or a chosen ValueFormat (e.g. f16, bf16).
/**
 * Wire format: PayloadHeader{dense_f32|dense_f64|dense_f16|dense_bf16, version 1, dim, count = dim},
 * then `dim` little-endian values (4, 8, 2 or 2 bytes each). Decoding checks codec (it must match the
 * configured format), version, dimension, count and exact length. f16/bf16 round to nearest even.
 * In the update's own precision encoding is a plain copy: non-finite values pass through unchanged
 * (the server rejects them; existing behaviour kept). In any converting format encode throws
 * InvalidArgument on non-finite input and on values that overflow it (|x| >= 65520 for f16).
 */
class Identity {
 public:
  /// Dense in the update's own precision (float32 for float, float64 for double).
  Identity() = default;
  /// Dense in format `fmt` (any of f32, f64, f16, bf16, whatever the update's scalar type).
  explicit Identity(ValueFormat fmt) : fmt_(fmt) {
    require(static_cast<std::uint8_t>(fmt) <= 3, "fedpp::Identity", "format must be f32, f64, f16 or bf16",
            static_cast<unsigned>(fmt));
  }

  /// The configured format, or none when the update's own precision is used.
  [[nodiscard]] std::optional<ValueFormat> format() const noexcept { return fmt_; }

  /// Per-client state: none.
  struct State {
    /// cereal serialisation (nothing to save).
    template <class Archive>
    void serialize(Archive& /*ar*/) {}
  };

  /// Creates the (empty) per-client state.
  template <typename S>
  [[nodiscard]] State make_state(Index /*dim*/) const noexcept {
    return {};
  }

  /// Encodes `x` densely.
  template <typename S>
  [[nodiscard]] Payload encode(std::span<const S> x, State& /*state*/, Rng& /*rng*/) const {
    static_assert(std::is_same_v<S, float> || std::is_same_v<S, double>, "Identity supports float and double");
    const ValueFormat fmt = format_for<S>();
    Payload p;
    ByteWriter w(p.buffer());
    p.buffer().reserve(24 + x.size() * value_bytes(fmt));
    PayloadHeader{codec(fmt), 1, x.size(), x.size()}.write(w);
    if (fmt == native_format<S>()) {
      w.put_array(x);
    } else {
      detail::put_values(w, x, fmt, "fedpp::Identity");
    }
    return p;
  }

  /// Decodes into `out` (whose size is the expected dimension); throws DecodeError on mismatch.
  template <typename S>
  void decode(const Payload& p, std::span<S> out) const {
    constexpr std::string_view who = "fedpp::Identity::decode";
    ByteReader r(p.data(), who);
    const PayloadHeader h = PayloadHeader::read(r);
    const ValueFormat fmt = format_for<S>();
    if (h.codec != codec(fmt))
      fail<DecodeError>(who, "unexpected codec (expected " + std::to_string(static_cast<unsigned>(codec(fmt))) + ")",
                        static_cast<unsigned>(h.codec));
    if (h.version != 1) fail<DecodeError>(who, "unsupported version", static_cast<unsigned>(h.version));
    if (h.dim != out.size())
      fail<DecodeError>(who, "dimension must be " + std::to_string(out.size()), h.dim);
    if (h.count != h.dim) fail<DecodeError>(who, "dense count must equal the dimension", h.count);
    if (r.remaining() != out.size() * value_bytes(fmt))
      fail<DecodeError>(who, "value block must be " + std::to_string(out.size() * value_bytes(fmt)) + " bytes",
                        r.remaining());
    if (fmt == native_format<S>()) {
      r.get_array(out);
    } else {
      S* o = out.data();
      detail::get_values<S>(r, out.size(), fmt, [o](std::size_t j, S v) { o[j] = v; });
    }
    r.expect_end();
  }

 private:
  template <typename S>
  [[nodiscard]] ValueFormat format_for() const noexcept {
    return fmt_ ? *fmt_ : native_format<S>();
  }

  static constexpr Codec codec(ValueFormat fmt) noexcept {
    switch (fmt) {
      case ValueFormat::f32: return Codec::dense_f32;
      case ValueFormat::f64: return Codec::dense_f64;
      case ValueFormat::f16: return Codec::dense_f16;
      case ValueFormat::bf16: return Codec::dense_bf16;
    }
    return Codec::dense_f32;
  }

  std::optional<ValueFormat> fmt_;
};

static_assert(Compressor<Identity, float> && Compressor<Identity, double>);

}  // namespace fedpp
