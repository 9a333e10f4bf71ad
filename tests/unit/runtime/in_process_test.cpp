// InProcessTransport: every participant trains exactly once; run_round's sink gets the replies in
// participant order (not completion order) for any thread count, run_until's handler in arrival
// order; deadlines, cancellation and the bounded window; client ids are checked; an exception
// from the sink propagates and leaves the transport usable.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
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

namespace {

// A gate the tests open: clients listed in `held` wait at it before training (no sleeps, no timing).
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  std::atomic<int> started{0};
  void wait() {
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
};

// Opens the gate when it goes out of scope: declared after the transport, it runs first, so a
// failed assertion that leaves a test early never leaves a worker blocked in the transport's
// destructor.
struct OpenOnExit {
  Gate& gate;
  ~OpenOnExit() { gate.release(); }
};

struct GatedTrainer {
  Gate* gate = nullptr;
  std::vector<ClientId> held;
  struct State {};
  template <Model M>
  [[nodiscard]] State make_state(const M& /*m*/) const {
    return {};
  }
  template <Model M>
  LocalResult train(const M& /*m*/, Vector<double>& params, const DatasetView<double>& /*d*/, State& /*st*/,
                    const RoundContext& ctx, Rng& /*rng*/) const {
    ++gate->started;
    if (std::find(held.begin(), held.end(), ctx.client) != held.end()) gate->wait();
    params.array() += static_cast<double>(ctx.client + 1);
    return {static_cast<double>(ctx.client), 1, 1};
  }
};
using GatedClient = Client<Quadratic, GatedTrainer>;

std::vector<GatedClient> gated_clients(std::size_t n, Gate& gate, std::vector<ClientId> held) {
  std::vector<GatedClient> clients;
  for (std::size_t i = 0; i < n; ++i)
    clients.emplace_back(static_cast<ClientId>(i), Quadratic{2},
                         DatasetView<double>::all(fedpp_test::quadratic_points(Matrix<double>::Zero(2, 1), 1.0)),
                         GatedTrainer{&gate, held});
  return clients;
}

}  // namespace

TEST_CASE("InProcessTransport delivers in arrival order and stops at the deadline", "[runtime][transport]") {
  Gate gate;
  InProcessTransport<GatedClient> transport(gated_clients(4, gate, {0}), 2);
  const OpenOnExit open_on_exit{gate};
  CHECK(transport.available_clients() == std::vector<ClientId>{0, 1, 2, 3});
  const auto req = RoundRequest<double>::shared(3, 1, Vector<double>::Zero(2));
  std::vector<ClientId> got;
  std::vector<std::uint64_t> rounds;
  transport.start_round(req, std::vector<ClientId>{0, 1, 2, 3}, [&](Reply&& r) {
    got.push_back(r.client);
    rounds.push_back(r.round);
  });
  // Client 0 waits at the gate: the others arrive first; the deadline passes without 0's reply.
  CHECK_FALSE(transport.run_until(RoundClock::now() + std::chrono::milliseconds(200)));
  std::vector<ClientId> sorted = got;
  std::sort(sorted.begin(), sorted.end());
  CHECK(sorted == std::vector<ClientId>{1, 2, 3});
  CHECK(rounds == std::vector<std::uint64_t>(3, 3));
  gate.release();
  transport.cancel_round();  // waits for client 0 to finish, discards its reply
  CHECK(got.size() == 3);
  // The next round runs normally and nothing of the cancelled one leaks into it.
  got.clear();
  transport.start_round(RoundRequest<double>::shared(4, 1, Vector<double>::Zero(2)), std::vector<ClientId>{0, 2},
                        [&](Reply&& r) {
                          got.push_back(r.client);
                          CHECK(r.round == 4);
                        });
  CHECK(transport.run_until(no_deadline));
  std::sort(got.begin(), got.end());
  CHECK(got == std::vector<ClientId>{0, 2});
}

TEST_CASE("InProcessTransport starts at most 2 x threads participants ahead of the first undelivered one",
          "[runtime][transport]") {
  Gate gate;
  // Client 0 is held: with 2 workers the window is 4, so while 0 is undelivered only
  // participants 0..3 may start; the free worker trains 1, 2, 3 and must then wait.
  InProcessTransport<GatedClient> transport(gated_clients(8, gate, {0}), 2);
  const OpenOnExit open_on_exit{gate};
  std::size_t delivered = 0;
  transport.start_round(RoundRequest<double>::shared(0, 1, Vector<double>::Zero(2)),
                        std::vector<ClientId>{0, 1, 2, 3, 4, 5, 6, 7}, [&](Reply&&) { ++delivered; });
  while (delivered < 3) CHECK_FALSE(transport.run_until(RoundClock::now() + std::chrono::milliseconds(20)));
  CHECK(delivered == 3);
  CHECK(gate.started.load() == 4);  // 0 (held) and 1, 2, 3; 4 is outside the window
  gate.release();
  CHECK(transport.run_until(no_deadline));
  CHECK(delivered == 8);
  CHECK(gate.started.load() == 8);
}

TEST_CASE("An empty in-process round completes at once", "[runtime][transport]") {
  Gate gate;
  InProcessTransport<GatedClient> transport(gated_clients(2, gate, {}), 2);
  int calls = 0;
  transport.start_round(RoundRequest<double>::shared(0, 1, Vector<double>::Zero(2)), std::vector<ClientId>{},
                        [&](Reply&&) { ++calls; });
  CHECK(transport.run_until(no_deadline));
  CHECK(calls == 0);
  CHECK(fedpp_test::message_of([&] {
          transport.start_round(RoundRequest<double>::shared(0, 1, Vector<double>::Zero(2)),
                                std::vector<ClientId>{1, 1}, [](Reply&&) {});
        }) == "fedpp::InProcessTransport::start_round: participants must be distinct; repeated id, got 1");
}
