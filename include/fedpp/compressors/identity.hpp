#pragma once
/// @file identity.hpp
/// The identity compressor: the update travels dense, in its own precision.

#include <span>
#include <type_traits>

#include "fedpp/core/concepts.hpp"
#include "fedpp/core/payload.hpp"

namespace fedpp {

/// Sends the update uncompressed (dense float32 for float updates, float64 for double).
/**
 * Wire format: PayloadHeader{dense_f32|dense_f64, version 1, dim, count = dim}, then `dim`
 * little-endian values. Decoding checks codec, version, dimension, count and exact length.
 */
class Identity {
 public:
  /// Per-client state: none.
  struct State {};

  /// Creates the (empty) per-client state.
  template <typename S>
  [[nodiscard]] State make_state(Index /*dim*/) const noexcept {
    return {};
  }

  /// Encodes `x` densely.
  template <typename S>
  [[nodiscard]] Payload encode(std::span<const S> x, State& /*state*/, Rng& /*rng*/) const {
    static_assert(std::is_same_v<S, float> || std::is_same_v<S, double>, "Identity supports float and double");
    Payload p;
    ByteWriter w(p.buffer());
    p.buffer().reserve(16 + x.size_bytes());
    PayloadHeader{codec<S>(), 1, x.size(), x.size()}.write(w);
    w.put_array(x);
    return p;
  }

  /// Decodes into `out` (whose size is the expected dimension); throws DecodeError on mismatch.
  template <typename S>
  void decode(const Payload& p, std::span<S> out) const {
    constexpr std::string_view who = "fedpp::Identity::decode";
    ByteReader r(p.data(), who);
    const PayloadHeader h = PayloadHeader::read(r);
    if (h.codec != codec<S>()) fail<DecodeError>(who, "unexpected codec", static_cast<unsigned>(h.codec));
    if (h.version != 1) fail<DecodeError>(who, "unsupported version", static_cast<unsigned>(h.version));
    if (h.dim != out.size())
      fail<DecodeError>(who, "dimension must be " + std::to_string(out.size()), h.dim);
    if (h.count != h.dim) fail<DecodeError>(who, "dense count must equal the dimension", h.count);
    r.get_array(out);
    r.expect_end();
  }

 private:
  template <typename S>
  static constexpr Codec codec() noexcept {
    return std::is_same_v<S, float> ? Codec::dense_f32 : Codec::dense_f64;
  }
};

static_assert(Compressor<Identity, float> && Compressor<Identity, double>);

}  // namespace fedpp
