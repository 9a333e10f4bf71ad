// bench_local_training: one local epoch of the MLP (Fashion-MNIST shape, 784-200-10, a 600-sample
// client shard, batch 50) per thread, as the Simulation runs clients: every thread trains its own
// client single-threaded. Timed in the same run, interleaved, against the floor: the same threads
// doing only the GEMMs one epoch must perform (forward W1 X, W2 A1; backward dZ2 A1^T, W2^T dZ2,
// dZ1 X^T per mini-batch, same shapes and storage orders). Also times SAM, FedSpeed, FedDyn,
// FedProx and SCAFFOLD epochs, whose cost is reported per step relative to plain SGD.
// Targets: LocalSgd epoch <= 2x the GEMM floor; Sam and FedSpeed <= 2.1x LocalSgd.
#include <cmath>
#include <iostream>
#include <string>
#include <vector>

#include "common/bench.hpp"
#include "fedpp/core/dataset.hpp"
#include "fedpp/models/mlp.hpp"
#include "fedpp/optimizers/fed_dyn.hpp"
#include "fedpp/optimizers/fed_prox.hpp"
#include "fedpp/optimizers/fed_speed.hpp"
#include "fedpp/optimizers/local_sgd.hpp"
#include "fedpp/optimizers/sam.hpp"
#include "fedpp/optimizers/scaffold.hpp"

namespace {

using namespace fedpp;
using namespace fedpp::bench;
using S = float;
using RowMajor = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Runs fn(t) on `threads` threads at once (OpenMP), t = 0..threads-1; each call is single-threaded.
template <typename F>
void on_threads(int threads, F&& fn) {
#if FEDPP_HAS_OPENMP
#pragma omp parallel num_threads(threads)
  fn(omp_get_thread_num());
#else
  for (int t = 0; t < threads; ++t) fn(t);
#endif
}

// One thread's GEMM floor: the matrices of a 784-h-10 MLP on batches of b columns.
struct GemmFloor {
  RowMajor W1, W2, dW1, dW2;
  Matrix<S> X, Z1, Z2, back;
  GemmFloor(Index in, Index hidden, Index out, Index b, Rng& rng)
      : W1(hidden, in), W2(out, hidden), dW1(hidden, in), dW2(out, hidden), X(in, b), Z1(hidden, b), Z2(out, b),
        back(hidden, b) {
    for (auto* m : {&W1, &W2})
      for (Index i = 0; i < m->size(); ++i) m->data()[i] = static_cast<S>(0.05 * rng.normal());
    for (Index i = 0; i < X.size(); ++i) X.data()[i] = static_cast<S>(rng.uniform());
    Z1.setZero();
    Z2.setZero();
  }
  // The five products of one mini-batch step.
  void step() {
    Z1.noalias() = W1 * X;
    Z2.noalias() = W2 * Z1;
    dW2.noalias() = Z2 * Z1.transpose();
    back.noalias() = W2.transpose() * Z2;
    dW1.noalias() = back * X.transpose();
  }
};

int run(int argc, char** argv) {
  Flags flags(argc, argv, "bench_local_training");
  const Index n = flags.get_int("samples", 600, "samples per client shard (Fashion-MNIST over 100 clients: 600)");
  const Index hidden = flags.get_int("hidden", 200, "MLP hidden width (784-hidden-10)");
  const Index batch = flags.get_int("batch", 50, "mini-batch size");
  const Timing timing = Timing::read(flags, 15, 2, 2, "threads, one client each");
  const int threads = timing.threads;
  const double floor_target = flags.get_double("floor-target", "2.0", "pass when LocalSgd epoch / GEMM floor <= this");
  const double sam_target = flags.get_double("sam-target", "2.1", "pass when Sam and FedSpeed / LocalSgd <= this");
  const std::string json_path = json_flag(flags);
  if (flags.finish()) return 0;
  if (n < 1 || hidden < 1 || batch < 1 || threads < 1 || timing.reps < 1 || timing.warmup < 0)
    throw std::invalid_argument("samples, hidden, batch, threads, reps must be >= 1, warmup >= 0");
  constexpr Index in = 784, classes = 10;
  Eigen::setNbThreads(1);  // each client's GEMMs run on its own thread, as in a Simulation's workers
  const Index steps = (n + batch - 1) / batch;

  // Per thread: a client shard of random images and labels, its parameters and optimizer states.
  const Mlp<S> model({in, hidden, classes});
  struct Worker {
    DatasetView<S> shard;
    Vector<S> init, params;
    LocalSgd::State<S> sgd_state;
    DualState<S> dual_state;
    ScaffoldState<S> scaffold_state;
    Vector<S> control;
    GemmFloor floor;
  };
  std::vector<Worker> workers;
  for (int t = 0; t < threads; ++t) {
    Rng rng = make_rng(7, 0, static_cast<std::uint64_t>(t), Purpose::user);
    auto ds = std::make_shared<Dataset<S>>();
    ds->features.resize(in, n);
    for (Index i = 0; i < ds->features.size(); ++i) ds->features.data()[i] = static_cast<S>(rng.uniform());
    ds->labels.resize(static_cast<std::size_t>(n));
    for (auto& y : ds->labels) y = static_cast<Label>(rng.uniform_index(classes));
    ds->num_classes = static_cast<int>(classes);
    Vector<S> p;
    model.init_params(p, rng);
    Vector<S> control = Vector<S>::Constant(model.num_params(), 1e-4f);
    workers.push_back({DatasetView<S>::all(ds), p, p, {}, {}, {}, control, GemmFloor(in, hidden, classes, batch, rng)});
  }

  const LocalSgdOptions lo{.lr = 0.05, .epochs = 1, .batch_size = batch};
  const LocalSgd sgd(lo);
  const Sam sam({.rho = 0.05, .sgd = lo});
  const FedSpeed fedspeed({.prox = 0.1, .rho = 0.05, .sgd = lo});
  const FedDyn feddyn({.alpha = 0.1, .sgd = lo});
  const FedProx fedprox({.mu = 0.1, .sgd = lo});
  const Scaffold scaffold({.sgd = lo});
  // One epoch per thread from the same start every repetition; `train_one(worker, ctx, rng)` runs it.
  const auto epoch = [&](auto train_one) {
    return [&workers, threads, train_one] {
      on_threads(threads, [&](int t) {
        Worker& w = workers[static_cast<std::size_t>(t)];
        w.params = w.init;
        Rng rng = make_rng(1, 0, static_cast<std::uint64_t>(t), Purpose::shuffle);
        train_one(w, RoundContext{0, 1, static_cast<ClientId>(t)}, rng);
      });
    };
  };
  std::vector<Case> cases;
  cases.push_back({"GEMM floor", [&] {
                     on_threads(threads, [&](int t) {
                       auto& f = workers[static_cast<std::size_t>(t)].floor;
                       for (Index s = 0; s < steps; ++s) f.step();
                     });
                   },
                   {}});
  const auto with_sgd_state = [&](const auto& opt) {
    return epoch([&model, &opt](Worker& w, const RoundContext& ctx, Rng& rng) {
      (void)opt.train(model, w.params, w.shard, w.sgd_state, ctx, rng);
    });
  };
  const auto with_dual_state = [&](const auto& opt) {
    return epoch([&model, &opt](Worker& w, const RoundContext& ctx, Rng& rng) {
      w.dual_state.h.setZero(model.num_params());
      (void)opt.train(model, w.params, w.shard, w.dual_state, ctx, rng);
    });
  };
  cases.push_back({"LocalSgd epoch", with_sgd_state(sgd), {}});
  cases.push_back({"Sam epoch", with_sgd_state(sam), {}});
  cases.push_back({"FedSpeed epoch", with_dual_state(fedspeed), {}});
  cases.push_back({"FedDyn epoch", with_dual_state(feddyn), {}});
  cases.push_back({"FedProx epoch", with_sgd_state(fedprox), {}});
  cases.push_back({"Scaffold epoch", epoch([&](Worker& w, const RoundContext& ctx, Rng& rng) {
                     w.scaffold_state.c.setZero(model.num_params());
                     LocalExchange<S> ex{as_span(std::as_const(w.control)), {}};
                     (void)scaffold.train(model, w.params, w.shard, w.scaffold_state, ctx, rng, ex);
                   }),
                   {}});
  run_interleaved(cases, timing.reps, timing.warmup);

  const double flops_per_step = 2.0 * static_cast<double>(batch) *
                                (2.0 * static_cast<double>(in * hidden) + 3.0 * static_cast<double>(hidden * classes));
  const double samples = static_cast<double>(threads) * static_cast<double>(n);
  const Case& floor = cases[0];
  const Case& plain = cases[1];
  const double floor_ratio = ratio_paired_median(plain.times, floor.times);
  const double sam_ratio = ratio_paired_median(cases[2].times, plain.times);
  const double fedspeed_ratio = ratio_paired_median(cases[3].times, plain.times);
  const bool pass = floor_ratio <= floor_target && sam_ratio <= sam_target && fedspeed_ratio <= sam_target;

  std::cout << "bench_local_training: MLP 784-" << hidden << "-10 (" << model.num_params() << " parameters), " << n
            << " samples per client, batch " << batch << " (" << steps << " steps per epoch), " << threads
            << " threads (one client each), " << timing.reps << " reps; " << cpu_model() << "\n";
  Json j = open_report("bench_local_training");
  j.value("samples_per_client", static_cast<long long>(n));
  j.value("hidden", static_cast<long long>(hidden));
  j.value("batch", static_cast<long long>(batch));
  j.value("steps_per_epoch", static_cast<long long>(steps));
  j.value("parameters", static_cast<long long>(model.num_params()));
  j.value("client_threads", threads);
  timing.write(j);
  j.value("gemm_flops_per_step", flops_per_step);
  j.end_object();
  j.begin_array("results");
  for (const Case& c : cases) {
    const Stats s = stats(c.times);
    const double rel_floor = ratio_paired_median(c.times, floor.times);
    const double rel_sgd = ratio_paired_median(c.times, plain.times);
    std::cout << "  " << std::left << std::setw(16) << c.name << std::right << std::fixed << std::setprecision(2)
              << " median " << std::setw(8) << 1e3 * s.median << " ms  " << std::setw(9) << std::setprecision(0)
              << samples / s.median << " samples/s  " << std::setprecision(2) << std::setw(6)
              << static_cast<double>(threads) * static_cast<double>(steps) * flops_per_step / s.median * 1e-9
              << " GEMM-GFLOP/s  x" << rel_floor << " floor  x" << rel_sgd << " LocalSgd\n";
    j.begin_object();
    j.value("name", c.name);
    j.value("min_s", s.min);
    j.value("median_s", s.median);
    j.value("samples_per_s_at_median", samples / s.median);
    j.value("ratio_to_floor_paired_median", rel_floor);
    j.value("ratio_to_local_sgd_paired_median", rel_sgd);
    write_times(j, c.times);
    j.end_object();
  }
  j.end_array();
  j.begin_object("target");
  j.value("metric",
          "median over repetitions of time ratios in the same repetition: LocalSgd epoch / GEMM floor, "
          "Sam epoch / LocalSgd epoch, FedSpeed epoch / LocalSgd epoch");
  j.value("local_sgd_over_floor", floor_ratio);
  j.value("local_sgd_over_floor_max", floor_target);
  j.value("sam_over_local_sgd", sam_ratio);
  j.value("fedspeed_over_local_sgd", fedspeed_ratio);
  j.value("two_gradient_max", sam_target);
  j.value("pass", pass);
  j.end_object();
  j.end_object();
  std::cout << std::setprecision(3) << "  target: LocalSgd/floor = " << floor_ratio << " <= " << floor_target
            << ", Sam/LocalSgd = " << sam_ratio << " and FedSpeed/LocalSgd = " << fedspeed_ratio << " <= " << sam_target
            << ": " << (pass ? "PASS" : "FAIL") << "\n";
  save_report(json_path, j);
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return fedpp::bench::guarded_main("bench_local_training", run, argc, argv); }
