// Client: the round-aware encode overload (contract 3) and the state accessors.
#include <catch2/catch.hpp>

#include <vector>

#include "fedpp/compressors/error_feedback.hpp"
#include "fedpp/models/softmax_regression.hpp"
#include "fedpp/runtime/client.hpp"
#include "support/blobs.hpp"

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
