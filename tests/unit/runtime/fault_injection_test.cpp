// FaultInjector: each fault's mechanics on a scripted transport (what is delivered, when, with
// which round, bytes and checksum), the decisions against the documented random streams, the
// option checks; then the fault-injection matrix: a Server (weighted mean, coordinate median,
// over-selection) over in-process clients through the injector, for each fault alone and all
// combined, over several seeds: the RoundStats invariants, the injector's counts against the
// stats, availability, quorum, and the model against a fault-free replay of exactly the updates
// the faulty run accepted (and against the clean run when only the order or duplicates change).
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "fedpp/aggregators/coordinate_median.hpp"
#include "fedpp/models/softmax_regression.hpp"
#include "fedpp/runtime/fault_injection.hpp"
#include "fedpp/runtime/in_process.hpp"
#include "fedpp/runtime/server.hpp"
#include "support/blobs.hpp"
#include "support/checks.hpp"

namespace fault_injection_test {

using namespace fedpp;
using fedpp_test::message_of;

// ---------------------------------------------------------------------------------------------
// A scripted Transport: client i answers every round with the dense update (i + 1) * (1, 2) and
// weight i + 1, in reverse participant order (or forward), all inside run_until.
struct FiScripted {
  std::size_t n = 4;
  bool reverse = true;
  std::optional<std::uint64_t> preset_checksum;  // a checksum the "sender" already set
  std::set<ClientId> failing;                    // clients that report a client error
  std::uint64_t round = 0;
  std::vector<ClientId> who;
  ReplyHandler handler;
  bool cancelled = false;

  std::size_t num_clients() const { return n; }
  std::vector<ClientId> available_clients() const {
    std::vector<ClientId> ids;
    for (std::size_t i = 0; i < n; ++i) ids.push_back(static_cast<ClientId>(i));
    return ids;
  }
  void start_round(const RoundRequest<double>& req, std::span<const ClientId> w, ReplyHandler h) {
    round = req.round;
    who.assign(w.begin(), w.end());
    handler = std::move(h);
    cancelled = false;
  }
  bool run_until(Deadline /*deadline*/) {
    std::vector<ClientId> order = who;
    if (reverse) std::reverse(order.begin(), order.end());
    for (ClientId id : order) {
      if (cancelled) break;
      Reply r = failing.count(id) ? Reply::failure(id, round, FailureReason::client_error, "boom") : reply_of(id, round);
      if (r.status == ReplyStatus::ok) r.checksum = preset_checksum;
      handler(std::move(r));
    }
    return !cancelled;
  }
  void cancel_round() { cancelled = true; }

  static Reply reply_of(ClientId id, std::uint64_t round) {
    Reply r;
    r.client = id;
    r.round = round;
    r.weight = static_cast<double>(id) + 1.0;
    const double c = static_cast<double>(id) + 1.0;
    const Vector<double> u{{c, 2.0 * c}};
    Identity::State st;
    Rng rng(0);
    r.payload = Identity().encode(as_span(u), st, rng);
    return r;
  }
};
static_assert(Transport<FiScripted, double>);
using FiScriptedInjector = FaultInjector<FiScripted, double>;
static_assert(Transport<FiScriptedInjector, double>);

RoundRequest<double> fi_request(std::uint64_t round) {
  static const Vector<double> model = Vector<double>::Zero(2);
  return RoundRequest<double>{round, 1, as_span(model)};
}

// Runs one round of `inj` over `who` and returns what the handler got, in order.
std::vector<Reply> fi_round(FiScriptedInjector& inj, std::uint64_t round, const std::vector<ClientId>& who,
                            bool* complete = nullptr) {
  std::vector<Reply> got;
  inj.start_round(fi_request(round), who, [&](Reply&& r) { got.push_back(std::move(r)); });
  const bool c = inj.run_until(no_deadline);
  if (complete) *complete = c;
  return got;
}

const std::vector<ClientId> fi_all4{0, 1, 2, 3};

// The six documented uniforms of (seed, round, client) and the absence drawn after them.
struct FiDraws {
  std::array<double, 6> u;
  std::uint64_t away;  // 1 + uniform_index(max_away) (meaningful on a fresh disconnect)
};
FiDraws fi_draws(std::uint64_t seed, std::uint64_t round, ClientId c, std::uint64_t max_away) {
  Rng r = make_rng(seed, round, c, Purpose::fault_injection);
  FiDraws d{};
  for (double& x : d.u) x = r.uniform();
  d.away = 1 + r.uniform_index(max_away);
  return d;
}

std::size_t fi_bit_distance(const Payload& a, const Payload& b) {
  std::size_t bits = 0;
  for (std::size_t i = 0; i < a.bytes(); ++i)
    bits += static_cast<std::size_t>(std::popcount(static_cast<std::uint8_t>(a.data()[i] ^ b.data()[i])));
  return bits;
}

TEST_CASE("FaultInjector validates its options", "[runtime][FaultInjector]") {
  FiScripted t;
  auto msg = [&](FaultOptions o) { return message_of([&] { FiScriptedInjector inj(t, o); }); };
  CHECK_THROWS_AS(FiScriptedInjector(t, FaultOptions{.drop = 2}), InvalidArgument);
  CHECK(msg({.drop = 2}) == "fedpp::FaultInjector: drop must be in [0, 1], got 2");
  CHECK(msg({.delay = -0.5}) == "fedpp::FaultInjector: delay must be in [0, 1], got -0.5");
  CHECK(msg({.duplicate = 1.5}) == "fedpp::FaultInjector: duplicate must be in [0, 1], got 1.5");
  CHECK(msg({.reorder = std::nan("")}).find("fedpp::FaultInjector: reorder must be in [0, 1], got") == 0);
  CHECK(msg({.bit_flip = 3}) == "fedpp::FaultInjector: bit_flip must be in [0, 1], got 3");
  CHECK(msg({.truncate = -1}) == "fedpp::FaultInjector: truncate must be in [0, 1], got -1");
  CHECK(msg({.disconnect = INFINITY}).find("fedpp::FaultInjector: disconnect must be in [0, 1], got") == 0);
  CHECK(msg({.flip_bits = 0}) == "fedpp::FaultInjector: flip_bits must be >= 1, got 0");
  CHECK(msg({.max_away_rounds = 0}) == "fedpp::FaultInjector: max_away_rounds must be >= 1, got 0");
  CHECK(msg({.drop = 0, .delay = 1, .duplicate = 1, .reorder = 1, .bit_flip = 1, .truncate = 1, .disconnect = 1}) ==
        "(no throw)");
}

TEST_CASE("FaultInjector without faults hands on the inner replies unchanged", "[runtime][FaultInjector]") {
  FiScripted t;
  FiScriptedInjector inj(t, {.seed = 9});
  CHECK(inj.num_clients() == 4);
  CHECK(&inj.inner() == &t);
  for (std::uint64_t round = 0; round < 3; ++round) {
    CHECK(inj.available_clients() == fi_all4);
    bool complete = false;
    const std::vector<Reply> got = fi_round(inj, round, fi_all4, &complete);
    CHECK(complete);
    REQUIRE(got.size() == 4);
    for (std::size_t k = 0; k < 4; ++k) {
      const auto id = static_cast<ClientId>(3 - k);  // the inner transport's reverse order
      CHECK(got[k].client == id);
      CHECK(got[k].round == round);
      CHECK(!got[k].checksum);
      CHECK(fedpp_test::bytes_of(got[k].payload) == fedpp_test::bytes_of(FiScripted::reply_of(id, round).payload));
    }
  }
  const FaultCounts tot = inj.totals();
  CHECK(inj.log().size() == 3);
  CHECK(tot.round == 2);
  CHECK(tot.dropped + tot.delayed + tot.delivered_late + tot.duplicated + tot.flipped + tot.truncated +
            tot.disconnected + tot.reordered == 0);
}

TEST_CASE("FaultInjector decides each fault from the documented stream of the participant", "[runtime][FaultInjector]") {
  // One fault at a time with probability 0.5: client c is hit in round r exactly when the k-th
  // uniform of make_rng(seed, r, c, fault_injection) is below 0.5 (k: disconnect 0, drop 1,
  // delay 2, truncate 3, bit_flip 4, duplicate 5).
  int proper_subsets = 0;
  for (std::uint64_t seed = 1; seed <= 6; ++seed) {
    CAPTURE(seed);
    auto hit = [&](std::size_t k, std::uint64_t round) {
      std::set<ClientId> h;
      for (ClientId c : fi_all4)
        if (fi_draws(seed, round, c, 3).u[k] < 0.5) h.insert(c);
      return h;
    };
    auto ids = [](const std::vector<Reply>& v) {
      std::multiset<ClientId> s;
      for (const Reply& r : v) s.insert(r.client);
      return s;
    };
    if (!hit(1, 0).empty() && hit(1, 0).size() < 4) ++proper_subsets;
    FiScripted t;
    {  // drop
      FiScriptedInjector inj(t, {.drop = 0.5, .seed = seed});
      bool complete = true;
      const auto got = fi_round(inj, 0, fi_all4, &complete);
      std::multiset<ClientId> expect;
      for (ClientId c : fi_all4)
        if (!hit(1, 0).count(c)) expect.insert(c);
      CHECK(ids(got) == expect);
      CHECK(complete == hit(1, 0).empty());
      CHECK(inj.log()[0].dropped == hit(1, 0).size());
    }
    {  // delay: missing in round 0, delivered with round 0 at the start of round 1
      FiScriptedInjector inj(t, {.delay = 0.5, .seed = seed});
      bool complete = true;
      const auto got0 = fi_round(inj, 0, fi_all4, &complete);
      CHECK(complete == hit(2, 0).empty());
      CHECK(inj.held() == hit(2, 0).size());
      const auto got1 = fi_round(inj, 1, fi_all4);
      std::set<ClientId> late;
      std::size_t k = 0;
      for (; k < got1.size() && got1[k].round == 0; ++k) late.insert(got1[k].client);
      CHECK(late == hit(2, 0));
      for (; k < got1.size(); ++k) CHECK(got1[k].round == 1);
      CHECK(got0.size() + hit(2, 0).size() == 4);
      CHECK(got1.size() == hit(2, 0).size() + 4 - hit(2, 1).size());
      CHECK(inj.log()[1].delivered_late == hit(2, 0).size());
      CHECK(inj.log()[1].delayed == hit(2, 1).size());
    }
    {  // truncate, bit flip, duplicate
      FiScriptedInjector tr(t, {.truncate = 0.5, .seed = seed});
      for (const Reply& r : fi_round(tr, 0, fi_all4))
        CHECK((r.payload.bytes() < FiScripted::reply_of(r.client, 0).payload.bytes()) == (hit(3, 0).count(r.client) == 1));
      FiScriptedInjector fl(t, {.bit_flip = 0.5, .seed = seed});
      for (const Reply& r : fi_round(fl, 0, fi_all4)) CHECK(r.checksum.has_value() == (hit(4, 0).count(r.client) == 1));
      FiScriptedInjector du(t, {.duplicate = 0.5, .seed = seed});
      std::vector<ClientId> expect;  // reverse order, each copy right after its original
      for (ClientId c : std::vector<ClientId>{3, 2, 1, 0}) {
        expect.push_back(c);
        if (hit(5, 0).count(c)) expect.push_back(c);
      }
      std::vector<ClientId> seen;
      for (const Reply& r : fi_round(du, 0, fi_all4)) seen.push_back(r.client);
      CHECK(seen == expect);
      CHECK(du.log()[0].duplicated == hit(5, 0).size());
    }
    {  // disconnect: a failure now, away for the drawn 1..3 rounds (rounds without participants)
      FiScriptedInjector inj(t, {.disconnect = 0.5, .max_away_rounds = 3, .seed = seed});
      for (const Reply& r : fi_round(inj, 0, fi_all4)) {
        CHECK((r.reason == FailureReason::disconnected) == (hit(0, 0).count(r.client) == 1));
        CHECK((r.status == ReplyStatus::dropped) == (hit(0, 0).count(r.client) == 1));
        CHECK(r.round == 0);
      }
      for (std::uint64_t round = 1; round <= 5; ++round) {
        CAPTURE(round);
        std::vector<ClientId> expect;
        for (ClientId c : fi_all4)
          if (!hit(0, 0).count(c) || round >= 1 + fi_draws(seed, 0, c, 3).away) expect.push_back(c);
        CHECK(inj.available_clients() == expect);
        for (ClientId c : fi_all4) CHECK(inj.connected(c) == (std::find(expect.begin(), expect.end(), c) != expect.end()));
        fi_round(inj, round, {});
      }
      // A participant asked while away answers `disconnected` whatever its own draw.
      FiScriptedInjector again(t, {.disconnect = 0.5, .max_away_rounds = 3, .seed = seed});
      fi_round(again, 0, fi_all4);
      for (const Reply& r : fi_round(again, 1, fi_all4))
        if (hit(0, 0).count(r.client)) CHECK(r.reason == FailureReason::disconnected);
    }
  }
  CHECK(proper_subsets >= 3);  // the seeds exercise both outcomes
}

TEST_CASE("FaultInjector applies one fate per reply in the documented precedence", "[runtime][FaultInjector]") {
  // Every fault at probability 1: everyone disconnects; without disconnect everyone is dropped;
  // then delayed; then truncated (not flipped); then flipped; copies only of delivered replies.
  FiScripted t;
  FiScriptedInjector all(t, {.drop = 1, .delay = 1, .duplicate = 1, .bit_flip = 1, .truncate = 1, .disconnect = 1});
  for (const Reply& r : fi_round(all, 0, fi_all4)) CHECK(r.reason == FailureReason::disconnected);
  CHECK(all.log()[0].disconnected == 4);
  CHECK(all.log()[0].duplicated == 0);
  FiScriptedInjector drop(t, {.drop = 1, .delay = 1, .duplicate = 1, .bit_flip = 1, .truncate = 1});
  CHECK(fi_round(drop, 0, fi_all4).empty());
  CHECK(drop.held() == 0);
  FiScriptedInjector delay(t, {.delay = 1, .duplicate = 1, .bit_flip = 1, .truncate = 1});
  CHECK(fi_round(delay, 0, fi_all4).empty());
  CHECK(delay.held() == 4);
  FiScriptedInjector trunc(t, {.duplicate = 1, .bit_flip = 1, .truncate = 1});
  const auto got = fi_round(trunc, 0, fi_all4);
  CHECK(got.size() == 8);
  for (const Reply& r : got) CHECK(!r.checksum);
  CHECK(trunc.log()[0].truncated == 4);
  CHECK(trunc.log()[0].flipped == 0);
  CHECK(trunc.log()[0].duplicated == 4);
}

TEST_CASE("FaultInjector corrupts payloads so that the server can tell", "[runtime][FaultInjector]") {
  FiScripted t;
  t.failing = {2};
  for (std::uint64_t seed : {1, 2, 3}) {
    CAPTURE(seed);
    // Bit flips: same length, exactly flip_bits bits differ, checksum of the original bytes.
    FiScriptedInjector fl(t, {.bit_flip = 1, .flip_bits = 3, .seed = seed});
    for (const Reply& r : fi_round(fl, 0, fi_all4)) {
      if (r.client == 2) {  // a failure reply has nothing to corrupt
        CHECK(r.status == ReplyStatus::failed);
        CHECK(!r.checksum);
        continue;
      }
      const Reply orig = FiScripted::reply_of(r.client, 0);
      REQUIRE(r.payload.bytes() == orig.payload.bytes());
      CHECK(fi_bit_distance(r.payload, orig.payload) == 3);
      REQUIRE(r.checksum.has_value());
      CHECK(*r.checksum == reply_digest(orig.payload, orig.aux));
      CHECK(*r.checksum != reply_digest(r.payload, r.aux));
    }
    CHECK(fl.log()[0].flipped == 3);
    // Truncation: a strict prefix of the original, no checksum, and the decoder rejects it.
    FiScriptedInjector tr(t, {.truncate = 1, .seed = seed});
    for (const Reply& r : fi_round(tr, 0, fi_all4)) {
      if (r.client == 2) continue;
      const auto orig = fedpp_test::bytes_of(FiScripted::reply_of(r.client, 0).payload);
      const auto cut = fedpp_test::bytes_of(r.payload);
      CHECK(cut.size() < orig.size());
      CHECK(std::equal(cut.begin(), cut.end(), orig.begin()));
      CHECK(!r.checksum);
      Vector<double> out(2);
      CHECK_THROWS_AS(Identity().decode(r.payload, as_span(out)), DecodeError);
    }
    CHECK(tr.log()[0].truncated == 3);
  }
  // A checksum the sender set is kept (it covers the original bytes); flip_bits beyond the
  // payload flips every bit once.
  t.failing.clear();
  t.preset_checksum = 42;
  FiScriptedInjector every(t, {.bit_flip = 1, .flip_bits = 100000});
  for (const Reply& r : fi_round(every, 0, fi_all4)) {
    CHECK(r.checksum == std::optional<std::uint64_t>(42));
    const Reply orig = FiScripted::reply_of(r.client, 0);
    CHECK(fi_bit_distance(r.payload, orig.payload) == 8 * orig.payload.bytes());
  }
}

TEST_CASE("FaultInjector reorders a round in a seeded permutation independent of arrival order", "[runtime][FaultInjector]") {
  FiScripted backward, forward;
  forward.reverse = false;
  backward.n = forward.n = 8;
  const std::vector<ClientId> who{5, 0, 7, 2, 3, 6, 1, 4};
  int differs = 0;
  for (std::uint64_t seed = 1; seed <= 4; ++seed) {
    for (std::uint64_t round = 0; round < 3; ++round) {
      FiScriptedInjector a(backward, {.duplicate = 0.3, .reorder = 1, .seed = seed});
      FiScriptedInjector b(forward, {.duplicate = 0.3, .reorder = 1, .seed = seed});
      std::vector<ClientId> ga, gb;
      a.start_round(fi_request(round), who, [&](Reply&& r) { ga.push_back(r.client); });
      b.start_round(fi_request(round), who, [&](Reply&& r) { gb.push_back(r.client); });
      CHECK(a.run_until(no_deadline));
      CHECK(b.run_until(no_deadline));
      CHECK(ga == gb);
      CHECK(a.log()[0].reordered == 1);
      std::vector<ClientId> sorted = ga;
      std::sort(sorted.begin(), sorted.end());
      sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
      CHECK(sorted == std::vector<ClientId>{0, 1, 2, 3, 4, 5, 6, 7});
      CHECK(ga.size() == 8 + a.log()[0].duplicated);
      std::vector<ClientId> firsts;
      for (ClientId c : ga)
        if (std::find(firsts.begin(), firsts.end(), c) == firsts.end()) firsts.push_back(c);
      differs += firsts != who;
    }
  }
  CHECK(differs >= 10);
  // reorder = 0: arrival order.
  FiScriptedInjector none(forward, {.seed = 1});
  std::vector<ClientId> g;
  none.start_round(fi_request(0), who, [&](Reply&& r) { g.push_back(r.client); });
  CHECK(none.run_until(no_deadline));
  CHECK(g == who);
}

TEST_CASE("FaultInjector stops delivering when the round is cancelled from the handler", "[runtime][FaultInjector]") {
  FiScripted t;
  for (double reorder : {0.0, 1.0}) {
    CAPTURE(reorder);
    FiScriptedInjector inj(t, {.duplicate = 1, .reorder = reorder, .seed = 3});
    int calls = 0;
    inj.start_round(fi_request(0), fi_all4, [&](Reply&&) {
      ++calls;
      inj.cancel_round();
    });
    CHECK(!inj.run_until(no_deadline));
    CHECK(calls == 1);  // not even the copy of the first reply
    CHECK(inj.log()[0].duplicated == 0);  // what was delivered is the participant's first copy
  }
}

// ---------------------------------------------------------------------------------------------
// A hand-computed mean through the Server: scripted clients, corruption and duplicates.

TEST_CASE("Server through FaultInjector averages exactly the replies that survive", "[runtime][FaultInjector]") {
  int partial = 0;
  for (std::uint64_t seed = 1; seed <= 8; ++seed) {
    CAPTURE(seed);
    FiScripted t;
    FiScriptedInjector inj(t, {.duplicate = 0.5, .bit_flip = 0.3, .truncate = 0.3, .seed = seed});
    Server<double> server(Vector<double>::Zero(2), {.rounds = 1, .clients_per_round = 4, .min_updates = 1, .seed = 5});
    const RoundStats st = server.step(inj);
    // Survivors from the documented draws: not truncated (u3 >= 0.3) and not flipped (u4 >= 0.3).
    double num = 0, den = 0;
    std::size_t survivors = 0, dups = 0;
    for (ClientId c : fi_all4) {
      const FiDraws d = fi_draws(seed, 0, c, 3);
      dups += d.u[5] < 0.5;
      if (d.u[3] < 0.3 || d.u[4] < 0.3) continue;
      ++survivors;
      const double w = static_cast<double>(c) + 1.0;
      num += w * w;  // weight (c + 1) times update (c + 1) * (1, 2)
      den += w;
    }
    partial += survivors > 0 && survivors < 4;
    CHECK(st.accepted == survivors);
    CHECK(st.rejected_malformed == 4 - survivors);
    CHECK(st.duplicates == dups);
    CHECK(st.applied == (survivors > 0));
    if (survivors > 0) {
      CHECK(server.params()(0) == Approx(num / den).epsilon(1e-15));
      CHECK(server.params()(1) == Approx(2 * num / den).epsilon(1e-15));
    } else {
      CHECK(server.params() == Vector<double>::Zero(2));
    }
  }
  CHECK(partial >= 4);
}

// ---------------------------------------------------------------------------------------------
// The matrix: in-process softmax-regression clients, a Server through the injector.

using FiClient = Client<SoftmaxRegression<double>>;
using FiFederation = InProcessTransport<FiClient>;
using FiInjector = FaultInjector<FiFederation, double>;
static_assert(Transport<FiInjector, double>);

constexpr std::size_t fi_n = 8;
constexpr Index fi_features = 4;
constexpr int fi_classes = 3;

std::unique_ptr<FiFederation> fi_federation(int threads) {
  const auto data = fedpp_test::blobs<double>(96, fi_features, fi_classes, 11);
  const auto shards = fedpp_test::contiguous_split(data, fi_n);
  std::vector<FiClient> clients;
  for (std::size_t i = 0; i < fi_n; ++i)
    clients.emplace_back(static_cast<ClientId>(i), SoftmaxRegression<double>(fi_features, fi_classes), shards[i],
                         LocalSgd({.lr = 0.2, .epochs = 1, .batch_size = 4}));
  return std::make_unique<FiFederation>(std::move(clients), threads);
}

Vector<double> fi_initial() {
  Vector<double> w;
  Rng rng(4);
  SoftmaxRegression<double>(fi_features, fi_classes).init_params(w, rng);
  return w;
}

// What the recorder saw of one round.
struct FiRoundRecord {
  std::vector<ClientId> available, who;  // who in rank (participant) order
  std::vector<int> valid;                // per rank: -1 no reply seen, 0 invalid, 1 valid (first reply only)
  std::vector<ClientId> disconnected;    // participants whose first reply was a `disconnected` failure
};

// A Transport decorator between the server and the injector that records availability,
// participants and, per participant, whether its first reply to the round is a valid update,
// judged here from the reply alone (status, checksum, Identity decoding, finiteness, weight).
template <typename T>
struct FiRecorder {
  T* inner;
  Index dim;
  std::map<std::uint64_t, FiRoundRecord> rounds;
  std::vector<ClientId> last_available;
  std::uint64_t current = 0;
  ReplyHandler handler;
  std::size_t sampled_away = 0;  // participants the injector had disconnected for this round

  std::size_t num_clients() const { return inner->num_clients(); }
  std::vector<ClientId> available_clients() {
    last_available = inner->available_clients();
    return last_available;
  }
  void start_round(const RoundRequest<double>& req, std::span<const ClientId> who, ReplyHandler h) {
    current = req.round;
    FiRoundRecord& rec = rounds[req.round];
    rec.available = last_available;
    rec.who.assign(who.begin(), who.end());
    rec.valid.assign(who.size(), -1);
    for (ClientId c : who) sampled_away += !inner->connected(c);
    handler = std::move(h);
    inner->start_round(req, who, [this](Reply&& r) {
      observe(r);
      handler(std::move(r));
    });
  }
  bool run_until(Deadline d) { return inner->run_until(d); }
  void cancel_round() { inner->cancel_round(); }

  void observe(const Reply& r) {
    if (r.round != current) return;
    FiRoundRecord& rec = rounds[current];
    const auto it = std::find(rec.who.begin(), rec.who.end(), r.client);
    if (it == rec.who.end()) return;
    int& v = rec.valid[static_cast<std::size_t>(it - rec.who.begin())];
    if (v != -1) return;
    if (r.reason == FailureReason::disconnected) rec.disconnected.push_back(r.client);
    v = is_valid(r) ? 1 : 0;
  }
  bool is_valid(const Reply& r) const {
    if (r.status != ReplyStatus::ok) return false;
    if (r.checksum && *r.checksum != reply_digest(r.payload, r.aux)) return false;
    Vector<double> u(dim);
    try {
      Identity().decode(r.payload, as_span(u));
    } catch (const Error&) {
      return false;
    }
    return u.allFinite() && std::isfinite(r.weight) && r.weight >= 0;
  }
};

// The first `target` valid participants in rank order (what the round must have kept), sorted.
std::vector<ClientId> fi_kept(const FiRoundRecord& rec, std::size_t target) {
  std::vector<ClientId> kept;
  for (std::size_t k = 0; k < rec.who.size() && kept.size() < target; ++k)
    if (rec.valid[k] == 1) kept.push_back(rec.who[k]);
  std::sort(kept.begin(), kept.end());
  return kept;
}

// The reference: a fault-free transport that offers the recorded available clients and passes
// on only the updates the faulty run kept (the others become client errors).
template <typename T>
struct FiReplay {
  T* inner;
  std::map<std::uint64_t, std::vector<ClientId>> available, kept, who;
  std::uint64_t next = 0, current = 0;
  ReplyHandler handler;
  std::size_t mismatched_participants = 0;

  std::size_t num_clients() const { return inner->num_clients(); }
  std::vector<ClientId> available_clients() const { return available.at(next); }
  void start_round(const RoundRequest<double>& req, std::span<const ClientId> w, ReplyHandler h) {
    current = req.round;
    next = req.round + 1;
    mismatched_participants += std::vector<ClientId>(w.begin(), w.end()) != who.at(current);
    handler = std::move(h);
    inner->start_round(req, w, [this](Reply&& r) {
      const auto& k = kept.at(current);
      if (!std::binary_search(k.begin(), k.end(), r.client))
        r = Reply::failure(r.client, r.round, FailureReason::client_error, "not kept in the faulty run");
      handler(std::move(r));
    });
  }
  bool run_until(Deadline d) { return inner->run_until(d); }
  void cancel_round() { inner->cancel_round(); }
};

// Records the parameters after every round.
struct FiParams {
  std::vector<Vector<double>> after;
  void on_round_end(const RoundStats& /*st*/, std::span<const double> p) { after.push_back(as_map(p)); }
};

struct FiRun {
  std::vector<RoundStats> stats;
  std::vector<Vector<double>> params;  // params[r] before round r; params.back() the final model
  std::vector<FaultCounts> log;
  std::map<std::uint64_t, FiRoundRecord> rounds;
  std::size_t sampled_away = 0;
};

template <typename Agg>
FiRun fi_run_faulty(const ServerOptions& so, const Agg& agg, const FaultOptions& fo, int threads) {
  auto fed = fi_federation(threads);
  FiInjector inj(*fed, fo);
  FiRecorder<FiInjector> rec{&inj, fi_initial().size(), {}, {}, 0, {}, 0};
  Server<double, Agg> server(fi_initial(), so, agg);
  FiParams cb;
  FiRun run;
  run.stats = server.run(rec, cb).history;
  run.params.push_back(fi_initial());
  for (auto& p : cb.after) run.params.push_back(p);
  run.log = inj.log();
  run.rounds = rec.rounds;
  run.sampled_away = rec.sampled_away;
  return run;
}

template <typename Agg>
FiRun fi_run_replay(const ServerOptions& so, const Agg& agg, const FiRun& faulty, int threads, std::size_t* mismatched) {
  auto fed = fi_federation(threads);
  FiReplay<FiFederation> replay{fed.get(), {}, {}, {}, 0, 0, {}, 0};
  for (const auto& [round, rec] : faulty.rounds) {
    replay.available[round] = rec.available;
    replay.who[round] = rec.who;
    replay.kept[round] = fi_kept(rec, faulty.stats.at(round).target);
  }
  Server<double, Agg> server(fi_initial(), so, agg);
  FiParams cb;
  FiRun run;
  run.stats = server.run(replay, cb).history;
  run.params.push_back(fi_initial());
  for (auto& p : cb.after) run.params.push_back(p);
  *mismatched = replay.mismatched_participants;
  return run;
}

template <typename Agg>
FiRun fi_run_clean(const ServerOptions& so, const Agg& agg, int threads) {
  auto fed = fi_federation(threads);
  Server<double, Agg> server(fi_initial(), so, agg);
  FiParams cb;
  FiRun run;
  run.stats = server.run(*fed, cb).history;
  run.params.push_back(fi_initial());
  for (auto& p : cb.after) run.params.push_back(p);
  return run;
}

struct FiKind {
  const char* name;
  FaultOptions opts;
  bool same_set_as_clean;  // only the order or duplicates change
};

std::vector<FiKind> fi_kinds() {
  return {
      {"drop", {.drop = 0.3}, false},
      {"delay", {.delay = 0.3}, false},
      {"duplicate", {.duplicate = 0.5}, true},
      {"reorder", {.reorder = 1}, true},
      {"reorder and duplicate", {.duplicate = 0.5, .reorder = 1}, true},
      {"bit_flip", {.bit_flip = 0.3, .flip_bits = 2}, false},
      {"truncate", {.truncate = 0.3}, false},
      {"disconnect", {.disconnect = 0.3, .max_away_rounds = 2}, false},
      {"all", {.drop = 0.1, .delay = 0.1, .duplicate = 0.2, .reorder = 0.5, .bit_flip = 0.1, .truncate = 0.1,
               .disconnect = 0.1, .flip_bits = 3, .max_away_rounds = 2}, false},
  };
}

struct FiTally {
  int quorum_missed = 0, applied = 0, faults = 0;
};

// Runs the matrix for one server configuration (`over`: the options over-select).
template <typename Agg>
FiTally fi_matrix(const ServerOptions& base, const Agg& agg, int threads, bool over) {
  FiTally tally;
  for (const FiKind& kind : fi_kinds()) {
    for (std::uint64_t seed : {1, 2, 3}) {
      CAPTURE(kind.name, seed);
      ServerOptions so = base;
      so.seed = seed;
      FaultOptions fo = kind.opts;
      fo.seed = 1000 + seed;
      const FiRun f = fi_run_faulty(so, agg, fo, threads);
      REQUIRE(f.stats.size() == so.rounds);
      REQUIRE(f.log.size() == so.rounds);
      REQUIRE(f.params.size() == so.rounds + 1);
      CHECK(f.sampled_away == 0);  // a disconnected client is never sampled while away
      for (std::size_t r = 0; r < f.stats.size(); ++r) {
        CAPTURE(r);
        const RoundStats& st = f.stats[r];
        const FaultCounts& lg = f.log[r];
        const FiRoundRecord& rec = f.rounds.at(r);
        CHECK(lg.round == r);
        // Every participant ends in exactly one outcome.
        CHECK(st.accepted + st.surplus + st.failed + st.dropped + st.timed_out + st.rejected_malformed +
                  st.rejected_nonfinite == st.participants);
        CHECK(st.participants == rec.who.size());
        CHECK(st.participants > 0);
        // The injector's counts are the server's.
        CHECK(st.dropped == lg.disconnected);
        CHECK(st.rejected_malformed == lg.truncated + lg.flipped);
        CHECK(st.duplicates == lg.duplicated);
        CHECK(st.late == lg.delivered_late);
        CHECK(st.failed == 0);
        CHECK(st.rejected_nonfinite == 0);
        CHECK(st.unexpected == 0);
        if (r > 0) CHECK(lg.delivered_late == f.log[r - 1].delayed);
        if (over) {
          CHECK(st.timed_out <= lg.dropped + lg.delayed);
        } else {
          CHECK(st.timed_out == lg.dropped + lg.delayed);
          CHECK(st.surplus == 0);
        }
        tally.faults += static_cast<int>(lg.dropped + lg.delayed + lg.duplicated + lg.flipped + lg.truncated +
                                         lg.disconnected + lg.reordered);
        // Availability: participants are available; a client that disconnected in round r is
        // away in round r + 1 and back by round r + max_away_rounds + 1.
        for (ClientId c : rec.who)
          CHECK(std::find(rec.available.begin(), rec.available.end(), c) != rec.available.end());
        for (ClientId c : rec.disconnected) {
          if (f.rounds.count(r + 1)) {
            const auto& next = f.rounds.at(r + 1).available;
            CHECK(std::find(next.begin(), next.end(), c) == next.end());
          }
          // Back by round r + max_away_rounds + 1 unless it came back earlier and disconnected again.
          bool again = false;
          for (std::uint64_t q = r + 1; q <= r + fo.max_away_rounds; ++q)
            if (f.rounds.count(q)) {
              const auto& d = f.rounds.at(q).disconnected;
              again = again || std::find(d.begin(), d.end(), c) != d.end();
            }
          if (!again && f.rounds.count(r + fo.max_away_rounds + 1)) {
            const auto& back = f.rounds.at(r + fo.max_away_rounds + 1).available;
            CHECK(std::find(back.begin(), back.end(), c) != back.end());
          }
        }
        // The kept set judged from the replies alone has the size the server accepted.
        CHECK(fi_kept(rec, st.target).size() == st.accepted);
        // Quorum: below min_updates nothing changes.
        CHECK(st.quorum_met == (st.accepted >= so.min_updates));
        if (st.accepted < so.min_updates) {
          ++tally.quorum_missed;
          CHECK(!st.applied);
          CHECK(fedpp_test::same_bits(f.params[r + 1], f.params[r]));
        } else {
          ++tally.applied;
          CHECK(st.applied);
          CHECK(!st.rolled_back);
        }
      }
      // Nothing malformed reached the model: a fault-free replay of the same kept updates gives
      // the same model, round by round.
      std::size_t mismatched = 0;
      const FiRun ref = fi_run_replay(so, agg, f, threads, &mismatched);
      CHECK(mismatched == 0);
      REQUIRE(ref.stats.size() == f.stats.size());
      for (std::size_t r = 0; r < f.stats.size(); ++r) {
        CAPTURE(r);
        CHECK(ref.stats[r].accepted == f.stats[r].accepted);
        CHECK(ref.stats[r].applied == f.stats[r].applied);
        CHECK(fedpp_test::same_bits(ref.params[r + 1], f.params[r + 1]));
      }
      // Only order or duplicates changed: the clean run's model, bit for bit.
      if (kind.same_set_as_clean) {
        const FiRun clean = fi_run_clean(so, agg, threads);
        for (std::size_t r = 0; r < f.stats.size(); ++r) CHECK(clean.stats[r].accepted == f.stats[r].accepted);
        CHECK(fedpp_test::same_bits(clean.params.back(), f.params.back()));
      }
    }
  }
  return tally;
}

TEST_CASE("Fault matrix with a streaming weighted mean keeps the stats, the quorum and the model right", "[runtime][FaultInjector][matrix]") {
  // One thread: arrival order is participant order, so only the injector reorders.
  const FiTally t = fi_matrix(ServerOptions{.rounds = 8, .clients_per_round = 4, .min_updates = 3}, WeightedMean(), 1,
                              false);
  CHECK(t.quorum_missed > 0);
  CHECK(t.applied > 0);
  CHECK(t.faults > 0);
}

TEST_CASE("Fault matrix with a coordinate median keeps the stats, the quorum and the model right", "[runtime][FaultInjector][matrix]") {
  const FiTally t = fi_matrix(ServerOptions{.rounds = 8, .clients_per_round = 4, .min_updates = 3},
                              CoordinateMedian(), 2, false);
  CHECK(t.quorum_missed > 0);
  CHECK(t.applied > 0);
}

TEST_CASE("Fault matrix with over-selection keeps the stats, the quorum and the model right", "[runtime][FaultInjector][matrix]") {
  const FiTally t = fi_matrix(
      ServerOptions{.rounds = 8, .clients_per_round = 4, .min_updates = 3, .over_selection = 0.5}, WeightedMean(), 2,
      true);
  CHECK(t.quorum_missed > 0);
  CHECK(t.applied > 0);
}

TEST_CASE("FaultInjector gives the same faults and model for any thread count", "[runtime][FaultInjector]") {
  const ServerOptions so{.rounds = 6, .clients_per_round = 4, .min_updates = 2, .seed = 7};
  const FaultOptions fo = fi_kinds().back().opts;
  const FiRun one = fi_run_faulty(so, CoordinateMedian(), fo, 1);
  const FiRun three = fi_run_faulty(so, CoordinateMedian(), fo, 3);
  CHECK(fedpp_test::same_bits(one.params.back(), three.params.back()));
  for (std::size_t r = 0; r < one.log.size(); ++r) {
    CAPTURE(r);
    CHECK(one.log[r].dropped == three.log[r].dropped);
    CHECK(one.log[r].delayed == three.log[r].delayed);
    CHECK(one.log[r].duplicated == three.log[r].duplicated);
    CHECK(one.log[r].flipped == three.log[r].flipped);
    CHECK(one.log[r].truncated == three.log[r].truncated);
    CHECK(one.log[r].disconnected == three.log[r].disconnected);
    CHECK(one.stats[r].accepted == three.stats[r].accepted);
  }
}

}  // namespace fault_injection_test
