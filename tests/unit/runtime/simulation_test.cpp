// In-process runtime end to end: determinism across thread counts, the FedAvg closed form,
// learning progress, failing clients, metrics files.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "fedpp/models/mlp.hpp"
#include "fedpp/models/softmax_regression.hpp"
#include "fedpp/runtime/simulation.hpp"
#include "support/blobs.hpp"
#include "support/checks.hpp"

using namespace fedpp;
using fedpp_test::blobs;
using fedpp_test::contiguous_split;

TEST_CASE("same seed gives bit-identical models for 1, 2 and 3 threads", "[runtime][Simulation]") {
  auto train = blobs<float>(600, 12, 4, 1);
  auto test = blobs<float>(300, 12, 4, 2);
  const auto shards = contiguous_split(train, 20);
  Mlp<float> model({12, 16, 4});
  std::vector<Vector<float>> finals;
  std::vector<double> accs;
  for (int threads : {1, 2, 3}) {
    Simulation sim(model, shards, test, {.rounds = 6, .fraction = 0.5, .seed = 42, .threads = threads, .eval_chunk = 64});
    const auto r = sim.run(LocalSgd({.lr = 0.1, .epochs = 2, .batch_size = 8}));
    finals.push_back(r.params);
    accs.push_back(r.final_accuracy());
  }
  REQUIRE(finals[0].size() == model.num_params());
  CHECK(finals[0] == finals[1]);
  CHECK(finals[0] == finals[2]);
  CHECK(accs[0] == accs[1]);
  CHECK(accs[0] == accs[2]);

  Simulation other(model, shards, test, {.rounds = 6, .fraction = 0.5, .seed = 43, .threads = 2});
  CHECK(other.run(LocalSgd({.lr = 0.1, .epochs = 2, .batch_size = 8})).params != finals[0]);
}

TEST_CASE("one FedAvg round of one full-batch step equals a centralized gradient step", "[runtime][Simulation]") {
  // Weighted by client sizes, the mean of -lr * g_i is -lr times the full-data gradient.
  auto train = blobs<double>(257, 6, 3, 5);
  const std::vector<std::size_t> cuts{0, 40, 41, 120, 200, 257};  // unequal sizes
  std::vector<DatasetView<double>> shards(cuts.size() - 1);
  for (std::size_t c = 0; c + 1 < cuts.size(); ++c) {
    shards[c].base = train;
    for (std::size_t i = cuts[c]; i < cuts[c + 1]; ++i) shards[c].indices.push_back(static_cast<std::uint32_t>(i));
  }
  SoftmaxRegression<double> model(6, 3);
  Simulation sim(model, shards, nullptr, {.rounds = 1, .fraction = 1.0, .seed = 3, .threads = 2});
  const auto r = sim.run(LocalSgd({.lr = 0.5, .steps = 1, .batch_size = 1000}));

  Vector<double> g(model.num_params());
  const Vector<double>& w0 = sim.initial_params();
  model.loss_and_gradient(as_span(w0), train->features, train->labels, as_span(g));
  const Vector<double> expected = w0 - 0.5 * g;
  CHECK((r.params - expected).norm() <= 1e-13 * expected.norm());
  REQUIRE(r.history.size() == 1);
  CHECK(r.history[0].accepted == 5);
  CHECK(std::isnan(r.final_accuracy()));  // no test set, no evaluator
}

TEST_CASE("FedAvg learns a separable problem and records every round", "[runtime][Simulation]") {
  auto train = blobs<float>(2000, 10, 5, 11, 3.0);
  auto test = blobs<float>(1000, 10, 5, 12, 3.0);
  const auto shards = contiguous_split(train, 50);
  Simulation sim(SoftmaxRegression<float>(10, 5), shards, test, {.rounds = 15, .fraction = 0.2, .seed = 1, .threads = 2});
  const auto r = sim.run(LocalSgd({.lr = 0.1, .epochs = 1, .batch_size = 10}));
  REQUIRE(r.history.size() == 15);
  CHECK(r.final_accuracy() > 0.95);
  CHECK(r.history.front().test_accuracy < r.history.back().test_accuracy);
  for (const auto& h : r.history) {
    CHECK(h.participants == 10);
    CHECK(h.accepted == 10);
    CHECK(h.applied);
    // 10 clients, each a dense float payload of 55 values + a 5-byte header.
    CHECK(h.bytes_up == 10 * (5 + 55 * 4));
    CHECK(h.bytes_down == 10 * (24 + 55 * 4));
  }
  CHECK(r.bytes_up() == 15 * 10 * (5 + 55 * 4));
  CHECK(r.bytes_down() == 15 * 10 * (24 + 55 * 4));
}

TEST_CASE("a failing client is excluded and reported, the round completes", "[runtime][Simulation]") {
  auto train = blobs<float>(400, 8, 4, 3);
  auto shards = contiguous_split(train, 4);
  shards[2].label_map = {0, 1, 2, 99};  // labels out of range: the model throws in that client
  Simulation sim(SoftmaxRegression<float>(8, 4), shards, nullptr, {.rounds = 3, .fraction = 1.0, .threads = 2});
  const auto r = sim.run();
  for (const auto& h : r.history) {
    CHECK(h.failed == 1);
    CHECK(h.accepted == 3);
    CHECK(h.applied);
  }
  CHECK(r.params.allFinite());
}

TEST_CASE("Simulation validates its inputs", "[runtime][Simulation]") {
  using fedpp_test::message_of;
  using Sim = Simulation<SoftmaxRegression<float>>;
  auto train = blobs<float>(100, 8, 4, 3);
  auto test = blobs<float>(50, 9, 4, 3);
  const auto shards = contiguous_split(train, 4);
  const SoftmaxRegression<float> model(8, 4);
  CHECK_THROWS_AS(Sim(SoftmaxRegression<float>(7, 4), shards, nullptr, {}), DimensionError);
  CHECK(message_of([&] { Sim(SoftmaxRegression<float>(7, 4), shards, nullptr, {}); }) ==
        "fedpp::Simulation: shard dimension must equal the model's input_dim 7, got 8");
  CHECK_THROWS_AS(Sim(model, shards, test, {}), DimensionError);
  CHECK(message_of([&] { Sim(model, shards, test, {}); }) ==
        "fedpp::Simulation: test set dimension must equal the model's input_dim 8, got 9");
  auto bad_labels = blobs<float>(20, 8, 4, 3);
  bad_labels->labels[5] = 4;
  CHECK(message_of([&] { Sim(model, shards, bad_labels, {}); }) ==
        "fedpp::Simulation (test set): labels must be in [0, 4), got 4");
  CHECK_THROWS_AS(Sim(model, std::vector<DatasetView<float>>{}, nullptr, {}), InvalidArgument);
  CHECK(message_of([&] { Sim(model, std::vector<DatasetView<float>>{}, nullptr, {}); }) ==
        "fedpp::Simulation: there must be at least one client shard, got 0");
  CHECK(message_of([&] { Sim(model, shards, nullptr, {.threads = -1}); }) ==
        "fedpp::Simulation: threads must be >= 0, got -1");
  CHECK(message_of([&] { Sim(model, shards, nullptr, {.eval_chunk = 0}); }) ==
        "fedpp::Simulation: eval_chunk must be >= 1, got 0");
  CHECK(message_of([&] { Sim(model, shards, nullptr, {.byzantine_fraction = 1.0}); }) ==
        "fedpp::Simulation: byzantine_fraction must be in [0, 1), got 1");
  CHECK(message_of([&] { Sim(model, shards, nullptr, {.byzantine_fraction = -0.25}); }) ==
        "fedpp::Simulation: byzantine_fraction must be in [0, 1), got -0.25");
  CHECK(message_of([&] { Sim(model, shards, nullptr, {.byzantine_fraction = std::nan("")}); }) ==
        "fedpp::Simulation: byzantine_fraction must be in [0, 1), got nan");
  CHECK(message_of([&] { Sim(model, shards, nullptr, {.byzantine = 4}); }) ==
        "fedpp::Simulation: byzantine must be < the number of clients 4, got 4");
  // 0.9 of 4 clients rounds to 4: no honest client would be left.
  CHECK(message_of([&] { Sim(model, shards, nullptr, {.byzantine_fraction = 0.9}); }) ==
        "fedpp::Simulation: byzantine must be < the number of clients 4, got 4");
  // The boundaries are accepted; byzantine overrides byzantine_fraction.
  CHECK(Sim(model, shards, nullptr, {.byzantine = 3}).byzantine_ids().size() == 3);
  CHECK(Sim(model, shards, nullptr, {.byzantine_fraction = 0.6}).byzantine_ids().size() == 2);  // 2.4
  CHECK(Sim(model, shards, nullptr, {.byzantine = 1, .byzantine_fraction = 0.5}).byzantine_ids().size() == 1);
  CHECK(Sim(model, shards, nullptr, {.threads = 0, .eval_chunk = 1}).byzantine_ids().empty());
  // An empty shard has no dimension to check.
  auto with_empty = shards;
  with_empty.push_back(DatasetView<float>{blobs<float>(3, 5, 4, 1), {}, {}});
  CHECK_NOTHROW(Sim(model, with_empty, nullptr, {}));
  // Round settings are the server's: checked when a run starts.
  Sim zero_rounds(model, shards, nullptr, {.rounds = 0, .threads = 1});
  CHECK(message_of([&] { zero_rounds.run(); }) == "fedpp::Server: rounds must be >= 1, got 0");
}

TEST_CASE("Simulation hands its round settings to the server", "[runtime][Simulation]") {
  auto train = blobs<float>(120, 6, 3, 21);
  auto test = blobs<float>(50, 6, 3, 22);
  const auto shards = contiguous_split(train, 4);
  const SoftmaxRegression<float> model(6, 3);
  // A quorum above the number of clients: no round is applied, the model stays the initial one.
  Simulation unreachable(model, shards, nullptr, {.rounds = 2, .fraction = 1.0, .min_updates = 5, .threads = 1});
  const auto r1 = unreachable.run(LocalSgd({.lr = 0.1}));
  for (const auto& h : r1.history) {
    CHECK(h.accepted == 4);
    CHECK_FALSE(h.applied);
  }
  CHECK(r1.params == unreachable.initial_params());
  // eval_every 2 over 5 rounds: rounds 2, 4 and the last, 5; clients_per_round 3 of 4.
  Simulation sim(model, shards, test,
                 {.rounds = 5, .fraction = 1.0, .clients_per_round = 3, .min_updates = 3, .eval_every = 2,
                  .threads = 1, .eval_chunk = 7});
  const auto r2 = sim.run(LocalSgd({.lr = 0.1}));
  REQUIRE(r2.history.size() == 5);
  for (std::size_t k = 0; k < 5; ++k) {
    CAPTURE(k);
    CHECK(r2.history[k].participants == 3);
    CHECK(r2.history[k].applied);
    CHECK(std::isnan(r2.history[k].test_accuracy) == (k == 0 || k == 2));
  }
  // Evaluated in chunks of 7 (the last one 1 sample): every test sample counts once, and the
  // chunking does not change the result.
  CHECK(r2.final_test.count == 50);
  Simulation whole(model, shards, test,
                   {.rounds = 5, .fraction = 1.0, .clients_per_round = 3, .min_updates = 3, .eval_every = 2,
                    .threads = 2, .eval_chunk = 1000});
  const auto r3 = whole.run(LocalSgd({.lr = 0.1}));
  CHECK(r3.params == r2.params);
  CHECK(r3.final_test.count == 50);
  CHECK(r3.final_test.correct == r2.final_test.correct);
  CHECK(r3.final_test.loss_sum == Approx(r2.final_test.loss_sum).epsilon(1e-6));  // float losses, summed per chunk
}

TEST_CASE("MetricsWriter and ProgressPrinter report every round", "[runtime][callbacks]") {
  auto train = blobs<float>(300, 6, 3, 4);
  auto test = blobs<float>(100, 6, 3, 5);
  const auto shards = contiguous_split(train, 10);
  Simulation sim(SoftmaxRegression<float>(6, 3), shards, test, {.rounds = 4, .fraction = 0.5, .threads = 1});
  const std::string csv = "simulation_test_metrics.csv", jsonl = "simulation_test_metrics.jsonl";
  std::ostringstream progress;
  fedpp::RunResult<float> r;
  {
    MetricsWriter a(csv), b(jsonl);
    r = sim.run(a, b, ProgressPrinter(progress), LocalSgd({.lr = 0.1}));
  }
  std::ifstream in(csv);
  std::string header, line;
  std::getline(in, header);
  CHECK(header.rfind("round,participants,accepted,", 0) == 0);
  int rows = 0;
  while (std::getline(in, line)) {
    ++rows;
    CHECK(line.rfind(std::to_string(rows) + ",5,5,0,0,0,0,1,", 0) == 0);
  }
  CHECK(rows == 4);
  std::ifstream jin(jsonl);
  int jrows = 0;
  while (std::getline(jin, line)) {
    ++jrows;
    CHECK(line.rfind("{\"round\":" + std::to_string(jrows) + ",", 0) == 0);
    CHECK(line.back() == '}');
  }
  CHECK(jrows == 4);
  // One progress line per round, with the round counter and the accuracy of that round.
  std::istringstream lines(progress.str());
  int plines = 0;
  while (std::getline(lines, line)) {
    ++plines;
    CHECK(line.rfind("round " + std::to_string(plines) + "/4", 0) == 0);
  }
  CHECK(plines == 4);
  char buf[32];
  std::snprintf(buf, sizeof buf, "acc %6.2f%%", 100.0 * r.history.back().test_accuracy);
  CHECK(progress.str().find(buf) != std::string::npos);
  std::remove(csv.c_str());
  std::remove(jsonl.c_str());
  CHECK_THROWS_AS(MetricsWriter("/nonexistent-dir/x.csv"), DataError);
}

namespace {

// Records what it is shown, then replaces every Byzantine update with a constant vector.
struct ConstantAttack {
  float value = 1000.0f;
  std::vector<std::size_t> honest_seen, byz_seen;
  std::vector<ClientId> byz_ids;
  void corrupt(UpdateBatch<float>& byz, const UpdateBatch<float>& honest, const AttackContext& ctx, Rng&) {
    REQUIRE(ctx.num_byzantine == byz.size());
    REQUIRE(ctx.num_clients == byz.size() + honest.size());
    honest_seen.push_back(static_cast<std::size_t>(honest.size()));
    byz_seen.push_back(static_cast<std::size_t>(byz.size()));
    byz_ids.assign(byz.ids().begin(), byz.ids().end());
    byz.matrix().setConstant(value);
  }
};
static_assert(Attack<ConstantAttack, float>);

// Sends NaN from every Byzantine client.
struct NanAttack {
  void corrupt(UpdateBatch<float>& byz, const UpdateBatch<float>&, const AttackContext&, Rng&) const {
    byz.matrix().setConstant(std::numeric_limits<float>::quiet_NaN());
  }
};

// Relabels everything to class 0 (data-level) and leaves updates alone.
struct AllZeroLabels {
  std::vector<Label> label_map(int classes) const { return std::vector<Label>(static_cast<std::size_t>(classes), 0); }
  void corrupt(UpdateBatch<float>&, const UpdateBatch<float>&, const AttackContext&, Rng&) const {}
};
static_assert(DataAttack<AllZeroLabels>);

// Captures the aggregate of each round.
struct MaxAbsAggregateProbe {
  std::vector<float> max_abs;
  void on_aggregate(const RoundStats&, std::span<const float> a) {
    float m = 0;
    for (float v : a) m = std::max(m, std::abs(v));
    max_abs.push_back(m);
  }
};

}  // namespace

TEST_CASE("Byzantine clients are a seeded fixed set and the attack sees the honest updates", "[runtime][Simulation][attack]") {
  auto train = blobs<float>(400, 6, 3, 8);
  const auto shards = contiguous_split(train, 10);
  Simulation sim(SoftmaxRegression<float>(6, 3), shards, nullptr,
                 {.rounds = 3, .fraction = 1.0, .seed = 4, .threads = 2, .byzantine = 3});
  REQUIRE(sim.byzantine_ids().size() == 3);
  Simulation same(SoftmaxRegression<float>(6, 3), shards, nullptr,
                  {.rounds = 3, .fraction = 1.0, .seed = 4, .threads = 1, .byzantine_fraction = 0.3});
  CHECK(same.byzantine_ids() == sim.byzantine_ids());

  ConstantAttack copy;
  MaxAbsAggregateProbe probe2;
  const auto attacked = sim.run(copy, probe2);
  // The mean of 7 honest updates and 3 constant 1000s is dominated by the attack.
  REQUIRE(probe2.max_abs.size() == 3);
  for (float m : probe2.max_abs) CHECK(m > 250.0f);
  for (const auto& h : attacked.history) CHECK(h.accepted == 10);

  // Without an attack the aggregate stays small.
  MaxAbsAggregateProbe clean;
  sim.run(clean);
  for (float m : clean.max_abs) CHECK(m < 10.0f);
  CHECK_THROWS_AS(Simulation(SoftmaxRegression<float>(6, 3), shards, nullptr, {.byzantine = 10}), InvalidArgument);
}

TEST_CASE("non-finite attack output is rejected like a received update", "[runtime][Simulation][attack]") {
  auto train = blobs<float>(400, 6, 3, 8);
  const auto shards = contiguous_split(train, 8);
  Simulation sim(SoftmaxRegression<float>(6, 3), shards, nullptr,
                 {.rounds = 2, .fraction = 1.0, .seed = 1, .threads = 2, .byzantine = 2});
  const auto r = sim.run(NanAttack{});
  for (const auto& h : r.history) {
    CHECK(h.rejected_nonfinite == 2);
    CHECK(h.accepted == 6);
    CHECK(h.applied);
  }
  CHECK(r.params.allFinite());
}

namespace {

// Replaces the Byzantine updates by `count` columns of dimension `dim` (0: keep the batch's).
struct ReshapingAttack {
  Index count = 0, dim = 0;
  void corrupt(UpdateBatch<float>& byz, const UpdateBatch<float>&, const AttackContext&, Rng&) const {
    byz = UpdateBatch<float>(Matrix<float>::Zero(dim > 0 ? dim : byz.dim(), count));
  }
};
static_assert(Attack<ReshapingAttack, float>);

}  // namespace

TEST_CASE("an attack that changes the number or size of the Byzantine updates is reported", "[runtime][Simulation][attack]") {
  using fedpp_test::message_of;
  auto train = blobs<float>(200, 6, 3, 8);
  const auto shards = contiguous_split(train, 5);
  Simulation sim(SoftmaxRegression<float>(6, 3), shards, nullptr,
                 {.rounds = 1, .fraction = 1.0, .seed = 1, .threads = 1, .byzantine = 2});
  CHECK_THROWS_AS(sim.run(ReshapingAttack{1, 0}), DimensionError);
  CHECK(message_of([&] { sim.run(ReshapingAttack{1, 0}); }) ==
        "fedpp::ByzantineStage: an attack must keep the number of Byzantine updates 2, got 1");
  CHECK(message_of([&] { sim.run(ReshapingAttack{3, 0}); }) ==
        "fedpp::ByzantineStage: an attack must keep the number of Byzantine updates 2, got 3");
  // 6 features x 3 classes + 3 biases = 21 parameters.
  CHECK(message_of([&] { sim.run(ReshapingAttack{2, 22}); }) ==
        "fedpp::ByzantineStage: an attack must keep the dimension 21, got 22");
  CHECK(sim.run(ReshapingAttack{2, 0}).history.at(0).accepted == 5);  // zero updates of the right shape
}

TEST_CASE("ProgressPrinter prints every `every` rounds and the last one", "[runtime][callbacks]") {
  auto train = blobs<float>(60, 4, 2, 7);
  Simulation sim(SoftmaxRegression<float>(4, 2), contiguous_split(train, 3), nullptr,
                 {.rounds = 5, .fraction = 1.0, .threads = 1});
  std::ostringstream out;
  sim.run(ProgressPrinter(out, 2));
  std::istringstream lines(out.str());
  std::string line;
  std::vector<std::string> heads;
  while (std::getline(lines, line)) heads.push_back(line.substr(0, line.find(' ', 6)));
  CHECK(heads == std::vector<std::string>{"round 2/5", "round 4/5", "round 5/5"});
  CHECK(fedpp_test::message_of([] { ProgressPrinter p(std::cout, 0); }) ==
        "fedpp::ProgressPrinter: every must be >= 1, got 0");
  CHECK(fedpp_test::message_of([] { MetricsWriter w("/nonexistent-dir/x.csv"); }) ==
        "fedpp::MetricsWriter: cannot open metrics file for writing, got /nonexistent-dir/x.csv");
}

TEST_CASE("a data-level attack relabels only the Byzantine clients", "[runtime][Simulation][attack]") {
  auto train = blobs<float>(600, 6, 3, 9, 3.0);
  auto test = blobs<float>(600, 6, 3, 10, 3.0);
  const auto shards = contiguous_split(train, 6);
  // All clients Byzantine but one is impossible (f < n); with 5 of 6 relabelling to class 0 the
  // model learns to predict class 0, so accuracy drops to about a third.
  Simulation poisoned(SoftmaxRegression<float>(6, 3), shards, test,
                      {.rounds = 10, .fraction = 1.0, .seed = 2, .threads = 2, .byzantine = 5});
  Simulation clean(SoftmaxRegression<float>(6, 3), shards, test, {.rounds = 10, .fraction = 1.0, .seed = 2, .threads = 2});
  const double acc_poisoned = poisoned.run(AllZeroLabels{}, LocalSgd({.lr = 0.1})).final_accuracy();
  const double acc_clean = clean.run(LocalSgd({.lr = 0.1})).final_accuracy();
  CHECK(acc_clean > 0.9);
  CHECK(acc_poisoned < 0.5);
  // Shards are untouched: a later run without the attack is clean again.
  CHECK(poisoned.run(LocalSgd({.lr = 0.1})).final_accuracy() == acc_clean);
}
