// libFuzzer target for fedpp's wire protocol (include/fedpp/net/frame.hpp, protocol.hpp): arbitrary
// bytes fed to the FrameDecoder the way a socket reader feeds it, and to every head parser, must
// either decode or throw fedpp::net::ProtocolError -- never crash, read out of bounds (ASan), hit
// undefined behaviour (UBSan), allocate what the input claims without a bound (libFuzzer's malloc
// limit), or throw anything else (an escaping exception aborts and is reported).
//
// Input layout: byte 0 holds flags, the rest is the byte stream.
//   bit 0 clear: before each header goes to the decoder, its checksum field is recomputed over the
//                header and the body bytes that follow, so mutations get past the checksum and
//                reach the head parsers and the bulk logic; set: the stream's own checksums are
//                kept (the bad_checksum path).
//   bit 1:       the receiver's max frame size is 1024 bytes instead of 65536.
// Every message that decodes is checked: its bulk sizes match its head, and encoding it again
// (OutboundMessage, other frame sizes) and decoding that gives the same head bytes and bulk.
// The stream after byte 0 is also given to parse_head as the body of each head type; a head that
// parses with the little-endian marker (first byte 1) must encode back to exactly those bytes.
// Built with clang (-fsanitize=fuzzer,address,undefined) by tests/fuzz/CMakeLists.txt, run with
// -max_len=65536; seeds come from make_net_seeds.cpp. See docs/testing.md.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "fedpp/net/frame.hpp"
#include "fedpp/net/protocol.hpp"

namespace {

using namespace fedpp::net;
using Bytes = std::vector<std::uint8_t>;

[[noreturn]] void bug(const char* what, const char* detail = "") {
  std::fprintf(stderr, "net_fuzz: %s %s\n", what, detail);
  std::abort();
}

// parse_head reports any std::exception from cereal as malformed_head with its text: one that came
// from a failed allocation means a size was used before it was checked.
void check_error(const ProtocolError& e) {
  const char* w = e.what();
  if (std::strstr(w, "bad_alloc") || std::strstr(w, "basic_string") || std::strstr(w, "vector"))
    bug("an allocation failed inside the protocol layer:", w);
}

Bytes wire_of(const OutboundMessage& m) {
  Bytes w;
  w.reserve(m.bytes());
  for (const auto& p : m.pieces()) w.insert(w.end(), p.data, p.data + p.size);
  return w;
}

// Decodes a complete, valid stream (no exception is allowed here).
std::vector<Message> decode_all(const Bytes& s, DecoderLimits limits) {
  FrameDecoder d(limits);
  std::vector<Message> out;
  std::size_t pos = 0;
  while (pos < s.size()) {
    if (s.size() - pos < frame_header_size) bug("re-encoded stream ends inside a header");
    const auto t = d.on_header(std::span<const std::uint8_t, frame_header_size>(s.data() + pos, frame_header_size));
    pos += frame_header_size;
    if (s.size() - pos < t.size()) bug("re-encoded stream ends inside a body");
    std::memcpy(t.first.data(), s.data() + pos, t.first.size());
    pos += t.first.size();
    if (!t.second.empty()) std::memcpy(t.second.data(), s.data() + pos, t.second.size());
    pos += t.second.size();
    if (auto m = d.on_body()) out.push_back(std::move(*m));
  }
  if (d.pending_bulk() != 0 || d.in_frame()) bug("re-encoded stream left the decoder inside a message");
  return out;
}

// A decoded message re-encodes (in frames of another size) and decodes to itself.
void check_message(const Message& m, DecoderLimits limits, std::uint32_t frame) {
  const auto [n1, n2] = bulk_sizes(m.head);
  if (m.bulk1.size() != n1 || m.bulk2.size() != n2) bug("bulk sizes differ from the head's");
  const Bytes head = encode_head(m.head);
  const auto out = OutboundMessage::encode(m.head, m.bulk1, m.bulk2, frame);
  const std::vector<Message> back = decode_all(wire_of(*out), limits);
  if (back.size() != 1) bug("a re-encoded message does not decode to one message");
  if (back[0].type() != m.type() || encode_head(back[0].head) != head) bug("a re-encoded head differs");
  if (back[0].bulk1 != m.bulk1 || back[0].bulk2 != m.bulk2) bug("re-encoded bulk differs");
}

// Drives a FrameDecoder over the stream like a socket reader: 24 header bytes, then exactly the
// bytes of the target, until the input ends (a real reader would then report truncated_frame).
void drive_decoder(std::span<const std::uint8_t> s, bool patch, DecoderLimits limits) {
  std::vector<Message> got;
  try {
    FrameDecoder d(limits);
    std::size_t pos = 0;
    while (s.size() - pos >= frame_header_size) {
      std::array<std::uint8_t, frame_header_size> h;
      std::memcpy(h.data(), s.data() + pos, frame_header_size);
      pos += frame_header_size;
      if (patch) {
        std::uint32_t len = 0;
        std::memcpy(&len, h.data() + 8, 4);
        const std::size_t avail = std::min<std::size_t>(len, s.size() - pos);
        const std::uint64_t sum = frame_checksum(h, s.subspan(pos, avail));
        std::memcpy(h.data() + 16, &sum, 8);
      }
      const FrameDecoder::Target t = d.on_header(h);
      if (t.size() != d.header().length) bug("target size differs from the frame length");
      if (s.size() - pos < t.size()) break;
      if (!t.first.empty()) std::memcpy(t.first.data(), s.data() + pos, t.first.size());
      pos += t.first.size();
      if (!t.second.empty()) std::memcpy(t.second.data(), s.data() + pos, t.second.size());
      pos += t.second.size();
      if (auto m = d.on_body()) got.push_back(std::move(*m));
    }
  } catch (const ProtocolError& e) {
    check_error(e);
  }
  // Outside the try: an exception from here on is a bug.
  for (const Message& m : got) check_message(m, limits, 777);
}

// Parses the stream as the head body of each type.
void parse_heads(std::span<const std::uint8_t> s) {
  constexpr MessageType types[] = {MessageType::hello,     MessageType::welcome, MessageType::reject,
                                   MessageType::round_request, MessageType::reply, MessageType::heartbeat,
                                   MessageType::goodbye,   MessageType::data};
  for (MessageType t : types) {
    std::optional<Head> h;
    try {
      h = parse_head(t, s);
    } catch (const ProtocolError& e) {
      check_error(e);
      continue;
    }
    if (t == MessageType::data) bug("parse_head accepted the data type");
    if (type_of(*h) != t) bug("parse_head returned another type");
    const Bytes again = encode_head(*h);
    if (!s.empty() && s[0] == 1 && !std::equal(again.begin(), again.end(), s.begin(), s.end()))
      bug("a head does not encode back to the bytes it was parsed from");
    if (encode_head(parse_head(t, again)) != again) bug("a head does not round-trip");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::uint8_t flags = data[0];
  const std::span<const std::uint8_t> s(data + 1, size - 1);
  DecoderLimits limits;
  limits.max_frame = (flags & 2) ? 1024 : 65536;
  limits.max_bulk = 1u << 20;
  drive_decoder(s, (flags & 1) == 0, limits);
  parse_heads(s);
  if (s.size() >= frame_header_size) {
    try {
      (void)parse_header(s.first<frame_header_size>(), limits.max_frame);
    } catch (const ProtocolError& e) {
      check_error(e);
    }
  }
  return 0;
}
