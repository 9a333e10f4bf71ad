#pragma once
/// @file payload.hpp
/// Payload: the encoded bytes of one client update, exactly as they cross the wire.

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "fedpp/core/bytes.hpp"
#include "fedpp/core/error.hpp"
#include "fedpp/core/types.hpp"

namespace fedpp {

/// Identifies the encoding of a payload (first field of its header).
enum class Codec : std::uint16_t {
  dense_f32 = 1,     ///< dense float32 values (Identity)
  dense_f64 = 2,     ///< dense float64 values (Identity)
  dense_f16 = 3,     ///< dense IEEE binary16 values (Identity, half precision)
  dense_bf16 = 4,    ///< dense bfloat16 values (Identity, bfloat16)
  sparse = 5,        ///< indices (delta varints or bitmap) + values (TopK, RandomK, Dgc)
  qsgd = 6,          ///< norms + bit-packed signs and levels, or Elias-coded (Qsgd)
  sign = 7,          ///< scale + one bit per coordinate (ScaledSign)
  sparse_qsgd = 8,   ///< sparse indices + QSGD-quantised kept values (top-k then quantisation)
};

/// Header common to every payload: codec, format version, dimension, number of coded values.
struct PayloadHeader {
  Codec codec = Codec::dense_f32;  ///< encoding
  std::uint8_t version = 1;        ///< encoding version
  std::uint64_t dim = 0;           ///< dimension of the decoded update
  std::uint64_t count = 0;         ///< number of values carried (== dim when dense)

  /// Serialises the header: u16 codec, u8 version, varint dim, varint count.
  void write(ByteWriter& w) const {
    w.put(static_cast<std::uint16_t>(codec));
    w.put(version);
    w.put_varint(dim);
    w.put_varint(count);
  }

  /// Parses a header; throws DecodeError on truncation.
  static PayloadHeader read(ByteReader& r) {
    PayloadHeader h;
    h.codec = static_cast<Codec>(r.get<std::uint16_t>());
    h.version = r.get<std::uint8_t>();
    h.dim = r.get_varint();
    h.count = r.get_varint();
    return h;
  }
};

/// The encoded bytes of one update; `bytes()` is exactly what goes on the wire and into metrics.
class Payload {
 public:
  Payload() = default;
  /// Wraps already-encoded bytes.
  explicit Payload(std::vector<std::uint8_t> data) noexcept : data_(std::move(data)) {}

  /// Exact encoded size in bytes.
  [[nodiscard]] std::size_t bytes() const noexcept { return data_.size(); }
  /// The encoded bytes.
  [[nodiscard]] std::span<const std::uint8_t> data() const noexcept { return data_; }
  /// Mutable access for encoders.
  [[nodiscard]] std::vector<std::uint8_t>& buffer() noexcept { return data_; }
  /// Parses the header (throws DecodeError on a truncated payload).
  [[nodiscard]] PayloadHeader header() const {
    ByteReader r(data_, "fedpp::Payload");
    return PayloadHeader::read(r);
  }

 private:
  std::vector<std::uint8_t> data_;
};

}  // namespace fedpp
