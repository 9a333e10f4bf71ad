// Whole-server checkpoint files (fedpp/runtime/checkpoint.hpp): the fingerprint's text, a
// checkpoint of another configuration, truncated, padded, bit-flipped, wrong magic or version,
// malformed or missing files, each with its exact error and the target server left unchanged;
// all-or-nothing loading across parts; the atomic write (a failed write leaves the previous
// checkpoint loadable, no temporary file is left); Server::restore's checks.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "fedpp/aggregators/bulyan.hpp"
#include "fedpp/aggregators/centered_clipping.hpp"
#include "fedpp/aggregators/coordinate_median.hpp"
#include "fedpp/compressors/top_k.hpp"
#include "fedpp/aggregators/weighted_mean.hpp"
#include "fedpp/models/softmax_regression.hpp"
#include "fedpp/optimizers/local_sgd.hpp"
#include "fedpp/optimizers/server_momentum.hpp"
#include "fedpp/runtime/checkpoint.hpp"
#include "fedpp/runtime/in_process.hpp"
#include "fedpp/runtime/server.hpp"
#include "fedpp/runtime/simulation.hpp"
#include "support/blobs.hpp"
#include "support/checks.hpp"
#include "support/temp_dir.hpp"

using namespace fedpp;

namespace checkpoint_file_test {

using Model = SoftmaxRegression<float>;  // 6 features, 3 classes: 21 parameters
using ClientT = fedpp::Client<Model, LocalSgd, Identity>;
using ServerT = Server<float, CenteredClipping, ServerMomentum>;
using fedpp_test::message_of;
using fedpp_test::same_bits;

constexpr std::size_t num_clients = 6;

inline const std::vector<DatasetView<float>>& shards() {
  static const auto s = fedpp_test::contiguous_split(fedpp_test::blobs<float>(120, 6, 3, 41), num_clients);
  return s;
}

inline std::vector<ClientT> clients(std::size_t n = num_clients) {
  std::vector<ClientT> cs;
  for (std::size_t i = 0; i < n; ++i)
    cs.emplace_back(static_cast<ClientId>(i), Model(6, 3), shards()[i], LocalSgd({.lr = 0.1, .batch_size = 5}));
  return cs;
}

inline ServerOptions options(std::uint64_t seed = 5, std::size_t per_round = 4) {
  ServerOptions o;
  o.rounds = 10;
  o.clients_per_round = per_round;
  o.seed = seed;
  return o;
}

inline Vector<float> initial(Index d = 21) {
  Vector<float> w(d);
  for (Index i = 0; i < d; ++i) w(i) = 0.01f * static_cast<float>(i % 7) - 0.02f;
  return w;
}

inline ServerT make_server(std::uint64_t seed = 5, double tau = 0.05) {
  return ServerT(initial(), options(seed), CenteredClipping(tau), ServerMomentum({.lr = 1.0, .momentum = 0.9}));
}

// Runs `rounds` rounds of `server` over fresh clients.
template <typename ServerType>
void advance(ServerType& server, std::uint64_t rounds) {
  InProcessTransport<ClientT> transport(clients(), 1);
  for (std::uint64_t r = 0; r < rounds; ++r) (void)server.step(transport);
}

// Every part of the whole state, bit for bit, and the aggregator's own centre.
inline bool same_state(const ServerT& s, const ServerT::State& t) {
  const ServerT::State& a = s.state();
  return a.round == t.round && same_bits(a.params, t.params) && same_bits(a.optimizer.velocity, t.optimizer.velocity) &&
         a.optimizer.steps == t.optimizer.steps && same_bits(a.aggregator.center, t.aggregator.center) &&
         same_bits(s.aggregator().center(), t.aggregator.center);
}

using fedpp_test::read_bytes;
using fedpp_test::write_bytes;

// The behaviour part of a fingerprint (its own test below checks the probe against a reference).
template <typename Agg, typename SOpt = ServerMomentum>
std::string behaviour_of(const Agg& agg, const SOpt& sopt = ServerMomentum({.lr = 1.0, .momentum = 0.9})) {
  return fedpp::detail::behaviour_probe<float>(agg, sopt, Identity());
}

// The fingerprint of make_server(seed), written out by hand but for the behaviour probe.
inline std::string fingerprint_text(const std::string& aggregator = "fedpp::CenteredClipping", Index d = 21,
                                    std::uint64_t seed = 5, std::size_t per_round = 4,
                                    const std::string& behaviour = behaviour_of(CenteredClipping(0.05))) {
  return "fedpp server; scalar float; dim " + std::to_string(d) + "; aggregator " + aggregator +
         "; server optimizer fedpp::ServerMomentum; compressor fedpp::Identity; seed " + std::to_string(seed) +
         "; fraction 0.10000000000000001; clients_per_round " + std::to_string(per_round) +
         "; min_updates 1; over_selection 0; behaviour " + behaviour;
}

inline std::string mismatch_message(const std::string& expected, const std::string& got) {
  return "fedpp::load_checkpoint: the checkpoint belongs to another configuration; expected \"" + expected +
         "\", got " + got;
}

// A target server at another state than the checkpoints (1 round, non-trivial).
struct Fixture {
  fedpp_test::TempDir dir{"fedpp_ckpt_file"};
  std::string path = dir.file("server.ckpt");
  ServerT source = make_server();
  ServerT target = make_server();
  std::string bytes;
  ServerT::State before;

  Fixture() {
    advance(source, 2);
    save_checkpoint(source, path);
    bytes = read_bytes(path);
    advance(target, 1);
    before = target.state();
    REQUIRE(before.aggregator.center.size() == 21);
    REQUIRE(!same_state(target, source.state()));
  }
};

TEST_CASE("a server checkpoint's fingerprint names scalar, dimension, policies and run settings",
          "[runtime][checkpoint]") {
  const ServerT s = make_server();
  CHECK(config_fingerprint(s) == fingerprint_text());
  CHECK(config_fingerprint(s, "my run") == fingerprint_text() + "; my run");
  const Server<float, WeightedMean, ServerMomentum> w(initial(22), options(9, 3));
  CHECK(config_fingerprint(w) ==
        fingerprint_text("fedpp::WeightedMean", 22, 9, 3, behaviour_of(WeightedMean(), ServerMomentum())));
}

TEST_CASE("a checkpoint round trip restores the whole server state", "[runtime][checkpoint]") {
  Fixture f;
  load_checkpoint(f.target, f.path);
  CHECK(same_state(f.target, f.source.state()));
  CHECK(f.target.round() == 2);
  CHECK(f.target.server_state().steps == 2);
  // The file layout: magic "FPSV", version 1, body length, digest, then the body.
  REQUIRE(f.bytes.size() > 24);
  CHECK(f.bytes.substr(0, 4) == "FPSV");
  CHECK(f.bytes.substr(4, 4) == std::string("\x01\x00\x00\x00", 4));
  std::uint64_t len = 0;
  for (int i = 7; i >= 0; --i) len = (len << 8) | static_cast<unsigned char>(f.bytes[8 + static_cast<std::size_t>(i)]);
  CHECK(len == f.bytes.size() - 24);
}

TEST_CASE("a checkpoint of another configuration is refused naming both fingerprints, the server unchanged",
          "[runtime][checkpoint]") {
  Fixture f;
  const std::string saved = fingerprint_text();
  SECTION("another aggregator type") {
    Server<float, WeightedMean, ServerMomentum> t(initial(), options(), WeightedMean(),
                                                  ServerMomentum({.lr = 1.0, .momentum = 0.9}));
    advance(t, 1);
    const auto st = t.state();
    CHECK_THROWS_AS(load_checkpoint(t, f.path), InvalidArgument);
    CHECK(message_of([&] { load_checkpoint(t, f.path); }) ==
          mismatch_message(fingerprint_text("fedpp::WeightedMean", 21, 5, 4, behaviour_of(WeightedMean())), saved));
    CHECK(t.round() == 1);
    CHECK(same_bits(t.params(), st.params));
    CHECK(same_bits(t.server_state().velocity, st.optimizer.velocity));
  }
  SECTION("another dimension") {
    ServerT t(initial(22), options(), CenteredClipping(0.05), ServerMomentum({.lr = 1.0, .momentum = 0.9}));
    const auto st = t.state();
    CHECK_THROWS_AS(load_checkpoint(t, f.path), InvalidArgument);
    CHECK(message_of([&] { load_checkpoint(t, f.path); }) ==
          mismatch_message(fingerprint_text("fedpp::CenteredClipping", 22), saved));
    CHECK(same_state(t, st));
  }
  SECTION("another seed") {
    ServerT t = make_server(6);
    advance(t, 1);
    const auto st = t.state();
    CHECK_THROWS_AS(load_checkpoint(t, f.path), InvalidArgument);
    CHECK(message_of([&] { load_checkpoint(t, f.path); }) ==
          mismatch_message(fingerprint_text("fedpp::CenteredClipping", 21, 6), saved));
    CHECK(same_state(t, st));
  }
  SECTION("another number of clients per round") {
    ServerT t(initial(), options(5, 3), CenteredClipping(0.05), ServerMomentum({.lr = 1.0, .momentum = 0.9}));
    const auto st = t.state();
    CHECK(message_of([&] { load_checkpoint(t, f.path); }) ==
          mismatch_message(fingerprint_text("fedpp::CenteredClipping", 21, 5, 3), saved));
    CHECK(same_state(t, st));
  }
  SECTION("another tag") {
    CHECK_THROWS_AS(load_checkpoint(f.target, f.path, "other run"), InvalidArgument);
    CHECK(message_of([&] { load_checkpoint(f.target, f.path, "other run"); }) ==
          mismatch_message(fingerprint_text() + "; other run", saved));
    CHECK(same_state(f.target, f.before));
  }
  CHECK(read_bytes(f.path) == f.bytes);
}

TEST_CASE("Simulation refuses a checkpoint made with other local training settings", "[runtime][checkpoint]") {
  // The clients' settings (here LocalSgd's lr) are not in any type name: the fingerprint sees
  // them through client 0's reply to the initial model.
  auto train = fedpp_test::blobs<float>(240, 6, 3, 51);
  fedpp_test::TempDir dir("fedpp_ckpt_file");
  const std::string path = dir.file("sim.ckpt");
  SimulationOptions o;
  o.rounds = 2;
  o.clients_per_round = 3;
  o.seed = 77;
  o.threads = 1;
  o.checkpoint = path;
  o.resume = true;
  {
    Simulation sim(Model(6, 3), fedpp_test::contiguous_split(train, 8), nullptr, o);
    (void)sim.run(LocalSgd({.lr = 0.1}));
  }
  const std::string bytes = read_bytes(path);
  o.rounds = 4;
  Simulation sim(Model(6, 3), fedpp_test::contiguous_split(train, 8), nullptr, o);
  CHECK_THROWS_AS(sim.run(LocalSgd({.lr = 0.2})), InvalidArgument);
  CHECK_THAT(message_of([&] { (void)sim.run(LocalSgd({.lr = 0.2})); }),
             Catch::StartsWith("fedpp::load_checkpoint: the checkpoint belongs to another configuration"));
  CHECK(read_bytes(path) == bytes);
  // The same settings resume.
  const RunResult<float> resumed = sim.run(LocalSgd({.lr = 0.1}));
  CHECK(resumed.history.size() == 2);
  CHECK(resumed.history.front().round == 2);
}

TEST_CASE("Simulation refuses a checkpoint of a simulation with another number of clients", "[runtime][checkpoint]") {
  auto train = fedpp_test::blobs<float>(240, 6, 3, 51);
  fedpp_test::TempDir dir("fedpp_ckpt_file");
  const std::string path = dir.file("sim.ckpt");
  const auto opts = [&](std::uint64_t rounds) {
    SimulationOptions o;
    o.rounds = rounds;
    o.clients_per_round = 3;
    o.seed = 77;
    o.threads = 1;
    o.checkpoint = path;
    o.resume = true;
    return o;
  };
  {
    Simulation sim(Model(6, 3), fedpp_test::contiguous_split(train, 12), nullptr, opts(2));
    (void)sim.run();
  }
  const std::string bytes = read_bytes(path);
  Simulation sim(Model(6, 3), fedpp_test::contiguous_split(train, 10), nullptr, opts(4));
  CHECK_THROWS_AS(sim.run(), InvalidArgument);
  const std::string msg = message_of([&] { (void)sim.run(); });
  const std::string server_part = "fedpp server; scalar float; dim 21; aggregator fedpp::WeightedMean; server optimizer "
                                  "fedpp::ServerSgd; compressor fedpp::Identity; seed 77; fraction "
                                  "0.10000000000000001; clients_per_round 3; min_updates 1; over_selection 0; "
                                  "behaviour " + behaviour_of(WeightedMean(), ServerSgd()) + "; simulation; clients ";
  CHECK_THAT(msg, Catch::StartsWith("fedpp::load_checkpoint: the checkpoint belongs to another configuration; expected \"" +
                                    server_part + "10 ("));
  CHECK_THAT(msg, Catch::Contains("\", got " + server_part + "12 ("));
  CHECK_THAT(msg, Catch::Contains("; shard sizes 24 24 24 24 24 24 24 24 24 24; client 0 replies "));
  CHECK_THAT(msg, Catch::Contains("; shard sizes 20 20 20 20 20 20 20 20 20 20 20 20; client 0 replies "));
  CHECK(read_bytes(path) == bytes);  // the failed run did not overwrite it
}

TEST_CASE("a truncated or padded checkpoint is a DecodeError, the server unchanged", "[runtime][checkpoint]") {
  Fixture f;
  const std::size_t n = f.bytes.size();
  REQUIRE(n > 400);
  const std::string cut = f.dir.file("cut.ckpt");
  std::vector<std::size_t> lengths;
  for (std::size_t len = 0; len <= 400; ++len) lengths.push_back(len);
  lengths.push_back(n - 1);
  for (std::size_t len : lengths) {
    INFO("length " << len);
    write_bytes(cut, f.bytes.substr(0, len));
    const std::string expected =
        len < 24 ? "fedpp::load_checkpoint: truncated checkpoint (shorter than its 24-byte header), got " +
                       std::to_string(len)
                 : "fedpp::load_checkpoint: truncated or padded checkpoint (body of " + std::to_string(len - 24) +
                       " bytes, header says), got " + std::to_string(n - 24);
    CHECK_THROWS_AS(load_checkpoint(f.target, cut), DecodeError);
    CHECK(message_of([&] { load_checkpoint(f.target, cut); }) == expected);
    CHECK(same_state(f.target, f.before));
  }
  write_bytes(cut, f.bytes + std::string(1, '\0'));
  CHECK_THROWS_AS(load_checkpoint(f.target, cut), DecodeError);
  CHECK(message_of([&] { load_checkpoint(f.target, cut); }) ==
        "fedpp::load_checkpoint: truncated or padded checkpoint (body of " + std::to_string(n - 23) +
            " bytes, header says), got " + std::to_string(n - 24));
  CHECK(same_state(f.target, f.before));
}

TEST_CASE("a flipped bit anywhere in a checkpoint is a DecodeError, the server unchanged", "[runtime][checkpoint]") {
  Fixture f;
  const std::size_t n = f.bytes.size();
  const std::string bad = f.dir.file("flipped.ckpt");
  const std::string who = "fedpp::load_checkpoint: ";
  std::size_t digest_errors = 0;
  for (std::size_t pos = 0; pos < n; ++pos) {
    const unsigned bit = static_cast<unsigned>(pos % 8);
    INFO("byte " << pos << " bit " << bit);
    std::string b = f.bytes;
    b[pos] = static_cast<char>(static_cast<unsigned char>(b[pos]) ^ (1u << bit));
    write_bytes(bad, b);
    std::string expected;
    if (pos < 4) {  // the magic 0x56535046 with one bit flipped
      const std::uint64_t magic = 0x56535046ull ^ (1ull << (8 * pos + bit));
      expected = who + "not a fedpp server checkpoint (bad magic number), got " + std::to_string(magic);
    } else if (pos < 8) {  // version 1
      const std::uint64_t version = 1ull ^ (1ull << (8 * (pos - 4) + bit));
      expected = who + "unsupported checkpoint version (expected 1), got " + std::to_string(version);
    } else if (pos < 16) {  // the body length
      const std::uint64_t len = (n - 24) ^ (1ull << (8 * (pos - 8) + bit));
      expected = who + "truncated or padded checkpoint (body of " + std::to_string(n - 24) + " bytes, header says), got " +
                 std::to_string(len);
    } else {  // the digest or the body
      expected = who + "corrupted checkpoint (digest mismatch), got " + bad;
      ++digest_errors;
    }
    CHECK_THROWS_AS(load_checkpoint(f.target, bad), DecodeError);
    CHECK(message_of([&] { load_checkpoint(f.target, bad); }) == expected);
    CHECK(same_state(f.target, f.before));
  }
  CHECK(digest_errors == n - 16);
}

TEST_CASE("wrong magic, wrong version and a missing file are refused with their messages", "[runtime][checkpoint]") {
  Fixture f;
  const std::string other = f.dir.file("other.ckpt");
  write_bytes(other, "hello world, this is not a checkpoint file");
  CHECK_THROWS_AS(load_checkpoint(f.target, other), DecodeError);
  // "hell" read as a little-endian u32: 0x6c6c6568.
  CHECK(message_of([&] { load_checkpoint(f.target, other); }) ==
        "fedpp::load_checkpoint: not a fedpp server checkpoint (bad magic number), got 1819043176");
  std::string v2 = f.bytes;
  v2[4] = 2;
  write_bytes(other, v2);
  CHECK_THROWS_AS(load_checkpoint(f.target, other), DecodeError);
  CHECK(message_of([&] { load_checkpoint(f.target, other); }) ==
        "fedpp::load_checkpoint: unsupported checkpoint version (expected 1), got 2");
  const std::string missing = f.dir.file("missing.ckpt");
  CHECK_THROWS_AS(load_checkpoint(f.target, missing), DataError);
  CHECK(message_of([&] { load_checkpoint(f.target, missing); }) ==
        "fedpp::load_checkpoint: cannot open the checkpoint file, got " + missing);
  CHECK(same_state(f.target, f.before));
}

TEST_CASE("a checkpoint whose body ends early but whose header and digest agree is malformed, nothing loaded",
          "[runtime][checkpoint]") {
  // Only the last 8 bytes of the body (inside the aggregator's centre, the last part) are cut:
  // round, model and optimizer state decode before the archive runs dry.
  Fixture f;
  const std::string body = f.bytes.substr(24, f.bytes.size() - 24 - 8);
  std::string file = f.bytes.substr(0, 8);
  const auto put_u64 = [&file](std::uint64_t v) {
    for (int i = 0; i < 8; ++i) file.push_back(static_cast<char>((v >> (8 * i)) & 0xffu));
  };
  put_u64(body.size());
  put_u64(detail::bytes_digest(body));
  file += body;
  const std::string bad = f.dir.file("short.ckpt");
  write_bytes(bad, file);
  CHECK_THROWS_AS(load_checkpoint(f.target, bad), DecodeError);
  CHECK_THAT(message_of([&] { load_checkpoint(f.target, bad); }),
             Catch::StartsWith("fedpp::load_checkpoint: malformed checkpoint, got "));
  CHECK(same_state(f.target, f.before));
  // The same through load_checkpoint_parts: the part is not half-loaded.
  ServerT::State st = f.before;
  CHECK_THROWS_AS(load_checkpoint_parts(bad, config_fingerprint(f.target), st), DecodeError);
  CHECK(st.round == f.before.round);
  CHECK(same_bits(st.params, f.before.params));
  CHECK(same_bits(st.optimizer.velocity, f.before.optimizer.velocity));
  CHECK(same_bits(st.aggregator.center, f.before.aggregator.center));
}

TEST_CASE("extra parts load all or nothing: another client count or id leaves server and clients unchanged",
          "[runtime][checkpoint]") {
  Fixture f;
  const std::string path = f.dir.file("with_clients.ckpt");
  InProcessTransport<ClientT> transport(clients(), 1);
  (void)f.source.step(transport);  // the source's clients now have optimizer state
  save_checkpoint(f.source, path, "clients", ClientStates<ClientT>{transport.clients()});
  {
    ClientStates<ClientT> three{clients(3)};
    CHECK_THROWS_AS(load_checkpoint(f.target, path, "clients", three), InvalidArgument);
    CHECK(message_of([&] { load_checkpoint(f.target, path, "clients", three); }) ==
          "fedpp::load_checkpoint: the checkpoint holds another number of clients; expected 3, got 6");
    CHECK(same_state(f.target, f.before));
    for (const auto& c : three.clients) CHECK_FALSE(c.optimizer_state().has_value());
  }
  {
    // Ids 0 1 2 3 5 4: the first four clients (at least two of them with saved state) load
    // before the fifth fails.
    std::vector<ClientT> cs = clients();
    std::swap(cs[4], cs[5]);
    ClientStates<ClientT> swapped{std::move(cs)};
    CHECK_THROWS_AS(load_checkpoint(f.target, path, "clients", swapped), InvalidArgument);
    CHECK(message_of([&] { load_checkpoint(f.target, path, "clients", swapped); }) ==
          "fedpp::Client::load: checkpoint client id must be 5, got 4");
    CHECK(same_state(f.target, f.before));
    for (const auto& c : swapped.clients) CHECK_FALSE(c.optimizer_state().has_value());
  }
  ClientStates<ClientT> all{clients()};
  load_checkpoint(f.target, path, "clients", all);
  CHECK(same_state(f.target, f.source.state()));
  std::size_t trained = 0;
  for (const auto& c : all.clients) trained += c.optimizer_state().has_value() ? 1 : 0;
  CHECK(trained == 4);  // the 4 participants of the source's third round had state saved
}

TEST_CASE("a failed checkpoint write leaves the previous checkpoint loadable", "[runtime][checkpoint]") {
  Fixture f;
  const std::string tmp = f.path + ".tmp";
  ServerT later = make_server();
  advance(later, 3);
  SECTION("the temporary file cannot be opened") {
    std::filesystem::create_directory(tmp);
    CHECK_THROWS_AS(save_checkpoint(later, f.path), Error);
    CHECK(message_of([&] { save_checkpoint(later, f.path); }) ==
          "fedpp::write_file_atomically: cannot open the temporary checkpoint file for writing, got " + tmp);
    std::filesystem::remove(tmp);
  }
  SECTION("writing the temporary file fails") {
    if (!std::filesystem::exists("/dev/full")) {
      WARN("no /dev/full: the failed-write path is not exercised");
      return;
    }
    std::filesystem::create_symlink("/dev/full", tmp);
    CHECK_THROWS_AS(save_checkpoint(later, f.path), Error);
    // The failed temporary file is removed.
    CHECK_FALSE(std::filesystem::exists(std::filesystem::symlink_status(tmp)));
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    std::filesystem::create_symlink("/dev/full", tmp);
    CHECK(message_of([&] { save_checkpoint(later, f.path); }) ==
          "fedpp::write_file_atomically: writing the temporary checkpoint file failed, got " + tmp);
    CHECK_FALSE(std::filesystem::exists(std::filesystem::symlink_status(tmp)));
    std::filesystem::remove(tmp, ec);
  }
  CHECK(read_bytes(f.path) == f.bytes);
  load_checkpoint(f.target, f.path);
  CHECK(same_state(f.target, f.source.state()));
}

TEST_CASE("a successful checkpoint write replaces the previous one and leaves no temporary file",
          "[runtime][checkpoint]") {
  Fixture f;
  ServerT later = make_server();
  advance(later, 3);
  save_checkpoint(later, f.path);
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(f.dir.path)) names.push_back(e.path().filename().string());
  CHECK(names == std::vector<std::string>{"server.ckpt"});
  load_checkpoint(f.target, f.path);
  CHECK(same_state(f.target, later.state()));
  CHECK(f.target.round() == 3);
}

TEST_CASE("Server::restore refuses a state of another dimension and a restore during a round",
          "[runtime][checkpoint]") {
  Fixture f;
  ServerT::State small = f.source.state();
  small.params.resize(20);
  CHECK_THROWS_AS(f.target.restore(small), DimensionError);
  CHECK(message_of([&] { f.target.restore(small); }) ==
        "fedpp::RoundPipeline::restore: the state's model must have dimension 21, got 20");
  CHECK(same_state(f.target, f.before));

  const std::vector<ClientId> ids{0, 1};
  f.target.pipeline().begin(ids);
  CHECK_THROWS_AS(f.target.restore(f.source.state()), InvalidArgument);
  CHECK(message_of([&] { f.target.restore(f.source.state()); }) ==
        "fedpp::RoundPipeline::restore: cannot restore while a round is open, got 2");
  CHECK(same_state(f.target, f.before));
}

// The fingerprint covers the policies' settings through a behaviour probe: what fresh copies of
// the aggregator, the server optimizer and the compressor make of a fixed input.
TEST_CASE("a checkpoint of another aggregator setting is refused", "[runtime][checkpoint]") {
  Fixture f;
  ServerT t = make_server(5, 0.5);
  advance(t, 1);
  const auto st = t.state();
  CHECK_THROWS_AS(load_checkpoint(t, f.path), InvalidArgument);
  CHECK(message_of([&] { load_checkpoint(t, f.path); }) ==
        mismatch_message(fingerprint_text("fedpp::CenteredClipping", 21, 5, 4, behaviour_of(CenteredClipping(0.5))),
                         fingerprint_text()));
  CHECK(same_bits(t.params(), st.params));
}

TEST_CASE("the behaviour probe sees settings, not state, and digests the rule's output", "[runtime][checkpoint]") {
  // Same settings, whatever state the object has reached: the probe uses a fresh state.
  ServerT ran = make_server();
  advance(ran, 2);
  REQUIRE(ran.aggregator().state().center.size() == 21);
  CHECK(config_fingerprint(ran) == config_fingerprint(make_server()));
  // Each kind of setting changes it.
  CHECK(behaviour_of(CenteredClipping(0.05)) != behaviour_of(CenteredClipping(0.5)));
  CHECK(behaviour_of(WeightedMean(), ServerMomentum({.lr = 1.0})) != behaviour_of(WeightedMean(), ServerMomentum({.lr = 0.5})));
  CHECK(fedpp::detail::behaviour_probe<float>(WeightedMean(), ServerSgd(), TopK::count(5)) !=
        fedpp::detail::behaviour_probe<float>(WeightedMean(), ServerSgd(), TopK::count(9)));
  // The aggregate part is the digest of the rule's output: for the coordinate median of the
  // probe's 23 updates, the middle value of each coordinate, found here by sorting.
  const UpdateBatch<float> b = fedpp::detail::probe_batch<float>();
  REQUIRE(b.size() == 23);
  Vector<float> med(b.dim());
  for (Index k = 0; k < b.dim(); ++k) {
    std::vector<float> v;
    for (Index i = 0; i < b.size(); ++i) v.push_back(b.column(i)[static_cast<std::size_t>(k)]);
    std::sort(v.begin(), v.end());
    med(k) = v[11];
  }
  const std::string text = fedpp::detail::behaviour_probe<float>(CoordinateMedian(), ServerSgd(), Identity());
  CHECK(text.rfind("aggregate " + fedpp::detail::values_digest(med.data(), 64) + "; step ", 0) == 0);
  // A rule that refuses the probe input contributes its (settings-bearing) message.
  CHECK(fedpp::detail::behaviour_probe<float>(Bulyan(6), ServerSgd(), Identity()).rfind("aggregate throws fedpp::Bulyan", 0) == 0);
}

}  // namespace checkpoint_file_test
