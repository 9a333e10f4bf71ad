#pragma once
/// @file frame.hpp
/// The frame layer of fedpp's wire protocol (docs/protocol.md): the fixed 24-byte frame header,
/// its checksum, and the protocol's error codes. Sans-IO: no sockets here.
/**
 * Frame header, little-endian:
 *
 *     offset size field
 *          0    4 magic     0x50504446 ("FDPP" on the wire)
 *          4    1 version   protocol_version
 *          5    1 type      MessageType
 *          6    2 flags     bit 0 `last`: the last frame of its message; other bits 0
 *          8    4 length    body bytes that follow (<= the receiver's max frame size)
 *         12    4 reserved  0
 *         16    8 checksum  FrameChecksum over bytes 0..15 of the header, then the body
 *
 * The layout never changes between protocol versions, so a peer can always read the header of
 * a frame it cannot otherwise understand (and answer a version mismatch with a reject).
 */

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

#include "fedpp/core/error.hpp"
#include "fedpp/core/rng.hpp"

namespace fedpp::net {

static_assert(std::endian::native == std::endian::little, "fedpp's wire protocol assumes a little-endian host");

/// First four bytes of every frame ("FDPP").
inline constexpr std::uint32_t frame_magic = 0x50504446u;
/// Version of the wire protocol this header speaks.
inline constexpr std::uint8_t protocol_version = 1;
/// Size of a frame header in bytes.
inline constexpr std::size_t frame_header_size = 24;
/// Default largest frame body a peer accepts (bulk data streams in frames of at most this size).
inline constexpr std::uint32_t default_max_frame = 4u << 20;
/// Largest body of a head frame (the cereal-encoded part of a message).
inline constexpr std::uint32_t max_head_bytes = 64u << 10;

/// What a frame carries.
enum class MessageType : std::uint8_t {
  hello = 1,          ///< client -> server: identity, credentials, codec, scalar type, dimension
  welcome = 2,        ///< server -> client: accepted
  reject = 3,         ///< server -> client: refused, with a reason (then the server closes)
  round_request = 4,  ///< server -> client: round, seed, deadline; bulk: model, broadcast
  reply = 5,          ///< client -> server: the answer to a round; bulk: payload, aux
  heartbeat = 6,      ///< either way: alive (and, from a client, whether it is training)
  goodbye = 7,        ///< either way: closing, with a reason
  data = 8,           ///< a chunk of the bulk bytes of the message before it
};

/// Name of a message type ("hello", ...; "unknown" otherwise).
[[nodiscard]] constexpr std::string_view to_string(MessageType t) noexcept {
  switch (t) {
    case MessageType::hello: return "hello";
    case MessageType::welcome: return "welcome";
    case MessageType::reject: return "reject";
    case MessageType::round_request: return "round_request";
    case MessageType::reply: return "reply";
    case MessageType::heartbeat: return "heartbeat";
    case MessageType::goodbye: return "goodbye";
    case MessageType::data: return "data";
  }
  return "unknown";
}

/// Flag bit: this frame ends its message.
inline constexpr std::uint16_t frame_flag_last = 1;

/// Why a connection was closed by fedpp's protocol layer (error category "fedpp.net").
enum class ProtocolErrc {
  bad_magic = 1,        ///< the frame does not start with the magic number
  version_mismatch,     ///< the peer speaks another protocol version
  unknown_type,         ///< unknown message type
  bad_flags,            ///< unknown flag bits, reserved bytes not zero, or a wrong `last` flag
  oversized_frame,      ///< frame body larger than the receiver's limit
  bad_checksum,         ///< the frame's checksum does not match its bytes
  unexpected_message,   ///< a message that is not allowed at this point of the conversation
  wrong_length,         ///< a head whose length does not match its content, or bulk of a bad size
  malformed_head,       ///< a head that does not parse (truncated, bad enum, oversized string)
  truncated_frame,      ///< the connection ended in the middle of a frame
  stalled,              ///< the rest of a frame did not arrive within the per-read deadline
  no_heartbeat,         ///< nothing received for longer than the heartbeat timeout
  handshake_timeout,    ///< no hello (or TLS handshake) in time
  unknown_client,       ///< a client id outside the federation
  duplicate_client,     ///< a client id that is already connected
  bad_credentials,      ///< missing, unknown or wrong token or certificate
  codec_mismatch,       ///< the client encodes with another codec than the server decodes
  scalar_mismatch,      ///< float vs double
  dimension_mismatch,   ///< the client's model has another dimension
  unexpected_round,     ///< a reply for a round the client was not asked for
  rejected,             ///< the server rejected this client (see the reject's text)
  shutting_down,        ///< the peer is shutting down
};

/// The error category of ProtocolErrc.
class ProtocolCategory final : public std::error_category {
 public:
  /// "fedpp.net".
  [[nodiscard]] const char* name() const noexcept override { return "fedpp.net"; }
  /// A short description of the code.
  [[nodiscard]] std::string message(int c) const override {
    switch (static_cast<ProtocolErrc>(c)) {
      case ProtocolErrc::bad_magic: return "bad magic number";
      case ProtocolErrc::version_mismatch: return "protocol version mismatch";
      case ProtocolErrc::unknown_type: return "unknown message type";
      case ProtocolErrc::bad_flags: return "bad frame flags or reserved bytes";
      case ProtocolErrc::oversized_frame: return "frame larger than the limit";
      case ProtocolErrc::bad_checksum: return "frame checksum mismatch";
      case ProtocolErrc::unexpected_message: return "unexpected message";
      case ProtocolErrc::wrong_length: return "wrong length";
      case ProtocolErrc::malformed_head: return "malformed message";
      case ProtocolErrc::truncated_frame: return "connection closed in the middle of a frame";
      case ProtocolErrc::stalled: return "peer stalled in the middle of a frame";
      case ProtocolErrc::no_heartbeat: return "no heartbeat";
      case ProtocolErrc::handshake_timeout: return "handshake timed out";
      case ProtocolErrc::unknown_client: return "unknown client id";
      case ProtocolErrc::duplicate_client: return "client id already connected";
      case ProtocolErrc::bad_credentials: return "bad credentials";
      case ProtocolErrc::codec_mismatch: return "codec mismatch";
      case ProtocolErrc::scalar_mismatch: return "scalar type mismatch";
      case ProtocolErrc::dimension_mismatch: return "model dimension mismatch";
      case ProtocolErrc::unexpected_round: return "reply for a round the client was not asked for";
      case ProtocolErrc::rejected: return "rejected by the server";
      case ProtocolErrc::shutting_down: return "peer shutting down";
    }
    return "unknown fedpp.net error";
  }
};

/// The singleton ProtocolCategory.
[[nodiscard]] inline const std::error_category& protocol_category() noexcept {
  static const ProtocolCategory c;
  return c;
}

/// A std::error_code for a ProtocolErrc.
[[nodiscard]] inline std::error_code make_error_code(ProtocolErrc e) noexcept {
  return {static_cast<int>(e), protocol_category()};
}

/// A protocol violation: the code says what, the message says where and with which value.
class ProtocolError : public DecodeError {
 public:
  /// An error with code `c` and the full message `what`.
  ProtocolError(ProtocolErrc c, const std::string& what) : DecodeError(what), code_(make_error_code(c)) {}
  /// The machine-readable reason.
  [[nodiscard]] const std::error_code& code() const noexcept { return code_; }

 private:
  std::error_code code_;
};

/// Throws a ProtocolError `fedpp::net::<where>: <what>, got <value>`.
template <typename V>
[[noreturn]] void protocol_fail(ProtocolErrc c, std::string_view where, std::string_view what, const V& got) {
  throw ProtocolError(c, fedpp::detail::message(where, what) + ", got " + fedpp::detail::to_text(got));
}

/// Incremental 64-bit frame checksum: four Fletcher-style lanes over 8-byte little-endian words.
/**
 * Each lane keeps a = sum of its words and b = sum of the running a (mod 2^64); lane l takes
 * words l, l+4, l+8, ... of the stream; a zero-padded tail word and the total length are folded
 * in at the end and the eight sums mixed with SplitMix64. It catches every single changed word,
 * reorderings within a lane and changed lengths; it is fast (adds only, vectorisable), which
 * matters because every byte of a 40 MB update passes through it, and it is not a MAC (TLS
 * authenticates records against tampering). The result depends only on the bytes, not on how
 * they are split across update() calls.
 */
class FrameChecksum {
 public:
  /// Adds `s` to the checksummed stream.
  void update(std::span<const std::uint8_t> s) noexcept {
    if (s.empty()) return;  // an empty span may have a null data(): memcpy from it is undefined
    std::size_t i = 0;
    total_ += s.size();
    if (tail_n_ > 0) {
      const std::size_t take = std::min(s.size(), sizeof(tail_) - tail_n_);
      std::memcpy(tail_ + tail_n_, s.data(), take);
      tail_n_ += take;
      i = take;
      if (tail_n_ < sizeof(tail_)) return;
      block(tail_);
      tail_n_ = 0;
    }
    for (; i + sizeof(tail_) <= s.size(); i += sizeof(tail_)) block(s.data() + i);
    tail_n_ = s.size() - i;
    if (tail_n_ > 0) std::memcpy(tail_, s.data() + i, tail_n_);
  }

  /// The checksum of everything added so far.
  [[nodiscard]] std::uint64_t finish() const noexcept {
    FrameChecksum c = *this;
    if (c.tail_n_ > 0) {
      std::memset(c.tail_ + c.tail_n_, 0, sizeof(c.tail_) - c.tail_n_);
      c.block(c.tail_);
    }
    std::uint64_t h = fedpp::detail::mix64(total_ ^ 0x6a09e667f3bcc908ULL);
    for (int l = 0; l < lanes; ++l) h = fedpp::detail::mix64(h ^ fedpp::detail::mix64(c.a_[l] ^ fedpp::detail::rotl(c.b_[l], 29)));
    return h;
  }

 private:
  static constexpr int lanes = 4;
  void block(const std::uint8_t* p) noexcept {
    std::uint64_t w[lanes];
    std::memcpy(w, p, sizeof(w));
    for (int l = 0; l < lanes; ++l) {
      a_[l] += w[l];
      b_[l] += a_[l];
    }
  }

  std::uint64_t a_[lanes] = {0x243f6a8885a308d3ULL, 0x13198a2e03707344ULL, 0xa4093822299f31d0ULL, 0x082efa98ec4e6c89ULL};
  std::uint64_t b_[lanes] = {0, 0, 0, 0};
  std::uint8_t tail_[lanes * 8] = {};
  std::size_t tail_n_ = 0;
  std::uint64_t total_ = 0;
};

/// A parsed frame header.
struct FrameHeader {
  std::uint8_t version = protocol_version;   ///< protocol version of the sender
  MessageType type = MessageType::heartbeat; ///< what the body carries
  std::uint16_t flags = 0;                   ///< frame_flag_last or 0
  std::uint32_t length = 0;                  ///< body bytes
  std::uint64_t checksum = 0;                ///< FrameChecksum of header bytes 0..15 and the body

  /// Whether this frame ends its message.
  [[nodiscard]] bool last() const noexcept { return (flags & frame_flag_last) != 0; }
};

/// The 24 bytes of a header (checksum included as given).
[[nodiscard]] inline std::array<std::uint8_t, frame_header_size> encode_header(const FrameHeader& h) noexcept {
  std::array<std::uint8_t, frame_header_size> b{};
  const std::uint32_t magic = frame_magic, reserved = 0;
  const auto type = static_cast<std::uint8_t>(h.type);
  std::memcpy(b.data() + 0, &magic, 4);
  b[4] = h.version;
  b[5] = type;
  std::memcpy(b.data() + 6, &h.flags, 2);
  std::memcpy(b.data() + 8, &h.length, 4);
  std::memcpy(b.data() + 12, &reserved, 4);
  std::memcpy(b.data() + 16, &h.checksum, 8);
  return b;
}

/// Checksum of a frame: header bytes 0..15 of `header`, then each part of the body in order.
[[nodiscard]] inline std::uint64_t frame_checksum(std::span<const std::uint8_t, frame_header_size> header,
                                                  std::span<const std::uint8_t> body1,
                                                  std::span<const std::uint8_t> body2 = {}) noexcept {
  FrameChecksum c;
  c.update(header.first<16>());
  c.update(body1);
  c.update(body2);
  return c.finish();
}

/// A complete header for a body made of `body1` then `body2`, with its checksum filled in.
[[nodiscard]] inline std::array<std::uint8_t, frame_header_size> make_header(MessageType type, bool last,
                                                                             std::span<const std::uint8_t> body1,
                                                                             std::span<const std::uint8_t> body2 = {}) {
  FrameHeader h;
  h.type = type;
  h.flags = last ? frame_flag_last : 0;
  const std::size_t n = body1.size() + body2.size();
  if (n > UINT32_MAX) protocol_fail(ProtocolErrc::oversized_frame, "fedpp::net::make_header", "frame body too large", n);
  h.length = static_cast<std::uint32_t>(n);
  auto b = encode_header(h);
  h.checksum = frame_checksum(b, body1, body2);
  std::memcpy(b.data() + 16, &h.checksum, 8);
  return b;
}

/// Parses and validates a header: magic, version, type, flags, reserved bytes, and the length
/// against `max_frame` (data frames) or max_head_bytes (head frames). Throws ProtocolError.
[[nodiscard]] inline FrameHeader parse_header(std::span<const std::uint8_t, frame_header_size> b,
                                              std::uint32_t max_frame) {
  constexpr std::string_view who = "fedpp::net::parse_header";
  std::uint32_t magic = 0, reserved = 0;
  FrameHeader h;
  std::memcpy(&magic, b.data(), 4);
  h.version = b[4];
  const std::uint8_t type = b[5];
  std::memcpy(&h.flags, b.data() + 6, 2);
  std::memcpy(&h.length, b.data() + 8, 4);
  std::memcpy(&reserved, b.data() + 12, 4);
  std::memcpy(&h.checksum, b.data() + 16, 8);
  if (magic != frame_magic) protocol_fail(ProtocolErrc::bad_magic, who, "bad magic number", magic);
  if (h.version != protocol_version)
    protocol_fail(ProtocolErrc::version_mismatch, who,
                  "protocol version must be " + std::to_string(protocol_version), static_cast<unsigned>(h.version));
  if (type < static_cast<std::uint8_t>(MessageType::hello) || type > static_cast<std::uint8_t>(MessageType::data))
    protocol_fail(ProtocolErrc::unknown_type, who, "unknown message type", static_cast<unsigned>(type));
  h.type = static_cast<MessageType>(type);
  if ((h.flags & ~frame_flag_last) != 0) protocol_fail(ProtocolErrc::bad_flags, who, "unknown flag bits", h.flags);
  if (reserved != 0) protocol_fail(ProtocolErrc::bad_flags, who, "reserved bytes must be zero", reserved);
  const std::uint32_t limit = h.type == MessageType::data ? max_frame : std::min(max_frame, max_head_bytes);
  if (h.length > limit)
    protocol_fail(ProtocolErrc::oversized_frame, who,
                  std::string(to_string(h.type)) + " frame body must be at most " + std::to_string(limit) + " bytes",
                  h.length);
  return h;
}

}  // namespace fedpp::net

template <>
struct std::is_error_code_enum<fedpp::net::ProtocolErrc> : std::true_type {};
