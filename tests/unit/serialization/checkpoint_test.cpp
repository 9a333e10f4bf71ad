// Checkpoints: compressor states round-trip through save_state/load_state; a client restored from
// a checkpoint continues bit-identically; malformed checkpoints are refused.
#include <catch2/catch.hpp>

#include <map>
#include <sstream>

#include "fedpp/compressors/error_feedback.hpp"
#include "fedpp/compressors/identity.hpp"
#include "fedpp/models/softmax_regression.hpp"
#include "fedpp/runtime/client.hpp"
#include "fedpp/serialization/checkpoint.hpp"
#include "support/blobs.hpp"
#include "support/checkpoint_io.hpp"
#include "support/lossy_compressors.hpp"

#include "fedpp/compressors/dgc.hpp"
#include "fedpp/compressors/qsgd.hpp"
#include "fedpp/compressors/top_k.hpp"

using namespace fedpp;
using fedpp_test::TestTopK;

namespace {

using fedpp_test::bytes_of;
using fedpp_test::checkpoint;
using fedpp_test::restore;

// Runs `rounds` encodes of seeded random inputs through `comp` with `st`, returning the payloads.
template <typename C, typename S, typename St>
std::vector<std::vector<std::uint8_t>> encode_rounds(const C& comp, St& st, Index d, std::uint64_t first,
                                                     std::uint64_t rounds) {
  std::vector<std::vector<std::uint8_t>> out;
  for (std::uint64_t t = first; t < first + rounds; ++t) {
    Rng data(1000 + t);
    Vector<S> x(d);
    for (auto& v : x) v = static_cast<S>(data.normal());
    Rng rng = make_rng(9, t, 0, Purpose::compression);
    if constexpr (CompressorWithContext<C, S>)
      out.push_back(bytes_of(comp.encode(as_span(std::as_const(x)), st, rng, RoundContext{t, 9, 0})));
    else
      out.push_back(bytes_of(comp.encode(as_span(std::as_const(x)), st, rng)));
  }
  return out;
}

// Encodes 3 rounds, checkpoints the state, restores it into a fresh state and checks that both
// continue with identical payloads (and that a fresh, unrestored state would not).
template <typename C, typename S = float>
void check_state_resumes(const C& comp, Index d, bool fresh_differs = true) {
  auto st = comp.template make_state<S>(d);
  (void)encode_rounds<C, S>(comp, st, d, 0, 3);
  const std::string bytes = checkpoint(st);
  auto restored = comp.template make_state<S>(d);
  auto fresh = comp.template make_state<S>(d);
  restore(restored, bytes);
  const auto a = encode_rounds<C, S>(comp, st, d, 3, 4);
  const auto b = encode_rounds<C, S>(comp, restored, d, 3, 4);
  const auto c = encode_rounds<C, S>(comp, fresh, d, 3, 4);
  CHECK(a == b);
  if (fresh_differs) CHECK(a != c);
}

}  // namespace

TEST_CASE("compressor states round-trip through checkpoints", "[serialization][checkpoint]") {
  SECTION("Identity (empty state)") {
    Identity::State s;
    const std::string bytes = checkpoint(s);
    CHECK(bytes.size() == 9);  // endianness byte + magic + version
    restore(s, bytes);
    check_state_resumes(Identity(), 10, /*fresh_differs=*/false);
  }
  SECTION("ErrorFeedback: memory and inner state") {
    ErrorFeedback<TestTopK> ef(TestTopK{3});
    auto st = ef.make_state<float>(40);
    (void)encode_rounds<ErrorFeedback<TestTopK>, float>(ef, st, 40, 0, 5);
    REQUIRE(st.memory.cwiseAbs().maxCoeff() > 0);
    auto back = ef.make_state<float>(1);
    restore(back, checkpoint(st));
    CHECK(back.memory == st.memory);
    CHECK(back.inner.encodes == 5);
    check_state_resumes(ef, 40);
    check_state_resumes<ErrorFeedback<TestTopK>, double>(ef, 25);
    check_state_resumes(ErrorFeedback<fedpp_test::TestGrid, float>(fedpp_test::TestGrid{0.3}), 30);
    check_state_resumes(ErrorFeedback<Identity>(), 12, /*fresh_differs=*/false);
  }
  SECTION("Ef21: client and server states") {
    Ef21<TestTopK> ef(TestTopK{2});
    check_state_resumes(ef, 30);
    auto dst = ef.make_decoder_state<float>(30);
    auto st = ef.make_state<float>(30);
    Vector<float> out(30);
    Rng rng(1);
    const Vector<float> x = Vector<float>::LinSpaced(30, -1.0f, 2.0f);
    for (int t = 0; t < 3; ++t) ef.decode(ef.encode(as_span(x), st, rng), as_span(out), dst);
    auto back = ef.make_decoder_state<float>(0);
    restore(back, checkpoint(dst));
    CHECK(back.g == dst.g);
    CHECK(back.g == st.g);
    // A server's per-client decoder states (Server::decoder_states()) as one checkpoint.
    std::map<ClientId, decltype(dst)> states{{3, dst}, {8, ef.make_decoder_state<float>(30)}};
    std::map<ClientId, decltype(dst)> states_back;
    restore(states_back, checkpoint(states));
    REQUIRE(states_back.size() == 2);
    CHECK(states_back.at(3).g == dst.g);
    CHECK(states_back.at(8).g.isZero(0.0));
  }
  SECTION("ErrorFeedback<TopK>") { check_state_resumes(ErrorFeedback<TopK>(TopK::count(4)), 50); }
  SECTION("ErrorFeedback<Qsgd>") { check_state_resumes(ErrorFeedback<Qsgd>(Qsgd(4, 16)), 50); }
  SECTION("Dgc (momentum, velocity, step count)") {
    DgcOptions o;
    o.density = 0.1;
    check_state_resumes(Dgc(o, ParameterLayout::flat(60)), 60);
  }
}

TEST_CASE("malformed checkpoints are refused and leave the state unchanged", "[serialization][checkpoint]") {
  ErrorFeedback<TestTopK> ef(TestTopK{2});
  auto st = ef.make_state<double>(16);
  (void)encode_rounds<ErrorFeedback<TestTopK>, double>(ef, st, 16, 0, 3);
  const std::string good = checkpoint(st);
  auto target = ef.make_state<double>(16);
  (void)encode_rounds<ErrorFeedback<TestTopK>, double>(ef, target, 16, 5, 2);
  const Vector<double> before = target.memory;

  std::string truncated = good.substr(0, good.size() - 5);
  CHECK_THROWS_WITH(restore(target, truncated), Catch::Contains("fedpp::load_state: malformed checkpoint"));
  CHECK(target.memory == before);
  CHECK(target.inner.encodes == 2);

  std::string bad_magic = good;
  bad_magic[1] = 'X';
  CHECK_THROWS_AS(restore(target, bad_magic), DecodeError);
  CHECK_THROWS_WITH(restore(target, bad_magic), Catch::Contains("bad magic number"));

  std::string bad_version = good;
  bad_version[5] = 7;  // version field (little-endian u32 after the magic)
  CHECK_THROWS_WITH(restore(target, bad_version), Catch::Contains("unsupported checkpoint version") &&
                                                      Catch::Contains("got 7"));
  CHECK(target.memory == before);
  CHECK_THROWS_AS(restore(target, std::string()), DecodeError);
}

namespace {

using Model = SoftmaxRegression<float>;
template <typename Comp>
using TestClient = Client<Model, LocalSgd, Comp>;

// Client `id` on shard id of 3, training with LocalSgd and sending through `comp`.
template <typename Comp>
TestClient<Comp> make_compressing_client(ClientId id, const Comp& comp) {
  auto data = fedpp_test::blobs<float>(90, 5, 3, 11);
  const auto shards = fedpp_test::contiguous_split(data, 3);
  return TestClient<Comp>(id, Model(5, 3), shards[id], LocalSgd({.lr = 0.2, .batch_size = 8}), comp);
}

// Requests with a global model that changes every round.
RoundRequest<float> request(std::uint64_t round, Vector<float>& global) {
  Rng rng(round + 77);
  for (auto& v : global) v = static_cast<float>(0.1 * rng.normal());
  return RoundRequest<float>{round, 5, as_span(std::as_const(global))};
}

template <typename Comp>
void check_client_resumes(const Comp& comp) {
  auto original = make_compressing_client<Comp>(1, comp);
  Vector<float> global(Model(5, 3).num_params());
  for (std::uint64_t t = 0; t < 3; ++t) REQUIRE(original.handle(request(t, global)).status == ReplyStatus::ok);
  const std::string bytes = checkpoint(original);

  auto restored = make_compressing_client<Comp>(1, comp);
  restore(restored, bytes);
  REQUIRE(restored.compressor_state().has_value());
  auto fresh = make_compressing_client<Comp>(1, comp);
  for (std::uint64_t t = 3; t < 7; ++t) {
    const Reply a = original.handle(request(t, global));
    const Reply b = restored.handle(request(t, global));
    const Reply c = fresh.handle(request(t, global));
    REQUIRE(a.status == ReplyStatus::ok);
    CHECK(bytes_of(a.payload) == bytes_of(b.payload));
    CHECK(bytes_of(a.payload) != bytes_of(c.payload));  // without the state the payloads differ
  }

  // A checkpoint of another client is refused and leaves the client as it was.
  auto other = make_compressing_client<Comp>(2, comp);
  CHECK_THROWS_WITH(restore(other, bytes), Catch::Contains("fedpp::Client::load") && Catch::Contains("got 1"));
  CHECK_FALSE(other.compressor_state().has_value());
  // A checkpoint taken before the first participation restores "no state yet".
  auto unused = make_compressing_client<Comp>(1, comp);
  restore(restored, checkpoint(unused));
  CHECK_FALSE(restored.compressor_state().has_value());
  CHECK_FALSE(restored.optimizer_state().has_value());
}

}  // namespace

TEST_CASE("a client restored from a checkpoint continues bit-identically", "[serialization][checkpoint]") {
  SECTION("ErrorFeedback<top-k>") { check_client_resumes(ErrorFeedback<TestTopK>(TestTopK{4})); }
  SECTION("Ef21<top-k>") { check_client_resumes(Ef21<TestTopK>(TestTopK{4})); }
  SECTION("ErrorFeedback<stochastic grid>, float memory") {
    check_client_resumes(ErrorFeedback<fedpp_test::TestGrid, float>(fedpp_test::TestGrid{0.05}));
  }
}
