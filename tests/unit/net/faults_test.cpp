// Faults over TCP (issue 14): a client killed mid-round, a client that hangs, a slow trainer that
// keeps sending heartbeats, a peer that goes silent, a dropped connection that reconnects with its
// id and state, and a server that crashes in the middle of a round and resumes from its checkpoint
// (the clients replay that round from their snapshot) -- each round completes, and where nothing
// was lost the run ends bit-identical to the uninterrupted in-process run.
#include <catch2/catch.hpp>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>

#include "fedpp/aggregators/weighted_mean.hpp"
#include "fedpp/optimizers/server_sgd.hpp"
#include "fedpp/runtime/checkpoint.hpp"
#include "fedpp/runtime/in_process.hpp"
#include "fedpp/runtime/server.hpp"
#include "support/checks.hpp"
#include "support/net_federation.hpp"
#include "support/raw_peer.hpp"
#include "support/temp_dir.hpp"

using namespace fedpp;
using fedpp_test::NetFederation;

namespace {

using FaultServer = Server<float, WeightedMean, ServerSgd, NetFederation::Comp>;

// Holds a client's training until released (and counts the clients waiting).
struct TrainingGate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  std::atomic<int> waiting{0};
  void pass() {
    ++waiting;
    std::unique_lock lk(mu);
    cv.wait(lk, [&] { return open; });
  }
  void release() {
    {
      std::lock_guard lk(mu);
      open = true;
    }
    cv.notify_all();
  }
  bool wait_for_waiting(int n) {
    for (int i = 0; i < 2000; ++i) {
      if (waiting >= n) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
  }
};

// A fedpp::Client that can be held at a gate or slowed down before it trains.
struct SlowClient {
  using Scalar = float;
  NetFederation::ClientT inner;
  std::shared_ptr<TrainingGate> gate{};
  std::chrono::milliseconds delay{0};

  Reply handle(const RoundRequest<float>& r) {
    if (gate) gate->pass();
    if (delay.count() > 0) std::this_thread::sleep_for(delay);
    return inner.handle(r);
  }
  [[nodiscard]] ClientId id() const { return inner.id(); }
  [[nodiscard]] const auto& model() const { return inner.model(); }
  [[nodiscard]] const auto& compressor() const { return inner.compressor(); }
  template <class A>
  void save(A& ar) const {
    inner.save(ar);
  }
  template <class A>
  void load(A& ar) {
    inner.load(ar);
  }
};

std::vector<SlowClient> slow_clients(const NetFederation& fed) {
  std::vector<SlowClient> out;
  for (auto& c : fed.clients()) out.push_back(SlowClient{c});
  return out;
}

ServerOptions fault_server_options(std::uint64_t rounds = 1) {
  ServerOptions so;
  so.rounds = rounds;
  so.clients_per_round = 3;
  so.seed = 21;
  return so;
}

// The model after one round with clients 0 and 1 only (in-process).
Vector<float> model_without_client_2(const NetFederation& fed) {
  auto all = fed.clients();
  InProcessTransport<NetFederation::ClientT> t(std::vector<NetFederation::ClientT>{all[0], all[1]}, 1);
  ServerOptions so = fault_server_options();
  so.clients_per_round = 2;
  FaultServer s(fed.w0, so, WeightedMean(), ServerSgd(), fed.comp);
  s.step(t);
  return s.params();
}

RunResult<float> uninterrupted(const NetFederation& fed, std::uint64_t rounds) {
  InProcessTransport<NetFederation::ClientT> t(fed.clients(), 2);
  FaultServer s(fed.w0, fault_server_options(rounds), WeightedMean(), ServerSgd(), fed.comp);
  return s.run(t);
}

net::TransportOptions fault_transport(const NetFederation& fed) {
  auto o = fed.transport_options();
  o.heartbeat_interval = std::chrono::milliseconds(40);
  o.timeouts.idle = std::chrono::milliseconds(400);
  return o;
}

}  // namespace

TEST_CASE("A client killed in the middle of a round: the round completes on quorum without it", "[net][faults]") {
  NetFederation fed(3);
  auto clients = slow_clients(fed);
  auto gate = std::make_shared<TrainingGate>();
  clients[2].gate = gate;
  net::TcpTransport<float> transport(fault_transport(fed));
  fedpp_test::ClientThreads threads(clients, [&](std::size_t) { return fedpp_test::loopback_client(transport.port()); });
  REQUIRE(transport.wait_for_clients(3, RoundClock::now() + std::chrono::seconds(10)));
  std::jthread killer([&] {
    if (gate->wait_for_waiting(1)) threads.net(2).kill();
  });
  ServerOptions so = fault_server_options();
  so.min_updates = 2;
  FaultServer server(fed.w0, so, WeightedMean(), ServerSgd(), fed.comp);
  const RoundStats st = server.step(transport);
  killer.join();
  gate->release();
  CHECK(st.participants == 3);
  CHECK(st.accepted == 2);
  CHECK(st.dropped == 1);
  CHECK(st.quorum_met);
  CHECK(fedpp_test::same_bits(server.params(), model_without_client_2(fed)));
  transport.close();
  threads.join();
}

TEST_CASE("A client that hangs times out at the deadline and its late reply is discarded", "[net][faults]") {
  NetFederation fed(3);
  auto clients = slow_clients(fed);
  auto gate = std::make_shared<TrainingGate>();
  clients[2].gate = gate;
  net::TcpTransport<float> transport(fault_transport(fed));
  fedpp_test::ClientThreads threads(clients, [&](std::size_t) { return fedpp_test::loopback_client(transport.port()); });
  REQUIRE(transport.wait_for_clients(3, RoundClock::now() + std::chrono::seconds(10)));
  ServerOptions so = fault_server_options(2);
  so.round_timeout = std::chrono::milliseconds(600);  // longer than the idle timeout: heartbeats keep it connected
  FaultServer server(fed.w0, so, WeightedMean(), ServerSgd(), fed.comp);
  const RoundStats first = server.step(transport);
  CHECK(first.accepted == 2);
  CHECK(first.timed_out == 1);
  CHECK(fedpp_test::same_bits(server.params(), model_without_client_2(fed)));
  CHECK(transport.connected_clients() == std::vector<ClientId>{0, 1, 2});  // slow is not dead
  CHECK(transport.available_clients() == std::vector<ClientId>{0, 1});     // but busy
  gate->release();
  REQUIRE(transport.wait_for_clients(3, RoundClock::now() + std::chrono::seconds(10)));
  const RoundStats second = server.step(transport);
  CHECK(second.accepted == 3);
  CHECK(second.late == 0);  // the round timed out and was cancelled: the transport drops its replies
  CHECK(transport.counters().discarded == 1);
  CHECK(transport.counters().errors == 0);
  transport.close();
  threads.join();
}

TEST_CASE("A slow trainer that keeps sending heartbeats is never taken for dead", "[net][faults]") {
  NetFederation fed(3);
  auto clients = slow_clients(fed);
  clients[1].delay = std::chrono::milliseconds(1200);  // three idle timeouts
  net::TcpTransport<float> transport(fault_transport(fed));
  fedpp_test::ClientThreads threads(clients, [&](std::size_t) { return fedpp_test::loopback_client(transport.port()); });
  REQUIRE(transport.wait_for_clients(3, RoundClock::now() + std::chrono::seconds(10)));
  FaultServer server(fed.w0, fault_server_options(), WeightedMean(), ServerSgd(), fed.comp);
  const RoundStats st = server.step(transport);
  CHECK(st.accepted == 3);
  CHECK(transport.counters().errors == 0);
  CHECK(transport.counters().connected == 3);
  transport.close();
  threads.join();
}

TEST_CASE("A participant that goes silent is closed after the idle timeout and the round ends without a deadline",
          "[net][faults]") {
  NetFederation fed(3);
  auto all = fed.clients();
  std::vector<NetFederation::ClientT> honest{all[0], all[1]};
  net::TcpTransport<float> transport(fault_transport(fed));
  fedpp_test::ClientThreads threads(honest, [&](std::size_t) { return fedpp_test::loopback_client(transport.port()); });
  std::atomic<bool> done{false};
  std::jthread silent([&] {
    fedpp_test::RawPeer peer(transport.port());
    peer.hello(2, net::probe_codec<float>(fed.comp), static_cast<std::uint64_t>(fed.model.num_params()));
    if (!peer.read_until(net::MessageType::welcome)) return;
    peer.send(net::Head{net::Heartbeat{1, 0, 0}});  // alive once, then the host "dies"
    // Reads what the server sends (heartbeats, the round request) but never answers anything.
    while (!done && peer.read_message(std::chrono::milliseconds(100))) {
    }
    peer.closed_by_server(std::chrono::milliseconds(2000));
  });
  REQUIRE(transport.wait_for_clients(3, RoundClock::now() + std::chrono::seconds(10)));
  FaultServer server(fed.w0, fault_server_options(), WeightedMean(), ServerSgd(), fed.comp);
  const RoundStats st = server.step(transport);  // no round_timeout: only the idle watchdog can end it
  done = true;
  CHECK(st.accepted == 2);
  CHECK(st.dropped == 1);
  CHECK(fedpp_test::same_bits(server.params(), model_without_client_2(fed)));
  const auto ev = transport.events();
  CHECK(std::any_of(ev.begin(), ev.end(), [](const auto& e) {
    return e.kind == net::ConnectionEvent::Kind::closed && e.client == 2u && e.code == net::ProtocolErrc::no_heartbeat;
  }));
  transport.close();
  threads.join();
}

TEST_CASE("A client whose connection drops reconnects with its id and state: the run stays bit-identical",
          "[net][faults]") {
  NetFederation fed(3);
  const std::uint64_t rounds = 5;
  const RunResult<float> want = uninterrupted(fed, rounds);
  auto clients = fed.clients();
  net::TcpTransport<float> transport(fault_transport(fed));
  fedpp_test::ClientThreads threads(clients, [&](std::size_t) { return fedpp_test::loopback_client(transport.port()); });
  FaultServer server(fed.w0, fault_server_options(rounds), WeightedMean(), ServerSgd(), fed.comp);
  for (std::uint64_t r = 0; r < rounds; ++r) {
    REQUIRE(transport.wait_for_clients(3, RoundClock::now() + std::chrono::seconds(10)));
    server.step(transport);
    if (r == 1 || r == 3) {
      const auto before = transport.counters().closed;
      threads.net(1).drop_connection();
      for (int i = 0; i < 1000 && transport.counters().closed == before; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  CHECK(fedpp_test::same_bits(server.params(), want.params));
  CHECK(transport.counters().connected == 5);
  transport.close();
  threads.join();
  CHECK(threads.net(1).stats().connections == 3);
  CHECK(threads.error(1).empty());
}

TEST_CASE("A server that crashes in the middle of a round resumes from its checkpoint and ends bit-identical",
          "[net][faults]") {
  NetFederation fed(3);
  const std::uint64_t rounds = 4, crash_in = 2;
  const RunResult<float> want = uninterrupted(fed, rounds);
  fedpp_test::TempDir dir("fedpp_net_resume");
  const std::string ckpt = dir.file("server.ckpt");
  auto clients = fed.clients();

  auto first = std::make_unique<net::TcpTransport<float>>(fault_transport(fed));
  const std::uint16_t port = first->port();
  fedpp_test::ClientThreads threads(clients, [&](std::size_t) { return fedpp_test::loopback_client(port); });
  {
    FaultServer server(fed.w0, fault_server_options(rounds), WeightedMean(), ServerSgd(), fed.comp);
    for (std::uint64_t r = 0; r < crash_in; ++r) {
      REQUIRE(first->wait_for_clients(3, RoundClock::now() + std::chrono::seconds(10)));
      server.step(*first);
      save_checkpoint(server, ckpt);
    }
    // Round `crash_in` starts; every client trains it and replies; the server dies before committing.
    REQUIRE(first->wait_for_clients(3, RoundClock::now() + std::chrono::seconds(10)));
    std::size_t replies = 0;
    const std::vector<ClientId> who{0, 1, 2};
    first->start_round(server.pipeline().request(), who, [&](Reply&&) { ++replies; });
    CHECK(first->run_until(no_deadline));
    CHECK(replies == 3);
    first->abort();
  }
  first.reset();

  auto o = fault_transport(fed);
  o.port = port;
  net::TcpTransport<float> second(o);
  FaultServer resumed(fed.w0, fault_server_options(rounds), WeightedMean(), ServerSgd(), fed.comp);
  load_checkpoint(resumed, ckpt);
  REQUIRE(resumed.round() == crash_in);
  while (resumed.round() < rounds) {
    REQUIRE(second.wait_for_clients(3, RoundClock::now() + std::chrono::seconds(10)));
    resumed.step(second);
  }
  CHECK(fedpp_test::same_bits(resumed.params(), want.params));
  second.close();
  threads.join();
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(threads.error(i).empty());
    CHECK(threads.net(i).stats().replays == 1);
    CHECK(threads.net(i).stats().connections == 2);
  }
}

TEST_CASE("A reply trained for a lost connection is not sent on the next one", "[net][faults]") {
  NetFederation fed(3);
  auto clients = slow_clients(fed);
  auto gate = std::make_shared<TrainingGate>();
  clients[1].gate = gate;
  net::TcpTransport<float> transport(fault_transport(fed));
  fedpp_test::ClientThreads threads(clients, [&](std::size_t) { return fedpp_test::loopback_client(transport.port()); });
  REQUIRE(transport.wait_for_clients(3, RoundClock::now() + std::chrono::seconds(10)));
  std::jthread dropper([&] {
    if (gate->wait_for_waiting(1)) threads.net(1).drop_connection();  // client 1 is training round 0
  });
  FaultServer server(fed.w0, fault_server_options(2), WeightedMean(), ServerSgd(), fed.comp);
  const RoundStats first = server.step(transport);
  dropper.join();
  CHECK(first.accepted == 2);
  CHECK(first.dropped == 1);
  // Client 1 reconnects while its round-0 training is still held; then the training finishes.
  REQUIRE(transport.wait_for_clients(3, RoundClock::now() + std::chrono::seconds(10)));
  gate->release();
  const RoundStats second = server.step(transport);  // client 1's new request queues behind the stale one
  CHECK(second.accepted == 3);
  CHECK(second.ignored() == 0);
  CHECK(transport.counters().errors == 0);  // no reply arrived for a round the new connection was not asked
  CHECK(transport.counters().connected == 4);
  transport.close();
  threads.join();
  CHECK(threads.net(1).stats().rounds == 2);
}
