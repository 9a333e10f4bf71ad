// Client: the reply to a request (weight, delta, payload, training summary, random streams), state
// kept across rounds, the round-aware encode overload (contract 3), the state accessors, and the
// documented errors (data dimension, global model size, exchange reply size).
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "fedpp/compressors/error_feedback.hpp"
#include "fedpp/models/softmax_regression.hpp"
#include "fedpp/runtime/client.hpp"
#include "support/blobs.hpp"
#include "support/checks.hpp"
#include "support/quadratic.hpp"

using namespace fedpp;

namespace {

constexpr std::uint64_t no_context = ~0ULL;

// Records, per encode, the round it was given (no_context when the 3-argument form was used),
// and the client id and seed of the context.
struct RoundRecorder {
  struct State {
    std::vector<std::uint64_t> rounds;
    std::vector<ClientId> clients;
    std::vector<std::uint64_t> seeds;
  };
  template <typename S>
  State make_state(Index) const {
    return {};
  }
  template <typename S>
  Payload encode(std::span<const S> x, State& st, Rng& rng) const {
    st.rounds.push_back(no_context);
    Identity::State s;
    return Identity().encode(x, s, rng);
  }
  template <typename S>
  Payload encode(std::span<const S> x, State& st, Rng& rng, const RoundContext& ctx) const {
    st.rounds.push_back(ctx.round);
    st.clients.push_back(ctx.client);
    st.seeds.push_back(ctx.seed);
    Identity::State s;
    return Identity().encode(x, s, rng);
  }
  template <typename S>
  void decode(const Payload& p, std::span<S> out) const {
    Identity().decode(p, out);
  }
};
static_assert(CompressorWithContext<RoundRecorder, float>);

// The same without the round-aware overload.
struct PlainRecorder {
  struct State {
    int calls = 0;
  };
  template <typename S>
  State make_state(Index) const {
    return {};
  }
  template <typename S>
  Payload encode(std::span<const S> x, State& st, Rng& rng) const {
    ++st.calls;
    Identity::State s;
    return Identity().encode(x, s, rng);
  }
  template <typename S>
  void decode(const Payload& p, std::span<S> out) const {
    Identity().decode(p, out);
  }
};
static_assert(Compressor<PlainRecorder, float> && !CompressorWithContext<PlainRecorder, float>);
static_assert(!CompressorWithContext<Identity, float>);

template <typename Comp>
Client<SoftmaxRegression<float>, LocalSgd, Comp> make_client(ClientId id, Comp comp = Comp()) {
  auto data = fedpp_test::blobs<float>(60, 4, 3, 7);
  const auto shards = fedpp_test::contiguous_split(data, 3);
  return {id, SoftmaxRegression<float>(4, 3), shards[id % 3], LocalSgd({.lr = 0.1}), comp};
}

}  // namespace

TEST_CASE("Client passes the round's context to a round-aware compressor", "[runtime][client]") {
  auto client = make_client<RoundRecorder>(2);
  const Vector<float> global = Vector<float>::Zero(SoftmaxRegression<float>(4, 3).num_params());
  for (std::uint64_t round : {3ULL, 4ULL, 11ULL}) {
    const Reply r = client.handle(RoundRequest<float>{round, 99, as_span(global)});
    REQUIRE(r.status == ReplyStatus::ok);
    // The payload is the Identity encoding of the update.
    Vector<float> u(global.size());
    Identity().decode(r.payload, as_span(u));
    CHECK(u.allFinite());
    CHECK(u.norm() > 0);
  }
  REQUIRE(client.compressor_state().has_value());
  CHECK(client.compressor_state()->rounds == std::vector<std::uint64_t>{3, 4, 11});
  CHECK(client.compressor_state()->clients == std::vector<ClientId>{2, 2, 2});
  CHECK(client.compressor_state()->seeds == std::vector<std::uint64_t>{99, 99, 99});
}

TEST_CASE("Client uses the 3-argument encode when there is no round-aware overload", "[runtime][client]") {
  auto client = make_client<PlainRecorder>(1);
  const Vector<float> global = Vector<float>::Zero(SoftmaxRegression<float>(4, 3).num_params());
  for (std::uint64_t round = 0; round < 2; ++round)
    REQUIRE(client.handle(RoundRequest<float>{round, 1, as_span(global)}).status == ReplyStatus::ok);
  CHECK(client.compressor_state()->calls == 2);
}

TEST_CASE("Client forwards the context through ErrorFeedback and keeps its memory across rounds",
          "[runtime][client]") {
  auto client = make_client<ErrorFeedback<RoundRecorder>>(0);
  const Vector<float> global = Vector<float>::Zero(SoftmaxRegression<float>(4, 3).num_params());
  CHECK_FALSE(client.compressor_state().has_value());
  (void)client.handle(RoundRequest<float>{5, 1, as_span(global)});
  (void)client.handle(RoundRequest<float>{8, 1, as_span(global)});
  REQUIRE(client.compressor_state().has_value());
  CHECK(client.compressor_state()->inner.rounds == std::vector<std::uint64_t>{5, 8});
  CHECK(client.compressor_state()->memory.size() == global.size());
  // Mutable access, e.g. for restoring a checkpoint.
  client.compressor_state().reset();
  (void)client.handle(RoundRequest<float>{9, 1, as_span(global)});
  CHECK(client.compressor_state()->inner.rounds == std::vector<std::uint64_t>{9});
}

namespace {

// Adds 0.25 * (j + 1) to parameter j; records the first draw of the stream it is given and the
// exchange it receives; reports a fixed training summary. `reply_size` > 0: replies that many entries.
struct AddRamp {
  Index reply_size = 0;
  struct State {
    int calls = 0;
    std::vector<std::uint64_t> draws;
    std::vector<double> received;
  };
  template <Model M>
  [[nodiscard]] State make_state(const M& /*m*/) const {
    return {};
  }
  template <Model M>
  LocalResult train(const M& /*m*/, Vector<double>& params, const DatasetView<double>& /*data*/, State& st,
                    const RoundContext& /*ctx*/, Rng& rng) const {
    ++st.calls;
    st.draws.push_back(rng());
    for (Index j = 0; j < params.size(); ++j) params(j) += 0.25 * static_cast<double>(j + 1);
    return {1.5, 2, 7};
  }
  template <Model M>
  LocalResult train(const M& m, Vector<double>& params, const DatasetView<double>& data, State& st,
                    const RoundContext& ctx, Rng& rng, LocalExchange<double>& ex) const {
    st.received.assign(ex.received.begin(), ex.received.end());
    if (reply_size > 0) ex.reply = Vector<double>::Constant(reply_size, 4.0);
    return train(m, params, data, st, ctx, rng);
  }
};
static_assert(ExchangingLocalOptimizer<AddRamp, fedpp_test::Quadratic>);

// Identity encoding that records the first draw of the stream it is given.
struct DrawRecorder {
  struct State {
    std::vector<std::uint64_t> draws;
  };
  template <typename S>
  State make_state(Index) const {
    return {};
  }
  template <typename S>
  Payload encode(std::span<const S> x, State& st, Rng& rng) const {
    st.draws.push_back(rng());
    Identity::State s;
    return Identity().encode(x, s, rng);
  }
  template <typename S>
  void decode(const Payload& p, std::span<S> out) const {
    Identity().decode(p, out);
  }
};

using RampClient = Client<fedpp_test::Quadratic, AddRamp, DrawRecorder>;

// Five samples of dimension 3 (input_dim 4 with the curvature row).
DatasetView<double> five_samples() {
  return DatasetView<double>::all(fedpp_test::quadratic_points(Matrix<double>::Ones(3, 5), 1.0));
}

}  // namespace

TEST_CASE("Client replies with its id, its sample count, the encoded delta and the training summary",
          "[runtime][client]") {
  RampClient client(4, fedpp_test::Quadratic{3}, five_samples());
  const Vector<double> global{{0.5, -1.0, 2.0}};
  const Reply r = client.handle(RoundRequest<double>{6, 21, as_span(global)});
  REQUIRE(r.status == ReplyStatus::ok);
  CHECK(r.error.empty());
  CHECK(r.client == 4);
  CHECK(r.weight == 5.0);
  CHECK(r.local.train_loss == 1.5);
  CHECK(r.local.steps == 2);
  CHECK(r.local.samples == 7);
  // delta = local - global, not the local model: (0.25, 0.5, 0.75), exact in binary.
  Vector<double> delta(3);
  Identity().decode(r.payload, as_span(delta));
  CHECK(delta == Vector<double>{{0.25, 0.5, 0.75}});
  // Dense f64 payload of d = 3 (docs/compressors/sparse.md): 3 + 1 + 1 header bytes + 24.
  CHECK(r.payload.bytes() == 29);
  CHECK(r.aux.bytes() == 0);  // not an exchanging round: nothing extra
  // The documented streams: (seed, round, client id, shuffle) for training, (..., compression) for encoding.
  REQUIRE(client.optimizer_state().has_value());
  REQUIRE(client.compressor_state().has_value());
  CHECK(client.optimizer_state()->draws == std::vector<std::uint64_t>{make_rng(21, 6, 4, Purpose::shuffle)()});
  CHECK(client.compressor_state()->draws == std::vector<std::uint64_t>{make_rng(21, 6, 4, Purpose::compression)()});
}

TEST_CASE("Client keeps its optimizer state across rounds and draws a new stream each round", "[runtime][client]") {
  RampClient client(1, fedpp_test::Quadratic{3}, five_samples());
  const Vector<double> global = Vector<double>::Zero(3);
  CHECK_FALSE(client.optimizer_state().has_value());
  for (std::uint64_t round : {0ULL, 1ULL, 5ULL}) REQUIRE(client.handle({round, 3, as_span(global)}).status == ReplyStatus::ok);
  REQUIRE(client.optimizer_state().has_value());
  CHECK(client.optimizer_state()->calls == 3);
  CHECK(client.optimizer_state()->draws == std::vector<std::uint64_t>{make_rng(3, 0, 1, Purpose::shuffle)(),
                                                                      make_rng(3, 1, 1, Purpose::shuffle)(),
                                                                      make_rng(3, 5, 1, Purpose::shuffle)()});
  CHECK(client.compressor_state()->draws.size() == 3);
}

TEST_CASE("Client sends the exchange reply dense and passes on the broadcast", "[runtime][client]") {
  RampClient client(0, fedpp_test::Quadratic{3}, five_samples(), AddRamp{.reply_size = 3});
  const Vector<double> global = Vector<double>::Zero(3), broadcast{{7.0, 8.0, 9.0}};
  const Reply r = client.handle(RoundRequest<double>{0, 1, as_span(global), as_span(broadcast)});
  REQUIRE(r.status == ReplyStatus::ok);
  CHECK(client.optimizer_state()->received == std::vector<double>{7.0, 8.0, 9.0});
  Vector<double> aux(3);
  Identity().decode(r.aux, as_span(aux));
  CHECK(aux == Vector<double>::Constant(3, 4.0));
  CHECK(r.aux.bytes() == 29);

  RampClient wrong(2, fedpp_test::Quadratic{3}, five_samples(), AddRamp{.reply_size = 4});
  const Reply w = wrong.handle(RoundRequest<double>{0, 1, as_span(global), as_span(broadcast)});
  CHECK(w.status == ReplyStatus::failed);
  CHECK(w.error == "fedpp::Client::handle: the optimizer's exchange reply must have num_params 3 entries, got 4");
  CHECK(w.payload.bytes() == 0);
  CHECK(w.aux.bytes() == 0);
}

TEST_CASE("Client reports a wrong-sized global model as a failed reply and checks its data", "[runtime][client]") {
  RampClient client(3, fedpp_test::Quadratic{3}, five_samples());
  const Vector<double> global = Vector<double>::Zero(4);
  const Reply r = client.handle(RoundRequest<double>{0, 1, as_span(global)});
  CHECK(r.status == ReplyStatus::failed);
  CHECK(r.client == 3);
  CHECK(r.error == "fedpp::Client::handle: global model size must equal num_params 3, got 4");
  CHECK(r.payload.bytes() == 0);
  CHECK_FALSE(client.optimizer_state().has_value());  // nothing trained

  CHECK_THROWS_AS(RampClient(0, fedpp_test::Quadratic{2}, five_samples()), DimensionError);
  CHECK(fedpp_test::message_of([] { RampClient(0, fedpp_test::Quadratic{2}, five_samples()); }) ==
        "fedpp::Client: data dimension must equal the model's input_dim 3, got 4");
  // An empty shard has no dimension to check; it trains with weight 0.
  DatasetView<double> empty = five_samples();
  empty.indices.clear();
  RampClient idle(5, fedpp_test::Quadratic{2}, empty);
  const Vector<double> two = Vector<double>::Zero(2);
  const Reply e = idle.handle(RoundRequest<double>{0, 1, as_span(two)});
  CHECK(e.status == ReplyStatus::ok);
  CHECK(e.weight == 0.0);
}
