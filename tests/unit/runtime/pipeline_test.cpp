// RoundPipeline and the round semantics of Server over an arrival-order Transport: late,
// duplicate and unexpected replies, failure reasons, integrity checks, over-selection (the first
// m valid replies in rank order), early close, deadlines, availability, quorum, and results that
// do not depend on the arrival order.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <numeric>
#include <optional>
#include <set>
#include <vector>

#include "fedpp/aggregators/coordinate_median.hpp"
#include "fedpp/runtime/server.hpp"
#include "support/checks.hpp"

using namespace fedpp;
using fedpp_test::message_of;

namespace {

// A reply from `client` for `round` carrying the dense update `value` in every coordinate.
Reply reply_of(ClientId client, std::uint64_t round, double value, Index d = 3, double weight = 1.0) {
  Reply r;
  r.client = client;
  r.round = round;
  r.weight = weight;
  r.local.train_loss = static_cast<double>(client);
  const Vector<double> u = Vector<double>::Constant(d, value);
  Identity::State st;
  Rng rng(0);
  r.payload = Identity().encode(as_span(u), st, rng);
  return r;
}

using Pipe = RoundPipeline<double, WeightedMean, ServerSgd, Identity>;

// A Transport whose replies are scripted per round: `script(round, client)` gives the reply or
// nothing (no answer); replies are delivered in `order` (participant positions) or as given;
// `extra` replies (late, duplicate, strangers) are delivered first; `available` limits who can
// be asked. run_until returns false when some participant gets no reply (as at a deadline).
struct ScriptTransport {
  std::size_t n = 6;
  std::vector<ClientId> available;  // empty: everyone
  std::function<std::optional<Reply>(std::uint64_t, ClientId)> script;
  std::function<std::vector<std::size_t>(std::size_t)> order;  // delivery order of the m participants
  std::vector<Reply> extra;
  std::vector<std::vector<ClientId>> asked;
  int cancels = 0;
  std::size_t delivered_after_cancel = 0;

  std::size_t num_clients() const { return n; }
  std::vector<ClientId> available_clients() const {
    if (!available.empty()) return available;
    std::vector<ClientId> all(n);
    std::iota(all.begin(), all.end(), ClientId{0});
    return all;
  }
  void start_round(const RoundRequest<double>& req, std::span<const ClientId> who, ReplyHandler h) {
    round_ = req.round;
    who_.assign(who.begin(), who.end());
    asked.push_back(who_);
    handler_ = std::move(h);
    cancelled_ = false;
  }
  bool run_until(Deadline) {
    for (Reply& r : extra) handler_(Reply(r));
    extra.clear();
    std::vector<std::size_t> idx(who_.size());
    std::iota(idx.begin(), idx.end(), std::size_t{0});
    if (order) idx = order(who_.size());
    bool all = true;
    for (std::size_t i : idx) {
      std::optional<Reply> r = script(round_, who_[i]);
      if (!r) {
        all = false;
        continue;
      }
      if (cancelled_) {
        ++delivered_after_cancel;
        continue;
      }
      handler_(std::move(*r));
    }
    return all && !cancelled_;
  }
  void cancel_round() {
    cancelled_ = true;
    ++cancels;
  }

 private:
  std::uint64_t round_ = 0;
  std::vector<ClientId> who_;
  ReplyHandler handler_;
  bool cancelled_ = false;
};
static_assert(Transport<ScriptTransport, double>);

// Checks that every participant ended in exactly one outcome.
void check_partition(const RoundStats& st) {
  CHECK(st.accepted + st.surplus + st.failed + st.dropped + st.timed_out + st.rejected_malformed +
            st.rejected_nonfinite ==
        st.participants);
}

}  // namespace

TEST_CASE("RoundPipeline drops late, unexpected and duplicate replies and counts each", "[runtime][pipeline]") {
  Pipe p(Vector<double>::Zero(3), 1, 7);
  const std::vector<ClientId> who{2, 0, 5};
  p.begin(who);
  CHECK(p.accept(reply_of(0, 0, 1.0)) == Verdict::accepted);
  CHECK(p.accept(reply_of(0, 0, 100.0)) == Verdict::duplicate);   // second answer of client 0
  CHECK(p.accept(reply_of(3, 0, 100.0)) == Verdict::unexpected);  // not asked
  CHECK(p.accept(reply_of(2, 1, 100.0)) == Verdict::unexpected);  // a round that has not started
  CHECK_FALSE(p.settled());
  CHECK(p.accept(reply_of(5, 0, 3.0)) == Verdict::accepted);
  CHECK(p.accept(reply_of(2, 0, 5.0)) == Verdict::accepted);
  CHECK(p.settled());
  CHECK(p.complete());
  const RoundStats st = p.commit();
  CHECK(st.accepted == 3);
  CHECK(st.duplicates == 1);
  CHECK(st.unexpected == 2);
  CHECK(st.late == 0);
  CHECK(st.ignored() == 3);
  CHECK(st.applied);
  check_partition(st);
  CHECK(p.params() == Vector<double>::Constant(3, 3.0));  // (1 + 3 + 5) / 3
  CHECK(st.train_loss == (0.0 + 5.0 + 2.0) / 3.0);
  // Round 1: a reply computed from round 0's model is late and never applied.
  p.begin(std::vector<ClientId>{0});
  CHECK(p.accept(reply_of(0, 0, 1000.0)) == Verdict::late);
  const RoundStats st1 = p.commit();
  CHECK(st1.late == 1);
  CHECK(st1.accepted == 0);
  CHECK(st1.timed_out == 1);
  CHECK_FALSE(st1.quorum_met);
  CHECK_FALSE(st1.applied);
  check_partition(st1);
  CHECK(p.params() == Vector<double>::Constant(3, 3.0));
  CHECK(p.round() == 2);
  // Outside a round every reply is unexpected, except an old one, which is late.
  CHECK_FALSE(p.is_open());
  CHECK(p.accept(reply_of(0, 2, 1.0)) == Verdict::unexpected);
  CHECK(p.accept(reply_of(0, 1, 1.0)) == Verdict::late);
}

TEST_CASE("RoundPipeline maps failure reasons and checks the integrity digest", "[runtime][pipeline]") {
  Pipe p(Vector<double>::Zero(3), 1, 7);
  p.begin(std::vector<ClientId>{0, 1, 2, 3, 4, 5, 6, 7, 8});
  CHECK(p.accept(Reply::failure(0, 0, FailureReason::client_error, "boom")) == Verdict::failed);
  CHECK(p.accept(Reply::failure(1, 0, FailureReason::timeout, "late")) == Verdict::timed_out);
  CHECK(p.accept(Reply::failure(2, 0, FailureReason::disconnected, "gone")) == Verdict::dropped);
  CHECK(p.accept(Reply::failure(3, 0, FailureReason::malformed, "bad frame")) == Verdict::malformed);
  CHECK(p.accept(Reply::failure(4, 0, FailureReason::cancelled, "cancelled")) == Verdict::dropped);
  Reply good = reply_of(5, 0, 2.0);
  good.checksum = reply_digest(good.payload, good.aux);
  CHECK(p.accept(std::move(good)) == Verdict::accepted);
  Reply flipped = reply_of(6, 0, 2.0);
  flipped.checksum = reply_digest(flipped.payload, flipped.aux);
  flipped.payload.buffer().back() ^= 0x01;  // a bit flipped in transit, still a finite value
  CHECK(p.accept(std::move(flipped)) == Verdict::malformed);
  Reply truncated = reply_of(7, 0, 2.0);
  truncated.payload.buffer().pop_back();
  CHECK(p.accept(std::move(truncated)) == Verdict::malformed);
  CHECK(p.accept(reply_of(8, 0, std::numeric_limits<double>::infinity())) == Verdict::nonfinite);
  const RoundStats st = p.commit();
  CHECK(st.failed == 1);
  CHECK(st.timed_out == 1);
  CHECK(st.dropped == 2);
  CHECK(st.rejected_malformed == 3);
  CHECK(st.rejected_nonfinite == 1);
  CHECK(st.accepted == 1);
  check_partition(st);
  CHECK(p.params() == Vector<double>::Constant(3, 2.0));
}

TEST_CASE("reply_digest changes with any byte and with the split between payload and aux", "[runtime][pipeline]") {
  std::vector<std::uint8_t> bytes(75);
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<std::uint8_t>(i * 37 + 11);
  const std::uint64_t base = reply_digest(Payload(bytes), Payload());
  std::set<std::uint64_t> seen{base};
  for (std::size_t i = 0; i < bytes.size(); ++i)
    for (int bit = 0; bit < 8; ++bit) {
      auto b = bytes;
      b[i] ^= static_cast<std::uint8_t>(1u << bit);
      seen.insert(reply_digest(Payload(b), Payload()));
    }
  CHECK(seen.size() == 1 + 75 * 8);  // every single-bit change gives its own digest
  const std::vector<std::uint8_t> head(bytes.begin(), bytes.begin() + 40), tail(bytes.begin() + 40, bytes.end());
  CHECK(reply_digest(Payload(head), Payload(tail)) != base);
  auto shorter = bytes;
  shorter.pop_back();
  CHECK(reply_digest(Payload(shorter), Payload()) != base);
  CHECK(reply_digest(Payload(std::vector<std::uint8_t>(8, 0)), Payload()) !=
        reply_digest(Payload(std::vector<std::uint8_t>(9, 0)), Payload()));
}

TEST_CASE("Over-selection keeps the first m valid replies in rank order, whatever the arrival order",
          "[runtime][pipeline]") {
  // Rank order 4, 1, 3, 0, 2; client 1 fails, so the first three valid in rank order are 4, 3, 0.
  const std::vector<ClientId> ranked{4, 1, 3, 0, 2};
  const std::vector<std::vector<ClientId>> arrivals{{4, 1, 3, 0, 2}, {2, 0, 3, 1, 4}, {0, 2, 4, 3, 1}};
  for (const auto& arrival : arrivals) {
    Pipe p(Vector<double>::Zero(3), 1, 7);
    p.begin(ranked, 3);
    for (ClientId c : arrival) {
      if (c == 1)
        p.accept(Reply::failure(1, 0, FailureReason::client_error, "x"));
      else
        p.accept(reply_of(c, 0, 10.0 * (c + 1)));
    }
    CHECK(p.settled());
    const RoundStats st = p.commit();
    CHECK(st.target == 3);
    CHECK(st.participants == 5);
    CHECK(st.accepted == 3);
    CHECK(st.surplus == 1);  // client 2, valid but beyond the first three
    CHECK(st.failed == 1);
    check_partition(st);
    CHECK(p.params() == Vector<double>::Constant(3, (50.0 + 40.0 + 10.0) / 3.0));
  }
}

TEST_CASE("Over-selection settles once the kept set is known and counts the rest as surplus", "[runtime][pipeline]") {
  Pipe p(Vector<double>::Zero(3), 1, 7);
  p.begin(std::vector<ClientId>{4, 1, 3, 0, 2}, 2);
  p.accept(reply_of(3, 0, 1.0));
  CHECK_FALSE(p.settled());  // 4 and 1 rank before 3 and have not answered
  p.accept(reply_of(4, 0, 3.0));
  CHECK_FALSE(p.settled());  // 1 might still be valid and rank before 3
  p.accept(Reply::failure(1, 0, FailureReason::disconnected, "gone"));
  CHECK(p.settled());  // 4 and 3 are the first two valid
  CHECK_FALSE(p.complete());
  const RoundStats st = p.commit();
  CHECK(st.accepted == 2);
  CHECK(st.dropped == 1);
  CHECK(st.surplus == 2);  // 0 and 2 were not waited for
  CHECK(st.timed_out == 0);
  check_partition(st);
  CHECK(p.params() == Vector<double>::Constant(3, 2.0));
  // Unsettled at commit: the missing ones that were still needed timed out.
  p.begin(std::vector<ClientId>{4, 1, 3, 0, 2}, 2);
  p.accept(reply_of(3, 1, 1.0));
  const RoundStats st2 = p.commit();
  CHECK(st2.accepted == 1);
  CHECK(st2.timed_out == 4);  // with one valid reply every missing one was still needed
  CHECK(st2.surplus == 0);
  check_partition(st2);
}

TEST_CASE("RoundPipeline's batch result does not depend on the arrival order", "[runtime][pipeline]") {
  using MedianPipe = RoundPipeline<double, CoordinateMedian, ServerSgd, Identity>;
  const std::vector<ClientId> who{0, 1, 2, 3, 4, 5};
  std::vector<std::size_t> perm(who.size());
  std::iota(perm.begin(), perm.end(), std::size_t{0});
  std::optional<Vector<double>> first;
  int orders = 0;
  do {
    MedianPipe p(Vector<double>::Zero(3), 1, 7);
    p.begin(who);
    for (std::size_t i : perm) p.accept(reply_of(who[i], 0, 0.1 * static_cast<double>(i * i) + 0.3));
    p.commit();
    if (!first) first = p.params();
    CHECK(p.params() == *first);
    ++orders;
  } while (std::next_permutation(perm.begin(), perm.end()) && orders < 120);
  // median of 0.3, 0.4, 0.7, 1.2, 1.9, 2.8 = (0.7 + 1.2) / 2
  for (Index i = 0; i < 3; ++i) CHECK((*first)(i) == Approx((0.1 * 4 + 0.3 + 0.1 * 9 + 0.3) / 2).epsilon(1e-15));
}

TEST_CASE("RoundPipeline refuses misuse with clear errors", "[runtime][pipeline]") {
  Pipe p(Vector<double>::Zero(3), 2, 7);
  CHECK(message_of([&] { p.commit(); }) == "fedpp::RoundPipeline::commit: no round is open (call begin first), got 0");
  CHECK(message_of([&] { p.begin(std::vector<ClientId>{1, 2, 1}); }) ==
        "fedpp::RoundPipeline::begin: participants must be distinct; repeated id, got 1");
  CHECK(message_of([&] { p.begin(std::vector<ClientId>{1, 2}, 3); }) ==
        "fedpp::RoundPipeline::begin: target must be <= the participants 2, got 3");
  CHECK(message_of([] { Pipe(Vector<double>::Zero(3), 0, 1); }) ==
        "fedpp::RoundPipeline: min_updates must be >= 1, got 0");
  Pipe::State s = p.state();
  s.params = Vector<double>::Zero(4);
  CHECK(message_of([&] { p.restore(s); }) ==
        "fedpp::RoundPipeline::restore: the state's model must have dimension 3, got 4");
  p.begin(std::vector<ClientId>{1});
  CHECK(message_of([&] { p.restore(p.state()); }) ==
        "fedpp::RoundPipeline::restore: cannot restore while a round is open, got 0");
  // Quorum of 2 with one valid update: the model stays, the round still advances.
  p.accept(reply_of(1, 0, 5.0));
  const RoundStats st = p.commit();
  CHECK_FALSE(st.quorum_met);
  CHECK_FALSE(st.applied);
  CHECK(p.params() == Vector<double>::Zero(3));
  CHECK(p.round() == 1);
}

TEST_CASE("Server samples only among available clients and counts late, duplicate and stranger replies",
          "[runtime][Server]") {
  ScriptTransport t;
  t.n = 8;
  t.available = {1, 3, 4, 6};
  t.script = [](std::uint64_t round, ClientId c) -> std::optional<Reply> {
    return reply_of(c, round, static_cast<double>(c));
  };
  t.extra = {reply_of(3, 0, 99.0)};  // arrives before the round's own replies: it is round 0's, so accepted for 3
  Server<double> server(Vector<double>::Zero(3), {.rounds = 2, .clients_per_round = 6, .seed = 3});
  const RoundStats st = server.step(t);
  REQUIRE(t.asked.size() == 1);
  CHECK(t.asked[0] == std::vector<ClientId>{1, 3, 4, 6});  // m = min(6, available), in id order
  CHECK(st.available == 4);
  CHECK(st.target == 4);
  CHECK(st.participants == 4);
  CHECK(st.accepted == 4);
  CHECK(st.duplicates == 1);  // 3's scripted reply after the extra one
  check_partition(st);
  CHECK(server.params() == Vector<double>::Constant(3, (1.0 + 99.0 + 4.0 + 6.0) / 4.0));
  // Round 1: an old reply, a stranger and a future round are all ignored.
  t.extra = {reply_of(1, 0, 1e9), reply_of(7, 1, 1e9), reply_of(4, 5, 1e9)};
  const RoundStats st1 = server.step(t);
  CHECK(st1.late == 1);
  CHECK(st1.unexpected == 2);
  CHECK(st1.accepted == 4);
  CHECK(server.params() == Vector<double>::Constant(3, 27.5 + 3.5));
}

TEST_CASE("Server over-selects, closes the round once the kept set is known, and times out the missing",
          "[runtime][Server]") {
  ScriptTransport t;
  t.n = 10;
  // Odd clients never answer; the server must close at the deadline (run_until false).
  t.script = [](std::uint64_t round, ClientId c) -> std::optional<Reply> {
    if (c % 2 == 1) return std::nullopt;
    return reply_of(c, round, static_cast<double>(c));
  };
  Server<double> server(Vector<double>::Zero(3), {.rounds = 1, .clients_per_round = 3, .seed = 11, .over_selection = 1.0});
  const RoundStats st = server.step(t);
  REQUIRE(t.asked.size() == 1);
  const std::vector<ClientId>& ranked = t.asked[0];
  CHECK(ranked.size() == 6);  // ceil(3 * 2)
  CHECK(st.participants == 6);
  CHECK(st.target == 3);
  // Expected kept set from the rank order: the first three even ids in it, if there are three.
  std::vector<ClientId> kept;
  std::size_t needed_missing = 0;
  for (ClientId c : ranked) {
    if (kept.size() == 3) break;
    if (c % 2 == 0)
      kept.push_back(c);
    else
      ++needed_missing;
  }
  CHECK(st.accepted == kept.size());
  check_partition(st);
  double sum = 0;
  for (ClientId c : kept) sum += c;
  if (kept.size() == 3) {
    CHECK(st.applied);
    CHECK(server.params() == Vector<double>::Constant(3, sum / 3.0));
  }
  // The rank order is the sampling draw order (sample_clients_ranked on the same stream).
  Rng rng = make_rng(11, 0, server_stream, Purpose::sampling);
  CHECK(ranked == sample_clients_ranked(10, 6, rng));
  // A missing needed reply prevents settling: the round ends at the deadline, not by an early close.
  if (needed_missing > 0) {
    CHECK(st.timed_out == needed_missing);
  }
}

TEST_CASE("Server closes an over-selected round early when every needed reply is in", "[runtime][Server]") {
  ScriptTransport t;
  t.n = 8;
  t.script = [](std::uint64_t round, ClientId c) -> std::optional<Reply> { return reply_of(c, round, c + 1.0); };
  // Deliver in rank order: after the first 2 replies the kept set is known.
  Server<double> server(Vector<double>::Zero(3), {.rounds = 1, .clients_per_round = 2, .seed = 5, .over_selection = 1.0});
  const RoundStats st = server.step(t);
  REQUIRE(t.asked.size() == 1);
  CHECK(t.asked[0].size() == 4);
  CHECK(t.cancels == 1);
  CHECK(t.delivered_after_cancel == 2);
  CHECK(st.accepted == 2);
  CHECK(st.surplus == 2);
  check_partition(st);
  const double expected = (t.asked[0][0] + 1.0 + t.asked[0][1] + 1.0) / 2.0;
  CHECK(server.params() == Vector<double>::Constant(3, expected));
}

TEST_CASE("Server's ordering keeps streaming results bit-identical under any arrival order", "[runtime][Server]") {
  std::optional<Vector<double>> first;
  for (int rot = 0; rot < 5; ++rot) {
    ScriptTransport t;
    t.n = 5;
    t.script = [](std::uint64_t round, ClientId c) -> std::optional<Reply> {
      return reply_of(c, round, 0.1 + 1.0 / (3.0 + c), 3, 1.0 + 0.37 * c);
    };
    t.order = [rot](std::size_t m) {
      std::vector<std::size_t> idx(m);
      std::iota(idx.begin(), idx.end(), std::size_t{0});
      std::rotate(idx.begin(), idx.begin() + rot % static_cast<int>(m), idx.end());
      std::reverse(idx.begin(), idx.end());
      return idx;
    };
    Server<double> server(Vector<double>::Zero(3), {.rounds = 3, .fraction = 1.0});
    server.run(t);
    if (!first) first = server.params();
    CHECK(server.params() == *first);
  }
  // The weighted mean summed in id order in double, three rounds.
  double num = 0, den = 0;
  for (int c = 0; c < 5; ++c) {
    num += (1.0 + 0.37 * c) * (0.1 + 1.0 / (3.0 + c));
    den += 1.0 + 0.37 * c;
  }
  for (Index i = 0; i < 3; ++i) CHECK((*first)(i) == Approx(3 * (num / den)).epsilon(1e-14));
}

TEST_CASE("Server refuses bad over_selection and round_timeout settings", "[runtime][Server]") {
  CHECK(message_of([] { Server<double>(Vector<double>::Zero(3), {.over_selection = -0.5}); }) ==
        "fedpp::Server: over_selection must be finite and >= 0, got -0.5");
  CHECK(message_of([] { Server<double>(Vector<double>::Zero(3), {.round_timeout = std::chrono::milliseconds(-1)}); }) ==
        "fedpp::Server: round_timeout must be >= 0 ms, got -1");
}

TEST_CASE("A duplicate of a reply the ordering adapter still holds does not change the summation order",
          "[runtime][Server]") {
  // Updates 1e16, 1, -1e16, 0 summed in id order give 0; client 2's reply (and a copy of it)
  // arrive first. Accepting the copy ahead of clients 0 and 1 would sum -1e16 + 1e16 + 1 = 1.
  ScriptTransport t;
  t.n = 4;
  const double v[4] = {1e16, 1.0, -1e16, 0.0};
  t.script = [&v](std::uint64_t round, ClientId c) -> std::optional<Reply> { return reply_of(c, round, v[c], 1); };
  t.order = [](std::size_t) { return std::vector<std::size_t>{2, 2, 0, 1, 3}; };
  Server<double> server(Vector<double>::Zero(1), {.rounds = 1, .clients_per_round = 4});
  const RoundStats st = server.step(t);
  CHECK(st.accepted == 4);
  CHECK(st.duplicates == 1);
  CHECK(server.params()(0) == 0.0);
  // The adapter directly: the copy is handed on right after the original, in participant order.
  ScriptTransport raw = t;
  Ordered<ScriptTransport, double> ordered(raw);
  std::vector<ClientId> seen;
  ordered.start_round(RoundRequest<double>{}, std::vector<ClientId>{0, 1, 2, 3}, [&](Reply&& r) { seen.push_back(r.client); });
  CHECK(ordered.run_until(no_deadline));
  CHECK(seen == std::vector<ClientId>{0, 1, 2, 2, 3});
  CHECK(ordered.stats().peak_replies == 2);  // 2 waits; 0 is held for the moment it takes to hand it on
}
