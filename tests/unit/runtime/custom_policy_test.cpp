// The snippets of docs/getting-started.md, compiled and checked: a user-written aggregator and
// callback, and Server/Client used directly agree with Simulation.
#include <catch2/catch.hpp>

#include "fedpp/models/softmax_regression.hpp"
#include "fedpp/runtime/simulation.hpp"
#include "support/blobs.hpp"

namespace {

struct ClippedMean {
  double bound = 1.0;
  template <typename S>
  void aggregate(const fedpp::UpdateBatch<S>& batch, fedpp::Vector<S>& out) {
    batch.check_nonempty("ClippedMean::aggregate");
    out = batch.matrix().rowwise().mean().cwiseMax(S(-bound)).cwiseMin(S(bound));
  }
};
static_assert(fedpp::Aggregator<ClippedMean, float>);
static_assert(!fedpp::StreamingAggregator<ClippedMean, float>);

struct MaxUpdate {
  float largest = 0;
  void on_aggregate(const fedpp::RoundStats&, std::span<const float> a) {
    for (float v : a) largest = std::max(largest, std::abs(v));
  }
};

}  // namespace

TEST_CASE("a user-written aggregator and callback plug into Simulation", "[runtime][docs]") {
  auto train = fedpp_test::blobs<float>(500, 6, 3, 1, 3.0);
  const auto shards = fedpp_test::contiguous_split(train, 10);
  fedpp::Simulation sim(fedpp::SoftmaxRegression<float>(6, 3), shards, nullptr,
                        {.rounds = 5, .fraction = 0.5, .seed = 2, .threads = 2});
  MaxUpdate probe;
  const auto clipped = sim.run(ClippedMean{1e-3}, probe, fedpp::LocalSgd({.lr = 0.5}));
  CHECK(probe.largest <= 1e-3f);
  CHECK(probe.largest > 0.0f);
  // Each round moves every coordinate by at most the bound.
  CHECK((clipped.params - sim.initial_params()).cwiseAbs().maxCoeff() <= 5 * 1e-3f + 1e-6f);
}

TEST_CASE("Server and Client used directly give the Simulation's result", "[runtime][docs]") {
  using M = fedpp::SoftmaxRegression<float>;
  auto train = fedpp_test::blobs<float>(800, 6, 3, 4);
  const auto shards = fedpp_test::contiguous_split(train, 8);
  M model(6, 3);

  std::vector<fedpp::Client<M>> clients;
  for (std::size_t i = 0; i < shards.size(); ++i)
    clients.emplace_back(fedpp::ClientId(i), model, shards[i], fedpp::LocalSgd({.lr = 0.05}));
  fedpp::InProcessTransport transport(std::move(clients), /*threads=*/2);
  fedpp::Vector<float> init;
  fedpp::Rng rng = fedpp::make_rng(1, 0, fedpp::server_stream, fedpp::Purpose::model_init);
  model.init_params(init, rng);
  fedpp::Server<float> server(init, {.rounds = 4, .fraction = 0.5, .seed = 1});
  const auto direct = server.run(transport);

  fedpp::Simulation sim(model, shards, nullptr, {.rounds = 4, .fraction = 0.5, .seed = 1, .threads = 3});
  const auto simulated = sim.run(fedpp::LocalSgd({.lr = 0.05}));
  CHECK(direct.params == simulated.params);
  CHECK(direct.history.size() == 4);
}
