// TLS and authentication: clients verify the server's certificate; mutual TLS admits exactly the
// clients whose certificate the federation's CA signed for the id they claim; tokens over TLS; an
// unauthenticated, unknown or wrongly credentialed client is refused while the others train; and
// a server without explicit security settings does not start.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <optional>

#include "fedpp/aggregators/weighted_mean.hpp"
#include "fedpp/optimizers/server_sgd.hpp"
#include "fedpp/runtime/in_process.hpp"
#include "fedpp/runtime/server.hpp"
#include "support/checks.hpp"
#include "support/net_federation.hpp"
#include "support/temp_dir.hpp"
#include "support/test_certs.hpp"

using namespace fedpp;
using fedpp_test::NetFederation;

namespace {

using TlsServer = Server<float, WeightedMean, ServerSgd, NetFederation::Comp>;

ServerOptions tls_server_options(std::uint64_t rounds = 3) {
  ServerOptions so;
  so.rounds = rounds;
  so.clients_per_round = 2;
  so.seed = 3;
  return so;
}

// Server options for TLS with the given authentication.
net::TransportOptions tls_transport(const NetFederation& fed, const fedpp_test::TestPki& pki, bool mutual,
                                    std::vector<std::string> tokens = {}) {
  auto o = fed.transport_options();
  o.security = {};
  o.security.mode = net::ServerSecurity::Mode::tls;
  o.security.cert_file = pki.server_cert();
  o.security.key_file = pki.server_key();
  o.security.ca_file = pki.ca();
  o.security.require_client_certificate = mutual;
  o.security.tokens = std::move(tokens);
  return o;
}

net::ClientOptions tls_client(std::uint16_t port, const fedpp_test::TestPki& pki, int id, bool with_cert) {
  auto o = fedpp_test::loopback_client(port);
  o.security = {};
  o.security.mode = net::ClientSecurity::Mode::tls;
  o.security.ca_file = pki.ca();
  if (with_cert) {
    o.security.cert_file = pki.client_cert(id);
    o.security.key_file = pki.client_key(id);
  }
  return o;
}

// Runs a client that must be rejected; if the server admits it, the client is stopped at once
// (so a test of a broken check fails quickly instead of serving rounds forever). Returns the reason.
std::optional<net::RejectReason> rejection(NetFederation::ClientT& client, net::ClientOptions o) {
  net::NetworkClient<NetFederation::ClientT>* self = nullptr;
  o.on_event = [&self](const net::ConnectionEvent& e) {
    if (e.kind == net::ConnectionEvent::Kind::connected && self) self->stop();
  };
  net::NetworkClient<NetFederation::ClientT> c(client, o);
  self = &c;
  try {
    c.run();
  } catch (const net::RejectedError& e) {
    UNSCOPED_INFO(e.what());
    return e.reason();
  }
  return std::nullopt;  // admitted
}

// Runs a client expected to fail to connect; returns its error ("admitted" when the server let it
// in: the client is then stopped at once).
std::string failure_text(NetFederation::ClientT& client, net::ClientOptions o) {
  net::NetworkClient<NetFederation::ClientT>* self = nullptr;
  o.on_event = [&self](const net::ConnectionEvent& e) {
    if (e.kind == net::ConnectionEvent::Kind::connected && self) self->stop();
  };
  net::NetworkClient<NetFederation::ClientT> c(client, o);
  self = &c;
  try {
    c.run();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "admitted";
}

bool has_event(const std::vector<net::ConnectionEvent>& ev, net::ConnectionEvent::Kind kind, net::ProtocolErrc code) {
  return std::any_of(ev.begin(), ev.end(), [&](const auto& e) { return e.kind == kind && e.code == code; });
}

}  // namespace

TEST_CASE("Mutual TLS: a run over TLS equals the in-process run bit for bit", "[net][tls]") {
  fedpp_test::TempDir dir("fedpp_tls");
  const auto pki = fedpp_test::make_test_pki(dir.path, 3);
  NetFederation fed(3);
  const ServerOptions so = tls_server_options();
  InProcessTransport<NetFederation::ClientT> ref_t(fed.clients(), 1);
  TlsServer ref(fed.w0, so, WeightedMean(), ServerSgd(), fed.comp);
  const RunResult<float> want = ref.run(ref_t);

  net::TcpTransport<float> transport(tls_transport(fed, pki, true));
  auto clients = fed.clients();
  fedpp_test::ClientThreads threads(clients, [&](std::size_t i) {
    return tls_client(transport.port(), pki, static_cast<int>(i), true);
  });
  REQUIRE(transport.wait_for_clients(3, RoundClock::now() + std::chrono::seconds(10)));
  TlsServer server(fed.w0, so, WeightedMean(), ServerSgd(), fed.comp);
  const RunResult<float> got = server.run(transport);
  transport.close();
  threads.join();
  for (std::size_t i = 0; i < 3; ++i) CHECK(threads.error(i).empty());
  CHECK(fedpp_test::same_bits(got.params, want.params));
  CHECK(transport.counters().errors == 0);
}

TEST_CASE("Mutual TLS refuses clients without a certificate from the federation's CA or with another id's certificate",
          "[net][tls]") {
  fedpp_test::TempDir dir("fedpp_tls");
  const auto pki = fedpp_test::make_test_pki(dir.path, 3);
  NetFederation fed(3);
  net::TcpTransport<float> transport(tls_transport(fed, pki, true));
  // Honest clients 1 and 2 train throughout.
  auto clients = fed.clients();
  std::vector<NetFederation::ClientT> honest{clients[1], clients[2]};
  fedpp_test::ClientThreads threads(honest, [&](std::size_t i) {
    return tls_client(transport.port(), pki, static_cast<int>(i + 1), true);
  });
  REQUIRE(transport.wait_for_clients(2, RoundClock::now() + std::chrono::seconds(10)));

  auto quick_give_up = [](net::ClientOptions o) {
    o.give_up_after = std::chrono::milliseconds(300);
    return o;
  };
  SECTION("no client certificate: the TLS handshake fails, the client gives up") {
    auto o = quick_give_up(tls_client(transport.port(), pki, 0, false));
    CHECK_THAT(failure_text(clients[0], o), Catch::Contains("no connection"));
  }
  SECTION("a client-0 certificate from another CA: the TLS handshake fails") {
    auto o = quick_give_up(tls_client(transport.port(), pki, 0, false));
    o.security.cert_file = pki.other_client_cert();
    o.security.key_file = pki.other_client_key();
    CHECK_THAT(failure_text(clients[0], o), Catch::Contains("no connection"));
  }
  SECTION("client 0 presenting client 1's certificate is rejected as bad credentials") {
    auto o = tls_client(transport.port(), pki, 1, true);
    CHECK(rejection(clients[0], o) == net::RejectReason::bad_credentials);
    const auto ev = transport.events();
    CHECK(std::any_of(ev.begin(), ev.end(), [](const auto& e) {
      return e.text.find("client-0") != std::string::npos && e.text.find("client-1") != std::string::npos;
    }));
    CHECK(has_event(transport.events(), net::ConnectionEvent::Kind::rejected, net::ProtocolErrc::bad_credentials));
  }
  // Whatever happened to the intruder, the federation still trains: a round with clients 1 and 2.
  const auto avail = transport.available_clients();
  CHECK(avail == std::vector<ClientId>{1, 2});
  ServerOptions so = tls_server_options(1);
  TlsServer server(fed.w0, so, WeightedMean(), ServerSgd(), fed.comp);
  const RoundStats st = server.step(transport);
  CHECK(st.accepted == 2);
  CHECK(transport.connected_clients() == std::vector<ClientId>{1, 2});
  transport.close();
  threads.join();
  CHECK(threads.error(0).empty());
  CHECK(threads.error(1).empty());
}

TEST_CASE("Clients verify the server: a certificate from another CA or for another name is refused", "[net][tls]") {
  fedpp_test::TempDir dir("fedpp_tls");
  const auto pki = fedpp_test::make_test_pki(dir.path, 1);
  NetFederation fed(1);
  auto clients = fed.clients();
  SECTION("impostor server certificate") {
    auto o = tls_transport(fed, pki, false);
    o.security.cert_file = pki.other_server_cert();
    o.security.key_file = pki.other_server_key();
    o.security.allow_unauthenticated = true;
    net::TcpTransport<float> transport(o);
    auto co = tls_client(transport.port(), pki, 0, false);
    co.give_up_after = std::chrono::milliseconds(300);
    CHECK_THAT(failure_text(clients[0], co), Catch::Contains("certificate verify failed"));
    CHECK(transport.connected_clients().empty());
  }
  SECTION("the right CA but a name the certificate does not carry") {
    auto o = tls_transport(fed, pki, false);
    o.security.allow_unauthenticated = true;
    net::TcpTransport<float> transport(o);
    auto co = tls_client(transport.port(), pki, 0, false);
    co.security.server_name = "fedpp.example.org";
    co.give_up_after = std::chrono::milliseconds(300);
    CHECK_THAT(failure_text(clients[0], co), Catch::Contains("certificate verify failed"));
    CHECK(transport.connected_clients().empty());
  }
}

TEST_CASE("Tokens over TLS: the right token trains, a wrong or missing one is rejected", "[net][tls]") {
  fedpp_test::TempDir dir("fedpp_tls");
  const auto pki = fedpp_test::make_test_pki(dir.path, 0);
  NetFederation fed(2);
  net::TcpTransport<float> transport(tls_transport(fed, pki, false, {"token-zero-3f9a", "token-one-c41d"}));
  auto clients = fed.clients();
  for (const std::string bad : {"token-one-c41d", "", "token-zero-3f9b"}) {
    auto o = tls_client(transport.port(), pki, 0, false);
    o.security.token = bad;
    CHECK(rejection(clients[0], o) == net::RejectReason::bad_credentials);
  }
  CHECK(transport.counters().rejected == 3);
  CHECK(transport.connected_clients().empty());
  fedpp_test::ClientThreads threads(clients, [&](std::size_t i) {
    auto o = tls_client(transport.port(), pki, static_cast<int>(i), false);
    o.security.token = i == 0 ? "token-zero-3f9a" : "token-one-c41d";
    return o;
  });
  REQUIRE(transport.wait_for_clients(2, RoundClock::now() + std::chrono::seconds(10)));
  TlsServer server(fed.w0, tls_server_options(2), WeightedMean(), ServerSgd(), fed.comp);
  const auto r = server.run(transport);
  CHECK(r.history.back().accepted == 2);
  transport.close();
  threads.join();
  CHECK(threads.error(0).empty());
  CHECK(threads.error(1).empty());
}

TEST_CASE("A plaintext client cannot talk to a TLS server", "[net][tls]") {
  fedpp_test::TempDir dir("fedpp_tls");
  const auto pki = fedpp_test::make_test_pki(dir.path, 1);
  NetFederation fed(1);
  net::TcpTransport<float> transport(tls_transport(fed, pki, true));
  auto clients = fed.clients();
  auto o = fedpp_test::loopback_client(transport.port());
  o.give_up_after = std::chrono::milliseconds(300);
  CHECK_THAT(failure_text(clients[0], o), Catch::Contains("no connection"));
  CHECK(transport.connected_clients().empty());
  const auto c2 = transport.counters();
  CHECK(c2.connected == 0);
  CHECK(c2.errors >= 1);
}

TEST_CASE("A transport without explicit security or authentication does not start", "[net][tls]") {
  NetFederation fed(2);
  auto o = fed.transport_options();
  o.security = {};
  CHECK_THROWS_WITH(net::TcpTransport<float>(o), Catch::Contains("fedpp::net::TcpTransport") && Catch::Contains("security"));
  o.security.mode = net::ServerSecurity::Mode::plaintext;
  CHECK_THROWS_WITH(net::TcpTransport<float>(o), Catch::Contains("authenticated"));
  o.security.tokens = {"a"};
  CHECK_THROWS_WITH(net::TcpTransport<float>(o), Catch::Contains("tokens must have one entry per client 2"));
  o.security.tokens = {};
  o.security.require_client_certificate = true;
  CHECK_THROWS_WITH(net::TcpTransport<float>(o), Catch::Contains("needs TLS"));
  o.security = {};
  o.security.mode = net::ServerSecurity::Mode::tls;
  o.security.allow_unauthenticated = true;
  CHECK_THROWS_WITH(net::TcpTransport<float>(o), Catch::Contains("cert_file must be set"));
  auto co = fedpp_test::loopback_client(1234);
  co.security = {};
  auto clients = fed.clients();
  CHECK_THROWS_WITH(net::NetworkClient<NetFederation::ClientT>(clients[0], co), Catch::Contains("security must be set"));
}
