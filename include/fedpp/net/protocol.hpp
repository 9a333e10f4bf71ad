#pragma once
/// @file protocol.hpp
/// The messages of fedpp's wire protocol (docs/protocol.md), their cereal-encoded heads, the
/// outbound encoder (frames that point into the caller's bulk bytes, no copy) and the inbound
/// decoder (a sans-IO state machine the socket code and the fuzzer drive the same way).
/**
 * A message is one head frame (its body: the cereal portable-binary encoding of the message's
 * struct) followed, for messages with bulk bytes (round requests: model and broadcast; replies:
 * payload and aux), by data frames that carry exactly those bytes in order, each at most the
 * receiver's max frame size. The `last` flag marks the final frame of a message.
 */

#include <cereal/archives/portable_binary.hpp>
#include <cereal/cereal.hpp>

#include <array>
#include <cstdint>
#include <functional>
#include <istream>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <sstream>
#include <streambuf>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "fedpp/net/frame.hpp"

namespace fedpp::net {

/// Longest token a hello may carry.
inline constexpr std::size_t max_token_bytes = 1024;
/// Longest text a reject, reply error or goodbye may carry (longer texts are cut on sending).
inline constexpr std::size_t max_text_bytes = 4096;
/// Longest free-form name (software, compressor) a hello may carry.
inline constexpr std::size_t max_name_bytes = 256;

namespace detail {

/// Saves a string (cereal size tag, then the bytes).
template <class Archive>
void save_string(Archive& ar, const std::string& s) {
  ar(cereal::make_size_tag(static_cast<cereal::size_type>(s.size())));
  if (!s.empty()) ar(cereal::binary_data(s.data(), s.size()));
}

/// Loads a string of at most `max` bytes (checked before allocating: untrusted input).
template <class Archive>
void load_string(Archive& ar, std::string& s, std::size_t max, const char* field) {
  cereal::size_type n = 0;
  ar(cereal::make_size_tag(n));
  if (n > max)
    protocol_fail(ProtocolErrc::malformed_head, "fedpp::net::load",
                  std::string(field) + " must be at most " + std::to_string(max) + " bytes", n);
  s.resize(static_cast<std::size_t>(n));
  if (n > 0) ar(cereal::binary_data(s.data(), s.size()));
}

/// Loads an enum stored as its underlying integer, checking it is in [lo, hi].
template <typename E, class Archive>
void load_enum(Archive& ar, E& e, E lo, E hi, const char* field) {
  std::underlying_type_t<E> v{};
  ar(v);
  if (v < static_cast<std::underlying_type_t<E>>(lo) || v > static_cast<std::underlying_type_t<E>>(hi))
    protocol_fail(ProtocolErrc::malformed_head, "fedpp::net::load", std::string(field) + " out of range",
                  static_cast<long long>(v));
  e = static_cast<E>(v);
}

/// A read-only streambuf over a byte span (no copy).
class SpanBuf : public std::streambuf {
 public:
  explicit SpanBuf(std::span<const std::uint8_t> s) {
    char* p = const_cast<char*>(reinterpret_cast<const char*>(s.data()));
    setg(p, p, p + s.size());
  }
  /// Bytes not read yet.
  [[nodiscard]] std::size_t remaining() const noexcept { return static_cast<std::size_t>(egptr() - gptr()); }
};

/// Cuts a text to at most `n` bytes.
inline std::string cut(std::string s, std::size_t n) {
  if (s.size() > n) s.resize(n);
  return s;
}

}  // namespace detail

/// Client -> server, first message: who the client is and what it speaks.
struct Hello {
  std::uint32_t client = 0;       ///< the client's id in the federation (0..N-1)
  std::string token{};            ///< per-client token (empty with certificate authentication)
  std::uint16_t codec = 0;        ///< Codec id of the client's compressor (see probe_codec)
  std::uint8_t scalar_bytes = 4;  ///< sizeof the model's scalar (4 float, 8 double)
  std::uint64_t dim = 0;          ///< the model's number of parameters
  std::string software{};         ///< free-form client name and version, for the server's log

  /// cereal save.
  template <class A>
  void save(A& ar) const {
    ar(client);
    detail::save_string(ar, token);
    ar(codec, scalar_bytes, dim);
    detail::save_string(ar, software);
  }
  /// cereal load (bounded strings).
  template <class A>
  void load(A& ar) {
    ar(client);
    detail::load_string(ar, token, max_token_bytes, "hello.token");
    ar(codec, scalar_bytes, dim);
    detail::load_string(ar, software, max_name_bytes, "hello.software");
  }
};

/// Server -> client: accepted.
struct Welcome {
  std::uint32_t client = 0;        ///< the accepted id
  std::uint32_t num_clients = 0;   ///< the federation's size N
  std::uint32_t heartbeat_ms = 0;  ///< how often the client sends heartbeats
  std::uint32_t max_frame = default_max_frame;  ///< the largest frame body the server accepts

  /// cereal serialize.
  template <class A>
  void serialize(A& ar) {
    ar(client, num_clients, heartbeat_ms, max_frame);
  }
};

/// Why a server rejected a hello.
enum class RejectReason : std::uint8_t {
  version_mismatch = 1,    ///< the client speaks another protocol version
  unknown_client = 2,      ///< id outside 0..N-1
  duplicate_client = 3,    ///< that id is connected already
  bad_credentials = 4,     ///< token or certificate missing or wrong
  codec_mismatch = 5,      ///< the server decodes another codec
  scalar_mismatch = 6,     ///< float vs double
  dimension_mismatch = 7,  ///< another model dimension
  shutting_down = 8,       ///< the server is finishing
};

/// The ProtocolErrc of a reject reason.
[[nodiscard]] constexpr ProtocolErrc to_errc(RejectReason r) noexcept {
  switch (r) {
    case RejectReason::version_mismatch: return ProtocolErrc::version_mismatch;
    case RejectReason::unknown_client: return ProtocolErrc::unknown_client;
    case RejectReason::duplicate_client: return ProtocolErrc::duplicate_client;
    case RejectReason::bad_credentials: return ProtocolErrc::bad_credentials;
    case RejectReason::codec_mismatch: return ProtocolErrc::codec_mismatch;
    case RejectReason::scalar_mismatch: return ProtocolErrc::scalar_mismatch;
    case RejectReason::dimension_mismatch: return ProtocolErrc::dimension_mismatch;
    case RejectReason::shutting_down: return ProtocolErrc::shutting_down;
  }
  return ProtocolErrc::rejected;
}

/// Server -> client: refused (the server closes the connection after it).
struct Reject {
  RejectReason reason = RejectReason::bad_credentials;  ///< machine-readable reason
  std::string text{};                                   ///< human-readable detail

  /// cereal save.
  template <class A>
  void save(A& ar) const {
    ar(static_cast<std::uint8_t>(reason));
    detail::save_string(ar, text);
  }
  /// cereal load.
  template <class A>
  void load(A& ar) {
    detail::load_enum(ar, reason, RejectReason::version_mismatch, RejectReason::shutting_down, "reject.reason");
    detail::load_string(ar, text, max_text_bytes, "reject.text");
  }
};

/// Server -> client: train on this round's model. Bulk: model bytes, then broadcast bytes.
struct RoundHead {
  std::uint64_t round = 0;          ///< round index
  std::uint64_t seed = 0;           ///< run seed
  std::uint32_t deadline_ms = 0;    ///< time the client has for this round (0: no deadline)
  std::uint8_t scalar_bytes = 4;    ///< sizeof the scalar of model and broadcast
  std::uint64_t model_count = 0;    ///< model entries
  std::uint64_t aux_count = 0;      ///< broadcast entries (0: none)

  /// cereal serialize.
  template <class A>
  void serialize(A& ar) {
    ar(round, seed, deadline_ms, scalar_bytes, model_count, aux_count);
  }
};

/// Client -> server: the answer to a round. Bulk: payload bytes, then aux bytes.
struct ReplyHead {
  std::uint64_t round = 0;               ///< the round answered
  std::uint8_t status = 0;               ///< ReplyStatus
  std::uint8_t reason = 0;               ///< FailureReason
  double weight = 0.0;                   ///< aggregation weight
  double train_loss = 0.0;               ///< LocalResult::train_loss
  std::int64_t steps = 0;                ///< LocalResult::steps
  std::int64_t samples = 0;              ///< LocalResult::samples
  std::string error{};                   ///< what went wrong (status != ok)
  std::uint64_t payload_bytes = 0;       ///< payload bytes in the bulk
  std::uint64_t aux_bytes = 0;           ///< aux bytes in the bulk

  /// cereal save.
  template <class A>
  void save(A& ar) const {
    ar(round, status, reason, weight, train_loss, steps, samples);
    detail::save_string(ar, error);
    ar(payload_bytes, aux_bytes);
  }
  /// cereal load.
  template <class A>
  void load(A& ar) {
    ar(round, status, reason, weight, train_loss, steps, samples);
    if (status > 2) protocol_fail(ProtocolErrc::malformed_head, "fedpp::net::load", "reply.status out of range", unsigned{status});
    if (reason > 5) protocol_fail(ProtocolErrc::malformed_head, "fedpp::net::load", "reply.reason out of range", unsigned{reason});
    detail::load_string(ar, error, max_text_bytes, "reply.error");
    ar(payload_bytes, aux_bytes);
  }
};

/// Either way: alive. From a client, also whether it is training and which round.
struct Heartbeat {
  std::uint64_t seq = 0;       ///< sender's heartbeat counter
  std::uint8_t training = 0;   ///< 1 while the client trains
  std::uint64_t round = 0;     ///< the round being trained (when training)

  /// cereal serialize.
  template <class A>
  void serialize(A& ar) {
    ar(seq, training, round);
  }
};

/// Why a peer says goodbye.
enum class GoodbyeReason : std::uint8_t {
  finished = 1,        ///< the training is over (server) or the client stops (client)
  shutting_down = 2,   ///< the server stops early
  protocol_error = 3,  ///< the peer broke the protocol (the text says how)
};

/// Either way: closing.
struct Goodbye {
  GoodbyeReason reason = GoodbyeReason::finished;  ///< machine-readable reason
  std::string text{};                              ///< detail

  /// cereal save.
  template <class A>
  void save(A& ar) const {
    ar(static_cast<std::uint8_t>(reason));
    detail::save_string(ar, text);
  }
  /// cereal load.
  template <class A>
  void load(A& ar) {
    detail::load_enum(ar, reason, GoodbyeReason::finished, GoodbyeReason::protocol_error, "goodbye.reason");
    detail::load_string(ar, text, max_text_bytes, "goodbye.text");
  }
};

/// Any message head.
using Head = std::variant<Hello, Welcome, Reject, RoundHead, ReplyHead, Heartbeat, Goodbye>;

/// The message type of a head.
[[nodiscard]] inline MessageType type_of(const Head& h) noexcept {
  constexpr MessageType types[] = {MessageType::hello,         MessageType::welcome, MessageType::reject,
                                   MessageType::round_request, MessageType::reply,   MessageType::heartbeat,
                                   MessageType::goodbye};
  return types[h.index()];
}

/// Bulk bytes that follow a head: (first part, second part).
[[nodiscard]] inline std::pair<std::uint64_t, std::uint64_t> bulk_sizes(const Head& h) {
  if (const auto* r = std::get_if<RoundHead>(&h)) {
    // Counts times scalar_bytes (any byte value, not only 4 or 8) must not wrap around.
    const std::uint64_t cap = std::numeric_limits<std::uint64_t>::max() / std::max<std::uint64_t>(r->scalar_bytes, 1);
    if (r->model_count > cap || r->aux_count > cap)
      protocol_fail(ProtocolErrc::wrong_length, "fedpp::net::bulk_sizes", "round request too large", r->model_count);
    return {r->model_count * r->scalar_bytes, r->aux_count * r->scalar_bytes};
  }
  if (const auto* r = std::get_if<ReplyHead>(&h)) return {r->payload_bytes, r->aux_bytes};
  return {0, 0};
}

/// A complete inbound message: its head and its bulk bytes (empty when it has none).
struct Message {
  Head head;                          ///< the parsed head
  std::vector<std::uint8_t> bulk1{};  ///< model (round request) or payload (reply)
  std::vector<std::uint8_t> bulk2{};  ///< broadcast (round request) or aux (reply)

  /// The message's type.
  [[nodiscard]] MessageType type() const noexcept { return type_of(head); }
};

/// Encodes a head (cereal portable binary).
[[nodiscard]] inline std::vector<std::uint8_t> encode_head(const Head& h) {
  std::ostringstream os(std::ios::binary);
  {
    cereal::PortableBinaryOutputArchive ar(os);
    std::visit([&](const auto& m) { ar(m); }, h);
  }
  const std::string s = std::move(os).str();
  return {s.begin(), s.end()};
}

/// Parses a head of type `t` from exactly `body` (throws ProtocolError: malformed or wrong length).
[[nodiscard]] inline Head parse_head(MessageType t, std::span<const std::uint8_t> body) {
  constexpr std::string_view who = "fedpp::net::parse_head";
  detail::SpanBuf buf(body);
  std::istream is(&buf);
  Head h;
  switch (t) {
    case MessageType::hello: h.emplace<Hello>(); break;
    case MessageType::welcome: h.emplace<Welcome>(); break;
    case MessageType::reject: h.emplace<Reject>(); break;
    case MessageType::round_request: h.emplace<RoundHead>(); break;
    case MessageType::reply: h.emplace<ReplyHead>(); break;
    case MessageType::heartbeat: h.emplace<Heartbeat>(); break;
    case MessageType::goodbye: h.emplace<Goodbye>(); break;
    case MessageType::data:
    default: protocol_fail(ProtocolErrc::unexpected_message, who, "not a head type", static_cast<unsigned>(t));
  }
  try {
    cereal::PortableBinaryInputArchive ar(is);
    std::visit([&](auto& m) { ar(m); }, h);
  } catch (const ProtocolError&) {
    throw;
  } catch (const std::exception& e) {
    protocol_fail(ProtocolErrc::malformed_head, who, std::string(to_string(t)) + " head does not parse", e.what());
  }
  if (buf.remaining() != 0)
    protocol_fail(ProtocolErrc::wrong_length, who, std::string(to_string(t)) + " head has trailing bytes",
                  buf.remaining());
  return h;
}

/// An outbound message as frames: headers and head body owned here, bulk bytes borrowed.
/**
 * `buffers()` lists, in order, each frame's 24 header bytes and its body parts; bulk parts
 * point into the spans given to encode_message, which must stay alive (with `keep_alive`)
 * until the message is written. One encoded message can be written to many connections.
 */
class OutboundMessage {
 public:
  /// A piece of the byte stream: a pointer and a size.
  struct Piece {
    const std::uint8_t* data;  ///< first byte
    std::size_t size;          ///< bytes
  };

  /// The pieces in stream order (frame header, body, frame header, body, ...).
  [[nodiscard]] const std::vector<Piece>& pieces() const noexcept { return pieces_; }
  /// Total bytes on the wire.
  [[nodiscard]] std::size_t bytes() const noexcept { return bytes_; }
  /// The message type.
  [[nodiscard]] MessageType type() const noexcept { return type_; }
  /// Keeps borrowed bulk memory alive (optional).
  std::shared_ptr<const void> keep_alive{};

  /// Encodes `head` and its bulk (`bulk1` then `bulk2`, sizes as bulk_sizes(head) says) in
  /// data frames of at most `max_frame` body bytes.
  static std::shared_ptr<OutboundMessage> encode(const Head& head, std::span<const std::uint8_t> bulk1 = {},
                                                 std::span<const std::uint8_t> bulk2 = {},
                                                 std::uint32_t max_frame = default_max_frame) {
    constexpr std::string_view who = "fedpp::net::OutboundMessage::encode";
    const auto [n1, n2] = bulk_sizes(head);
    if (n1 != bulk1.size() || n2 != bulk2.size())
      protocol_fail(ProtocolErrc::wrong_length, who, "bulk bytes must match the head's sizes " + std::to_string(n1) +
                                                         " + " + std::to_string(n2),
                    bulk1.size() + bulk2.size());
    if (max_frame == 0) protocol_fail(ProtocolErrc::oversized_frame, who, "max_frame must be > 0", max_frame);
    auto m = std::make_shared<OutboundMessage>();
    m->type_ = type_of(head);
    m->head_ = encode_head(head);
    if (m->head_.size() > max_head_bytes)
      protocol_fail(ProtocolErrc::oversized_frame, who, "head larger than max_head_bytes", m->head_.size());
    const std::size_t total = bulk1.size() + bulk2.size();
    const std::size_t frames = (total + max_frame - 1) / max_frame;
    m->headers_.reserve(1 + frames);
    m->pieces_.reserve(2 + 3 * frames);
    m->headers_.push_back(make_header(m->type_, total == 0, m->head_));
    m->add(m->headers_.back());
    m->add(m->head_);
    std::size_t off = 0;
    while (off < total) {
      const std::size_t len = std::min<std::size_t>(max_frame, total - off);
      // The frame's body: [off, off+len) of bulk1 ++ bulk2.
      std::span<const std::uint8_t> p1, p2;
      if (off < bulk1.size()) {
        p1 = bulk1.subspan(off, std::min(len, bulk1.size() - off));
        if (p1.size() < len) p2 = bulk2.first(len - p1.size());
      } else {
        p1 = bulk2.subspan(off - bulk1.size(), len);
      }
      off += len;
      m->headers_.push_back(make_header(MessageType::data, off == total, p1, p2));
      m->add(m->headers_.back());
      m->add(p1);
      m->add(p2);
    }
    return m;
  }

  OutboundMessage() = default;
  OutboundMessage(const OutboundMessage&) = delete;
  OutboundMessage& operator=(const OutboundMessage&) = delete;

 private:
  void add(std::span<const std::uint8_t> s) {
    if (s.empty()) return;
    pieces_.push_back({s.data(), s.size()});
    bytes_ += s.size();
  }

  MessageType type_ = MessageType::heartbeat;
  std::vector<std::uint8_t> head_;
  std::vector<std::array<std::uint8_t, frame_header_size>> headers_;  // reserved up front: no reallocation
  std::vector<Piece> pieces_;
  std::size_t bytes_ = 0;
};

/// Receiver limits.
struct DecoderLimits {
  std::uint32_t max_frame = default_max_frame;  ///< largest frame body accepted
  std::uint64_t max_bulk = 1ull << 32;          ///< largest total bulk of one message
};

/// Sans-IO inbound decoder: header -> where its body goes -> message.
/**
 * Use: `auto t = dec.on_header(bytes)`; read exactly `t.size()` bytes into t.first then
 * t.second; `auto m = dec.on_body()` returns the message when it is complete. Every violation
 * throws ProtocolError (the connection must then be closed): header errors (parse_header),
 * a data frame where a head is expected or a head inside a message's data, a frame larger than
 * the rest of the bulk, a wrong `last` flag, a bad checksum, a head that does not parse, bulk
 * larger than the limits. Bulk buffers are obtained from `alloc` (default: new vectors) when
 * the first data frame arrives, so a caller can wait (budget) between a head and its data.
 */
class FrameDecoder {
 public:
  /// Makes the bulk buffer for `n` bytes (size n).
  using Allocator = std::function<std::vector<std::uint8_t>(std::size_t n)>;

  /// Where a frame's body goes: `first` then `second`.
  struct Target {
    std::span<std::uint8_t> first{};   ///< first part
    std::span<std::uint8_t> second{};  ///< second part (empty unless a frame straddles bulk1 and bulk2)
    /// Total bytes to read.
    [[nodiscard]] std::size_t size() const noexcept { return first.size() + second.size(); }
  };

  /// A decoder with the given limits.
  explicit FrameDecoder(DecoderLimits limits = {}, Allocator alloc = {}) : limits_(limits), alloc_(std::move(alloc)) {}

  /// Parses a frame header and says where its body goes.
  Target on_header(std::span<const std::uint8_t, frame_header_size> bytes) {
    constexpr std::string_view who = "fedpp::net::FrameDecoder";
    if (in_frame_) protocol_fail(ProtocolErrc::unexpected_message, who, "header before the previous body", 0);
    hdr_ = parse_header(bytes, limits_.max_frame);
    std::memcpy(raw_.data(), bytes.data(), frame_header_size);
    if (pending_) {  // inside a message's bulk: only data frames
      if (hdr_.type != MessageType::data)
        protocol_fail(ProtocolErrc::unexpected_message, who,
                      "a data frame must follow, " + std::to_string(remaining_) + " bulk bytes missing",
                      to_string(hdr_.type));
      if (hdr_.length == 0 || hdr_.length > remaining_)
        protocol_fail(ProtocolErrc::wrong_length, who,
                      "data frame length must be in [1, " + std::to_string(remaining_) + "]", hdr_.length);
      if (hdr_.last() != (hdr_.length == remaining_))
        protocol_fail(ProtocolErrc::bad_flags, who, "the last flag must mark the last data frame", hdr_.flags);
      if (!allocated_) allocate();
      const std::uint64_t off = total_ - remaining_;
      Target t;
      const std::uint64_t n1 = msg_.bulk1.size();
      if (off < n1) {
        const std::size_t a = static_cast<std::size_t>(std::min<std::uint64_t>(hdr_.length, n1 - off));
        t.first = std::span<std::uint8_t>(msg_.bulk1).subspan(static_cast<std::size_t>(off), a);
        if (a < hdr_.length) t.second = std::span<std::uint8_t>(msg_.bulk2).first(hdr_.length - a);
      } else {
        t.first = std::span<std::uint8_t>(msg_.bulk2).subspan(static_cast<std::size_t>(off - n1), hdr_.length);
      }
      target_ = t;
    } else {
      if (hdr_.type == MessageType::data)
        protocol_fail(ProtocolErrc::unexpected_message, who, "data frame without a message head", hdr_.length);
      head_buf_.resize(hdr_.length);
      target_ = Target{head_buf_, {}};
    }
    in_frame_ = true;
    return target_;
  }

  /// Verifies the body just read into the target; returns the message when it is complete.
  std::optional<Message> on_body() {
    constexpr std::string_view who = "fedpp::net::FrameDecoder";
    if (!in_frame_) protocol_fail(ProtocolErrc::unexpected_message, who, "body without a header", 0);
    in_frame_ = false;
    const std::uint64_t sum = frame_checksum(raw_, target_.first, target_.second);
    if (sum != hdr_.checksum)
      protocol_fail(ProtocolErrc::bad_checksum, who, std::string(to_string(hdr_.type)) + " frame checksum mismatch",
                    hdr_.checksum);
    if (pending_) {
      remaining_ -= hdr_.length;
      if (remaining_ > 0) return std::nullopt;
      pending_ = false;
      allocated_ = false;
      return std::move(msg_);
    }
    msg_ = Message{parse_head(hdr_.type, head_buf_)};
    const auto [n1, n2] = bulk_sizes(msg_.head);
    if (n1 > limits_.max_bulk || n2 > limits_.max_bulk - n1)
      protocol_fail(ProtocolErrc::wrong_length, who,
                    std::string(to_string(hdr_.type)) + " bulk must be at most " + std::to_string(limits_.max_bulk) +
                        " bytes",
                    n1 + n2);
    total_ = n1 + n2;
    if (hdr_.last() != (total_ == 0))
      protocol_fail(ProtocolErrc::bad_flags, who,
                    std::string(to_string(hdr_.type)) + " head's last flag must be set exactly when no bulk follows",
                    hdr_.flags);
    if (total_ == 0) return std::move(msg_);
    pending_ = true;
    remaining_ = total_;
    bulk_sizes_ = {n1, n2};
    return std::nullopt;
  }

  /// Bulk bytes still expected for the current message (0 between messages).
  [[nodiscard]] std::uint64_t pending_bulk() const noexcept { return pending_ ? remaining_ : 0; }
  /// The head of the message whose bulk is being received (valid while pending_bulk() > 0).
  [[nodiscard]] const Head& pending_head() const noexcept { return msg_.head; }
  /// Whether a frame's body is expected next.
  [[nodiscard]] bool in_frame() const noexcept { return in_frame_; }
  /// The last parsed header.
  [[nodiscard]] const FrameHeader& header() const noexcept { return hdr_; }
  /// The limits.
  [[nodiscard]] const DecoderLimits& limits() const noexcept { return limits_; }
  /// Changes the limits (between messages).
  void set_limits(DecoderLimits l) noexcept { limits_ = l; }

 private:
  void allocate() {
    auto make = [&](std::uint64_t n) {
      std::vector<std::uint8_t> v = alloc_ && n > 0 ? alloc_(static_cast<std::size_t>(n)) : std::vector<std::uint8_t>();
      v.resize(static_cast<std::size_t>(n));
      return v;
    };
    msg_.bulk1 = make(bulk_sizes_.first);
    msg_.bulk2 = make(bulk_sizes_.second);
    allocated_ = true;
  }

  DecoderLimits limits_;
  Allocator alloc_;
  FrameHeader hdr_{};
  std::array<std::uint8_t, frame_header_size> raw_{};
  std::vector<std::uint8_t> head_buf_;
  Target target_{};
  Message msg_{Head{}};
  std::pair<std::uint64_t, std::uint64_t> bulk_sizes_{0, 0};
  std::uint64_t total_ = 0, remaining_ = 0;
  bool in_frame_ = false, pending_ = false, allocated_ = false;
};

}  // namespace fedpp::net
