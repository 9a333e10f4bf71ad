// Server with a StatefulDecoder compressor: one decoder state per client, created on the first
// accepted payload, kept across rounds, untouched by rejected payloads; EF21 end to end.
#include <catch2/catch.hpp>

#include <map>

#include "fedpp/compressors/error_feedback.hpp"
#include "fedpp/models/softmax_regression.hpp"
#include "fedpp/runtime/in_process.hpp"
#include "fedpp/runtime/server.hpp"
#include "support/blobs.hpp"
#include "support/lossy_compressors.hpp"

using namespace fedpp;

namespace {

// Identity on the wire; the server's decoder state accumulates the client's payloads and the
// decoded update is the running sum.
struct RunningSum {
  struct State {};
  template <typename S>
  struct DecoderState {
    Vector<S> sum;
    int count = 0;
  };
  template <typename S>
  State make_state(Index) const {
    return {};
  }
  template <typename S>
  DecoderState<S> make_decoder_state(Index d) const {
    return {Vector<S>::Zero(d), 0};
  }
  template <typename S>
  Payload encode(std::span<const S> x, State&, Rng& rng) const {
    Identity::State s;
    return Identity().encode(x, s, rng);
  }
  template <typename S>
  void decode(const Payload& p, std::span<S> out) const {
    Identity().decode(p, out);
  }
  template <typename S>
  void decode(const Payload& p, std::span<S> out, DecoderState<S>& st) const {
    Identity().decode(p, out);
    st.sum += as_map(std::span<const S>(out));
    ++st.count;
    as_map(out) = st.sum;
  }
};
static_assert(StatefulDecoder<RunningSum, double> && !StatefulDecoder<Identity, double>);

enum class Bad { none, garbage, nan, negative_weight };

// Client i sends (i+1) * ones, except for the scripted (round, client) misbehaviours.
struct RoundScriptedTransport {
  std::size_t n = 6;
  Index d = 3;
  std::map<std::pair<std::uint64_t, ClientId>, Bad> bad;

  std::size_t num_clients() const { return n; }
  void run_round(const RoundRequest<double>& req, std::span<const ClientId> who, const ReplySink& sink) {
    RunningSum c;
    RunningSum::State st;
    Rng rng(0);
    for (ClientId id : who) {
      Reply r;
      r.client = id;
      r.weight = 1.0;
      Vector<double> u = Vector<double>::Constant(d, static_cast<double>(id + 1));
      const auto it = bad.find({req.round, id});
      const Bad b = it == bad.end() ? Bad::none : it->second;
      if (b == Bad::nan) u(0) = std::nan("");
      if (b == Bad::negative_weight) r.weight = -1.0;
      r.payload = c.encode(as_span(std::as_const(u)), st, rng);
      if (b == Bad::garbage) r.payload = Payload(std::vector<std::uint8_t>{1, 0, 1, 3, 3, 0});
      sink(std::move(r));
    }
  }
};
static_assert(SynchronousTransport<RoundScriptedTransport, double>);

// Records coordinate 0 of each round's aggregate.
struct FirstCoordinateProbe {
  std::vector<double> first;
  void on_aggregate(const RoundStats&, std::span<const double> a) { first.push_back(a[0]); }
};

}  // namespace

TEST_CASE("Server keeps one decoder state per client, and rejected payloads leave it unchanged",
          "[runtime][server][decoder_state]") {
  RoundScriptedTransport tr;
  tr.bad[{0, 5}] = Bad::negative_weight;  // first payload rejected: no state is created
  tr.bad[{1, 3}] = Bad::garbage;          // malformed
  tr.bad[{2, 4}] = Bad::nan;              // decodes but non-finite
  Server<double, WeightedMean, ServerSgd, RunningSum> server(Vector<double>::Zero(3),
                                                             {.rounds = 3, .fraction = 1.0, .seed = 1});
  FirstCoordinateProbe probe;

  RoundStats s0 = server.step(tr, probe);
  CHECK(s0.accepted == 5);
  CHECK(s0.rejected_nonfinite == 1);
  CHECK(server.decoder_states().size() == 5);
  CHECK(server.decoder_states().count(5) == 0);
  CHECK(probe.first.back() == Approx((1 + 2 + 3 + 4 + 5) / 5.0));

  RoundStats s1 = server.step(tr, probe);
  CHECK(s1.accepted == 5);
  CHECK(s1.rejected_malformed == 1);
  REQUIRE(server.decoder_states().size() == 6);
  CHECK(server.decoder_states().at(3).count == 1);  // the garbage payload did not count
  CHECK(server.decoder_states().at(3).sum == Vector<double>::Constant(3, 4.0));
  CHECK(server.decoder_states().at(5).count == 1);  // created on its first accepted payload
  // Decoded updates are running sums: 2 (i+1) for i = 0, 1, 2, 4 and 6 for client 5 (client 3 rejected).
  CHECK(probe.first.back() == Approx((2 + 4 + 6 + 10 + 6) / 5.0));

  RoundStats s2 = server.step(tr, probe);
  CHECK(s2.rejected_nonfinite == 1);
  const auto& states = server.decoder_states();
  CHECK(states.at(4).count == 2);  // the NaN payload of round 2 left it as after round 1
  CHECK(states.at(4).sum == Vector<double>::Constant(3, 10.0));
  for (ClientId id : {0u, 1u, 2u}) {
    CHECK(states.at(id).count == 3);
    CHECK(states.at(id).sum == Vector<double>::Constant(3, 3.0 * (id + 1)));
  }
  CHECK(states.at(3).count == 2);
  CHECK(states.at(5).count == 2);
}

TEST_CASE("EF21 end to end: the server's g_i equals each client's g_i bit for bit", "[runtime][server][ef21]") {
  using M = SoftmaxRegression<float>;
  using Comp = Ef21<fedpp_test::TestTopK>;
  auto train = fedpp_test::blobs<float>(400, 6, 3, 4);
  const auto shards = fedpp_test::contiguous_split(train, 8);
  M model(6, 3);
  const Comp comp(fedpp_test::TestTopK{3});
  std::vector<Client<M, LocalSgd, Comp>> clients;
  for (std::size_t i = 0; i < shards.size(); ++i)
    clients.emplace_back(ClientId(i), model, shards[i], LocalSgd({.lr = 0.1}), comp);
  InProcessTransport transport(std::move(clients), 2);
  Vector<float> init;
  Rng rng = make_rng(1, 0, server_stream, Purpose::model_init);
  model.init_params(init, rng);
  Server<float, WeightedMean, ServerSgd, Comp> server(init, {.rounds = 6, .fraction = 0.5, .seed = 3}, WeightedMean(),
                                                       ServerSgd(), comp);
  const auto result = server.run(transport);
  CHECK(result.history.size() == 6);
  CHECK(result.params != init);
  std::size_t seen = 0;
  for (const auto& c : transport.clients()) {
    const auto it = server.decoder_states().find(c.id());
    REQUIRE(c.compressor_state().has_value() == (it != server.decoder_states().end()));
    if (!c.compressor_state()) continue;
    ++seen;
    CHECK(it->second.g == c.compressor_state()->g);
    CHECK(it->second.g.cwiseAbs().maxCoeff() > 0);
  }
  CHECK(seen >= 4);
  CHECK(seen <= 8);
}
