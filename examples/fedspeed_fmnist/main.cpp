// Client drift on non-IID Fashion-MNIST: FedAvg, FedAvgM, FedAdam, FedProx, SCAFFOLD, FedDyn, FedSAM
// and FedSpeed with the same local work.
//
// 100 clients with Dirichlet(0.3) label priors (FL-Simulator's split, equal client sizes), 10 %
// sampled per round, each running K local steps of mini-batch SGD (FL-Simulator's defaults: lr 0.1,
// batch 50, weight decay 1e-3, clip 10, lr decay 0.998 per round, uniform server average). Prints
// the test accuracy per evaluated round as CSV (method,round,test_accuracy,train_loss) on stdout or
// to --csv, then a summary: rounds to reach each target accuracy (first evaluated round at or above
// it), final accuracy, mean accuracy over the last 10 % of the rounds, bytes and time per method.
//
//   fedspeed_fmnist                                  # the run of docs/results.md
//   fedspeed_fmnist --quick                          # all methods in under 3 minutes on 2 cores
//   fedspeed_fmnist --methods fedavg,fedspeed --rho 0.05 --prox 0.1 --rounds 500
//   fedspeed_fmnist --summarize run.csv --target 0.8,0.84   # the summary of an earlier run's CSV

#include <fedpp/fedpp.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "cli.hpp"
#include "fmnist.hpp"

namespace {

using S = float;

struct Outcome {
  std::string method;
  std::string setting;
  std::vector<std::pair<std::uint64_t, double>> curve;  // (1-based round, test accuracy) per evaluation
  double seconds = -1;                                   // < 0: unknown (--summarize)
  std::uint64_t bytes_up = 0, bytes_down = 0;

  /// First evaluated round at or above `target` (-1: never).
  [[nodiscard]] long long rounds_to(double target) const {
    for (const auto& [round, acc] : curve)
      if (acc >= target) return static_cast<long long>(round);
    return -1;
  }
  /// Mean accuracy of the evaluations in the last `fraction` of the rounds.
  [[nodiscard]] double tail_mean(double fraction) const {
    if (curve.empty()) return 0;
    const double from = static_cast<double>(curve.back().first) * (1.0 - fraction);
    double sum = 0;
    int count = 0;
    for (const auto& [round, acc] : curve)
      if (static_cast<double>(round) > from) sum += acc, ++count;
    return count ? sum / count : curve.back().second;
  }
  [[nodiscard]] double best() const {
    double b = 0;
    for (const auto& e : curve) b = std::max(b, e.second);
    return b;
  }
};

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

// The markdown summary of the outcomes at the given targets.
std::string summary(const std::vector<Outcome>& outcomes, const std::vector<double>& targets) {
  std::ostringstream md;
  md << "| method | setting |";
  for (double t : targets) md << " rounds to " << fmt("%.0f", 100 * t) << " % |";
  md << " final accuracy | mean of last 10 % | best | bytes up | bytes down | time |\n|---|---|";
  for (std::size_t k = 0; k < targets.size(); ++k) md << "---|";
  md << "---|---|---|---|---|---|\n";
  for (const auto& o : outcomes) {
    md << "| " << o.method << " | " << (o.setting.empty() ? "—" : o.setting) << " |";
    for (double t : targets) {
      const long long r = o.rounds_to(t);
      md << ' ' << (r < 0 ? std::string("not reached") : std::to_string(r)) << " |";
    }
    md << ' ' << fmt("%.2f %%", o.curve.empty() ? 0.0 : 100 * o.curve.back().second) << " | "
       << fmt("%.2f %%", 100 * o.tail_mean(0.1)) << " | " << fmt("%.2f %%", 100 * o.best()) << " | ";
    if (o.seconds < 0)
      md << "— | — | — |\n";
    else
      md << fedpp::detail::human_bytes(static_cast<double>(o.bytes_up)) << " | "
         << fedpp::detail::human_bytes(static_cast<double>(o.bytes_down)) << " | " << fmt("%.0f s", o.seconds) << " |\n";
  }
  return md.str();
}

std::vector<double> targets_of(const examples::Cli& cli) {
  std::vector<double> t;
  for (const auto& w : cli.strings("target")) t.push_back(std::stod(w));
  if (t.empty()) throw fedpp::InvalidArgument("fedspeed_fmnist: --target needs at least one accuracy");
  return t;
}

void write_markdown(const examples::Cli& cli, const std::string& md) {
  std::cerr << '\n' << md;
  if (cli.str("markdown").empty()) return;
  std::ofstream out(cli.str("markdown"));
  if (!out) throw fedpp::DataError("fedspeed_fmnist: cannot write " + cli.str("markdown"));
  out << md;
}

// --summarize: rebuilds the outcomes (curves only) from a CSV this program wrote.
int summarize(const examples::Cli& cli) {
  std::ifstream in(cli.str("summarize"));
  if (!in) throw fedpp::DataError("fedspeed_fmnist: cannot read " + cli.str("summarize"));
  std::vector<Outcome> outcomes;
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::stringstream ss(line);
    std::string method, round, acc;
    if (!std::getline(ss, method, ',') || !std::getline(ss, round, ',') || !std::getline(ss, acc, ',')) continue;
    if (outcomes.empty() || outcomes.back().method != method) outcomes.push_back({method, "", {}, -1, 0, 0});
    outcomes.back().curve.emplace_back(std::stoull(round), std::stod(acc));
  }
  write_markdown(cli, summary(outcomes, targets_of(cli)));
  return 0;
}

template <typename M>
int run_all(const examples::Cli& cli, const M& model, const fedpp::FashionMnist<S>& data) {
  const auto clients = static_cast<fedpp::Index>(cli.integer("clients"));
  const auto seed = static_cast<std::uint64_t>(cli.integer("seed"));
  const double alpha = cli.num("alpha");
  const std::string partition = cli.str("partition");
  std::vector<fedpp::DatasetView<S>> shards;
  if (alpha <= 0) shards = fedpp::iid_split(data.train, clients, seed);
  else if (partition == "prior") shards = fedpp::dirichlet_prior_split(data.train, clients, alpha, seed);
  else if (partition == "dirichlet") shards = fedpp::dirichlet_split(data.train, clients, alpha, seed);
  else throw fedpp::InvalidArgument("fedspeed_fmnist: --partition must be prior or dirichlet, got " + partition);

  fedpp::SimulationOptions opts;
  opts.rounds = static_cast<std::uint64_t>(cli.integer("rounds"));
  opts.fraction = cli.num("fraction");
  opts.seed = seed;
  opts.threads = static_cast<int>(cli.integer("threads"));
  opts.eval_every = static_cast<std::uint64_t>(cli.integer("eval-every"));
  fedpp::Simulation sim(model, shards, data.test, opts);

  // The local work every method shares.
  fedpp::LocalSgdOptions lo;
  lo.lr = cli.num("lr");
  lo.steps = cli.integer("steps");
  lo.epochs = static_cast<int>(cli.integer("epochs"));
  lo.batch_size = cli.integer("batch");
  lo.weight_decay = cli.num("wd");
  lo.clip_norm = cli.num("clip");
  lo.lr_decay = cli.num("lr-decay");
  const double prox = cli.num("prox");
  const double rho = cli.num("rho");
  const std::vector<double> targets = targets_of(cli);
  // FL-Simulator averages the participants' models uniformly; with equal client sizes (the prior
  // split) this is also the sample-weighted mean.
  const fedpp::WeightedMean mean(fedpp::Weighting::uniform);
  fedpp::FedSpeedOptions fs{.prox = prox, .rho = rho, .alpha = cli.num("fedspeed-alpha"), .sgd = lo};
  if (cli.str("form") == "paper") fs.form = fedpp::FedSpeedForm::paper;
  else if (cli.str("form") != "reference")
    throw fedpp::InvalidArgument("fedspeed_fmnist: --form must be reference or paper, got " + cli.str("form"));

  const std::string local_work = lo.steps > 0 ? std::to_string(lo.steps) + " local steps"
                                              : std::to_string(lo.epochs) + " local epochs";
  std::fprintf(stderr,
               "fedspeed_fmnist: %lld clients (%.0f%% per round), %s, model %s (%lld parameters), %llu rounds of %s "
               "(batch %lld, lr %g, decay %g, wd %g, clip %g), seed %llu\n",
               static_cast<long long>(clients), 100.0 * opts.fraction,
               alpha > 0 ? (partition + " Dirichlet(" + cli.str("alpha") + ")").c_str() : "IID", cli.str("model").c_str(),
               static_cast<long long>(model.num_params()), static_cast<unsigned long long>(opts.rounds),
               local_work.c_str(), static_cast<long long>(lo.batch_size), lo.lr, lo.lr_decay, lo.weight_decay,
               lo.clip_norm, static_cast<unsigned long long>(seed));

  std::ofstream csv_file;
  if (!cli.str("csv").empty()) {
    csv_file.open(cli.str("csv"));
    if (!csv_file) throw fedpp::DataError("fedspeed_fmnist: cannot write " + cli.str("csv"));
  }
  std::ostream& csv = csv_file.is_open() ? static_cast<std::ostream&>(csv_file) : std::cout;
  csv << "method,round,test_accuracy,train_loss\n";

  std::vector<Outcome> outcomes;
  for (const std::string& method : cli.strings("methods")) {
    fedpp::RunResult<S> r;
    Outcome o;
    o.method = method;
    const auto t0 = std::chrono::steady_clock::now();
    if (method == "fedavg") {
      o.setting = "server lr " + cli.str("server-lr");
      r = sim.run(fedpp::LocalSgd(lo), mean, fedpp::ServerSgd({.lr = cli.num("server-lr")}));
    } else if (method == "fedavgm") {
      o.setting = "server lr " + cli.str("fedavgm-lr") + ", momentum " + cli.str("fedavgm-momentum");
      r = sim.run(fedpp::LocalSgd(lo), mean,
                  fedpp::ServerMomentum({.lr = cli.num("fedavgm-lr"), .momentum = cli.num("fedavgm-momentum")}));
    } else if (method == "fedadam") {
      o.setting = "server lr " + cli.str("fedadam-lr") + ", tau " + cli.str("fedadam-tau");
      r = sim.run(fedpp::LocalSgd(lo), mean, fedpp::FedAdam({.lr = cli.num("fedadam-lr"), .tau = cli.num("fedadam-tau")}));
    } else if (method == "fedprox") {
      o.setting = "mu " + cli.str("prox");
      r = sim.run(fedpp::FedProx({.mu = prox, .sgd = lo}), mean);
    } else if (method == "scaffold") {
      o.setting = "option II, server lr 1";
      r = sim.run(fedpp::Scaffold({.sgd = lo}), mean);  // ScaffoldServer by default
    } else if (method == "feddyn") {
      o.setting = "alpha " + cli.str("prox");
      r = sim.run(fedpp::FedDyn({.alpha = prox, .sgd = lo}), mean);  // FedDynServer by default
    } else if (method == "fedsam") {
      o.setting = "rho " + cli.str("rho");
      r = sim.run(fedpp::Sam({.rho = rho, .sgd = lo}), mean);
    } else if (method == "fedspeed") {
      o.setting = "prox " + cli.str("prox") + ", rho " + cli.str("rho") + ", alpha " + cli.str("fedspeed-alpha") +
                  ", " + cli.str("form") + " form";
      r = sim.run(fedpp::FedSpeed(fs), mean);  // the server step of the form by default
    } else {
      throw fedpp::InvalidArgument("fedspeed_fmnist: unknown method '" + method +
                                   "' (fedavg, fedavgm, fedadam, fedprox, scaffold, feddyn, fedsam, fedspeed)");
    }
    o.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    o.bytes_up = r.bytes_up();
    o.bytes_down = r.bytes_down();
    for (const auto& h : r.history) {
      if (std::isnan(h.test_accuracy)) continue;
      csv << method << ',' << h.round + 1 << ',' << h.test_accuracy << ',' << h.train_loss << '\n';
      o.curve.emplace_back(h.round + 1, h.test_accuracy);
    }
    csv.flush();
    const long long first = o.rounds_to(targets.front());
    std::fprintf(stderr, "  %-9s final %6.2f%%  best %6.2f%%  %.0f%% at %s  %6.1fs\n", method.c_str(),
                 100 * r.final_accuracy(), 100 * o.best(), 100 * targets.front(),
                 first < 0 ? "never" : std::to_string(first).c_str(), o.seconds);
    outcomes.push_back(o);
  }
  write_markdown(cli, summary(outcomes, targets));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  examples::Cli cli("fedspeed_fmnist",
                    "Client drift on non-IID Fashion-MNIST: FedAvg(M), FedAdam, FedProx, SCAFFOLD, FedDyn, FedSAM, FedSpeed "
                    "(fedpp).");
  cli.flag("quick", "20 000 training / 2 000 test images, 60 rounds of 20 steps (all methods in < 3 min on 2 cores)")
      .option("methods", "fedavg,fedavgm,fedadam,fedprox,scaffold,feddyn,fedsam,fedspeed",
              "comma-separated: fedavg, fedavgm, fedadam, fedprox, scaffold, feddyn, fedsam, fedspeed")
      .option("model", "mlp", "mlp | softmax")
      .option("hidden", "200", "MLP hidden layer sizes, comma-separated")
      .option("clients", "100", "number of clients")
      .option("fraction", "0.1", "fraction of clients per round")
      .option("partition", "prior", "prior (FL-Simulator: Dirichlet label prior, equal sizes) | dirichlet (per-class split)")
      .option("alpha", "0.3", "Dirichlet concentration (0 = IID)")
      .option("rounds", "300", "communication rounds")
      .option("steps", "50", "local SGD steps K per round (0: use --epochs)")
      .option("epochs", "1", "local epochs when --steps is 0")
      .option("batch", "50", "local mini-batch size")
      .option("lr", "0.1", "local learning rate")
      .option("lr-decay", "0.998", "local learning-rate decay per round")
      .option("wd", "0.001", "weight decay")
      .option("clip", "10", "clip the local gradient to this L2 norm (0 = off)")
      .option("prox", "0.1", "FedProx mu, FedDyn alpha and FedSpeed's prox coefficient (FL-Simulator's lamb)")
      .option("rho", "0.1", "SAM radius of FedSAM and FedSpeed")
      .option("fedspeed-alpha", "1", "FedSpeed's quasi-gradient mix (1 = the reference code)")
      .option("form", "reference", "FedSpeed form: reference (FL-Simulator) | paper (Algorithm 1)")
      .option("server-lr", "1", "FedAvg's server learning rate")
      .option("fedavgm-lr", "1", "FedAvgM's server learning rate")
      .option("fedavgm-momentum", "0.5", "FedAvgM's server momentum")
      .option("fedadam-lr", "0.003", "FedAdam's server learning rate")
      .option("fedadam-tau", "0.001", "FedAdam's adaptivity tau")
      .option("target", "0.8,0.84", "comma-separated test accuracies whose first crossing is reported")
      .option("summarize", "", "print the summary of an earlier run's --csv file (no training)")
      .option("seed", "1", "seed of every random stream")
      .option("threads", "0", "worker threads (0 = all cores)")
      .option("eval-every", "2", "evaluate on the test set every N rounds (and the last)")
      .option("csv", "", "write the accuracy curves to this file instead of stdout")
      .option("markdown", "", "also write the summary table to this file");
  examples::data_options(cli).parse(argc, argv);
  try {
    if (!cli.str("summarize").empty()) return summarize(cli);
    if (cli.on("quick")) {
      if (!cli.given("rounds")) cli.set("rounds", "60");
      if (!cli.given("steps")) cli.set("steps", "20");
      if (!cli.given("eval-every")) cli.set("eval-every", "5");
      if (!cli.given("target")) cli.set("target", "0.75,0.8");
    }
    const auto data = examples::load_fmnist<S>(cli, 20000, 2000);
    return examples::with_model(cli, data, "fedspeed_fmnist", [&](const auto& model) { return run_all(cli, model, data); });
  } catch (const fedpp::Error& e) {
    std::cerr << "fedspeed_fmnist: " << e.what() << "\n";
    return 1;
  }
}
