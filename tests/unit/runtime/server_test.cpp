// Server: sampling, validation of replies (nothing bad reaches the model), quorum, callbacks.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>
#include <set>

#include "fedpp/runtime/server.hpp"
#include "fedpp/runtime/thread_pool.hpp"

using namespace fedpp;

namespace {

// A transport whose "clients" reply with scripted updates: client i sends the vector (i+1) * ones,
// except for the misbehaviours configured in `bad`.
enum class Misbehave { none, nan, inf, wrong_dim, garbage, failed, dropped, negative_weight };

struct MisbehavingTransport {
  std::size_t n = 10;
  Index d = 4;
  std::map<ClientId, Misbehave> bad;
  std::vector<std::vector<ClientId>> seen;  // participants of each round

  std::size_t num_clients() const { return n; }

  void run_round(const RoundRequest<double>& req, std::span<const ClientId> who, const ReplySink& sink) {
    REQUIRE(static_cast<Index>(req.model.size()) == d);
    seen.emplace_back(who.begin(), who.end());
    Identity c;
    auto st = c.make_state<double>(d);
    Rng rng(0);
    for (ClientId id : who) {
      Reply r;
      r.client = id;
      r.weight = 1.0;
      r.local.train_loss = static_cast<double>(id);
      Vector<double> u = Vector<double>::Constant(d, static_cast<double>(id + 1));
      const Misbehave m = bad.count(id) ? bad.at(id) : Misbehave::none;
      if (m == Misbehave::nan) u(1) = std::nan("");
      if (m == Misbehave::inf) u(2) = -INFINITY;
      if (m == Misbehave::negative_weight) r.weight = -1.0;
      if (m == Misbehave::wrong_dim) u.resize(d + 1), u.setOnes();
      r.payload = c.encode(as_span(std::as_const(u)), st, rng);
      if (m == Misbehave::garbage) r.payload = Payload(std::vector<std::uint8_t>{1, 2, 3});
      if (m == Misbehave::failed) r.status = ReplyStatus::failed, r.payload = Payload();
      if (m == Misbehave::dropped) r.status = ReplyStatus::dropped, r.payload = Payload();
      sink(std::move(r));
    }
  }
};
static_assert(Transport<MisbehavingTransport, double>);

// Records the rounds the callbacks see and coordinate 0 of each aggregate; stops the run after stop_after rounds.
struct CallbackRecorder {
  std::vector<std::uint64_t> begins, ends;
  std::vector<double> agg_first;
  std::uint64_t stop_after = ~0ULL;
  void on_round_begin(const RoundStats& s) { begins.push_back(s.round); }
  void on_aggregate(const RoundStats&, std::span<const double> a) { agg_first.push_back(a[0]); }
  bool on_round_end(const RoundStats& s, std::span<const double>) {
    ends.push_back(s.round);
    return s.round + 1 >= stop_after;
  }
};

}  // namespace

TEST_CASE("clients_per_round and sample_clients", "[runtime][sampling]") {
  CHECK(clients_per_round(100, 0.1, 0) == 10);
  CHECK(clients_per_round(100, 0.001, 0) == 1);
  CHECK(clients_per_round(7, 1.0, 0) == 7);
  CHECK(clients_per_round(100, 0.1, 25) == 25);
  CHECK_THROWS_WITH(clients_per_round(100, 1.5, 0), Catch::Contains("fraction must be in (0, 1]") &&
                                                        Catch::Contains("got 1.5"));
  CHECK_THROWS_AS(clients_per_round(10, 0.1, 11), InvalidArgument);
  CHECK_THROWS_AS(clients_per_round(0, 0.1, 0), InvalidArgument);

  // Distinct, sorted, reproducible, and uniform over many rounds.
  std::vector<int> hits(20, 0);
  for (std::uint64_t round = 0; round < 4000; ++round) {
    Rng rng = make_rng(5, round, server_stream, Purpose::sampling);
    const auto ids = sample_clients(20, 5, rng);
    REQUIRE(ids.size() == 5);
    REQUIRE(std::is_sorted(ids.begin(), ids.end()));
    REQUIRE(std::set<ClientId>(ids.begin(), ids.end()).size() == 5);
    for (auto id : ids) ++hits[id];
  }
  for (int h : hits) CHECK(h == Approx(4000 * 5 / 20.0).epsilon(0.08));
  Rng a = make_rng(5, 3, server_stream, Purpose::sampling), b = make_rng(5, 3, server_stream, Purpose::sampling);
  CHECK(sample_clients(20, 5, a) == sample_clients(20, 5, b));
}

TEST_CASE("Server averages valid updates and rejects bad ones before they reach the model", "[runtime][Server]") {
  MisbehavingTransport t;
  t.bad = {{1, Misbehave::nan}, {2, Misbehave::inf}, {3, Misbehave::wrong_dim}, {4, Misbehave::garbage},
           {5, Misbehave::failed}, {6, Misbehave::dropped}, {7, Misbehave::negative_weight}};
  Server<double> server(Vector<double>::Zero(4), {.rounds = 1, .clients_per_round = 10});
  const RoundStats st = server.step(t);
  CHECK(st.participants == 10);
  CHECK(st.accepted == 3);  // clients 0, 8, 9
  CHECK(st.rejected_nonfinite == 3);
  CHECK(st.rejected_malformed == 2);
  CHECK(st.failed == 1);
  CHECK(st.dropped == 1);
  CHECK(st.applied);
  // Mean of (0+1), (8+1), (9+1) = 20/3 in every coordinate.
  for (Index i = 0; i < 4; ++i) CHECK(server.params()(i) == Approx(20.0 / 3.0).epsilon(1e-15));
  CHECK(st.train_loss == Approx((0.0 + 8.0 + 9.0) / 3.0));
  CHECK(st.update_norm == Approx(20.0 / 3.0 * 2.0));
  CHECK(st.bytes_down == 10 * (24 + 4 * sizeof(double)));
  CHECK(st.bytes_up > 0);
}

TEST_CASE("Server leaves the model unchanged without a quorum", "[runtime][Server]") {
  MisbehavingTransport t;
  for (ClientId i = 0; i < 10; ++i) t.bad[i] = i < 8 ? Misbehave::dropped : Misbehave::none;
  Server<double> server(Vector<double>::Ones(4), {.rounds = 1, .clients_per_round = 10, .min_updates = 3});
  const RoundStats st = server.step(t);
  CHECK(st.accepted == 2);
  CHECK_FALSE(st.applied);
  CHECK(server.params() == Vector<double>::Ones(4));
  CHECK(server.round() == 1);
}

TEST_CASE("Server samples reproducibly and runs callbacks in order", "[runtime][Server]") {
  MisbehavingTransport t1, t2;
  CallbackRecorder rec;
  rec.stop_after = 4;
  Server<double> s1(Vector<double>::Zero(4), {.rounds = 10, .fraction = 0.3, .seed = 9});
  Server<double> s2(Vector<double>::Zero(4), {.rounds = 10, .fraction = 0.3, .seed = 9});
  const auto r1 = s1.run(t1, rec);
  const auto r2 = s2.run(t2);
  CHECK(r1.history.size() == 4);  // stopped by the callback
  CHECK(r2.history.size() == 10);
  CHECK(rec.begins == std::vector<std::uint64_t>{0, 1, 2, 3});
  CHECK(rec.ends == rec.begins);
  CHECK(rec.agg_first.size() == 4);
  for (std::size_t r = 0; r < 4; ++r) {
    CHECK(t1.seen[r] == t2.seen[r]);
    CHECK(t1.seen[r].size() == 3);
  }
  CHECK(t1.seen[0] != t1.seen[1]);  // a new sample each round (fixed seed, so this is deterministic)
}

TEST_CASE("Server validates its settings", "[runtime][Server]") {
  CHECK_THROWS_WITH(Server<double>(Vector<double>::Zero(3), {.rounds = 0}),
                    "fedpp::Server: rounds must be >= 1, got 0");
  CHECK_THROWS_AS(Server<double>(Vector<double>::Zero(3), {.fraction = 0.0}), InvalidArgument);
  CHECK_THROWS_AS(Server<double>(Vector<double>(), {}), InvalidArgument);
  Vector<double> nan_init = Vector<double>::Zero(3);
  nan_init(0) = std::nan("");
  CHECK_THROWS_AS(Server<double>(nan_init, {}), InvalidArgument);
}

TEST_CASE("ThreadPool covers every index and propagates exceptions", "[runtime][ThreadPool]") {
  ThreadPool pool(3);
  std::vector<int> hit(1000, 0);
  pool.parallel_for(1000, [&](Index i) { ++hit[static_cast<std::size_t>(i)]; });
  CHECK(std::all_of(hit.begin(), hit.end(), [](int h) { return h == 1; }));
  CHECK_THROWS_WITH(pool.parallel_for(10, [](Index i) {
    if (i == 7) throw InvalidArgument("boom");
  }),
                    "boom");
  // Still usable afterwards.
  int count = 0;
  std::mutex m;
  pool.parallel_for(5, [&](Index) {
    std::lock_guard lk(m);
    ++count;
  });
  CHECK(count == 5);
}
