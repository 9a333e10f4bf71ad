// The wire protocol below the sockets (include/fedpp/net/frame.hpp, protocol.hpp): the frame
// checksum against a brute-force re-implementation of its documented definition, the 24-byte
// header byte by byte and each of its rejections, every message head (round trip, truncation,
// trailing bytes, string bounds, enum ranges), and the outbound encoder driven into the sans-IO
// decoder exactly as a socket reader does, with each protocol violation and its error code.
// Expected values are written out here (header layout, cereal's portable-binary bytes, the
// checksum's definition), never computed by the code under test.
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "fedpp/net/frame.hpp"
#include "fedpp/net/protocol.hpp"

// A named namespace with using-declarations (not a using-directive): tests/unit/net is compiled as
// one unity translation unit, so nothing here may change how the other files' names resolve.
namespace protocol_test {

using fedpp::net::bulk_sizes;
using fedpp::net::DecoderLimits;
using fedpp::net::default_max_frame;
using fedpp::net::encode_head;
using fedpp::net::encode_header;
using fedpp::net::frame_checksum;
using fedpp::net::frame_flag_last;
using fedpp::net::frame_header_size;
using fedpp::net::FrameChecksum;
using fedpp::net::FrameDecoder;
using fedpp::net::FrameHeader;
using fedpp::net::Goodbye;
using fedpp::net::GoodbyeReason;
using fedpp::net::Head;
using fedpp::net::Heartbeat;
using fedpp::net::Hello;
using fedpp::net::make_header;
using fedpp::net::max_head_bytes;
using fedpp::net::MessageType;
using fedpp::net::OutboundMessage;
using fedpp::net::parse_head;
using fedpp::net::parse_header;
using fedpp::net::ProtocolErrc;
using fedpp::net::ProtocolError;
using fedpp::net::Reject;
using fedpp::net::RejectReason;
using fedpp::net::ReplyHead;
using fedpp::net::RoundHead;
using fedpp::net::Welcome;

using Bytes = std::vector<std::uint8_t>;
using HeaderBytes = std::array<std::uint8_t, 24>;

// ---------------------------------------------------------------------------------------------
// Reference checksum, written from FrameChecksum's documented definition with plain loops.

// SplitMix64's output function (Steele, Lea & Flood 2014) applied to z: add the golden gamma, then
// the two xor-shift-multiply rounds and a final xor-shift.
std::uint64_t ref_splitmix(std::uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::uint64_t ref_rotl(std::uint64_t x, unsigned k) { return (x << k) | (x >> (64 - k)); }

// Four lanes; lane l takes the little-endian 8-byte words l, l+4, l+8, ... of the stream, the tail
// zero-padded into a final 32-byte block; a = running sum of the lane's words (starting from the
// first 256 bits of pi's fraction, as the header's definition does), b = running sum of a. Then
// h = mix(total length ^ 0x6a09e667f3bcc908) and, per lane, h = mix(h ^ mix(a ^ rotl(b, 29))).
std::uint64_t ref_checksum(const Bytes& in) {
  Bytes p = in;
  while (p.size() % 32 != 0) p.push_back(0);
  std::uint64_t a[4] = {0x243f6a8885a308d3ULL, 0x13198a2e03707344ULL, 0xa4093822299f31d0ULL, 0x082efa98ec4e6c89ULL};
  std::uint64_t b[4] = {0, 0, 0, 0};
  for (std::size_t j = 0; j * 8 < p.size(); ++j) {
    std::uint64_t w = 0;
    for (std::size_t k = 8; k-- > 0;) w = (w << 8) | p[j * 8 + k];
    a[j % 4] += w;
    b[j % 4] += a[j % 4];
  }
  std::uint64_t h = ref_splitmix(static_cast<std::uint64_t>(in.size()) ^ 0x6a09e667f3bcc908ULL);
  for (int l = 0; l < 4; ++l) h = ref_splitmix(h ^ ref_splitmix(a[l] ^ ref_rotl(b[l], 29)));
  return h;
}

// FrameChecksum over `b` in one update.
std::uint64_t checksum_of(const Bytes& b) {
  FrameChecksum c;
  c.update(b);
  return c.finish();
}

Bytes random_bytes(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 g(seed);
  Bytes b(n);
  for (auto& x : b) x = static_cast<std::uint8_t>(g() >> 56);
  return b;
}

Bytes concat(const Bytes& a, const Bytes& b) {
  Bytes r = a;
  r.insert(r.end(), b.begin(), b.end());
  return r;
}

// Little-endian helpers.
void put_le(Bytes& out, std::uint64_t v, int n) {
  for (int i = 0; i < n; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
std::uint64_t get_le(const std::uint8_t* p, int n) {
  std::uint64_t v = 0;
  for (int i = n; i-- > 0;) v = (v << 8) | p[i];
  return v;
}

// ---------------------------------------------------------------------------------------------
// Errors: "no error", or the code's value and text, so a failed check prints both sides readably.

std::string errc_text(ProtocolErrc c) {
  return "fedpp.net:" + std::to_string(static_cast<int>(c)) + " " + make_error_code(c).message();
}

// Runs f; returns errc_text of the ProtocolError it throws (its category checked), or "no error".
// Any other exception (std::bad_alloc included) escapes and fails the test.
template <typename F>
std::string protocol_error_of(F&& f, std::string* what = nullptr) {
  try {
    f();
  } catch (const ProtocolError& e) {
    CHECK(e.code().category() == fedpp::net::protocol_category());
    CHECK(std::string(e.what()).rfind("fedpp::net::", 0) == 0);
    if (what) *what = e.what();
    return errc_text(static_cast<ProtocolErrc>(e.code().value()));
  }
  return "no error";
}

// ---------------------------------------------------------------------------------------------
// Headers written byte by byte from the documented layout.

HeaderBytes raw_header(std::uint32_t magic, std::uint8_t version, std::uint8_t type, std::uint16_t flags,
                       std::uint32_t length, std::uint32_t reserved, std::uint64_t checksum) {
  Bytes b;
  put_le(b, magic, 4);
  b.push_back(version);
  b.push_back(type);
  put_le(b, flags, 2);
  put_le(b, length, 4);
  put_le(b, reserved, 4);
  put_le(b, checksum, 8);
  HeaderBytes h{};
  std::copy(b.begin(), b.end(), h.begin());
  return h;
}

constexpr std::uint32_t magic_fdpp = 0x50504446u;  // 'F' 'D' 'P' 'P' read little-endian

HeaderBytes good_header(std::uint8_t type, std::uint32_t length, std::uint16_t flags = 1) {
  return raw_header(magic_fdpp, 1, type, flags, length, 0, 0x0123456789abcdefULL);
}

// A header followed by a body. (One allocation, sized up front: GCC 12 warns, wrongly, about
// -Warray-bounds when a vector built from the 24 header bytes is then appended to.)
Bytes frame_of(const HeaderBytes& h, const Bytes& body) {
  Bytes f(h.size() + body.size());
  std::copy(h.begin(), h.end(), f.begin());
  std::copy(body.begin(), body.end(), f.begin() + static_cast<std::ptrdiff_t>(h.size()));
  return f;
}

// A frame (header + body) with a correct checksum, built by hand: the header's first 16 bytes,
// then the body, through the reference checksum.
Bytes hand_frame(std::uint8_t type, std::uint16_t flags, const Bytes& body) {
  HeaderBytes h = raw_header(magic_fdpp, 1, type, flags, static_cast<std::uint32_t>(body.size()), 0, 0);
  const std::uint64_t sum = ref_checksum(concat(Bytes(h.begin(), h.begin() + 16), body));
  for (int i = 0; i < 8; ++i) h[16 + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(sum >> (8 * i));
  return frame_of(h, body);
}

// ---------------------------------------------------------------------------------------------
// Heads: sample values, field-by-field comparison, hand-written portable-binary prefixes.

Hello sample_hello() {
  Hello h;
  h.client = 0xdeadbeefu;
  h.token = "secret token \x01\xff";
  h.codec = 0xbeef;
  h.scalar_bytes = 8;
  h.dim = 0x0102030405060708ULL;
  h.software = "fedpp test 1.0";
  return h;
}
Welcome sample_welcome() { return Welcome{7, 1000, 250, 123456}; }
Reject sample_reject() { return Reject{RejectReason::dimension_mismatch, "model has 10 entries, want 12"}; }
RoundHead sample_round() {
  RoundHead r;
  r.round = 0xfedcba9876543210ULL;
  r.seed = 42;
  r.deadline_ms = 30000;
  r.scalar_bytes = 8;
  r.model_count = 3;
  r.aux_count = 2;
  return r;
}
ReplyHead sample_reply() {
  ReplyHead r;
  r.round = 17;
  r.status = 2;
  r.reason = 5;
  r.weight = 0.3125;
  r.train_loss = -1.5e-300;
  r.steps = -9;
  r.samples = std::numeric_limits<std::int64_t>::min();
  r.error = "out of memory";
  r.payload_bytes = 11;
  r.aux_bytes = 5;
  return r;
}
Heartbeat sample_heartbeat() { return Heartbeat{0xffffffffffffffffULL, 1, 99}; }
Goodbye sample_goodbye() { return Goodbye{GoodbyeReason::protocol_error, "bad checksum"}; }

std::vector<Head> sample_heads() {
  return {sample_hello(), sample_welcome(), sample_reject(), sample_round(),
          sample_reply(), sample_heartbeat(), sample_goodbye()};
}

void check_same(const Hello& a, const Hello& b) {
  CHECK(a.client == b.client);
  CHECK(a.token == b.token);
  CHECK(a.codec == b.codec);
  CHECK(a.scalar_bytes == b.scalar_bytes);
  CHECK(a.dim == b.dim);
  CHECK(a.software == b.software);
}
void check_same(const Welcome& a, const Welcome& b) {
  CHECK(a.client == b.client);
  CHECK(a.num_clients == b.num_clients);
  CHECK(a.heartbeat_ms == b.heartbeat_ms);
  CHECK(a.max_frame == b.max_frame);
}
void check_same(const Reject& a, const Reject& b) {
  CHECK(a.reason == b.reason);
  CHECK(a.text == b.text);
}
void check_same(const RoundHead& a, const RoundHead& b) {
  CHECK(a.round == b.round);
  CHECK(a.seed == b.seed);
  CHECK(a.deadline_ms == b.deadline_ms);
  CHECK(a.scalar_bytes == b.scalar_bytes);
  CHECK(a.model_count == b.model_count);
  CHECK(a.aux_count == b.aux_count);
}
void check_same(const ReplyHead& a, const ReplyHead& b) {
  CHECK(a.round == b.round);
  CHECK(a.status == b.status);
  CHECK(a.reason == b.reason);
  CHECK(std::memcmp(&a.weight, &b.weight, sizeof(double)) == 0);
  CHECK(std::memcmp(&a.train_loss, &b.train_loss, sizeof(double)) == 0);
  CHECK(a.steps == b.steps);
  CHECK(a.samples == b.samples);
  CHECK(a.error == b.error);
  CHECK(a.payload_bytes == b.payload_bytes);
  CHECK(a.aux_bytes == b.aux_bytes);
}
void check_same(const Heartbeat& a, const Heartbeat& b) {
  CHECK(a.seq == b.seq);
  CHECK(a.training == b.training);
  CHECK(a.round == b.round);
}
void check_same(const Goodbye& a, const Goodbye& b) {
  CHECK(a.reason == b.reason);
  CHECK(a.text == b.text);
}
void check_same_head(const Head& a, const Head& b) {
  REQUIRE(a.index() == b.index());
  std::visit([&](const auto& x) { check_same(x, std::get<std::decay_t<decltype(x)>>(b)); }, a);
}

// The message type of each alternative of Head, in variant order (written out, not type_of).
constexpr MessageType head_types[] = {MessageType::hello,     MessageType::welcome, MessageType::reject,
                                      MessageType::round_request, MessageType::reply,   MessageType::heartbeat,
                                      MessageType::goodbye};

// ---------------------------------------------------------------------------------------------
// The socket side: the bytes of an outbound message, an independent frame walker, and a reader
// that feeds a FrameDecoder the way the connection does (24 header bytes, then the target bytes).

Bytes wire_of(const OutboundMessage& m) {
  Bytes w;
  for (const auto& p : m.pieces()) w.insert(w.end(), p.data, p.data + p.size);
  CHECK(w.size() == m.bytes());
  return w;
}

struct RawFrame {
  std::uint8_t type = 0;
  std::uint16_t flags = 0;
  Bytes header, body;
};

// Splits a stream into frames by reading the header fields directly (no parse_header).
std::vector<RawFrame> walk_frames(const Bytes& s) {
  std::vector<RawFrame> out;
  std::size_t pos = 0;
  while (pos < s.size()) {
    REQUIRE(s.size() - pos >= 24);
    RawFrame f;
    f.header.assign(s.begin() + static_cast<std::ptrdiff_t>(pos), s.begin() + static_cast<std::ptrdiff_t>(pos + 24));
    CHECK(get_le(&s[pos], 4) == magic_fdpp);
    CHECK(s[pos + 4] == 1);
    f.type = s[pos + 5];
    f.flags = static_cast<std::uint16_t>(get_le(&s[pos + 6], 2));
    const auto len = static_cast<std::size_t>(get_le(&s[pos + 8], 4));
    CHECK(get_le(&s[pos + 12], 4) == 0);
    pos += 24;
    REQUIRE(s.size() - pos >= len);
    f.body.assign(s.begin() + static_cast<std::ptrdiff_t>(pos), s.begin() + static_cast<std::ptrdiff_t>(pos + len));
    pos += len;
    // The checksum field: the reference checksum of header bytes 0..15 and the body.
    CHECK(get_le(&f.header[16], 8) == ref_checksum(concat(Bytes(f.header.begin(), f.header.begin() + 16), f.body)));
    out.push_back(std::move(f));
  }
  return out;
}

struct ReadResult {
  std::vector<fedpp::net::Message> messages;
  std::size_t frames = 0;
  std::size_t straddling = 0;  // frames whose target has a second part
};

ReadResult read_stream(FrameDecoder& d, const Bytes& s) {
  ReadResult r;
  std::size_t pos = 0;
  while (pos < s.size()) {
    REQUIRE(s.size() - pos >= frame_header_size);
    const FrameDecoder::Target t = d.on_header(std::span<const std::uint8_t, frame_header_size>(s.data() + pos, 24));
    pos += frame_header_size;
    REQUIRE(s.size() - pos >= t.size());
    std::copy_n(s.data() + pos, t.first.size(), t.first.data());
    pos += t.first.size();
    std::copy_n(s.data() + pos, t.second.size(), t.second.data());
    pos += t.second.size();
    if (!t.second.empty()) ++r.straddling;
    ++r.frames;
    if (auto m = d.on_body()) r.messages.push_back(std::move(*m));
  }
  return r;
}

// Feeds one frame (header and body bytes in one vector) into d.
std::optional<fedpp::net::Message> feed_frame(FrameDecoder& d, const Bytes& frame) {
  REQUIRE(frame.size() >= 24);
  const FrameDecoder::Target t = d.on_header(std::span<const std::uint8_t, frame_header_size>(frame.data(), 24));
  REQUIRE(frame.size() - 24 == t.size());
  std::copy_n(frame.data() + 24, t.first.size(), t.first.data());
  std::copy_n(frame.data() + 24 + t.first.size(), t.second.size(), t.second.data());
  return d.on_body();
}

// A reply head announcing n1 payload and n2 aux bytes.
ReplyHead reply_with(std::uint64_t n1, std::uint64_t n2) {
  ReplyHead r = sample_reply();
  r.status = 0;
  r.reason = 0;
  r.error.clear();
  r.payload_bytes = n1;
  r.aux_bytes = n2;
  return r;
}

Bytes head_frame(const Head& h, bool last) {
  const Bytes body = encode_head(h);
  const auto hb = make_header(head_types[h.index()], last, body);
  return frame_of(hb, body);
}

Bytes data_frame(const Bytes& body, bool last) {
  const auto hb = make_header(MessageType::data, last, body);
  return frame_of(hb, body);
}

// =============================================================================================
// FrameChecksum

TEST_CASE("The reference SplitMix64 mix matches the published SplitMix64 outputs", "[net][protocol][checksum]") {
  // SplitMix64 seeded with 0: its first two outputs are mix(0) and mix(gamma).
  CHECK(ref_splitmix(0) == 0xe220a8397b1dcdafULL);
  CHECK(ref_splitmix(0x9e3779b97f4a7c15ULL) == 0x6e789e6aa1b965f4ULL);
}

TEST_CASE("FrameChecksum equals a brute-force implementation of its definition", "[net][protocol][checksum]") {
  for (std::size_t n = 0; n <= 300; ++n) {
    const Bytes b = random_bytes(n, 1000 + n);
    INFO("length " << n);
    CHECK(checksum_of(b) == ref_checksum(b));
  }
  for (std::size_t n : {std::size_t{1024}, std::size_t{4096 + 13}, std::size_t{65536 + 31}}) {
    const Bytes b = random_bytes(n, n);
    INFO("length " << n);
    CHECK(checksum_of(b) == ref_checksum(b));
  }
  // All-ones words: the lane sums wrap around modulo 2^64.
  const Bytes ones(8 * 1000 + 5, 0xff);
  CHECK(checksum_of(ones) == ref_checksum(ones));
}

TEST_CASE("frame_checksum covers header bytes 0 to 15 and the body parts, not the checksum field", "[net][protocol][checksum]") {
  HeaderBytes h = good_header(5, 77);
  const Bytes body1 = random_bytes(50, 3), body2 = random_bytes(27, 4);
  const Bytes covered = concat(concat(Bytes(h.begin(), h.begin() + 16), body1), body2);
  const std::uint64_t want = ref_checksum(covered);
  CHECK(frame_checksum(h, body1, body2) == want);
  CHECK(frame_checksum(h, concat(body1, body2)) == want);
  for (std::size_t i = 16; i < 24; ++i) h[i] ^= 0x5a;  // the checksum field is not covered
  CHECK(frame_checksum(h, body1, body2) == want);
  h[15] ^= 1;  // the reserved bytes are
  CHECK(frame_checksum(h, body1, body2) != want);
}

TEST_CASE("FrameChecksum does not depend on how the bytes are split across update calls", "[net][protocol][checksum]") {
  const Bytes b = random_bytes(100, 77);
  const std::uint64_t want = ref_checksum(b);
  const std::span<const std::uint8_t> s(b);
  for (std::size_t i = 0; i <= b.size(); ++i) {
    for (std::size_t j = i; j <= b.size(); ++j) {
      FrameChecksum c;
      c.update(s.subspan(0, i));
      c.update(s.subspan(i, j - i));
      c.update(s.subspan(j));
      c.update({});  // an empty (null) span changes nothing
      INFO("split at " << i << " and " << j);
      REQUIRE(c.finish() == want);
    }
  }
  FrameChecksum c;
  for (std::size_t i = 0; i < b.size(); ++i) c.update(s.subspan(i, 1));
  CHECK(c.finish() == want);
  CHECK(c.finish() == want);  // finish() does not change the state
}

TEST_CASE("FrameChecksum changes when any single bit of a 1 KB buffer flips", "[net][protocol][checksum]") {
  Bytes b = random_bytes(1024, 5);
  const std::uint64_t base = checksum_of(b);
  std::size_t unchanged = 0;
  for (std::size_t bit = 0; bit < 8 * b.size(); ++bit) {
    b[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
    if (checksum_of(b) == base) ++unchanged;
    b[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
  }
  CHECK(unchanged == 0);
  // And in the zero-padded tail of a buffer that is not a whole number of blocks.
  Bytes t = random_bytes(1024 + 21, 6);
  const std::uint64_t tbase = checksum_of(t);
  for (std::size_t bit = 8 * 1024; bit < 8 * t.size(); ++bit) {
    t[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
    CHECK(checksum_of(t) != tbase);
    t[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
  }
}

TEST_CASE("FrameChecksum changes with the length and with two swapped words", "[net][protocol][checksum]") {
  for (std::size_t n = 0; n <= 96; ++n) {
    Bytes b = random_bytes(n, 200 + n);
    const std::uint64_t before = checksum_of(b);
    b.push_back(0);  // the zero-padded block is the same: only the length tells them apart
    INFO("length " << n);
    CHECK(checksum_of(b) != before);
  }
  const Bytes b = random_bytes(256, 9);  // 32 distinct random words
  const std::uint64_t base = checksum_of(b);
  std::size_t same = 0;
  for (std::size_t i = 0; i < 32; ++i) {
    for (std::size_t j = i + 1; j < 32; ++j) {
      Bytes s = b;
      std::swap_ranges(s.begin() + static_cast<std::ptrdiff_t>(8 * i), s.begin() + static_cast<std::ptrdiff_t>(8 * i + 8),
                       s.begin() + static_cast<std::ptrdiff_t>(8 * j));
      if (checksum_of(s) == base) ++same;
    }
  }
  CHECK(same == 0);
}

// =============================================================================================
// Frame header

TEST_CASE("encode_header writes the documented layout and parse_header reads every field back", "[net][protocol][header]") {
  std::mt19937_64 g(11);
  for (std::uint8_t type = 1; type <= 8; ++type) {
    for (std::uint16_t flags : {std::uint16_t{0}, std::uint16_t{1}}) {
      for (std::uint32_t length : {0u, 1u, 1000u, 65536u}) {
        FrameHeader h;
        h.type = static_cast<MessageType>(type);
        h.flags = flags;
        h.length = length;
        h.checksum = g();
        const auto b = encode_header(h);
        const HeaderBytes want = raw_header(magic_fdpp, 1, type, flags, length, 0, h.checksum);
        CHECK(b == want);
        CHECK(b[0] == 'F');
        CHECK(b[1] == 'D');
        CHECK(b[2] == 'P');
        CHECK(b[3] == 'P');
        const FrameHeader p = parse_header(b, default_max_frame);
        CHECK(p.version == 1);
        CHECK(p.type == h.type);
        CHECK(p.flags == flags);
        CHECK(p.last() == (flags == 1));
        CHECK(p.length == length);
        CHECK(p.checksum == h.checksum);
      }
    }
  }
}

TEST_CASE("make_header sets type, last flag, length and the checksum of header and body", "[net][protocol][header]") {
  const Bytes b1 = random_bytes(40, 1), b2 = random_bytes(9, 2);
  for (bool last : {false, true}) {
    const auto h = make_header(MessageType::reply, last, b1, b2);
    HeaderBytes want = raw_header(magic_fdpp, 1, 5, last ? 1 : 0, 49, 0, 0);
    const std::uint64_t sum = ref_checksum(concat(concat(Bytes(want.begin(), want.begin() + 16), b1), b2));
    want = raw_header(magic_fdpp, 1, 5, last ? 1 : 0, 49, 0, sum);
    CHECK(h == want);
  }
}

TEST_CASE("parse_header rejects each malformed header with its own code", "[net][protocol][header]") {
  const auto code_of = [](const HeaderBytes& h, std::uint32_t max_frame = default_max_frame) {
    return protocol_error_of([&] { (void)parse_header(h, max_frame); });
  };
  REQUIRE(code_of(good_header(4, 10)) == "no error");

  SECTION("bad magic") {
    for (std::size_t i = 0; i < 4; ++i) {
      HeaderBytes h = good_header(4, 10);
      h[i] ^= 0x20;  // "fDPP", "FdPP", ...
      CHECK(code_of(h) == errc_text(ProtocolErrc::bad_magic));
    }
    CHECK(code_of(raw_header(0x46445050u, 1, 4, 1, 10, 0, 0)) == errc_text(ProtocolErrc::bad_magic));  // byte-swapped
    std::string what;
    (void)protocol_error_of([&] { (void)parse_header(raw_header(0, 1, 4, 1, 10, 0, 0), default_max_frame); }, &what);
    CHECK(what == "fedpp::net::parse_header: bad magic number, got 0");
  }
  SECTION("version mismatch") {
    for (std::uint8_t v : {0, 2, 255})
      CHECK(code_of(raw_header(magic_fdpp, v, 4, 1, 10, 0, 0)) == errc_text(ProtocolErrc::version_mismatch));
  }
  SECTION("unknown type") {
    for (std::uint8_t t : {0, 9, 200, 255})
      CHECK(code_of(raw_header(magic_fdpp, 1, t, 1, 10, 0, 0)) == errc_text(ProtocolErrc::unknown_type));
    for (std::uint8_t t = 1; t <= 8; ++t) CHECK(code_of(raw_header(magic_fdpp, 1, t, 1, 10, 0, 0)) == "no error");
  }
  SECTION("unknown flag bits, each of bits 1 to 15") {
    for (int bit = 1; bit < 16; ++bit) {
      INFO("bit " << bit);
      CHECK(code_of(raw_header(magic_fdpp, 1, 4, static_cast<std::uint16_t>(1u << bit), 10, 0, 0)) ==
            errc_text(ProtocolErrc::bad_flags));
      CHECK(code_of(raw_header(magic_fdpp, 1, 4, static_cast<std::uint16_t>((1u << bit) | 1u), 10, 0, 0)) ==
            errc_text(ProtocolErrc::bad_flags));
    }
  }
  SECTION("nonzero reserved bytes, each byte") {
    for (std::size_t i = 12; i < 16; ++i) {
      HeaderBytes h = good_header(4, 10);
      h[i] = 0x80;
      INFO("byte " << i);
      CHECK(code_of(h) == errc_text(ProtocolErrc::bad_flags));
    }
  }
  SECTION("the checksum field is not validated here") {
    CHECK(code_of(raw_header(magic_fdpp, 1, 4, 1, 10, 0, ~0ULL)) == "no error");
  }
}

TEST_CASE("parse_header limits data frames to max_frame and heads to the smaller of max_frame and max_head_bytes", "[net][protocol][header]") {
  const auto code_of = [](std::uint8_t type, std::uint32_t length, std::uint32_t max_frame) {
    return protocol_error_of([&] { (void)parse_header(good_header(type, length), max_frame); });
  };
  const std::string oversized = errc_text(ProtocolErrc::oversized_frame);
  REQUIRE(max_head_bytes == 65536u);
  // Data frames: the limit is max_frame, inclusive.
  CHECK(code_of(8, 4096, 4096) == "no error");
  CHECK(code_of(8, 4097, 4096) == oversized);
  CHECK(code_of(8, default_max_frame, default_max_frame) == "no error");
  CHECK(code_of(8, default_max_frame + 1, default_max_frame) == oversized);
  CHECK(code_of(8, 100000, 100000) == "no error");  // above max_head_bytes: fine for data
  CHECK(code_of(8, 0xffffffffu, 0xffffffffu) == "no error");
  // Heads: max_head_bytes when max_frame is larger ...
  for (std::uint8_t t = 1; t <= 7; ++t) {
    INFO("type " << unsigned{t});
    CHECK(code_of(t, 65536, default_max_frame) == "no error");
    CHECK(code_of(t, 65537, default_max_frame) == oversized);
    CHECK(code_of(t, 100000, 100000) == oversized);
    // ... and max_frame when it is smaller.
    CHECK(code_of(t, 1000, 1000) == "no error");
    CHECK(code_of(t, 1001, 1000) == oversized);
  }
  std::string what;
  (void)protocol_error_of([&] { (void)parse_header(good_header(5, 65537), default_max_frame); }, &what);
  CHECK(what == "fedpp::net::parse_header: reply frame body must be at most 65536 bytes, got 65537");
}

// =============================================================================================
// Message heads

TEST_CASE("Every head type round-trips through encode_head and parse_head", "[net][protocol][head]") {
  for (const Head& h : sample_heads()) {
    INFO("head " << h.index());
    const Bytes b = encode_head(h);
    REQUIRE(b.size() <= max_head_bytes);
    const Head back = parse_head(head_types[h.index()], b);
    check_same_head(h, back);
  }
  // Bounded strings at exactly their bounds are accepted.
  Hello hello = sample_hello();
  hello.token.assign(1024, 't');
  hello.software.assign(256, 's');
  check_same_head(hello, parse_head(MessageType::hello, encode_head(hello)));
  const std::string text(4096, 'x');
  const Reject reject{RejectReason::shutting_down, text};
  check_same_head(reject, parse_head(MessageType::reject, encode_head(reject)));
  ReplyHead reply = sample_reply();
  reply.error = text;
  check_same_head(reply, parse_head(MessageType::reply, encode_head(reply)));
  const Goodbye goodbye{GoodbyeReason::finished, text};
  check_same_head(goodbye, parse_head(MessageType::goodbye, encode_head(goodbye)));
  // Empty strings and the enums' extreme valid values.
  for (auto r : {RejectReason::version_mismatch, RejectReason::shutting_down})
    check_same_head(Reject{r, ""}, parse_head(MessageType::reject, encode_head(Reject{r, ""})));
  for (auto r : {GoodbyeReason::finished, GoodbyeReason::protocol_error})
    check_same_head(Goodbye{r, ""}, parse_head(MessageType::goodbye, encode_head(Goodbye{r, ""})));
}

TEST_CASE("Heads are cereal portable binary: an endianness byte, then the fields little-endian", "[net][protocol][head]") {
  // Welcome{7, 1000, 250, 123456}: byte 1 (little-endian stream), then four u32.
  Bytes want{1};
  put_le(want, 7, 4);
  put_le(want, 1000, 4);
  put_le(want, 250, 4);
  put_le(want, 123456, 4);
  CHECK(encode_head(sample_welcome()) == want);
  // Goodbye{protocol_error, "hi"}: reason u8, u64 size tag, the bytes.
  Bytes bye{1, 3};
  put_le(bye, 2, 8);
  bye.push_back('h');
  bye.push_back('i');
  CHECK(encode_head(Goodbye{GoodbyeReason::protocol_error, "hi"}) == bye);
  // Heartbeat{5, 1, 6}: u64, u8, u64.
  Bytes hb{1};
  put_le(hb, 5, 8);
  hb.push_back(1);
  put_le(hb, 6, 8);
  CHECK(encode_head(Heartbeat{5, 1, 6}) == hb);
  check_same_head(Heartbeat{5, 1, 6}, parse_head(MessageType::heartbeat, hb));
}

TEST_CASE("A head with a trailing byte is wrong_length", "[net][protocol][head]") {
  for (const Head& h : sample_heads()) {
    INFO("head " << h.index());
    Bytes b = encode_head(h);
    b.push_back(0);
    std::string what;
    CHECK(protocol_error_of([&] { (void)parse_head(head_types[h.index()], b); }, &what) ==
          errc_text(ProtocolErrc::wrong_length));
    CHECK(what.find("trailing bytes, got 1") != std::string::npos);
    b.push_back(0);
    CHECK(protocol_error_of([&] { (void)parse_head(head_types[h.index()], b); }) ==
          errc_text(ProtocolErrc::wrong_length));
  }
}

TEST_CASE("Every truncated head is malformed_head", "[net][protocol][head]") {
  for (const Head& h : sample_heads()) {
    const Bytes b = encode_head(h);
    for (std::size_t n = 0; n < b.size(); ++n) {
      INFO("head " << h.index() << ", first " << n << " of " << b.size() << " bytes");
      CHECK(protocol_error_of([&] { (void)parse_head(head_types[h.index()], std::span(b).first(n)); }) ==
            errc_text(ProtocolErrc::malformed_head));
    }
  }
}

TEST_CASE("parse_head refuses the data type and unknown types", "[net][protocol][head]") {
  const Bytes b = encode_head(sample_heartbeat());
  CHECK(protocol_error_of([&] { (void)parse_head(MessageType::data, b); }) ==
        errc_text(ProtocolErrc::unexpected_message));
  CHECK(protocol_error_of([&] { (void)parse_head(static_cast<MessageType>(0), b); }) ==
        errc_text(ProtocolErrc::unexpected_message));
  CHECK(protocol_error_of([&] { (void)parse_head(static_cast<MessageType>(9), b); }) ==
        errc_text(ProtocolErrc::unexpected_message));
}

TEST_CASE("A string longer than its bound is malformed_head, before anything is allocated", "[net][protocol][head]") {
  const std::string malformed = errc_text(ProtocolErrc::malformed_head);
  SECTION("one byte over the bound, with all the bytes present") {
    Hello hello = sample_hello();
    hello.token.assign(1025, 't');
    CHECK(protocol_error_of([&] { (void)parse_head(MessageType::hello, encode_head(hello)); }) == malformed);
    hello = sample_hello();
    hello.software.assign(257, 's');
    CHECK(protocol_error_of([&] { (void)parse_head(MessageType::hello, encode_head(hello)); }) == malformed);
    const std::string text(4097, 'x');
    CHECK(protocol_error_of([&] { (void)parse_head(MessageType::reject, encode_head(Reject{RejectReason::bad_credentials, text})); }) ==
          malformed);
    ReplyHead reply = sample_reply();
    reply.error = text;
    CHECK(protocol_error_of([&] { (void)parse_head(MessageType::reply, encode_head(reply)); }) == malformed);
    CHECK(protocol_error_of([&] { (void)parse_head(MessageType::goodbye, encode_head(Goodbye{GoodbyeReason::finished, text})); }) ==
          malformed);
  }
  SECTION("a hand-made size tag of 2^60 (and 2^64 - 1) is refused by the bound, not by a failed allocation") {
    for (std::uint64_t huge : {std::uint64_t{1} << 60, ~std::uint64_t{0}}) {
      // hello: endianness byte, client u32, token size tag.
      Bytes hello{1};
      put_le(hello, 3, 4);
      put_le(hello, huge, 8);
      hello.push_back('x');
      // hello.software: a valid empty token and the fixed fields first.
      Bytes software{1};
      put_le(software, 3, 4);
      put_le(software, 0, 8);
      put_le(software, 0, 2);
      software.push_back(4);
      put_le(software, 10, 8);
      put_le(software, huge, 8);
      // reject and goodbye: reason u8, text size tag.
      Bytes reject{1, 4};
      put_le(reject, huge, 8);
      Bytes goodbye{1, 1};
      put_le(goodbye, huge, 8);
      // reply: round u64, status u8, reason u8, weight f64, loss f64, steps i64, samples i64, error.
      Bytes reply{1};
      put_le(reply, 1, 8);
      reply.push_back(1);
      reply.push_back(2);
      for (int i = 0; i < 4; ++i) put_le(reply, 0, 8);
      put_le(reply, huge, 8);
      const std::pair<MessageType, const Bytes*> cases[] = {{MessageType::hello, &hello},
                                                            {MessageType::hello, &software},
                                                            {MessageType::reject, &reject},
                                                            {MessageType::goodbye, &goodbye},
                                                            {MessageType::reply, &reply}};
      const char* fields[] = {"hello.token must be at most 1024 bytes", "hello.software must be at most 256 bytes",
                              "reject.text must be at most 4096 bytes", "goodbye.text must be at most 4096 bytes",
                              "reply.error must be at most 4096 bytes"};
      for (std::size_t i = 0; i < 5; ++i) {
        std::string what;
        INFO("case " << i << ", size tag " << huge);
        // A std::bad_alloc or std::length_error would escape protocol_error_of or be reported by
        // parse_head as "head does not parse": the message must be the bound's own.
        CHECK(protocol_error_of([&] { (void)parse_head(cases[i].first, *cases[i].second); }, &what) == malformed);
        CHECK(what.find(fields[i]) != std::string::npos);
        CHECK(what.find(", got " + std::to_string(huge)) != std::string::npos);
      }
    }
  }
}

TEST_CASE("Enums out of range are malformed_head", "[net][protocol][head]") {
  const std::string malformed = errc_text(ProtocolErrc::malformed_head);
  const auto with_byte = [](Bytes b, std::size_t at, std::uint8_t v) {
    b.at(at) = v;
    return b;
  };
  const Bytes reject = encode_head(Reject{RejectReason::bad_credentials, "no"});
  const Bytes goodbye = encode_head(Goodbye{GoodbyeReason::finished, "no"});
  ReplyHead r = sample_reply();
  const Bytes reply = encode_head(r);
  // Byte offsets from the layout: [0] endianness; reject/goodbye reason at 1; reply round at
  // 1..8, status at 9, reason at 10.
  REQUIRE(reject.at(1) == 4);
  REQUIRE(goodbye.at(1) == 1);
  REQUIRE(reply.at(9) == 2);
  REQUIRE(reply.at(10) == 5);
  for (std::uint8_t v : {0, 9, 255})
    CHECK(protocol_error_of([&] { (void)parse_head(MessageType::reject, with_byte(reject, 1, v)); }) == malformed);
  for (std::uint8_t v = 1; v <= 8; ++v)
    CHECK(protocol_error_of([&] { (void)parse_head(MessageType::reject, with_byte(reject, 1, v)); }) == "no error");
  for (std::uint8_t v : {0, 4, 255})
    CHECK(protocol_error_of([&] { (void)parse_head(MessageType::goodbye, with_byte(goodbye, 1, v)); }) == malformed);
  for (std::uint8_t v = 1; v <= 3; ++v)
    CHECK(protocol_error_of([&] { (void)parse_head(MessageType::goodbye, with_byte(goodbye, 1, v)); }) == "no error");
  for (std::uint8_t v : {3, 255})
    CHECK(protocol_error_of([&] { (void)parse_head(MessageType::reply, with_byte(reply, 9, v)); }) == malformed);
  for (std::uint8_t v = 0; v <= 2; ++v)
    CHECK(protocol_error_of([&] { (void)parse_head(MessageType::reply, with_byte(reply, 9, v)); }) == "no error");
  for (std::uint8_t v : {6, 255})
    CHECK(protocol_error_of([&] { (void)parse_head(MessageType::reply, with_byte(reply, 10, v)); }) == malformed);
  for (std::uint8_t v = 0; v <= 5; ++v)
    CHECK(protocol_error_of([&] { (void)parse_head(MessageType::reply, with_byte(reply, 10, v)); }) == "no error");
}

// =============================================================================================
// OutboundMessage and FrameDecoder

TEST_CASE("A reply split across many data frames decodes to the same payload and aux bytes", "[net][protocol][decoder]") {
  // 10000 payload + 5000 aux bytes in frames of 4096: 4096, 4096, 4096 (bytes 8192..12287, across
  // the payload/aux boundary at 10000), 2712.
  const Bytes payload = random_bytes(10000, 21), aux = random_bytes(5000, 22);
  const ReplyHead head = reply_with(payload.size(), aux.size());
  const auto m = OutboundMessage::encode(head, payload, aux, 4096);
  CHECK(m->type() == MessageType::reply);
  const Bytes wire = wire_of(*m);

  const std::vector<RawFrame> frames = walk_frames(wire);
  REQUIRE(frames.size() == 5);
  CHECK(frames[0].type == 5);
  CHECK(frames[0].flags == 0);
  CHECK(frames[0].body == encode_head(head));
  const std::size_t sizes[] = {4096, 4096, 4096, 2712};
  Bytes bulk;
  for (std::size_t i = 1; i < 5; ++i) {
    INFO("frame " << i);
    CHECK(frames[i].type == 8);
    CHECK(frames[i].flags == (i == 4 ? 1 : 0));
    CHECK(frames[i].body.size() == sizes[i - 1]);
    bulk.insert(bulk.end(), frames[i].body.begin(), frames[i].body.end());
  }
  CHECK(bulk == concat(payload, aux));
  CHECK(m->bytes() == 24 * 5 + encode_head(head).size() + 15000);

  FrameDecoder d(DecoderLimits{4096, 1u << 20});
  const ReadResult r = read_stream(d, wire);
  CHECK(r.frames == 5);
  CHECK(r.straddling == 1);
  REQUIRE(r.messages.size() == 1);
  CHECK(r.messages[0].type() == MessageType::reply);
  check_same_head(head, r.messages[0].head);
  CHECK(r.messages[0].bulk1 == payload);
  CHECK(r.messages[0].bulk2 == aux);
  CHECK(d.pending_bulk() == 0);
  CHECK_FALSE(d.in_frame());
}

TEST_CASE("A round request split across data frames decodes to the same model and broadcast bytes", "[net][protocol][decoder]") {
  for (std::uint8_t scalar : {std::uint8_t{4}, std::uint8_t{8}}) {
    RoundHead head = sample_round();
    head.scalar_bytes = scalar;
    head.model_count = 3001;
    head.aux_count = 999;
    const Bytes model = random_bytes(3001u * scalar, 31), broadcast = random_bytes(999u * scalar, 32);
    const auto m = OutboundMessage::encode(head, model, broadcast, 1000);
    const std::vector<RawFrame> frames = walk_frames(wire_of(*m));
    const std::size_t total = 4000u * scalar, data_frames = (total + 999) / 1000;
    REQUIRE(frames.size() == 1 + data_frames);
    for (std::size_t i = 0; i < frames.size(); ++i) {
      CHECK(frames[i].type == (i == 0 ? 4 : 8));
      CHECK(frames[i].flags == (i + 1 == frames.size() ? 1 : 0));
      if (i > 0) CHECK(frames[i].body.size() == std::min<std::size_t>(1000, total - 1000 * (i - 1)));
    }
    FrameDecoder d(DecoderLimits{1000, 1u << 20});
    const ReadResult r = read_stream(d, wire_of(*m));
    REQUIRE(r.messages.size() == 1);
    CHECK(r.straddling == (3001u * scalar % 1000 != 0 ? 1u : 0u));
    check_same_head(head, r.messages[0].head);
    CHECK(r.messages[0].type() == MessageType::round_request);
    CHECK(r.messages[0].bulk1 == model);
    CHECK(r.messages[0].bulk2 == broadcast);
  }
}

TEST_CASE("Bulk of exactly whole frames, payload only and aux only", "[net][protocol][decoder]") {
  struct Case {
    std::size_t n1, n2, frames;
  };
  for (const Case c : {Case{8192, 0, 2}, Case{0, 8192, 2}, Case{4096, 4096, 2}, Case{1, 0, 1}, Case{0, 1, 1},
                       Case{4095, 2, 2}, Case{8193, 0, 3}}) {
    INFO("payload " << c.n1 << ", aux " << c.n2);
    const Bytes p = random_bytes(c.n1, c.n1 + 1), a = random_bytes(c.n2, c.n2 + 2);
    const auto m = OutboundMessage::encode(reply_with(c.n1, c.n2), p, a, 4096);
    const std::vector<RawFrame> frames = walk_frames(wire_of(*m));
    REQUIRE(frames.size() == 1 + c.frames);
    for (std::size_t i = 0; i < frames.size(); ++i) CHECK(frames[i].flags == (i + 1 == frames.size() ? 1 : 0));
    FrameDecoder d(DecoderLimits{4096, 1u << 20});
    const ReadResult r = read_stream(d, wire_of(*m));
    REQUIRE(r.messages.size() == 1);
    CHECK(r.messages[0].bulk1 == p);
    CHECK(r.messages[0].bulk2 == a);
  }
}

TEST_CASE("Head-only messages are one frame with the last flag and decode at once", "[net][protocol][decoder]") {
  std::vector<Head> heads = sample_heads();
  heads[3] = [] {  // a round request without bulk
    RoundHead r = sample_round();
    r.model_count = r.aux_count = 0;
    return r;
  }();
  heads[4] = reply_with(0, 0);
  for (const Head& h : heads) {
    INFO("head " << h.index());
    const auto m = OutboundMessage::encode(h);
    const Bytes wire = wire_of(*m);
    const std::vector<RawFrame> frames = walk_frames(wire);
    REQUIRE(frames.size() == 1);
    CHECK(frames[0].type == static_cast<std::uint8_t>(head_types[h.index()]));
    CHECK(frames[0].flags == 1);
    CHECK(frames[0].body == encode_head(h));
    CHECK(m->pieces().size() == 2);  // header, head body
    FrameDecoder d;
    const auto t = d.on_header(std::span<const std::uint8_t, 24>(wire.data(), 24));
    CHECK(t.size() == wire.size() - 24);
    CHECK(t.second.empty());
    std::copy(wire.begin() + 24, wire.end(), t.first.begin());
    auto msg = d.on_body();
    REQUIRE(msg.has_value());
    check_same_head(h, msg->head);
    CHECK(msg->bulk1.empty());
    CHECK(msg->bulk2.empty());
  }
}

TEST_CASE("Several messages in one stream decode in order, bulk allocated at the first data frame", "[net][protocol][decoder]") {
  std::vector<std::size_t> allocations;
  FrameDecoder d(DecoderLimits{512, 1u << 20}, [&](std::size_t n) {
    allocations.push_back(n);
    return Bytes(n, 0xcc);
  });
  const Bytes p = random_bytes(1500, 41), a = random_bytes(700, 42);
  const auto m1 = OutboundMessage::encode(sample_hello());
  const auto m2 = OutboundMessage::encode(reply_with(p.size(), a.size()), p, a, 512);
  const auto m3 = OutboundMessage::encode(sample_heartbeat());
  const Bytes w2 = wire_of(*m2);

  // The reply's head alone: the decoder waits for 2200 bulk bytes and has allocated nothing yet.
  const std::size_t head_len = 24 + encode_head(reply_with(p.size(), a.size())).size();
  REQUIRE(read_stream(d, Bytes(w2.begin(), w2.begin() + static_cast<std::ptrdiff_t>(head_len))).messages.empty());
  CHECK(d.pending_bulk() == 2200);
  CHECK(std::holds_alternative<ReplyHead>(d.pending_head()));
  CHECK(allocations.empty());
  const ReadResult rest = read_stream(d, Bytes(w2.begin() + static_cast<std::ptrdiff_t>(head_len), w2.end()));
  CHECK(allocations == std::vector<std::size_t>{1500, 700});
  REQUIRE(rest.messages.size() == 1);
  CHECK(rest.messages[0].bulk1 == p);
  CHECK(rest.messages[0].bulk2 == a);

  const Bytes stream = concat(concat(wire_of(*m1), w2), wire_of(*m3));
  FrameDecoder d2(DecoderLimits{512, 1u << 20});
  const ReadResult r = read_stream(d2, stream);
  REQUIRE(r.messages.size() == 3);
  check_same_head(sample_hello(), r.messages[0].head);
  CHECK(r.messages[1].bulk1 == p);
  CHECK(r.messages[1].bulk2 == a);
  check_same_head(sample_heartbeat(), r.messages[2].head);
  CHECK(r.frames == 1 + 1 + 5 + 1);
}

TEST_CASE("Frames built by hand from the documented layout decode", "[net][protocol][decoder]") {
  // An independent encoder: head frame without last flag, then two data frames.
  const ReplyHead head = reply_with(6, 4);
  const Bytes bulk = random_bytes(10, 51);
  const Bytes stream = concat(concat(hand_frame(5, 0, encode_head(head)), hand_frame(8, 0, Bytes(bulk.begin(), bulk.begin() + 7))),
                              hand_frame(8, 1, Bytes(bulk.begin() + 7, bulk.end())));
  FrameDecoder d;
  const ReadResult r = read_stream(d, stream);
  REQUIRE(r.messages.size() == 1);
  CHECK(r.straddling == 1);  // the first data frame holds the 6 payload bytes and 1 aux byte
  CHECK(r.messages[0].bulk1 == Bytes(bulk.begin(), bulk.begin() + 6));
  CHECK(r.messages[0].bulk2 == Bytes(bulk.begin() + 6, bulk.end()));
}

TEST_CASE("OutboundMessage::encode refuses bulk that does not match its head", "[net][protocol][decoder]") {
  const Bytes p = random_bytes(10, 1), a = random_bytes(5, 2);
  CHECK(protocol_error_of([&] { (void)OutboundMessage::encode(reply_with(10, 5), p, Bytes(4)); }) ==
        errc_text(ProtocolErrc::wrong_length));
  CHECK(protocol_error_of([&] { (void)OutboundMessage::encode(reply_with(10, 5), Bytes(11), a); }) ==
        errc_text(ProtocolErrc::wrong_length));
  CHECK(protocol_error_of([&] { (void)OutboundMessage::encode(sample_heartbeat(), p); }) ==
        errc_text(ProtocolErrc::wrong_length));
  CHECK(protocol_error_of([&] { (void)OutboundMessage::encode(reply_with(10, 5), p, a, 0); }) ==
        errc_text(ProtocolErrc::oversized_frame));
  Hello big = sample_hello();
  big.token.assign(70000, 'x');  // the sender does not cut a token: its head is too large to send
  CHECK(protocol_error_of([&] { (void)OutboundMessage::encode(big); }) == errc_text(ProtocolErrc::oversized_frame));
}

TEST_CASE("bulk_sizes refuses element counts whose byte size wraps around", "[net][protocol][decoder]") {
  RoundHead r = sample_round();
  r.scalar_bytes = 8;
  r.model_count = (~std::uint64_t{0}) / 8;
  r.aux_count = 1;
  CHECK(bulk_sizes(r) == std::pair<std::uint64_t, std::uint64_t>{r.model_count * 8, 8});
  r.model_count += 1;  // 2^61: 2^64 bytes
  CHECK(protocol_error_of([&] { (void)bulk_sizes(r); }) == errc_text(ProtocolErrc::wrong_length));
  // Any scalar width: 2^60 entries of 16 bytes would wrap to 0 bulk bytes.
  r.scalar_bytes = 16;
  r.model_count = std::uint64_t{1} << 60;
  CHECK(protocol_error_of([&] { (void)bulk_sizes(r); }) == errc_text(ProtocolErrc::wrong_length));
  r.model_count = 0;
  r.aux_count = std::uint64_t{1} << 60;
  CHECK(protocol_error_of([&] { (void)bulk_sizes(r); }) == errc_text(ProtocolErrc::wrong_length));
  FrameDecoder d;
  r.aux_count = 0;
  r.model_count = std::uint64_t{1} << 60;
  CHECK(protocol_error_of([&] { (void)feed_frame(d, head_frame(r, true)); }) == errc_text(ProtocolErrc::wrong_length));
  CHECK(bulk_sizes(ReplyHead{reply_with(3, 4)}) == std::pair<std::uint64_t, std::uint64_t>{3, 4});
  CHECK(bulk_sizes(sample_hello()) == std::pair<std::uint64_t, std::uint64_t>{0, 0});
}

TEST_CASE("FrameDecoder rejects each protocol violation with its code", "[net][protocol][decoder]") {
  const std::string unexpected = errc_text(ProtocolErrc::unexpected_message);
  const std::string wrong_length = errc_text(ProtocolErrc::wrong_length);
  const std::string bad_flags = errc_text(ProtocolErrc::bad_flags);
  const std::string bad_checksum = errc_text(ProtocolErrc::bad_checksum);
  const Bytes bulk = random_bytes(100, 61);
  const Bytes reply_head = head_frame(reply_with(60, 40), false);
  FrameDecoder d(DecoderLimits{4096, 1000});

  SECTION("a data frame with no head before it") {
    CHECK(protocol_error_of([&] { (void)feed_frame(d, data_frame(bulk, true)); }) == unexpected);
  }
  SECTION("a head frame while bulk is pending") {
    REQUIRE_FALSE(feed_frame(d, reply_head).has_value());
    REQUIRE_FALSE(feed_frame(d, data_frame(Bytes(bulk.begin(), bulk.begin() + 30), false)).has_value());
    CHECK(d.pending_bulk() == 70);
    CHECK(protocol_error_of([&] { (void)feed_frame(d, head_frame(sample_heartbeat(), true)); }) == unexpected);
  }
  SECTION("a data frame longer than the remaining bulk") {
    REQUIRE_FALSE(feed_frame(d, reply_head).has_value());
    CHECK(protocol_error_of([&] { (void)feed_frame(d, data_frame(random_bytes(101, 1), true)); }) == wrong_length);
  }
  SECTION("a data frame longer than the remaining bulk after earlier frames") {
    REQUIRE_FALSE(feed_frame(d, reply_head).has_value());
    REQUIRE_FALSE(feed_frame(d, data_frame(Bytes(bulk.begin(), bulk.begin() + 90), false)).has_value());
    CHECK(protocol_error_of([&] { (void)feed_frame(d, data_frame(random_bytes(11, 1), true)); }) == wrong_length);
  }
  SECTION("a data frame of length 0") {
    REQUIRE_FALSE(feed_frame(d, reply_head).has_value());
    CHECK(protocol_error_of([&] { (void)feed_frame(d, data_frame({}, false)); }) == wrong_length);
  }
  SECTION("a last flag on a data frame that is not the last") {
    REQUIRE_FALSE(feed_frame(d, reply_head).has_value());
    CHECK(protocol_error_of([&] { (void)feed_frame(d, data_frame(Bytes(bulk.begin(), bulk.begin() + 50), true)); }) ==
          bad_flags);
  }
  SECTION("no last flag on the last data frame") {
    REQUIRE_FALSE(feed_frame(d, reply_head).has_value());
    REQUIRE_FALSE(feed_frame(d, data_frame(Bytes(bulk.begin(), bulk.begin() + 50), false)).has_value());
    CHECK(protocol_error_of([&] { (void)feed_frame(d, data_frame(Bytes(bulk.begin() + 50, bulk.end()), false)); }) ==
          bad_flags);
  }
  SECTION("no last flag on a head without bulk") {
    CHECK(protocol_error_of([&] { (void)feed_frame(d, head_frame(sample_goodbye(), false)); }) == bad_flags);
  }
  SECTION("a last flag on a head with bulk") {
    CHECK(protocol_error_of([&] { (void)feed_frame(d, head_frame(reply_with(60, 40), true)); }) == bad_flags);
  }
  SECTION("a corrupted body byte, in a head or a data frame") {
    Bytes h = reply_head;
    for (std::size_t i = 24; i < h.size(); ++i) {
      FrameDecoder fresh(DecoderLimits{4096, 1000});
      h[i] ^= 0x10;
      INFO("byte " << i);
      CHECK(protocol_error_of([&] { (void)feed_frame(fresh, h); }) == bad_checksum);
      h[i] ^= 0x10;
    }
    REQUIRE_FALSE(feed_frame(d, reply_head).has_value());
    Bytes f = data_frame(bulk, true);
    f[24 + 77] ^= 0x01;
    CHECK(protocol_error_of([&] { (void)feed_frame(d, f); }) == bad_checksum);
  }
  SECTION("a corrupted checksum field") {
    Bytes f = head_frame(sample_goodbye(), true);
    f[23] ^= 0x80;
    CHECK(protocol_error_of([&] { (void)feed_frame(d, f); }) == bad_checksum);
  }
  SECTION("bulk larger than DecoderLimits::max_bulk") {
    CHECK(protocol_error_of([&] { (void)feed_frame(d, head_frame(reply_with(1001, 0), false)); }) == wrong_length);
    FrameDecoder d2(DecoderLimits{4096, 1000});
    CHECK(protocol_error_of([&] { (void)feed_frame(d2, head_frame(reply_with(600, 401), false)); }) == wrong_length);
    FrameDecoder d3(DecoderLimits{4096, 1000});
    CHECK(protocol_error_of([&] { (void)feed_frame(d3, head_frame(reply_with(0, 1001), false)); }) == wrong_length);
    FrameDecoder d4(DecoderLimits{4096, 1000});  // the sum would wrap around
    CHECK(protocol_error_of([&] { (void)feed_frame(d4, head_frame(reply_with(500, ~std::uint64_t{0} - 100), false)); }) ==
          wrong_length);
    FrameDecoder d5(DecoderLimits{4096, 1000});  // exactly the limit is fine
    CHECK(protocol_error_of([&] { (void)feed_frame(d5, head_frame(reply_with(600, 400), false)); }) == "no error");
    CHECK(d5.pending_bulk() == 1000);
  }
  SECTION("on_body without on_header, and a second header before the body") {
    CHECK(protocol_error_of([&] { (void)d.on_body(); }) == unexpected);
    const Bytes f = head_frame(sample_goodbye(), true);
    (void)d.on_header(std::span<const std::uint8_t, 24>(f.data(), 24));
    CHECK(d.in_frame());
    CHECK(protocol_error_of([&] { (void)d.on_header(std::span<const std::uint8_t, 24>(f.data(), 24)); }) == unexpected);
  }
  SECTION("header errors pass through with their codes") {
    Bytes f = head_frame(sample_goodbye(), true);
    f[0] = 0;
    CHECK(protocol_error_of([&] { (void)feed_frame(d, f); }) == errc_text(ProtocolErrc::bad_magic));
    FrameDecoder small(DecoderLimits{16, 1000});
    CHECK(protocol_error_of([&] { (void)feed_frame(small, head_frame(sample_goodbye(), true)); }) ==
          errc_text(ProtocolErrc::oversized_frame));
  }
  SECTION("a head that does not parse") {
    CHECK(protocol_error_of([&] { (void)feed_frame(d, hand_frame(6, 1, Bytes{1, 2, 3})); }) ==
          errc_text(ProtocolErrc::malformed_head));
    CHECK(protocol_error_of([&] { (void)feed_frame(d, hand_frame(6, 1, {})); }) == errc_text(ProtocolErrc::malformed_head));
  }
}

}  // namespace protocol_test
