// Checkpoints of the coupled optimizers' state: clients running FedDyn, FedSpeed, SCAFFOLD or SAM
// with momentum, restored from a checkpoint, send bit-identical replies (update and extra vector);
// the server states of FedDynServer and ScaffoldServer round-trip.
#include <catch2/catch.hpp>

#include <sstream>
#include <string>
#include <vector>

#include "fedpp/models/softmax_regression.hpp"
#include "fedpp/optimizers/fed_dyn.hpp"
#include "fedpp/optimizers/fed_speed.hpp"
#include "fedpp/optimizers/sam.hpp"
#include "fedpp/optimizers/scaffold.hpp"
#include "fedpp/runtime/client.hpp"
#include "fedpp/serialization/checkpoint.hpp"
#include "support/blobs.hpp"
#include "support/checkpoint_io.hpp"

using namespace fedpp;

namespace {

using Model = SoftmaxRegression<float>;

using fedpp_test::bytes_of;
using fedpp_test::checkpoint;
using fedpp_test::restore;

// Client 1 on 60 samples, training with the local optimizer `opt`.
template <typename Opt>
Client<Model, Opt> make_optimizing_client(const Opt& opt) {
  auto data = fedpp_test::blobs<float>(60, 5, 3, 11);
  return Client<Model, Opt>(1, Model(5, 3), DatasetView<float>::all(data), opt);
}

// A global model and a broadcast vector that change every round.
struct Round {
  Vector<float> global, control;
  RoundRequest<float> request(std::uint64_t round) {
    Rng rng(round + 77);
    global.resize(Model(5, 3).num_params());
    control.resize(global.size());
    for (auto& v : global) v = static_cast<float>(0.1 * rng.normal());
    for (auto& v : control) v = static_cast<float>(0.01 * rng.normal());
    return RoundRequest<float>{round, 5, as_span(std::as_const(global)), as_span(std::as_const(control))};
  }
};

template <typename Opt>
void check_resumes(const Opt& opt) {
  auto original = make_optimizing_client(opt);
  Round feed;
  for (std::uint64_t t = 0; t < 3; ++t) REQUIRE(original.handle(feed.request(t)).status == ReplyStatus::ok);
  const std::string bytes = checkpoint(original);
  auto restored = make_optimizing_client(opt);
  restore(restored, bytes);
  REQUIRE(restored.optimizer_state().has_value());
  auto fresh = make_optimizing_client(opt);
  for (std::uint64_t t = 3; t < 6; ++t) {
    const Reply a = original.handle(feed.request(t));
    const Reply b = restored.handle(feed.request(t));
    const Reply c = fresh.handle(feed.request(t));
    REQUIRE(a.status == ReplyStatus::ok);
    CHECK(bytes_of(a.payload) == bytes_of(b.payload));
    CHECK(bytes_of(a.aux) == bytes_of(b.aux));
    CHECK(bytes_of(a.payload) != bytes_of(c.payload));  // without the state the replies differ
  }
}

}  // namespace

TEST_CASE("clients of the stateful local optimizers resume bit-identically from a checkpoint",
          "[serialization][optimizers]") {
  const LocalSgdOptions sgd{.lr = 0.2, .batch_size = 8, .momentum = 0.5, .reset_momentum_each_round = false};
  SECTION("FedDyn") { check_resumes(FedDyn({.alpha = 0.1, .sgd = sgd})); }
  SECTION("FedSpeed") { check_resumes(FedSpeed({.prox = 0.1, .rho = 0.05, .sgd = sgd})); }
  SECTION("FedSpeed, paper form") { check_resumes(FedSpeed({.prox = 0.1, .form = FedSpeedForm::paper, .sgd = sgd})); }
  SECTION("Scaffold") { check_resumes(Scaffold({.sgd = sgd})); }
  SECTION("Sam with carried momentum") { check_resumes(Sam({.rho = 0.05, .sgd = sgd})); }
}

TEST_CASE("the server states of FedDynServer and ScaffoldServer round-trip", "[serialization][optimizers]") {
  const Vector<float> u{{1.0f, -2.0f, 0.5f}}, aux{{0.25f, 0.5f, -1.0f}};
  FedDynServer dyn;
  auto dst = dyn.make_state<float>(3);
  dyn.observe(dst, ClientUpdateView<float>{0, 1.0, as_span(u), {}});
  Vector<float> x = Vector<float>::Zero(3);
  dyn.step(x, u, dst, ServerContext{0, 4, 1});
  auto dback = dyn.make_state<float>(3);
  restore(dback, checkpoint(dst));
  CHECK(dback.h_sum == dst.h_sum);
  CHECK(dback.steps == 1);

  ScaffoldServer sc;
  auto sst = sc.make_state<float>(3);
  sc.observe(sst, ClientUpdateView<float>{0, 1.0, as_span(u), as_span(aux)});
  sc.step(x, u, sst, ServerContext{0, 4, 1});
  sc.observe(sst, ClientUpdateView<float>{1, 1.0, as_span(u), as_span(aux)});  // pending, not yet folded
  auto sback = sc.make_state<float>(3);
  restore(sback, checkpoint(sst));
  CHECK(sback.c == sst.c);
  CHECK(sback.c_sent == sst.c_sent);
  CHECK(sback.pending == sst.pending);
  CHECK(sback.pending != Vector<double>::Zero(3));
  CHECK(sback.steps == 1);
}
