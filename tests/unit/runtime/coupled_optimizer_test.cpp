// The protocol of coupled optimizers (SCAFFOLD-like pairs): the server optimizer's broadcast reaches
// every participant, the clients' extra vectors reach observe() in client-id order, bad extra vectors
// reject their update, a failed quorum still observes but skips the step, a batch transform is
// observed after it runs, and the extra vectors count in the round's bytes.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "fedpp/aggregators/weighted_mean.hpp"
#include "fedpp/runtime/in_process.hpp"
#include "fedpp/runtime/server.hpp"
#include "support/quadratic.hpp"

using namespace fedpp;
using fedpp_test::Quadratic;
using fedpp_test::quadratic_points;

namespace {

// Moves coordinate 0 by 1 and replies (broadcast[0] + 100 * client id) in every entry; the client
// `bad` replies NaN, the client `short_reply` a vector of the wrong size.
struct Echo {
  ClientId bad = 1000, short_reply = 1000;
  struct State {};
  template <Model M>
  [[nodiscard]] State make_state(const M& /*m*/) const {
    return {};
  }
  template <Model M>
  LocalResult train(const M& /*m*/, Vector<double>& /*p*/, const DatasetView<double>& /*d*/, State& /*s*/,
                    const RoundContext& /*ctx*/, Rng& /*rng*/) const {
    fail("Echo", "needs the exchange");
  }
  template <Model M>
  LocalResult train(const M& /*m*/, Vector<double>& params, const DatasetView<double>& /*d*/, State& /*s*/,
                    const RoundContext& ctx, Rng& /*rng*/, LocalExchange<double>& ex) const {
    params(0) += 1.0;
    if (ctx.client == short_reply) {
      ex.reply = Vector<double>::Zero(params.size() + 1);
      return {};
    }
    ex.reply = Vector<double>::Constant(params.size(), ex.received[0] + 100.0 * static_cast<double>(ctx.client));
    if (ctx.client == bad) ex.reply(0) = std::numeric_limits<double>::quiet_NaN();
    return {};
  }
};
static_assert(ExchangingLocalOptimizer<Echo, Quadratic>);

// Broadcasts (7, 7, ...), records what it observes and the contexts of its steps.
struct BroadcastRecorder {
  bool aux = true;
  struct State {
    Vector<double> sent;
    std::vector<std::pair<ClientId, double>> seen;  // (client, aux[0]) or (client, update[0]) without aux
    std::vector<ServerContext> steps;
  };
  template <typename S>
  [[nodiscard]] State make_state(Index d) const {
    return {Vector<double>::Constant(d, 7.0), {}, {}};
  }
  [[nodiscard]] bool needs_aux() const noexcept { return aux; }
  [[nodiscard]] std::span<const double> broadcast(const State& st) const { return as_span(st.sent); }
  void observe(State& st, const ClientUpdateView<double>& u) const {
    st.seen.emplace_back(u.client, aux ? u.aux[0] : u.update[0]);
  }
  void step(Vector<double>& params, const Vector<double>& update, State& st, const ServerContext& ctx) const {
    params += update;
    st.steps.push_back(ctx);
  }
};
static_assert(BroadcastingServerOptimizer<BroadcastRecorder, double> &&
              ObservingServerOptimizer<BroadcastRecorder, double> &&
              ServerOptimizerWithContext<BroadcastRecorder, double>);

using EchoClient = Client<Quadratic, Echo>;

InProcessTransport<EchoClient> make_transport(std::size_t n, Echo echo, int threads = 2) {
  std::vector<EchoClient> clients;
  for (std::size_t i = 0; i < n; ++i)
    clients.emplace_back(static_cast<ClientId>(i), Quadratic{},
                         DatasetView<double>::all(quadratic_points(Vector<double>{{0.0, 0.0}}, 1.0)), echo);
  return InProcessTransport<EchoClient>(std::move(clients), threads);
}

}  // namespace

TEST_CASE("The server optimizer's broadcast reaches the clients and their replies reach observe() in id order",
          "[runtime][coupled]") {
  for (int threads : {1, 2}) {
    CAPTURE(threads);
    auto transport = make_transport(6, Echo{}, threads);
    Server<double, WeightedMean, BroadcastRecorder> server(Vector<double>::Zero(2),
                                                           {.rounds = 1, .clients_per_round = 4});
    const RoundStats st = server.step(transport);
    REQUIRE(st.accepted == 4);
    const auto& seen = server.server_state().seen;
    REQUIRE(seen.size() == 4);
    for (std::size_t k = 0; k < seen.size(); ++k) {
      if (k > 0) CHECK(seen[k].first > seen[k - 1].first);
      CHECK(seen[k].second == 7.0 + 100.0 * seen[k].first);
    }
    REQUIRE(server.server_state().steps.size() == 1);
    const ServerContext ctx = server.server_state().steps[0];
    CHECK(ctx.round == 0);
    CHECK(ctx.num_clients == 6);
    CHECK(ctx.accepted == 4);
    CHECK(server.params()(0) == 1.0);
    // Down: header + model + broadcast; up: two dense payloads (update and aux) per client.
    CHECK(st.bytes_down == 4 * (24 + 2 * 2 * sizeof(double)));
    // A dense f64 payload of d = 2 (docs/compressors/sparse.md): u16 codec, u8 version, varint dim,
    // varint count, then 2 * 8 value bytes = 21 bytes.
    CHECK(st.bytes_up == 4 * 2 * 21);
  }
}

TEST_CASE("A non-finite or mis-sized extra vector rejects its update and is never observed", "[runtime][coupled]") {
  auto transport = make_transport(4, Echo{.bad = 1, .short_reply = 2});
  Server<double, WeightedMean, BroadcastRecorder> server(Vector<double>::Zero(2), {.rounds = 1, .fraction = 1.0});
  const RoundStats st = server.step(transport);
  CHECK(st.participants == 4);
  CHECK(st.rejected_nonfinite == 1);  // client 1
  CHECK(st.failed == 1);              // client 2: the Client refuses a reply of the wrong size
  CHECK(st.accepted == 2);
  const auto& seen = server.server_state().seen;
  REQUIRE(seen.size() == 2);
  CHECK(seen[0].first == 0);
  CHECK(seen[1].first == 3);
}

TEST_CASE("Without needs_aux the server ignores the extra vectors", "[runtime][coupled]") {
  auto transport = make_transport(3, Echo{.bad = 1});
  Server<double, WeightedMean, BroadcastRecorder> server(Vector<double>::Zero(2), {.rounds = 1, .fraction = 1.0}, {},
                                                         BroadcastRecorder{.aux = false});
  const RoundStats st = server.step(transport);
  CHECK(st.accepted == 3);  // client 1's NaN extra vector is not looked at
  REQUIRE(server.server_state().seen.size() == 3);
  for (const auto& [id, first] : server.server_state().seen) CHECK(first == 1.0);  // update[0]
}

TEST_CASE("A failed quorum still observes the accepted updates but skips the step", "[runtime][coupled]") {
  auto transport = make_transport(3, Echo{});
  Server<double, WeightedMean, BroadcastRecorder> server(Vector<double>::Zero(2),
                                                         {.rounds = 1, .fraction = 1.0, .min_updates = 4});
  const RoundStats st = server.step(transport);
  CHECK(st.accepted == 3);
  CHECK(!st.applied);
  CHECK(server.server_state().seen.size() == 3);
  CHECK(server.server_state().steps.empty());
  CHECK(server.params() == Vector<double>::Zero(2));
}

TEST_CASE("With a batch transform, observe() sees the transformed updates that survive validation",
          "[runtime][coupled]") {
  auto transport = make_transport(4, Echo{});
  Server<double, WeightedMean, BroadcastRecorder> server(Vector<double>::Zero(2), {.rounds = 1, .fraction = 1.0}, {},
                                                         BroadcastRecorder{.aux = true});
  std::vector<ClientId> seen_by_transform;
  server.set_stage([&](UpdateBatch<double>& batch, const AggregationContext&) {
    for (Index i = 0; i < batch.size(); ++i) {
      seen_by_transform.push_back(batch.ids()[static_cast<std::size_t>(i)]);
      auto col = batch.column(i);
      col[0] *= 3.0;
      if (batch.ids()[static_cast<std::size_t>(i)] == 2) col[1] = std::numeric_limits<double>::infinity();
    }
  });
  const RoundStats st = server.step(transport);
  CHECK(seen_by_transform.size() == 4);
  CHECK(st.accepted == 3);
  CHECK(st.rejected_nonfinite == 1);
  const auto& seen = server.server_state().seen;
  REQUIRE(seen.size() == 3);
  CHECK(seen[0] == std::pair<ClientId, double>{0, 7.0});
  CHECK(seen[1] == std::pair<ClientId, double>{1, 107.0});
  CHECK(seen[2] == std::pair<ClientId, double>{3, 307.0});
  CHECK(server.params()(0) == 3.0);  // the mean of the transformed updates

  // Observed updates are the transformed ones.
  Server<double, WeightedMean, BroadcastRecorder> plain(Vector<double>::Zero(2), {.rounds = 1, .fraction = 1.0}, {},
                                                        BroadcastRecorder{.aux = false});
  plain.set_stage([](UpdateBatch<double>& batch, const AggregationContext&) {
    for (Index i = 0; i < batch.size(); ++i) batch.column(i)[0] *= 3.0;
  });
  plain.step(transport);
  REQUIRE(plain.server_state().seen.size() == 4);
  for (const auto& [id, first] : plain.server_state().seen) CHECK(first == 3.0);
}
