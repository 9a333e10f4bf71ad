// Client drift on a strongly convex problem with heterogeneous clients: with the same local steps,
// FedProx, SCAFFOLD, FedDyn and FedSpeed end closer to the optimum of the global objective than FedAvg
// (fixed seeds, partial participation); the coupled runs are bit-identical for any thread count.
#include <catch2/catch.hpp>

#include <vector>

#include "fedpp/aggregators/weighted_mean.hpp"
#include "fedpp/optimizers/fed_dyn.hpp"
#include "fedpp/optimizers/fed_prox.hpp"
#include "fedpp/optimizers/fed_speed.hpp"
#include "fedpp/optimizers/sam.hpp"
#include "fedpp/optimizers/scaffold.hpp"
#include "fedpp/runtime/simulation.hpp"
#include "support/quadratic.hpp"

using namespace fedpp;
using fedpp_test::Quadratic;
using fedpp_test::quadratic_points;

namespace {

// Ten clients, five noisy points each around client optima spread over [-3, 3]^3, curvatures 0.5..5;
// the global objective (1/N) sum_i f_i has optimum sum_i a_i xbar_i / sum_i a_i.
struct Problem {
  std::vector<DatasetView<double>> shards;
  Vector<double> optimum;
  Problem() {
    Rng g(2024);
    Vector<double> num = Vector<double>::Zero(3);
    double den = 0;
    for (int i = 0; i < 10; ++i) {
      const double a = 0.5 + 4.5 * g.uniform();
      Vector<double> centre(3);
      for (Index k = 0; k < 3; ++k) centre(k) = 6.0 * g.uniform() - 3.0;
      Matrix<double> xs(3, 5);
      for (Index j = 0; j < 5; ++j)
        for (Index k = 0; k < 3; ++k) xs(k, j) = centre(k) + 0.1 * g.normal();
      num += a * xs.rowwise().mean();
      den += a;
      shards.push_back(DatasetView<double>::all(quadratic_points(xs, a)));
    }
    optimum = num / den;
  }
};

}  // namespace

TEST_CASE("FedProx, SCAFFOLD, FedDyn and FedSpeed drift less than FedAvg on heterogeneous quadratics",
          "[optimizers][drift]") {
  const Problem pb;
  Simulation<Quadratic> sim(Quadratic{3}, pb.shards, nullptr,
                            {.rounds = 150, .fraction = 0.5, .seed = 11, .threads = 2});
  const LocalSgdOptions local{.lr = 0.05, .steps = 20, .batch_size = 5};
  const WeightedMean mean(Weighting::uniform);
  const auto distance = [&](const RunResult<double>& r) { return (r.params - pb.optimum).norm(); };
  const double fedavg = distance(sim.run(LocalSgd(local), mean));
  const double fedprox = distance(sim.run(FedProx({.mu = 3.0, .sgd = local}), mean));
  const double scaffold = distance(sim.run(Scaffold({.sgd = local}), mean));
  const double feddyn = distance(sim.run(FedDyn({.alpha = 0.5, .sgd = local}), mean));
  const double fedspeed = distance(sim.run(FedSpeed({.prox = 0.5, .rho = 0.01, .sgd = local}), mean));
  const double fedsam = distance(sim.run(Sam({.rho = 0.01, .sgd = local}), mean));
  CAPTURE(fedavg, fedprox, scaffold, feddyn, fedspeed, fedsam);
  CHECK(fedavg > 0.2);  // the drift is real at this scale
  CHECK(fedprox < 0.7 * fedavg);
  CHECK(scaffold < 0.1 * fedavg);
  CHECK(feddyn < 0.1 * fedavg);
  CHECK(fedspeed < 0.1 * fedavg);
  // SAM alone does not correct drift: it stays within a few percent of FedAvg.
  CHECK(fedsam > 0.5 * fedavg);
}

TEST_CASE("Coupled optimizers give bit-identical runs for any thread count", "[optimizers][drift]") {
  const Problem pb;
  const LocalSgdOptions local{.lr = 0.05, .steps = 7, .batch_size = 2, .momentum = 0.5};
  const auto run = [&](int threads, auto opt) {
    Simulation<Quadratic> sim(Quadratic{3}, pb.shards, nullptr,
                              {.rounds = 12, .fraction = 0.4, .seed = 5, .threads = threads});
    return sim.run(opt).params;
  };
  const Scaffold scaffold({.sgd = local});
  const FedSpeed fedspeed({.prox = 0.3, .rho = 0.05, .sgd = local});
  const FedDyn feddyn({.alpha = 0.3, .sgd = local});
  CHECK(run(1, scaffold) == run(2, scaffold));
  CHECK(run(1, fedspeed) == run(2, fedspeed));
  CHECK(run(1, feddyn) == run(3, feddyn));
  CHECK(run(1, fedspeed) != run(1, feddyn));
}
