// End-to-end runs over loopback TCP: a Server over TcpTransport with NetworkClients on threads
// ends bit-identical to the same Server over the in-process transport (same seed, same policies,
// stateful clients, client sampling), in participant order; arrival order gives the same model
// up to rounding.
#include <catch2/catch.hpp>

#include <cstring>
#include <thread>

#include "fedpp/aggregators/weighted_mean.hpp"
#include "fedpp/optimizers/server_sgd.hpp"
#include "fedpp/runtime/in_process.hpp"
#include "fedpp/runtime/server.hpp"
#include "support/checks.hpp"
#include "support/net_federation.hpp"

using namespace fedpp;
using fedpp_test::NetFederation;

namespace {

using NetServer = Server<float, WeightedMean, ServerSgd, NetFederation::Comp>;

ServerOptions loopback_server_options() {
  ServerOptions so;
  so.rounds = 6;
  so.fraction = 0.5;
  so.seed = 7;
  return so;
}

RunResult<float> in_process_reference(const NetFederation& fed, ServerOptions so) {
  InProcessTransport<NetFederation::ClientT> t(fed.clients(), 2);
  NetServer server(fed.w0, so, WeightedMean(), ServerSgd(), fed.comp);
  return server.run(t);
}

}  // namespace

TEST_CASE("A TCP run equals the in-process run bit for bit", "[net][loopback]") {
  NetFederation fed(4);
  const ServerOptions so = loopback_server_options();
  const RunResult<float> want = in_process_reference(fed, so);

  net::TcpTransport<float> transport(fed.transport_options());
  auto clients = fed.clients();
  fedpp_test::ClientThreads threads(clients, [&](std::size_t) { return fedpp_test::loopback_client(transport.port()); });
  REQUIRE(transport.wait_for_clients(fed.n, RoundClock::now() + std::chrono::seconds(10)));
  NetServer server(fed.w0, so, WeightedMean(), ServerSgd(), fed.comp);
  const RunResult<float> got = server.run(transport);
  transport.close();
  threads.join();

  REQUIRE(got.history.size() == want.history.size());
  for (std::size_t r = 0; r < got.history.size(); ++r) {
    CHECK(got.history[r].accepted == want.history[r].accepted);
    CHECK(got.history[r].bytes_up == want.history[r].bytes_up);
  }
  CHECK(fedpp_test::same_bits(got.params, want.params));
  for (std::size_t i = 0; i < fed.n; ++i) CHECK(threads.error(i).empty());
  const auto c = transport.counters();
  for (const auto& e : transport.events())
    if (e.code) UNSCOPED_INFO(net::describe(e));
  CHECK(c.errors == 0);
  CHECK(c.connected == fed.n);
}

TEST_CASE("In arrival order a TCP run accepts the same updates and ends equal up to rounding", "[net][loopback]") {
  NetFederation fed(4);
  ServerOptions so = loopback_server_options();
  const RunResult<float> want = in_process_reference(fed, so);
  so.arrival_order = true;  // replies stream into the accumulator as they arrive: sums in arrival order
  net::TcpTransport<float> transport(fed.transport_options());
  auto clients = fed.clients();
  fedpp_test::ClientThreads threads(clients, [&](std::size_t) { return fedpp_test::loopback_client(transport.port()); });
  REQUIRE(transport.wait_for_clients(fed.n, RoundClock::now() + std::chrono::seconds(10)));
  NetServer server(fed.w0, so, WeightedMean(), ServerSgd(), fed.comp);
  const RunResult<float> got = server.run(transport);
  transport.close();
  threads.join();
  REQUIRE(got.history.size() == want.history.size());
  for (std::size_t r = 0; r < got.history.size(); ++r) CHECK(got.history[r].accepted == want.history[r].accepted);
  REQUIRE(got.params.size() == want.params.size());
  // Weighted means of the same 2 updates per round, summed in either order: float rounding only.
  CHECK((got.params - want.params).norm() <= 1e-5f * want.params.norm());
}

TEST_CASE("With an ingest budget of one byte the server reads one reply at a time and the run is unchanged",
          "[net][loopback]") {
  NetFederation fed(4);
  ServerOptions so = loopback_server_options();
  so.clients_per_round = 4;
  const RunResult<float> want = in_process_reference(fed, so);
  auto o = fed.transport_options();
  o.ingest_budget = 1;  // below one reply: a reply's bulk is read only when no other reply awaits the consumer
  net::TcpTransport<float> transport(o);
  auto clients = fed.clients();
  fedpp_test::ClientThreads threads(clients, [&](std::size_t) { return fedpp_test::loopback_client(transport.port()); });
  REQUIRE(transport.wait_for_clients(fed.n, RoundClock::now() + std::chrono::seconds(10)));

  // A slow consumer: the first reply is held 300 ms while the other three arrive; they must wait.
  std::vector<std::size_t> sizes;
  const std::vector<ClientId> who{0, 1, 2, 3};
  transport.start_round(RoundRequest<float>::shared(0, so.seed, fed.w0), who, [&](Reply&& r) {
    if (sizes.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(300));
    sizes.push_back(r.payload.bytes());
  });
  REQUIRE(transport.run_until(RoundClock::now() + std::chrono::seconds(10)));
  CHECK(sizes.size() == 4);
  CHECK(transport.counters().budget_waits >= 1);

  // The same federation trained over this transport ends bit-identical (the clients' round 0 above
  // is replayed from their snapshots when the server asks for round 0).
  NetServer server(fed.w0, so, WeightedMean(), ServerSgd(), fed.comp);
  const RunResult<float> got = server.run(transport);
  transport.close();
  threads.join();
  CHECK(fedpp_test::same_bits(got.params, want.params));
}
