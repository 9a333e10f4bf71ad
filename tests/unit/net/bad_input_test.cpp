// Bad input over TCP (issue 14): every protocol violation closes that connection with its reason
// (a ConnectionEvent with the ProtocolErrc), never reaches the model, and the server keeps serving
// the honest clients: after each case a round with them gives exactly the model of a run where the
// bad peer never existed. The bad peer is a hand-driven socket (support/raw_peer.hpp).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <thread>

#include "fedpp/aggregators/weighted_mean.hpp"
#include "fedpp/optimizers/server_sgd.hpp"
#include "fedpp/runtime/in_process.hpp"
#include "fedpp/runtime/server.hpp"
#include "support/checks.hpp"
#include "support/net_federation.hpp"
#include "support/raw_peer.hpp"

using namespace fedpp;
using fedpp_test::NetFederation;
using fedpp_test::RawPeer;
using Errc = net::ProtocolErrc;
using Kind = net::ConnectionEvent::Kind;

namespace {

using BadInputServer = Server<float, WeightedMean, ServerSgd, NetFederation::Comp>;

ServerOptions bad_input_server_options() {
  ServerOptions so;
  so.rounds = 1;
  so.clients_per_round = 3;
  so.seed = 9;
  // Never reached when the transport works (every bad participant fails at once); if it did not,
  // the round would end here with a timed-out participant and the test would fail, not hang.
  so.round_timeout = std::chrono::milliseconds(8000);
  return so;
}

// The model after one round with honest clients 0 and 1 only (in-process).
Vector<float> honest_only_model(const NetFederation& fed) {
  auto all = fed.clients();
  std::vector<NetFederation::ClientT> two{all[0], all[1]};
  InProcessTransport<NetFederation::ClientT> t(std::move(two), 1);
  ServerOptions so = bad_input_server_options();
  so.clients_per_round = 2;  // the same draw as 3 of the 2 available over TCP
  BadInputServer s(fed.w0, so, WeightedMean(), ServerSgd(), fed.comp);
  s.step(t);
  return s.params();
}

std::vector<std::uint8_t> flatten(const net::OutboundMessage& m) {
  std::vector<std::uint8_t> out;
  for (const auto& p : m.pieces()) out.insert(out.end(), p.data, p.data + p.size);
  return out;
}

// A federation of 3 ids: honest NetworkClients 0 and 1 on threads; id 2 is left for a raw peer.
struct BadInputBed {
  NetFederation fed{3};
  std::vector<NetFederation::ClientT> honest = [this] {
    auto all = fed.clients();
    return std::vector<NetFederation::ClientT>{all[0], all[1]};
  }();
  net::TcpTransport<float> transport{[this] {
    auto o = fed.transport_options();
    o.timeouts.read = std::chrono::milliseconds(300);
    o.timeouts.idle = std::chrono::milliseconds(1500);
    o.timeouts.handshake = std::chrono::milliseconds(600);
    return o;
  }()};
  fedpp_test::ClientThreads<NetFederation::ClientT> threads{
      honest, [this](std::size_t) { return fedpp_test::loopback_client(transport.port()); }};
  std::uint16_t codec = net::probe_codec<float>(fed.comp);
  std::uint64_t dim = static_cast<std::uint64_t>(fed.model.num_params());

  BadInputBed() { REQUIRE(transport.wait_for_clients(2, RoundClock::now() + std::chrono::seconds(10))); }
  ~BadInputBed() {
    transport.close();
    threads.join();
  }

  // Waits until the transport recorded an event of this kind and code (for any connection).
  bool saw(Kind kind, Errc code, std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < until) {
      const auto ev = transport.events();
      if (std::any_of(ev.begin(), ev.end(), [&](const auto& e) { return e.kind == kind && e.code == code; }))
        return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
  }

  // One round with whoever is available; returns its stats and checks the model is the honest-only one.
  RoundStats honest_round() {
    BadInputServer s(fed.w0, bad_input_server_options(), WeightedMean(), ServerSgd(), fed.comp);
    const RoundStats st = s.step(transport);
    const Vector<float> want = honest_only_model(fed);
    CHECK(fedpp_test::same_bits(s.params(), want));
    CHECK(st.accepted == 2);
    return st;
  }
};

}  // namespace

TEST_CASE("A connection that breaks the protocol is closed with its reason and the others keep training",
          "[net][bad_input]") {
  BadInputBed bed;
  RawPeer peer(bed.transport.port());
  Errc want{};
  SECTION("garbage instead of a frame") {
    const std::vector<std::uint8_t> junk(64, 0x5a);
    peer.send(junk);
    want = Errc::bad_magic;
  }
  SECTION("an unknown message type") {
    auto b = flatten(*net::OutboundMessage::encode(net::Head{net::Heartbeat{}}));
    b[5] = 42;
    peer.send(b);
    want = Errc::unknown_type;
  }
  SECTION("a hello head with trailing bytes (wrong length)") {
    auto body = net::encode_head(net::Head{net::Hello{2, "", bed.codec, 4, bed.dim, "x"}});
    body.push_back(0);
    const auto h = net::make_header(net::MessageType::hello, true, body);
    peer.send(h);
    peer.send(body);
    want = Errc::wrong_length;
  }
  SECTION("a bad checksum") {
    auto b = flatten(*net::OutboundMessage::encode(net::Head{net::Hello{2, "", bed.codec, 4, bed.dim, "x"}}));
    b.back() ^= 1;
    peer.send(b);
    want = Errc::bad_checksum;
  }
  SECTION("an oversized frame (header only)") {
    net::FrameHeader h;
    h.type = net::MessageType::hello;
    h.flags = net::frame_flag_last;
    h.length = net::max_head_bytes + 1;
    peer.send(net::encode_header(h));
    want = Errc::oversized_frame;
  }
  SECTION("a truncated frame: the peer closes in the middle of a body") {
    auto b = flatten(*net::OutboundMessage::encode(net::Head{net::Hello{2, "", bed.codec, 4, bed.dim, "x"}}));
    b.resize(net::frame_header_size + 3);
    peer.send(b);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    peer.close();
    want = Errc::truncated_frame;
  }
  SECTION("a peer that stalls in the middle of a frame hits the per-read deadline") {
    auto b = flatten(*net::OutboundMessage::encode(net::Head{net::Hello{2, "", bed.codec, 4, bed.dim, "x"}}));
    b.resize(net::frame_header_size + 3);
    peer.send(b);
    want = Errc::stalled;
  }
  SECTION("a peer that stalls in the middle of a frame header") {
    auto b = flatten(*net::OutboundMessage::encode(net::Head{net::Hello{2, "", bed.codec, 4, bed.dim, "x"}}));
    b.resize(5);
    peer.send(b);
    want = Errc::stalled;
  }
  SECTION("a peer that never says hello") {
    want = Errc::handshake_timeout;
  }
  SECTION("a first message that is not a hello") {
    peer.send(net::Head{net::Heartbeat{1, 0, 0}});
    want = Errc::unexpected_message;
  }
  SECTION("a data frame without a message") {
    const std::vector<std::uint8_t> body(16, 1);
    peer.send(net::make_header(net::MessageType::data, true, body));
    peer.send(body);
    want = Errc::unexpected_message;
  }
  SECTION("a reply for a round the client was not asked for") {
    peer.hello(2, bed.codec, bed.dim);
    REQUIRE(peer.read_until(net::MessageType::welcome));
    net::ReplyHead r;
    r.round = 5;
    r.weight = 1;
    r.payload_bytes = 8;
    const std::vector<std::uint8_t> payload(8, 0);
    peer.send(*net::OutboundMessage::encode(net::Head{r}, payload));
    want = Errc::unexpected_round;
  }
  SECTION("a client that sends a round request") {
    peer.hello(2, bed.codec, bed.dim);
    REQUIRE(peer.read_until(net::MessageType::welcome));
    peer.send(net::Head{net::Welcome{}});
    want = Errc::unexpected_message;
  }
  CHECK(bed.saw(Kind::closed, want));
  CHECK(peer.closed_by_server());
  CHECK(bed.transport.connected_clients() == std::vector<ClientId>{0, 1});
  bed.honest_round();
}

TEST_CASE("A hello the server cannot accept gets a reject with the reason, then the connection closes",
          "[net][bad_input]") {
  BadInputBed bed;
  RawPeer peer(bed.transport.port());
  net::RejectReason want{};
  SECTION("a newer protocol version") {
    auto b = flatten(*net::OutboundMessage::encode(net::Head{net::Hello{2, "", bed.codec, 4, bed.dim, "x"}}));
    b[4] = net::protocol_version + 1;
    peer.send(b);
    want = net::RejectReason::version_mismatch;
  }
  SECTION("a duplicate client id") {
    peer.hello(0, bed.codec, bed.dim);
    want = net::RejectReason::duplicate_client;
  }
  SECTION("an unknown client id") {
    peer.hello(3, bed.codec, bed.dim);
    want = net::RejectReason::unknown_client;
  }
  SECTION("another codec") {
    peer.hello(2, static_cast<std::uint16_t>(bed.codec + 1), bed.dim);
    want = net::RejectReason::codec_mismatch;
  }
  SECTION("another dimension") {
    peer.hello(2, bed.codec, bed.dim + 1);
    want = net::RejectReason::dimension_mismatch;
  }
  SECTION("another scalar type") {
    peer.hello(2, bed.codec, bed.dim, 8);
    want = net::RejectReason::scalar_mismatch;
  }
  const auto m = peer.read_message();
  REQUIRE(m.has_value());
  REQUIRE(m->type() == net::MessageType::reject);
  CHECK(std::get<net::Reject>(m->head).reason == want);
  CHECK_FALSE(std::get<net::Reject>(m->head).text.empty());
  CHECK(peer.closed_by_server());
  CHECK(bed.saw(want == net::RejectReason::version_mismatch ? Kind::closed : Kind::rejected, net::to_errc(want)));
  CHECK(bed.transport.connected_clients() == std::vector<ClientId>{0, 1});
  bed.honest_round();
}

TEST_CASE("A participant with a bad reply fails alone and the round ends without waiting", "[net][bad_input]") {
  BadInputBed bed;
  // The raw peer joins as client 2, waits for the round request and answers it badly.
  enum class How { corrupt_data, wrong_round, garbage_payload, truncated, stalled, silent_close };
  How how = How::corrupt_data;
  std::size_t want_malformed = 1, want_dropped = 0;
  SECTION("a data frame with a bad checksum") { how = How::corrupt_data; }
  SECTION("a reply for another round") { how = How::wrong_round; }
  SECTION("frames intact but a payload that does not decode") { how = How::garbage_payload; }
  SECTION("the connection ends in the middle of the reply") {
    how = How::truncated;
    want_malformed = 0;
    want_dropped = 1;
  }
  SECTION("the reply stalls in the middle of a frame") {
    how = How::stalled;
    want_malformed = 0;
    want_dropped = 1;
  }
  SECTION("the peer closes without replying") {
    how = How::silent_close;
    want_malformed = 0;
    want_dropped = 1;
  }
  std::atomic<bool> asked{false}, checked{false};
  std::jthread peer_thread([&] {
    RawPeer peer(bed.transport.port());
    peer.hello(2, bed.codec, bed.dim);
    if (!peer.read_until(net::MessageType::welcome)) return;
    const auto req = peer.read_until(net::MessageType::round_request, std::chrono::milliseconds(10000));
    if (!req) return;
    asked = true;
    const auto& rh = std::get<net::RoundHead>(req->head);
    net::ReplyHead r;
    r.round = how == How::wrong_round ? rh.round + 1 : rh.round;
    r.weight = 80;
    std::vector<std::uint8_t> payload(6000, 0x33);  // two data frames of at most 4096 bytes
    r.payload_bytes = payload.size();
    auto bytes = flatten(*net::OutboundMessage::encode(net::Head{r}, payload, {}, 4096));
    switch (how) {
      case How::corrupt_data: bytes[bytes.size() - 10] ^= 0x80; break;
      case How::truncated: bytes.resize(bytes.size() - 100); break;
      case How::stalled: bytes.resize(bytes.size() - 100); break;
      default: break;
    }
    if (how != How::silent_close) peer.send(bytes);
    if (how == How::truncated || how == How::silent_close) peer.close();
    if (how == How::stalled) peer.closed_by_server();
    for (int i = 0; i < 2000 && !checked; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  });
  REQUIRE(bed.transport.wait_for_clients(3, RoundClock::now() + std::chrono::seconds(10)));
  const RoundStats st = bed.honest_round();
  // A payload that does not decode is the pipeline's business: the connection itself was fine.
  const auto connected = bed.transport.connected_clients();
  checked = true;
  peer_thread.join();
  CHECK(asked);
  CHECK(st.participants == 3);
  CHECK(st.rejected_malformed == want_malformed);
  CHECK(st.dropped == want_dropped);
  CHECK(connected == (how == How::garbage_payload ? std::vector<ClientId>{0, 1, 2} : std::vector<ClientId>{0, 1}));
}
