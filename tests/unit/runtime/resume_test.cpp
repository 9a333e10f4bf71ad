// Resume (issue 13, item 5): a run stopped after round k and resumed from its checkpoint ends
// bit-identical to an uninterrupted run of K rounds, with the same per-round history, for every
// built-in aggregator (stateful and randomised ones included), every server optimizer, a stateful
// decoder (EF21) and stateful clients, in Simulation and on a Server driven directly, with 1 and 2
// threads. Each stateful case also checks that the state is non-trivial in the checkpoint of round
// k and that resuming with that state reset gives a different model, so the bit-for-bit comparison
// would notice a state the checkpoint dropped.
#include <catch2/catch.hpp>

#include <bit>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "fedpp/aggregators.hpp"
#include "fedpp/attacks/mimic.hpp"
#include "fedpp/compressors/dgc.hpp"
#include "fedpp/compressors/error_feedback.hpp"
#include "fedpp/compressors/top_k.hpp"
#include "fedpp/models/softmax_regression.hpp"
#include "fedpp/optimizers/adaptive.hpp"
#include "fedpp/optimizers/fed_dyn.hpp"
#include "fedpp/optimizers/local_sgd.hpp"
#include "fedpp/optimizers/scaffold.hpp"
#include "fedpp/optimizers/server_momentum.hpp"
#include "fedpp/optimizers/server_sgd.hpp"
#include "fedpp/runtime/checkpoint.hpp"
#include "fedpp/runtime/in_process.hpp"
#include "fedpp/runtime/server.hpp"
#include "fedpp/runtime/simulation.hpp"
#include "support/blobs.hpp"
#include "support/checks.hpp"
#include "support/temp_dir.hpp"

using namespace fedpp;

namespace resume_test {

using Model = SoftmaxRegression<float>;

constexpr std::uint64_t total_rounds = 6;  // K
constexpr std::uint64_t stop_after = 3;    // k
constexpr std::size_t num_clients = 12;

struct Data {
  std::shared_ptr<Dataset<float>> train, test;
  std::vector<DatasetView<float>> shards;
};

// 240 samples in 6 dimensions, 3 classes, 12 shards of 20; 60 test samples.
inline const Data& data() {
  static const Data d = [] {
    Data x;
    x.train = fedpp_test::blobs<float>(240, 6, 3, 31);
    x.test = fedpp_test::blobs<float>(60, 6, 3, 32);
    x.shards = fedpp_test::contiguous_split(x.train, num_clients);
    return x;
  }();
  return d;
}

inline Model model() { return Model(6, 3); }
inline Index dim() { return model().num_params(); }

inline LocalSgd plain_sgd() { return LocalSgd({.lr = 0.1, .epochs = 1, .batch_size = 5}); }

inline SimulationOptions sim_options(std::uint64_t rounds, int threads, std::string path = {}, bool resume = false) {
  SimulationOptions o;
  o.rounds = rounds;
  o.clients_per_round = 8;
  o.seed = 77;
  o.threads = threads;
  o.eval_chunk = 16;
  o.checkpoint = std::move(path);
  o.resume = resume;
  return o;
}

// The four policies of a run, given explicitly so the test knows the checkpoint's types.
template <typename Agg, typename Opt, typename Comp, typename SOpt>
struct Policies {
  Agg agg;
  Opt opt;
  Comp comp;
  SOpt sopt;
  using ClientT = fedpp::Client<Model, Opt, Comp>;
  using State = ServerState<float, Agg, SOpt, Comp>;
};

template <typename Agg>
Policies<Agg, LocalSgd, Identity, ServerSgd> with_aggregator(Agg a) {
  return {std::move(a), plain_sgd(), Identity(), ServerSgd()};
}
template <typename SOpt>
Policies<WeightedMean, LocalSgd, Identity, SOpt> with_server(SOpt s) {
  return {WeightedMean(), plain_sgd(), Identity(), std::move(s)};
}

// Records the global model after every round.
struct ParamsRecorder {
  std::vector<Vector<float>> after;
  void on_round_end(const RoundStats& /*st*/, std::span<const float> p) { after.emplace_back(as_map(p)); }
};

template <typename P, typename... Cbs>
RunResult<float> run_sim(const P& p, const SimulationOptions& o, Cbs&... cbs) {
  Simulation sim(model(), data().shards, data().test, o);
  return sim.run(p.agg, p.opt, p.comp, p.sopt, cbs...);
}

using fedpp_test::read_bytes;
using fedpp_test::write_bytes;

// The configuration fingerprint stored in a checkpoint (the first string of the body, after the
// 24-byte header: magic, version, length, digest).
inline std::string stored_fingerprint(const std::string& path) {
  const std::string file = read_bytes(path);
  REQUIRE(file.size() > 24);
  std::istringstream is(file.substr(24), std::ios::binary);
  cereal::PortableBinaryInputArchive ar(is);
  std::string fp;
  ar(fp);
  return fp;
}

template <typename P>
std::vector<typename P::ClientT> fresh_clients(const P& p) {
  std::vector<typename P::ClientT> cs;
  for (std::size_t i = 0; i < num_clients; ++i)
    cs.emplace_back(static_cast<ClientId>(i), model(), data().shards[i], p.opt, p.comp);
  return cs;
}

// A Simulation checkpoint's parts: the server state and the clients.
template <typename P>
struct Parts {
  typename P::State server;
  ClientStates<typename P::ClientT> clients;
  std::string fingerprint;
};

template <typename P>
Parts<P> read_parts(const P& p, const std::string& path) {
  Parts<P> c{{}, {fresh_clients(p)}, stored_fingerprint(path)};
  load_checkpoint_parts(path, c.fingerprint, c.server, c.clients);
  return c;
}

inline bool same_double(double a, double b) { return std::bit_cast<std::uint64_t>(a) == std::bit_cast<std::uint64_t>(b); }

// Round i of `resumed` against round `offset + i` of `full`.
inline void check_history(const RunResult<float>& full, const RunResult<float>& resumed, std::uint64_t offset) {
  REQUIRE(full.history.size() == offset + resumed.history.size());
  for (std::size_t i = 0; i < resumed.history.size(); ++i) {
    const RoundStats& a = resumed.history[i];
    const RoundStats& b = full.history[offset + i];
    INFO("round " << b.round);
    CHECK(a.round == b.round);
    CHECK(a.accepted == b.accepted);
    CHECK(a.applied == b.applied);
    CHECK(same_double(a.train_loss, b.train_loss));
    CHECK(same_double(a.update_norm, b.update_norm));
    CHECK(same_double(a.test_loss, b.test_loss));
    CHECK(a.bytes_up == b.bytes_up);
    CHECK(a.bytes_down == b.bytes_down);
  }
}

// No state to inspect or reset.
struct NoCheck {
  template <typename St, typename Cs>
  void operator()(const St& /*server*/, const Cs& /*clients*/) const {}
};

/// Runs K rounds uninterrupted; k rounds with a checkpoint, then a fresh Simulation resumed to K;
/// compares models and history bit for bit. `inspect(server state, clients)` checks the state of
/// round k is non-trivial; each `reset(server state, clients)` rewrites the checkpoint with some
/// state reset, and the run resumed from it must end elsewhere.
template <typename P, typename Inspect, typename... Resets>
void check_resume(const P& p, int threads, Inspect inspect, Resets... resets) {
  INFO("threads " << threads);
  ParamsRecorder rec;
  const RunResult<float> full = run_sim(p, sim_options(total_rounds, threads), rec);
  REQUIRE(full.history.size() == total_rounds);
  REQUIRE(rec.after.size() == total_rounds);
  CHECK(full.params.allFinite());

  fedpp_test::TempDir dir("fedpp_resume");
  const std::string path = dir.file("run.ckpt");
  {
    const RunResult<float> first = run_sim(p, sim_options(stop_after, threads, path));
    REQUIRE(first.history.size() == stop_after);
    CHECK(fedpp_test::same_bits(first.params, rec.after[stop_after - 1]));
  }
  REQUIRE(std::filesystem::exists(path));
  CHECK_FALSE(std::filesystem::exists(path + ".tmp"));
  const std::string saved = read_bytes(path);
  {
    const Parts<P> c = read_parts(p, path);
    CHECK(c.server.round == stop_after);
    CHECK(fedpp_test::same_bits(c.server.params, rec.after[stop_after - 1]));
    inspect(c.server, c.clients.clients);
  }

  const RunResult<float> resumed = run_sim(p, sim_options(total_rounds, threads, path, true));
  REQUIRE(resumed.history.size() == total_rounds - stop_after);
  CHECK(fedpp_test::same_bits(resumed.params, full.params));
  check_history(full, resumed, stop_after);
  CHECK(same_double(resumed.final_test.loss(), full.final_test.loss()));
  // The resumed run went on checkpointing: the file now holds round K.
  CHECK(read_parts(p, path).server.round == total_rounds);
  CHECK_FALSE(std::filesystem::exists(path + ".tmp"));

  int which = 0;
  const auto with_reset = [&](auto reset) {
    INFO("reset " << which++);
    write_bytes(path, saved);
    Parts<P> c = read_parts(p, path);
    reset(c.server, c.clients.clients);
    save_checkpoint_parts(path, c.fingerprint, c.server, c.clients);
    const RunResult<float> r = run_sim(p, sim_options(total_rounds, threads, path, true));
    REQUIRE(r.history.size() == total_rounds - stop_after);
    CHECK_FALSE(fedpp_test::same_bits(r.params, full.params));
  };
  (void)with_reset;
  (with_reset(resets), ...);
}

template <typename P, typename Inspect, typename... Resets>
void check_resume_threads(const P& p, Inspect inspect, Resets... resets) {
  for (int threads : {1, 2}) check_resume(p, threads, inspect, resets...);
}

template <typename V>
bool nonzero(const V& v) {
  return v.size() > 0 && (v.array() != typename V::Scalar(0)).any();
}

// Client states: at least one client trained, and check(state) holds for every one that did.
template <typename Cs, typename Get, typename Check>
void check_client_states(const Cs& clients, Get get, Check check) {
  std::size_t with_state = 0;
  for (const auto& c : clients) {
    const auto& st = get(c);
    if (!st) continue;
    ++with_state;
    INFO("client " << c.id());
    check(*st);
  }
  CHECK(with_state >= 8);  // 8 clients per round for 3 rounds
}

const auto reset_client_optimizers = [](auto& /*server*/, auto& clients) {
  for (auto& c : clients) c.optimizer_state().reset();
};
const auto reset_client_compressors = [](auto& /*server*/, auto& clients) {
  for (auto& c : clients) c.compressor_state().reset();
};

// --- aggregators (ServerSgd, plain LocalSgd, Identity) -------------------------------------------

TEST_CASE("resume is bit-identical with WeightedMean", "[runtime][resume]") {
  check_resume_threads(with_aggregator(WeightedMean()), NoCheck{});
}

TEST_CASE("resume is bit-identical with CoordinateMedian", "[runtime][resume]") {
  check_resume_threads(with_aggregator(CoordinateMedian()), NoCheck{});
}

TEST_CASE("resume is bit-identical with TrimmedMean", "[runtime][resume]") {
  check_resume_threads(with_aggregator(TrimmedMean(0.2)), NoCheck{});
}

TEST_CASE("resume is bit-identical with Meamed", "[runtime][resume]") {
  check_resume_threads(with_aggregator(Meamed(1)), NoCheck{});
}

TEST_CASE("resume is bit-identical with Krum", "[runtime][resume]") {
  check_resume_threads(with_aggregator(Krum(1)), NoCheck{});
}

TEST_CASE("resume is bit-identical with MultiKrum", "[runtime][resume]") {
  check_resume_threads(with_aggregator(MultiKrum(1, 3)), NoCheck{});
}

TEST_CASE("resume is bit-identical with Bulyan", "[runtime][resume]") {
  check_resume_threads(with_aggregator(Bulyan(1)), NoCheck{});
}

TEST_CASE("resume is bit-identical with GeometricMedian", "[runtime][resume]") {
  check_resume_threads(with_aggregator(GeometricMedian()), NoCheck{});
}

TEST_CASE("resume is bit-identical with FlagAggregator", "[runtime][resume]") {
  check_resume_threads(with_aggregator(FlagAggregator(2)), NoCheck{});
}

TEST_CASE("resume is bit-identical with Nnm", "[runtime][resume]") {
  check_resume_threads(with_aggregator(Nnm<CoordinateMedian>(1)), NoCheck{});
}

TEST_CASE("resume is bit-identical with Arc", "[runtime][resume]") {
  check_resume_threads(with_aggregator(Arc<>(2)), NoCheck{});
}

TEST_CASE("resume is bit-identical with NormClipping", "[runtime][resume]") {
  check_resume_threads(with_aggregator(NormClipping<>(0.05)), NoCheck{});
}

// CenteredClipping keeps its centre across rounds: the checkpoint must carry it.
const auto check_center = [](const auto& server, const auto& /*clients*/) {
  CHECK(server.aggregator.center.size() == dim());
  CHECK(nonzero(server.aggregator.center));
};
const auto reset_center = [](auto& server, auto& /*clients*/) { server.aggregator.center.resize(0); };

TEST_CASE("resume is bit-identical with CenteredClipping and carries its centre", "[runtime][resume]") {
  // tau small enough that updates are clipped, so the centre changes the aggregate.
  check_resume_threads(with_aggregator(CenteredClipping(0.05)), check_center, reset_center);
}

TEST_CASE("resume is bit-identical with Bucketing, whose draws are keyed by seed and round", "[runtime][resume]") {
  check_resume_threads(with_aggregator(Bucketing<>(2, 9)), NoCheck{});
  // The buckets matter here: another constructor seed gives another model.
  const RunResult<float> a = run_sim(with_aggregator(Bucketing<CoordinateMedian>(3, 9)), sim_options(total_rounds, 2));
  const RunResult<float> b = run_sim(with_aggregator(Bucketing<CoordinateMedian>(3, 10)), sim_options(total_rounds, 2));
  CHECK_FALSE(fedpp_test::same_bits(a.params, b.params));
  check_resume_threads(with_aggregator(Bucketing<CoordinateMedian>(3, 9)), NoCheck{});
}

TEST_CASE("resume is bit-identical with Bucketing over CenteredClipping and carries the inner centre",
          "[runtime][resume]") {
  check_resume_threads(with_aggregator(Bucketing<CenteredClipping>(2, 4, CenteredClipping(0.05))), check_center,
                       reset_center);
}

TEST_CASE("resume is bit-identical with Nnm over CenteredClipping and carries the inner centre", "[runtime][resume]") {
  check_resume_threads(with_aggregator(Nnm<CenteredClipping>(1, CenteredClipping(0.05))), check_center, reset_center);
}

// --- server optimizers (WeightedMean, plain LocalSgd, Identity) ----------------------------------

TEST_CASE("resume is bit-identical with ServerSgd", "[runtime][resume]") {
  check_resume_threads(with_server(ServerSgd({.lr = 0.7})), NoCheck{});
}

TEST_CASE("resume is bit-identical with ServerMomentum and carries its velocity", "[runtime][resume]") {
  check_resume_threads(
      with_server(ServerMomentum({.lr = 1.0, .momentum = 0.9})),
      [](const auto& server, const auto&) {
        CHECK(server.optimizer.velocity.size() == dim());
        CHECK(nonzero(server.optimizer.velocity));
        CHECK(server.optimizer.steps == stop_after);
      },
      [](auto& server, auto&) {
        server.optimizer.velocity.setZero();
        server.optimizer.steps = 0;
      });
}

// FedAdam, FedYogi and FedAdagrad: m moved off 0 and v off tau^2.
template <typename Opt>
void check_adaptive(Opt opt) {
  const double tau = opt.options().tau;
  check_resume_threads(
      with_server(opt),
      [tau](const auto& server, const auto&) {
        CHECK(server.optimizer.m.size() == dim());
        CHECK(server.optimizer.v.size() == dim());
        CHECK(nonzero(server.optimizer.m));
        CHECK((server.optimizer.v.array() != tau * tau).any());
        CHECK(server.optimizer.steps == stop_after);
      },
      [tau](auto& server, auto&) {  // both moments back to their start
        server.optimizer.m.setZero();
        server.optimizer.v.setConstant(tau * tau);
        server.optimizer.steps = 0;
      },
      [](auto& server, auto&) { server.optimizer.m.setZero(); });  // the first moment alone
}

TEST_CASE("resume is bit-identical with FedAdam and carries its moments", "[runtime][resume]") {
  check_adaptive(FedAdam({.lr = 0.05}));
}

TEST_CASE("resume is bit-identical with FedYogi and carries its moments", "[runtime][resume]") {
  check_adaptive(FedYogi({.lr = 0.05}));
}

TEST_CASE("resume is bit-identical with FedAdagrad and carries its moments", "[runtime][resume]") {
  check_adaptive(FedAdagrad({.lr = 0.05}));
}

TEST_CASE("resume is bit-identical with SCAFFOLD and carries c and every c_i", "[runtime][resume]") {
  using P = Policies<WeightedMean, Scaffold, Identity, ScaffoldServer>;
  const P p{WeightedMean(), Scaffold({.sgd = {.lr = 0.1, .epochs = 1, .batch_size = 5}}), Identity(), ScaffoldServer()};
  check_resume_threads(
      p,
      [](const auto& server, const auto& clients) {
        CHECK(server.optimizer.c.size() == dim());
        CHECK(nonzero(server.optimizer.c));
        CHECK(fedpp_test::same_bits(server.optimizer.c_sent, Vector<float>(server.optimizer.c.template cast<float>())));
        CHECK(server.optimizer.steps == stop_after);
        check_client_states(clients, [](const auto& c) -> const auto& { return c.optimizer_state(); },
                            [](const auto& st) { CHECK(nonzero(st.c)); });
      },
      [](auto& server, auto&) {
        server.optimizer.c.setZero();
        server.optimizer.c_sent.setZero();
      },
      reset_client_optimizers);
}

TEST_CASE("resume is bit-identical with FedDyn and carries H and every h_i", "[runtime][resume]") {
  using P = Policies<WeightedMean, FedDyn, Identity, FedDynServer>;
  const P p{WeightedMean(), FedDyn({.alpha = 0.1, .sgd = {.lr = 0.1, .epochs = 1, .batch_size = 5}}), Identity(),
            FedDynServer()};
  check_resume_threads(
      p,
      [](const auto& server, const auto& clients) {
        CHECK(server.optimizer.h_sum.size() == dim());
        CHECK(nonzero(server.optimizer.h_sum));
        CHECK(server.optimizer.steps == stop_after);
        check_client_states(clients, [](const auto& c) -> const auto& { return c.optimizer_state(); },
                            [](const auto& st) { CHECK(nonzero(st.h)); });
      },
      [](auto& server, auto&) { server.optimizer.h_sum.setZero(); }, reset_client_optimizers);
}

// --- a stateful decoder and stateful clients -----------------------------------------------------

TEST_CASE("resume is bit-identical with EF21 and carries the server's decoder states and the clients' g_i",
          "[runtime][resume]") {
  using P = Policies<WeightedMean, LocalSgd, Ef21<TopK>, ServerSgd>;
  const P p{WeightedMean(), plain_sgd(), Ef21<TopK>(TopK::count(5)), ServerSgd()};
  check_resume_threads(
      p,
      [](const auto& server, const auto& clients) {
        CHECK(server.decoders.size() >= 8);
        for (const auto& [id, st] : server.decoders) {
          INFO("client " << id);
          CHECK(nonzero(st.g));
          // EF21: the server's g_i is the client's own g_i.
          REQUIRE(id < clients.size());
          REQUIRE(clients[id].compressor_state().has_value());
          CHECK(fedpp_test::same_bits(st.g, clients[id].compressor_state()->g));
        }
        check_client_states(clients, [](const auto& c) -> const auto& { return c.compressor_state(); },
                            [](const auto& st) { CHECK(nonzero(st.g)); });
      },
      [](auto& server, auto&) { server.decoders.clear(); }, reset_client_compressors);
}

TEST_CASE("resume is bit-identical with momentum LocalSgd clients and carries their buffers", "[runtime][resume]") {
  const auto p = Policies<WeightedMean, LocalSgd, Identity, ServerSgd>{
      WeightedMean(),
      LocalSgd({.lr = 0.1, .epochs = 1, .batch_size = 5, .momentum = 0.9, .reset_momentum_each_round = false}),
      Identity(), ServerSgd()};
  check_resume_threads(
      p,
      [](const auto&, const auto& clients) {
        check_client_states(clients, [](const auto& c) -> const auto& { return c.optimizer_state(); },
                            [](const auto& st) { CHECK(nonzero(st.momentum)); });
      },
      reset_client_optimizers);
}

TEST_CASE("resume is bit-identical with ErrorFeedback clients and carries their memories", "[runtime][resume]") {
  using P = Policies<WeightedMean, LocalSgd, ErrorFeedback<TopK>, ServerSgd>;
  const P p{WeightedMean(), plain_sgd(), ErrorFeedback<TopK>(TopK::count(4)), ServerSgd()};
  check_resume_threads(
      p,
      [](const auto&, const auto& clients) {
        check_client_states(clients, [](const auto& c) -> const auto& { return c.compressor_state(); },
                            [](const auto& st) { CHECK(nonzero(st.memory)); });
      },
      reset_client_compressors);
}

TEST_CASE("resume is bit-identical with DGC clients and carries their momentum, velocity and step count",
          "[runtime][resume]") {
  using P = Policies<WeightedMean, LocalSgd, Dgc, ServerSgd>;
  DgcOptions o;
  o.density = 0.2;
  o.momentum = 0.9;
  const P p{WeightedMean(), plain_sgd(), Dgc(o), ServerSgd()};
  check_resume_threads(
      p,
      [](const auto&, const auto& clients) {
        check_client_states(clients, [](const auto& c) -> const auto& { return c.compressor_state(); },
                            [](const auto& st) {
                              CHECK(st.steps >= 1);
                              CHECK(nonzero(st.velocity));
                            });
      },
      reset_client_compressors);
}

TEST_CASE("resume is bit-identical with every kind of state at once", "[runtime][resume]") {
  using P = Policies<Bucketing<CenteredClipping>, Scaffold, Ef21<TopK>, ScaffoldServer>;
  const P p{Bucketing<CenteredClipping>(2, 3, CenteredClipping(0.05)),
            Scaffold({.sgd = {.lr = 0.1, .epochs = 1, .batch_size = 5, .momentum = 0.5,
                              .reset_momentum_each_round = false}}),
            Ef21<TopK>(TopK::count(6)), ScaffoldServer()};
  check_resume_threads(p, check_center, reset_center);
}

TEST_CASE("Simulation with resume set and no checkpoint file runs from the start", "[runtime][resume]") {
  const auto p = with_server(FedAdam({.lr = 0.05}));
  const RunResult<float> full = run_sim(p, sim_options(total_rounds, 2));
  fedpp_test::TempDir dir("fedpp_resume");
  const std::string path = dir.file("none.ckpt");
  const RunResult<float> r = run_sim(p, sim_options(total_rounds, 2, path, true));
  REQUIRE(r.history.size() == total_rounds);
  CHECK(fedpp_test::same_bits(r.params, full.params));
  check_history(full, r, 0);
  CHECK(std::filesystem::exists(path));  // and it checkpointed along the way
}

TEST_CASE("Simulation stopped and resumed twice equals one uninterrupted run", "[runtime][resume]") {
  const auto p = with_aggregator(CenteredClipping(0.05));
  const RunResult<float> full = run_sim(p, sim_options(total_rounds, 2));
  fedpp_test::TempDir dir("fedpp_resume");
  const std::string path = dir.file("run.ckpt");
  (void)run_sim(p, sim_options(2, 2, path));
  const RunResult<float> mid = run_sim(p, sim_options(4, 1, path, true));
  CHECK(mid.history.size() == 2);
  const RunResult<float> r = run_sim(p, sim_options(total_rounds, 2, path, true));
  REQUIRE(r.history.size() == 2);
  CHECK(fedpp_test::same_bits(r.params, full.params));
  check_history(full, r, 4);
}

// Mimic's heuristic keeps state across rounds (running mean, direction, the chosen client) in the
// attack object; the Simulation checkpoint carries it (ByzantineStage::serialize), else the
// resumed attack would start its warm-up again and copy other clients.
TEST_CASE("resume is bit-identical with a stateful attack in the simulation", "[runtime][resume]") {
  const auto p = with_aggregator(WeightedMean());
  const auto opts = [](std::uint64_t rounds, std::string path, bool resume) {
    SimulationOptions o = sim_options(rounds, 2, std::move(path), resume);
    o.byzantine = 3;
    return o;
  };
  const auto run = [&p](const SimulationOptions& o) {
    Simulation sim(model(), data().shards, data().test, o);
    return sim.run(p.agg, p.opt, p.comp, p.sopt, Mimic::top_direction(5));
  };
  const RunResult<float> full = run(opts(total_rounds, {}, false));
  fedpp_test::TempDir dir("fedpp_resume");
  const std::string path = dir.file("attack.ckpt");
  (void)run(opts(stop_after, path, false));
  const RunResult<float> resumed = run(opts(total_rounds, path, true));
  REQUIRE(resumed.history.size() == total_rounds - stop_after);
  CHECK(fedpp_test::same_bits(resumed.params, full.params));
  check_history(full, resumed, stop_after);
}

// --- a Server driven directly ---------------------------------------------------------------------

using PlainClient = fedpp::Client<Model, LocalSgd, Identity>;

inline std::vector<PlainClient> plain_clients() {
  std::vector<PlainClient> cs;
  for (std::size_t i = 0; i < num_clients; ++i)
    cs.emplace_back(static_cast<ClientId>(i), model(), data().shards[i], plain_sgd());
  return cs;
}

inline Vector<float> initial_model() {
  Vector<float> w;
  Rng rng(2718);
  model().init_params(w, rng);
  return w;
}

inline ServerOptions server_options(std::uint64_t rounds) {
  ServerOptions o;
  o.rounds = rounds;
  o.clients_per_round = 5;
  o.seed = 11;
  return o;
}

TEST_CASE("Server resumes from ServerCheckpointer's file bit-identically, and a reset state changes the result",
          "[runtime][resume][Server]") {
  using ServerT = Server<float, CenteredClipping, FedAdam>;
  const auto make = [](std::uint64_t rounds) {
    return ServerT(initial_model(), server_options(rounds), CenteredClipping(0.05), FedAdam({.lr = 0.05}));
  };
  for (int threads : {1, 2}) {
    INFO("threads " << threads);
    RunResult<float> full;
    {
      ServerT server = make(total_rounds);
      InProcessTransport<PlainClient> transport(plain_clients(), threads);
      full = server.run(transport);
    }
    REQUIRE(full.history.size() == total_rounds);
    fedpp_test::TempDir dir("fedpp_resume");
    const std::string path = dir.file("server.ckpt");
    Vector<float> at_k;
    {
      ServerT server = make(stop_after);
      InProcessTransport<PlainClient> transport(plain_clients(), threads);
      ServerCheckpointer<ServerT> saver(server, path);
      at_k = server.run(transport, saver).params;
    }
    CHECK_FALSE(std::filesystem::exists(path + ".tmp"));
    {
      ServerT server = make(total_rounds);
      load_checkpoint(server, path);
      CHECK(server.round() == stop_after);
      CHECK(fedpp_test::same_bits(server.params(), at_k));
      CHECK(server.aggregator().center().size() == dim());  // restored into the aggregator itself
      CHECK(nonzero(server.server_state().m));
      InProcessTransport<PlainClient> transport(plain_clients(), threads);
      const RunResult<float> r = server.run(transport);
      REQUIRE(r.history.size() == total_rounds - stop_after);
      CHECK(fedpp_test::same_bits(r.params, full.params));
      check_history(full, r, stop_after);
    }
    {  // FedAdam's moments zeroed: another model
      ServerT server = make(total_rounds);
      load_checkpoint(server, path);
      ServerT::State st = server.state();
      st.optimizer = server.server_optimizer().make_state<float>(dim());
      server.restore(st);
      InProcessTransport<PlainClient> transport(plain_clients(), threads);
      CHECK_FALSE(fedpp_test::same_bits(server.run(transport).params, full.params));
    }
    {  // CenteredClipping's centre forgotten: another model
      ServerT server = make(total_rounds);
      load_checkpoint(server, path);
      ServerT::State st = server.state();
      st.aggregator.center.resize(0);
      server.restore(st);
      CHECK(server.aggregator().center().size() == 0);
      InProcessTransport<PlainClient> transport(plain_clients(), threads);
      CHECK_FALSE(fedpp_test::same_bits(server.run(transport).params, full.params));
    }
  }
}

TEST_CASE("Server with EF21 resumes from a checkpoint with its clients as an extra part", "[runtime][resume][Server]") {
  using ClientT = fedpp::Client<Model, LocalSgd, Ef21<TopK>>;
  using ServerT = Server<float, WeightedMean, ServerMomentum, Ef21<TopK>>;
  const Ef21<TopK> comp(TopK::count(5));
  const auto clients = [&] {
    std::vector<ClientT> cs;
    for (std::size_t i = 0; i < num_clients; ++i)
      cs.emplace_back(static_cast<ClientId>(i), model(), data().shards[i], plain_sgd(), comp);
    return cs;
  };
  const auto make = [&](std::uint64_t rounds) {
    return ServerT(initial_model(), server_options(rounds), WeightedMean(), ServerMomentum({.lr = 1.0, .momentum = 0.5}),
                   comp);
  };
  const std::string tag = "ef21 clients";
  for (int threads : {1, 2}) {
    INFO("threads " << threads);
    Vector<float> expected;
    std::vector<RoundStats> history;
    {
      ServerT server = make(total_rounds);
      InProcessTransport<ClientT> transport(clients(), threads);
      for (std::uint64_t r = 0; r < total_rounds; ++r) history.push_back(server.step(transport));
      expected = server.params();
    }
    fedpp_test::TempDir dir("fedpp_resume");
    const std::string path = dir.file("ef21.ckpt");
    {
      ServerT server = make(total_rounds);
      InProcessTransport<ClientT> transport(clients(), threads);
      for (std::uint64_t r = 0; r < stop_after; ++r) {
        (void)server.step(transport);
        save_checkpoint(server, path, tag, ClientStates<ClientT>{transport.clients()});
      }
      CHECK(server.decoder_states().size() >= 5);
    }
    const auto resume = [&](bool keep_decoders, bool keep_clients) {
      ServerT server = make(total_rounds);
      InProcessTransport<ClientT> transport(clients(), threads);
      ClientStates<ClientT> part{transport.clients()};
      load_checkpoint(server, path, tag, part);
      CHECK(server.round() == stop_after);
      CHECK(server.decoder_states().size() >= 5);
      if (!keep_decoders) server.decoder_states().clear();
      if (keep_clients) transport.clients() = std::move(part.clients);
      std::vector<RoundStats> h;
      for (std::uint64_t r = stop_after; r < total_rounds; ++r) h.push_back(server.step(transport));
      return std::make_pair(Vector<float>(server.params()), h);
    };
    const auto [params, h] = resume(true, true);
    CHECK(fedpp_test::same_bits(params, expected));
    REQUIRE(h.size() == total_rounds - stop_after);
    for (std::size_t i = 0; i < h.size(); ++i) {
      CHECK(h[i].round == history[stop_after + i].round);
      CHECK(h[i].accepted == history[stop_after + i].accepted);
      CHECK(same_double(h[i].train_loss, history[stop_after + i].train_loss));
      CHECK(same_double(h[i].update_norm, history[stop_after + i].update_norm));
    }
    CHECK_FALSE(fedpp_test::same_bits(resume(false, true).first, expected));
    CHECK_FALSE(fedpp_test::same_bits(resume(true, false).first, expected));
  }
}

}  // namespace resume_test
