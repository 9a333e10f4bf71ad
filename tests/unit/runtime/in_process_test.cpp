// InProcessTransport: every participant trains exactly once and the sink gets the replies in
// participant order (not completion order) for any thread count; client ids are checked; an
// exception from the sink propagates and leaves the transport usable.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "fedpp/runtime/in_process.hpp"
#include "support/checks.hpp"
#include "support/quadratic.hpp"

using namespace fedpp;
using fedpp_test::Quadratic;

namespace {

// Moves parameter j by (client id + 1) * (j + 1) and reports the client id as its loss; the
// clients listed in `slow` sleep first, so they finish after the others.
struct Tagger {
  std::vector<ClientId> slow;
  struct State {
    int calls = 0;
  };
  template <Model M>
  [[nodiscard]] State make_state(const M& /*m*/) const {
    return {};
  }
  template <Model M>
  LocalResult train(const M& /*m*/, Vector<double>& params, const DatasetView<double>& /*d*/, State& st,
                    const RoundContext& ctx, Rng& /*rng*/) const {
    ++st.calls;
    for (ClientId s : slow)
      if (s == ctx.client) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    for (Index j = 0; j < params.size(); ++j) params(j) += static_cast<double>((ctx.client + 1) * (j + 1));
    return {static_cast<double>(ctx.client), 1, 1};
  }
};

using TagClient = Client<Quadratic, Tagger>;

std::vector<TagClient> tag_clients(std::size_t n, const Tagger& tagger = {}) {
  std::vector<TagClient> clients;
  for (std::size_t i = 0; i < n; ++i)
    clients.emplace_back(static_cast<ClientId>(i), Quadratic{2},
                         DatasetView<double>::all(fedpp_test::quadratic_points(Matrix<double>::Zero(2, 1), 1.0)),
                         tagger);
  return clients;
}

}  // namespace

TEST_CASE("InProcessTransport delivers one reply per participant, in participant order", "[runtime][transport]") {
  const std::vector<ClientId> who{4, 1, 5, 0, 3};  // not sorted: the order is the caller's
  const Vector<double> global = Vector<double>::Zero(2);
  for (int threads : {1, 2, 3}) {
    CAPTURE(threads);
    InProcessTransport<TagClient> transport(tag_clients(6, Tagger{{4, 1}}), threads);
    CHECK(transport.num_clients() == 6);
    CHECK(transport.threads() == threads);
    std::vector<ClientId> order;
    std::vector<Vector<double>> deltas;
    std::vector<double> losses;
    transport.run_round(RoundRequest<double>{0, 1, as_span(global)}, who, [&](Reply&& r) {
      REQUIRE(r.status == ReplyStatus::ok);
      order.push_back(r.client);
      losses.push_back(r.local.train_loss);
      Vector<double> u(2);
      Identity().decode(r.payload, as_span(u));
      deltas.push_back(u);
    });
    CHECK(order == who);
    REQUIRE(deltas.size() == who.size());
    for (std::size_t k = 0; k < who.size(); ++k) {
      const double c = static_cast<double>(who[k] + 1);
      CHECK(deltas[k] == Vector<double>{{c, 2 * c}});  // trained by client who[k]
      CHECK(losses[k] == static_cast<double>(who[k]));
    }
    // Exactly the participants trained, once each.
    for (ClientId id = 0; id < 6; ++id) {
      const bool participates = std::find(who.begin(), who.end(), id) != who.end();
      const auto& st = transport.clients()[id].optimizer_state();
      CHECK(st.has_value() == participates);
      if (participates) CHECK(st->calls == 1);
    }
  }
}

TEST_CASE("InProcessTransport checks client ids", "[runtime][transport]") {
  auto clients = tag_clients(3);
  clients[1] = TagClient(2, Quadratic{2},
                         DatasetView<double>::all(fedpp_test::quadratic_points(Matrix<double>::Zero(2, 1), 1.0)));
  CHECK_THROWS_AS(InProcessTransport<TagClient>(clients, 1), InvalidArgument);
  CHECK(fedpp_test::message_of([&] { InProcessTransport<TagClient> t(clients, 1); }) ==
        "fedpp::InProcessTransport: client at position 1 must have id 1, got 2");

  InProcessTransport<TagClient> transport(tag_clients(3), 2);
  const Vector<double> global = Vector<double>::Zero(2);
  int calls = 0;
  const std::vector<ClientId> outside{0, 3};  // 3 == the number of clients: one past the last id
  CHECK(fedpp_test::message_of([&] {
          transport.run_round(RoundRequest<double>{0, 1, as_span(global)}, outside, [&](Reply&&) { ++calls; });
        }) == "fedpp::InProcessTransport::start_round: unknown client id, got 3");
  CHECK(calls == 0);  // checked before anyone trains
  CHECK_FALSE(transport.clients()[0].optimizer_state().has_value());
  CHECK(fedpp_test::message_of([] { InProcessTransport<TagClient> t(tag_clients(2), -1); }) ==
        "fedpp::ThreadPool: threads must be >= 0, got -1");
}

TEST_CASE("InProcessTransport propagates an exception from the sink and stays usable", "[runtime][transport]") {
  InProcessTransport<TagClient> transport(tag_clients(8), 2);
  const Vector<double> global = Vector<double>::Zero(2);
  const std::vector<ClientId> all{0, 1, 2, 3, 4, 5, 6, 7};
  std::vector<ClientId> got;
  CHECK_THROWS_WITH(transport.run_round(RoundRequest<double>{0, 1, as_span(global)}, all,
                                        [&](Reply&& r) {
                                          got.push_back(r.client);
                                          if (r.client == 2) throw std::runtime_error("sink full");
                                        }),
                    "sink full");
  CHECK(got == std::vector<ClientId>{0, 1, 2});
  got.clear();
  transport.run_round(RoundRequest<double>{1, 1, as_span(global)}, all, [&](Reply&& r) { got.push_back(r.client); });
  CHECK(got == all);
}
