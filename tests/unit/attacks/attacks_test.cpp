// Tests of the convenience header fedpp/attacks.hpp: every attack satisfies the Attack concept,
// keeps the shape, ids and weights of the Byzantine batch, and plugs into the in-process
// Simulation (determinism; the plain mean collapses under sign flip x10 but not under a
// plain flip with f < n/2).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <string>
#include <tuple>
#include <vector>

#include "fedpp/attacks.hpp"
#include "fedpp/models/softmax_regression.hpp"
#include "fedpp/optimizers/local_sgd.hpp"
#include "fedpp/runtime/simulation.hpp"
#include "support/attack_batches.hpp"
#include "support/blobs.hpp"

using namespace fedpp;
using namespace fedpp_test;

static_assert(Attack<NoAttack, float> && Attack<NoAttack, double>);
static_assert(Attack<SignFlip, float> && Attack<SignFlip, double>);
static_assert(Attack<GaussianNoise, float> && Attack<GaussianNoise, double>);
static_assert(Attack<Alie, float> && Attack<Alie, double>);
static_assert(Attack<Ipm, float> && Attack<Ipm, double>);
static_assert(Attack<LabelFlip, float> && Attack<LabelFlip, double>);
static_assert(Attack<Mimic, float> && Attack<Mimic, double>);
static_assert(DataAttack<LabelFlip>);
static_assert(!DataAttack<SignFlip> && !DataAttack<Alie> && !DataAttack<Mimic>);

namespace {

template <typename S, typename A>
void check_shape_kept(A attack) {
  const auto honest = normal_batch<S>(300, 8, 1, {.first_id = 0, .weight = 2.0});
  auto byz = normal_batch<S>(300, 3, 2, {.first_id = 8, .weight = 5.0});
  Rng rng(3);
  attack.corrupt(byz, honest, AttackContext{0, 11, 3}, rng);
  REQUIRE(byz.dim() == 300);
  REQUIRE(byz.size() == 3);
  for (Index i = 0; i < 3; ++i) {
    CHECK(byz.ids()[static_cast<std::size_t>(i)] == static_cast<ClientId>(8 + i));
    CHECK(byz.weights()[static_cast<std::size_t>(i)] == 5.0);
    CHECK(all_finite(std::span<const S>(byz.column(i))));
  }
}

}  // namespace

TEMPLATE_TEST_CASE("every attack keeps the Byzantine batch's shape, ids and weights", "[attacks]", float, double) {
  using S = TestType;
  check_shape_kept<S>(NoAttack());
  check_shape_kept<S>(SignFlip());
  check_shape_kept<S>(SignFlip::byzfl());
  check_shape_kept<S>(GaussianNoise());
  check_shape_kept<S>(GaussianNoise::byzfl());
  check_shape_kept<S>(Alie());
  check_shape_kept<S>(Alie(AlieVariant::b));
  check_shape_kept<S>(Alie::byzfl());
  check_shape_kept<S>(Ipm());
  check_shape_kept<S>(LabelFlip());
  check_shape_kept<S>(Mimic());
  check_shape_kept<S>(Mimic::top_direction());
}

TEST_CASE("attacks plug into the in-process Simulation", "[attacks][Simulation]") {
  auto train = blobs<float>(2000, 10, 4, 1, 1.5);
  auto test = blobs<float>(1000, 10, 4, 2, 1.5);
  const auto shards = contiguous_split(train, 20);
  SoftmaxRegression<float> model(10, 4);
  const SimulationOptions opts{.rounds = 20, .fraction = 1.0, .seed = 5, .threads = 2, .byzantine = 4};
  const LocalSgd sgd({.lr = 0.1, .epochs = 1, .batch_size = 20});
  auto run = [&](auto attack) {
    Simulation sim(model, shards, test, opts);
    return sim.run(sgd, attack);
  };
  const auto clean = run(NoAttack());
  const auto flip10 = run(SignFlip(10.0));
  const auto flip1 = run(SignFlip(1.0));
  const auto noise = run(GaussianNoise(1.0));
  const auto alie = run(Alie());
  const auto ipm = run(Ipm());
  const auto labels = run(LabelFlip());
  const auto mimic = run(Mimic::top_direction());
  std::printf("FedAvg, 4 of 20 Byzantine, final accuracy: clean %.4f, sign flip x10 %.4f, sign flip x1 %.4f, "
              "gaussian %.4f, alie %.4f, ipm %.4f, label flip %.4f, mimic %.4f\n",
              clean.final_accuracy(), flip10.final_accuracy(), flip1.final_accuracy(), noise.final_accuracy(),
              alie.final_accuracy(), ipm.final_accuracy(), labels.final_accuracy(), mimic.final_accuracy());
  CHECK(clean.final_accuracy() > 0.8);
  // c = 10 > (n - f) / f = 4 reverses the mean step: training diverges.
  CHECK(flip10.final_accuracy() < clean.final_accuracy() - 0.3);
  // c = 1 only shrinks the step to 0.6x: the model still learns.
  CHECK(flip1.final_accuracy() > 0.8);
  // Every attack changed the run, and a rerun is bit-identical.
  for (const auto* r : {&flip10, &flip1, &noise, &alie, &ipm, &labels, &mimic}) CHECK(r->params != clean.params);
  CHECK(run(GaussianNoise(1.0)).params == noise.params);
  CHECK(run(Mimic::top_direction()).params == mimic.params);
}
