// Server: validation of replies (nothing bad reaches the model), the counts of every outcome, quorum,
// rollback of a non-finite step, statistics (weighted train_loss, exact byte counts, update_norm),
// eval_every, batch transforms, option and dimension checks, callbacks.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "fedpp/runtime/server.hpp"
#include "fedpp/runtime/thread_pool.hpp"
#include "support/checks.hpp"

using namespace fedpp;
using fedpp_test::message_of;
using fedpp_test::same_bits;

namespace {

// A transport whose "clients" reply with scripted updates: client i sends the vector
// (i + 1) * base in every coordinate, with weight weight[i] (default 1) and local loss loss[i]
// (default i), except for the misbehaviours configured in `bad`.
enum class Misbehave { none, nan, inf, wrong_dim, garbage, failed, dropped, negative_weight, nan_weight, inf_weight };

template <typename S>
struct ScriptedTransport {
  std::size_t n = 10;
  Index d = 4;
  double base = 1.0;
  std::map<ClientId, Misbehave> bad;
  std::map<ClientId, double> weight, loss;
  std::vector<std::vector<ClientId>> seen;          // participants of each round
  std::vector<std::uint64_t> rounds, seeds;         // what each request said
  std::vector<S> first;                             // the model's first coordinate in each request

  std::size_t num_clients() const { return n; }

  void run_round(const RoundRequest<S>& req, std::span<const ClientId> who, const ReplySink& sink) {
    REQUIRE(static_cast<Index>(req.model.size()) == d);
    seen.emplace_back(who.begin(), who.end());
    rounds.push_back(req.round);
    seeds.push_back(req.seed);
    first.push_back(req.model[0]);
    Identity c;
    auto st = c.make_state<S>(d);
    Rng rng(0);
    for (ClientId id : who) {
      Reply r;
      r.client = id;
      r.weight = weight.count(id) ? weight.at(id) : 1.0;
      r.local.train_loss = loss.count(id) ? loss.at(id) : static_cast<double>(id);
      Vector<S> u = Vector<S>::Constant(d, static_cast<S>(static_cast<double>(id + 1) * base));
      const Misbehave m = bad.count(id) ? bad.at(id) : Misbehave::none;
      if (m == Misbehave::nan) u(1) = std::numeric_limits<S>::quiet_NaN();
      if (m == Misbehave::inf) u(2) = -std::numeric_limits<S>::infinity();
      if (m == Misbehave::negative_weight) r.weight = -1.0;
      if (m == Misbehave::nan_weight) r.weight = std::numeric_limits<double>::quiet_NaN();
      if (m == Misbehave::inf_weight) r.weight = std::numeric_limits<double>::infinity();
      if (m == Misbehave::wrong_dim) u.resize(d + 1), u.setOnes();
      r.payload = c.encode(as_span(std::as_const(u)), st, rng);
      if (m == Misbehave::garbage) r.payload = Payload(std::vector<std::uint8_t>{1, 2, 3});
      if (m == Misbehave::failed) r.status = ReplyStatus::failed, r.payload = Payload();
      if (m == Misbehave::dropped) r.status = ReplyStatus::dropped, r.payload = Payload();
      sink(std::move(r));
    }
  }
};
using MisbehavingTransport = ScriptedTransport<double>;
static_assert(SynchronousTransport<MisbehavingTransport, double> && SynchronousTransport<ScriptedTransport<float>, float>);

// Size of a dense Identity payload from the documented wire format (docs/compressors/sparse.md):
// u16 codec + u8 version + varint dim + varint count (= dim), then dim values of `width` bytes.
std::uint64_t dense_payload_bytes(std::uint64_t dim, std::uint64_t width) {
  std::uint64_t varint = 1;
  for (std::uint64_t v = dim; v >= 128; v >>= 7) ++varint;
  return 3 + 2 * varint + dim * width;
}

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

// A server optimizer that broadcasts a vector of `size` entries (0: nothing) and adds the update.
struct SizedBroadcast {
  Index size = 0;
  struct State {
    Vector<double> sent;
  };
  template <typename S>
  [[nodiscard]] State make_state(Index /*d*/) const {
    return {Vector<double>::Constant(size, 2.0)};
  }
  [[nodiscard]] std::span<const double> broadcast(const State& st) const { return as_span(st.sent); }
  void step(Vector<double>& params, const Vector<double>& update, State& /*st*/, std::uint64_t /*round*/) const {
    params += update;
  }
};
static_assert(BroadcastingServerOptimizer<SizedBroadcast, double>);

}  // namespace

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
  // Down: a 24-byte request header plus the dense model, to each of the 10 participants.
  CHECK(st.bytes_down == 10 * (24 + 4 * sizeof(double)));
  // Up: every payload received counts, rejected or not: six dense d = 4 payloads (37 bytes), the
  // wrong-sized one (d = 5, 45 bytes), the 3 garbage bytes; failed and dropped clients send nothing.
  CHECK(dense_payload_bytes(4, 8) == 37);
  CHECK(dense_payload_bytes(5, 8) == 45);
  CHECK(st.bytes_up == 6 * 37 + 45 + 3);
}

TEST_CASE("Server counts each outcome of a reply in its own counter", "[runtime][Server]") {
  // 15 participants: accepted 3, failed 2, dropped 1, malformed 4, non-finite 5 (all distinct counts).
  MisbehavingTransport t;
  t.n = 15;
  t.bad = {{1, Misbehave::failed},          {2, Misbehave::failed},     {3, Misbehave::dropped},
           {4, Misbehave::garbage},         {5, Misbehave::wrong_dim},  {6, Misbehave::garbage},
           {7, Misbehave::wrong_dim},       {8, Misbehave::nan},        {9, Misbehave::inf},
           {10, Misbehave::negative_weight}, {11, Misbehave::nan_weight}, {12, Misbehave::inf_weight}};
  t.weight[14] = 0.0;  // a client without data: a valid update that carries no weight
  t.loss[14] = 100.0;
  Server<double> server(Vector<double>::Zero(4), {.rounds = 1, .clients_per_round = 15});
  const RoundStats st = server.step(t);
  CHECK(st.participants == 15);
  CHECK(st.accepted == 3);  // 0, 13 and 14 (weight 0 is valid)
  CHECK(st.failed == 2);
  CHECK(st.dropped == 1);
  CHECK(st.rejected_malformed == 4);
  CHECK(st.rejected_nonfinite == 5);
  CHECK(st.rejected() == 9);
  CHECK(st.applied);
  // (1 * 1 + 1 * 14 + 0 * 15) / 2 = 7.5; losses (0 + 13 + 0 * 100) / 2 = 6.5.
  CHECK(server.params() == Vector<double>::Constant(4, 7.5));
  CHECK(st.train_loss == 6.5);
  CHECK(st.update_norm == 15.0);  // sqrt(4 * 7.5^2)
  // Up: 8 dense d = 4 payloads (0, 8-12, 13, 14), 2 of d = 5, 2 garbage of 3 bytes.
  CHECK(st.bytes_up == 8 * dense_payload_bytes(4, 8) + 2 * dense_payload_bytes(5, 8) + 2 * 3);
  CHECK(st.bytes_down == 15 * (24 + 4 * 8));
}

TEST_CASE("Server weights the train loss and the aggregate by the reply weights", "[runtime][Server]") {
  // Clients 0..3 send 1, 2, 3, 4 with weights 1, 2, 5, 2 and losses 0.5, 2, 4, NaN.
  // Aggregate: (1 + 4 + 15 + 8) / 10 = 2.8. Train loss over the finite losses only:
  // (1 * 0.5 + 2 * 2 + 5 * 4) / (1 + 2 + 5) = 24.5 / 8 = 3.0625 (unweighted it would be 6.5 / 3).
  for (const bool batch_path : {false, true}) {
    CAPTURE(batch_path);
    MisbehavingTransport t;
    t.n = 4;
    t.weight = {{0, 1.0}, {1, 2.0}, {2, 5.0}, {3, 2.0}};
    t.loss = {{0, 0.5}, {1, 2.0}, {2, 4.0}, {3, std::numeric_limits<double>::quiet_NaN()}};
    Server<double> server(Vector<double>::Zero(4), {.rounds = 1, .fraction = 1.0});
    if (batch_path) server.set_stage([](UpdateBatch<double>& , const AggregationContext&) {});
    const RoundStats st = server.step(t);
    CHECK(st.accepted == 4);
    CHECK(st.train_loss == 3.0625);
    for (Index i = 0; i < 4; ++i) CHECK(server.params()(i) == Approx(2.8).epsilon(1e-15));
    CHECK(st.update_norm == Approx(5.6).epsilon(1e-15));  // sqrt(4 * 2.8^2)
  }
  // No finite loss at all: train_loss stays NaN, the update is still applied.
  MisbehavingTransport t;
  t.n = 2;
  t.loss = {{0, std::numeric_limits<double>::infinity()}, {1, std::numeric_limits<double>::quiet_NaN()}};
  Server<double> server(Vector<double>::Zero(4), {.rounds = 1, .fraction = 1.0});
  const RoundStats st = server.step(t);
  CHECK(std::isnan(st.train_loss));
  CHECK(st.applied);
  CHECK(server.params() == Vector<double>::Constant(4, 1.5));
}

TEST_CASE("Server leaves the model unchanged without a quorum", "[runtime][Server]") {
  MisbehavingTransport t;
  for (ClientId i = 0; i < 10; ++i) t.bad[i] = i < 8 ? Misbehave::dropped : Misbehave::none;
  Server<double> server(Vector<double>::Ones(4), {.rounds = 1, .clients_per_round = 10, .min_updates = 3});
  const RoundStats st = server.step(t);
  CHECK(st.accepted == 2);
  CHECK_FALSE(st.applied);
  CHECK(std::isnan(st.update_norm));
  CHECK(server.params() == Vector<double>::Ones(4));
  CHECK(server.round() == 1);
}

TEST_CASE("Server applies a round with exactly min_updates accepted updates", "[runtime][Server]") {
  MisbehavingTransport t;
  t.n = 5;
  t.bad = {{3, Misbehave::dropped}, {4, Misbehave::nan}};
  Server<double> server(Vector<double>::Ones(4), {.rounds = 2, .fraction = 1.0, .min_updates = 3});
  const RoundStats st = server.step(t);
  CHECK(st.accepted == 3);
  CHECK(st.applied);
  CHECK(server.params() == Vector<double>::Constant(4, 3.0));  // 1 + mean(1, 2, 3)
  // One more rejection and the same quorum fails.
  t.bad[2] = Misbehave::garbage;
  const RoundStats st2 = server.step(t);
  CHECK(st2.accepted == 2);
  CHECK_FALSE(st2.applied);
  CHECK(server.params() == Vector<double>::Constant(4, 3.0));
}

TEST_CASE("Server rolls back a server step that overflows", "[runtime][Server]") {
  SECTION("a float model near FLT_MAX") {
    // The update 3e38 is finite, the step 3e38 + 3e38 is not (FLT_MAX is about 3.4e38).
    ScriptedTransport<float> t;
    t.n = 1;
    t.d = 3;
    t.base = 3e38;
    const Vector<float> initial = Vector<float>::Constant(3, 3e38f);
    Server<float> server(initial, {.rounds = 2, .fraction = 1.0});
    const RoundStats st = server.step(t);
    CHECK(st.accepted == 1);
    CHECK_FALSE(st.applied);
    CHECK(same_bits(server.params(), initial));
    CHECK(server.round() == 1);
    // The next, harmless round applies to the restored model.
    t.base = -1e38;
    const RoundStats st2 = server.step(t);
    CHECK(st2.applied);
    CHECK(server.params() == Vector<float>::Constant(3, 3e38f + -1e38f));
  }
  SECTION("a huge server learning rate") {
    MisbehavingTransport t;
    t.n = 2;
    t.base = 10.0;  // the mean update is 15
    const Vector<double> initial = Vector<double>::Constant(4, 0.5);
    Server<double, WeightedMean, ServerSgd> server(initial, {.rounds = 1, .fraction = 1.0}, {},
                                                   ServerSgd({.lr = 1e308}));
    const RoundStats st = server.step(t);  // 0.5 + 1e308 * 15 overflows (DBL_MAX is about 1.8e308)
    CHECK(st.accepted == 2);
    CHECK_FALSE(st.applied);
    CHECK(same_bits(server.params(), initial));
  }
}

TEST_CASE("Server validates what a batch transform produces like a received update", "[runtime][Server]") {
  // Client 6 sends NaN and is rejected on receipt; the transform sees clients 0..5 (values 1..6)
  // and poisons 0, 2 and 4 with NaN, +inf and -inf; the mean of 2, 4, 6 remains.
  MisbehavingTransport t;
  t.n = 7;
  t.bad[6] = Misbehave::nan;
  Server<double> server(Vector<double>::Zero(4), {.rounds = 2, .fraction = 1.0});
  std::vector<std::size_t> seen_accepted, seen_rejected;
  std::vector<ClientId> seen_ids;
  std::vector<std::uint64_t> seen_rounds;
  server.set_stage([&](UpdateBatch<double>& batch, const AggregationContext& ctx) {
    seen_accepted.push_back(static_cast<std::size_t>(batch.size()));
    seen_rejected.push_back(server.pipeline().stats().rejected_nonfinite);
    seen_rounds.push_back(ctx.round);
    seen_ids.assign(batch.ids().begin(), batch.ids().end());
    batch.column(0)[1] = std::numeric_limits<double>::quiet_NaN();
    batch.column(2)[3] = std::numeric_limits<double>::infinity();
    batch.column(4)[0] = -std::numeric_limits<double>::infinity();
  });
  const RoundStats st = server.step(t);
  CHECK(seen_accepted == std::vector<std::size_t>{6});
  CHECK(seen_rejected == std::vector<std::size_t>{1});
  CHECK(seen_rounds == std::vector<std::uint64_t>{0});
  CHECK(seen_ids == std::vector<ClientId>{0, 1, 2, 3, 4, 5});
  CHECK(st.accepted == 3);
  CHECK(st.rejected_nonfinite == 4);
  CHECK(st.applied);
  CHECK(server.params() == Vector<double>::Constant(4, 4.0));

  // The same with a quorum of 4: only 3 updates survive the transform, so nothing is applied.
  Server<double> strict(Vector<double>::Zero(4), {.rounds = 1, .fraction = 1.0, .min_updates = 4});
  strict.set_stage([](UpdateBatch<double>& batch, const AggregationContext&) {
    for (Index i : {0, 2, 4}) batch.column(i)[0] = std::numeric_limits<double>::quiet_NaN();
  });
  const RoundStats st2 = strict.step(t);
  CHECK(st2.accepted == 3);
  CHECK_FALSE(st2.applied);
  CHECK(strict.params() == Vector<double>::Zero(4));
}

TEST_CASE("Server aggregates with the weights a batch transform sets", "[runtime][Server]") {
  MisbehavingTransport t;
  t.n = 2;
  Server<double> server(Vector<double>::Zero(4), {.rounds = 1, .fraction = 1.0});
  server.set_stage([](UpdateBatch<double>& batch, const AggregationContext&) {
    batch = UpdateBatch<double>(Matrix<double>(batch.matrix()), {3.0, 1.0}, {0, 1});
  });
  server.step(t);
  CHECK(server.params() == Vector<double>::Constant(4, 1.25));  // (3 * 1 + 1 * 2) / 4
  // A transform cannot give an update a bad weight: UpdateBatch refuses it, the round fails cleanly.
  Server<double> bad(Vector<double>::Zero(4), {.rounds = 1, .fraction = 1.0});
  bad.set_stage([](UpdateBatch<double>& batch, const AggregationContext&) {
    batch = UpdateBatch<double>(Matrix<double>(batch.matrix()), {-1.0, 1.0}, {0, 1});
  });
  CHECK(message_of([&] { bad.step(t); }) == "fedpp::UpdateBatch: weights must be finite and >= 0, got -1");
  CHECK(bad.params() == Vector<double>::Zero(4));
}

TEST_CASE("Server checks the dimension of a transformed batch and of a broadcast", "[runtime][Server]") {
  MisbehavingTransport t;
  t.n = 3;
  Server<double> server(Vector<double>::Zero(4), {.rounds = 1, .fraction = 1.0});
  server.set_stage([](UpdateBatch<double>& batch, const AggregationContext&) {
    batch = UpdateBatch<double>(Matrix<double>::Zero(5, batch.size()));
  });
  CHECK_THROWS_AS(server.step(t), DimensionError);
  CHECK(message_of([&] { server.step(t); }) ==
        "fedpp::RoundPipeline::commit: a stage must keep the dimension 4, got 5");
  CHECK(server.params() == Vector<double>::Zero(4));

  using B = Server<double, WeightedMean, SizedBroadcast>;
  B wrong(Vector<double>::Zero(4), {.rounds = 1, .fraction = 1.0}, {}, SizedBroadcast{5});
  CHECK_THROWS_AS(wrong.step(t), DimensionError);
  CHECK(message_of([&] { wrong.step(t); }) ==
        "fedpp::RoundPipeline::request: the server optimizer's broadcast must have the model's 4 entries, got 5");
  // An empty broadcast sends nothing extra; a full one travels with the model to every participant.
  B none(Vector<double>::Zero(4), {.rounds = 1, .fraction = 1.0}, {}, SizedBroadcast{0});
  CHECK(none.step(t).bytes_down == 3 * (24 + 4 * 8));
  B full(Vector<double>::Zero(4), {.rounds = 1, .fraction = 1.0}, {}, SizedBroadcast{4});
  const RoundStats st = full.step(t);
  CHECK(st.bytes_down == 3 * (24 + 2 * 4 * 8));
  CHECK(full.params() == Vector<double>::Constant(4, 2.0));  // mean of 1, 2, 3
}

TEST_CASE("Server evaluates every eval_every rounds and after the last one", "[runtime][Server]") {
  // All 10 clients every round: the mean update is 5.5, so after round k the model is 5.5 k.
  // The evaluator's j-th call reports accuracy j / 10.
  MisbehavingTransport t;
  Server<double> server(Vector<double>::Zero(4), {.rounds = 7, .fraction = 1.0, .eval_every = 3});
  std::vector<double> evaluated_at;
  server.set_evaluator([&](std::span<const double> p) {
    evaluated_at.push_back(p[0]);
    const auto j = static_cast<Index>(evaluated_at.size());
    return EvalResult{static_cast<double>(j), j, 10};
  });
  const auto r = server.run(t);
  REQUIRE(r.history.size() == 7);
  CHECK(evaluated_at == std::vector<double>{5.5 * 3, 5.5 * 6, 5.5 * 7});  // rounds 3, 6 and the last, 7
  for (std::size_t k = 0; k < 7; ++k) {
    CAPTURE(k);
    if (k == 2 || k == 5 || k == 6) {
      CHECK(r.history[k].test_accuracy == (k == 2 ? 0.1 : k == 5 ? 0.2 : 0.3));
      CHECK(r.history[k].test_loss == (k == 2 ? 0.1 : k == 5 ? 0.2 : 0.3));
    } else {
      CHECK(std::isnan(r.history[k].test_accuracy));
      CHECK(std::isnan(r.history[k].test_loss));
    }
  }
  // The final result reuses the last round's evaluation.
  CHECK(r.final_test.correct == 3);
  CHECK(r.final_accuracy() == 0.3);

  // Stopped by a callback after 2 rounds (no evaluation yet): the final model is evaluated once.
  MisbehavingTransport t2;
  CallbackRecorder stop;
  stop.stop_after = 2;
  Server<double> early(Vector<double>::Zero(4), {.rounds = 7, .fraction = 1.0, .eval_every = 3});
  std::vector<double> early_at;
  early.set_evaluator([&](std::span<const double> p) {
    early_at.push_back(p[0]);
    return EvalResult{1.0, 4, 5};
  });
  const auto r2 = early.run(t2, stop);
  REQUIRE(r2.history.size() == 2);
  CHECK(std::isnan(r2.history[1].test_accuracy));
  CHECK(early_at == std::vector<double>{11.0});
  CHECK(r2.final_accuracy() == 0.8);
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
    CHECK(r1.history[r].participants == 3);
  }
  CHECK(t1.seen[0] != t1.seen[1]);  // a new sample each round (fixed seed, so this is deterministic)
  // Each request names its round and the run seed and carries the current model (each round adds
  // the mean of the participants' (id + 1)).
  CHECK(t1.rounds == std::vector<std::uint64_t>{0, 1, 2, 3});
  CHECK(t1.seeds == std::vector<std::uint64_t>{9, 9, 9, 9});
  double expected_first = 0.0;
  for (std::size_t r = 0; r < 4; ++r) {
    CHECK(t1.first[r] == Approx(expected_first).margin(1e-12));
    double sum = 0;
    for (ClientId id : t1.seen[r]) sum += static_cast<double>(id + 1);
    expected_first += sum / 3.0;
  }
  // fraction 0.25 of 10 clients is 2.5, rounded to 3; clients_per_round overrides the fraction.
  MisbehavingTransport t3;
  Server<double> quarter(Vector<double>::Zero(4), {.rounds = 1, .fraction = 0.25});
  const RoundStats q = quarter.step(t3);
  CHECK(q.participants == 3);
  CHECK(q.bytes_down == 3 * (24 + 4 * 8));  // the participants only, not all 10 clients
  CHECK(q.bytes_up == 3 * dense_payload_bytes(4, 8));
  Server<double> four(Vector<double>::Zero(4), {.rounds = 1, .fraction = 0.25, .clients_per_round = 4});
  CHECK(four.step(t3).participants == 4);
  CHECK(t3.seen.back().size() == 4);
  Server<double> too_many(Vector<double>::Zero(4), {.rounds = 1, .clients_per_round = 11});
  CHECK(message_of([&] { too_many.step(t3); }) ==
        "fedpp::clients_per_round: clients per round must be <= the number of clients 10, got 11");
}

TEST_CASE("Server validates its settings", "[runtime][Server]") {
  const Vector<double> z = Vector<double>::Zero(3);
  CHECK_THROWS_AS(Server<double>(z, {.rounds = 0}), InvalidArgument);
  CHECK(message_of([&] { Server<double>(z, {.rounds = 0}); }) == "fedpp::Server: rounds must be >= 1, got 0");
  CHECK(message_of([&] { Server<double>(z, {.min_updates = 0}); }) ==
        "fedpp::Server: min_updates must be >= 1, got 0");
  CHECK(message_of([&] { Server<double>(z, {.eval_every = 0}); }) == "fedpp::Server: eval_every must be >= 1, got 0");
  CHECK(message_of([&] { Server<double>(z, {.fraction = 0.0}); }) == "fedpp::Server: fraction must be in (0, 1], got 0");
  CHECK(message_of([&] { Server<double>(z, {.fraction = 1.5}); }) ==
        "fedpp::Server: fraction must be in (0, 1], got 1.5");
  CHECK(message_of([&] { Server<double>(z, {.fraction = -0.5}); }) ==
        "fedpp::Server: fraction must be in (0, 1], got -0.5");
  CHECK(message_of([&] { Server<double>(z, {.fraction = std::numeric_limits<double>::quiet_NaN()}); }) ==
        "fedpp::Server: fraction must be in (0, 1], got nan");
  CHECK(message_of([&] { Server<double>(z, {.fraction = std::numeric_limits<double>::infinity()}); }) ==
        "fedpp::Server: fraction must be in (0, 1], got inf");
  CHECK(message_of([&] { Server<double>(Vector<double>(), {}); }) ==
        "fedpp::Server: the initial model must not be empty, got 0");
  Vector<double> nan_init = z;
  nan_init(2) = std::nan("");
  CHECK(message_of([&] { Server<double>(nan_init, {}); }) ==
        "fedpp::Server: the initial model must be finite, got non-finite values");
  Vector<double> inf_init = z;
  inf_init(0) = -INFINITY;
  CHECK_THROWS_AS(Server<double>(inf_init, {}), InvalidArgument);
  // The boundaries are accepted, and the fraction is not looked at when clients_per_round is set.
  CHECK_NOTHROW(Server<double>(z, {.rounds = 1, .fraction = 1.0, .min_updates = 1, .eval_every = 1}));
  CHECK_NOTHROW(Server<double>(z, {.fraction = 0.0, .clients_per_round = 2}));
}

TEST_CASE("ThreadPool covers every index and propagates exceptions", "[runtime][ThreadPool]") {
  ThreadPool pool(3);
  CHECK(pool.size() == 3);
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
  CHECK(message_of([] { ThreadPool bad(-2); }) == "fedpp::ThreadPool: threads must be >= 0, got -2");
  CHECK(ThreadPool(0).size() >= 1);
}
