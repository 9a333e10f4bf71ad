// Robust aggregation under Byzantine attacks on Fashion-MNIST: every rule against every attack.
//
// 20 clients (4 Byzantine by default) train softmax regression or an MLP; each round all of them
// participate, the Byzantine ones' updates are rewritten by the attack (or, for label flipping,
// computed on relabelled data), and the server aggregates with the rule. Prints a markdown table
// of final test accuracy (rules x attacks) and writes one CSV row per run.
//
//   robust_fmnist --quick                      # softmax, a subset of the data: < 2 min on 2 cores
//   robust_fmnist --model mlp --rounds 40      # the fuller run of docs/results.md
//   robust_fmnist --rules median,krum --attacks none,alie

#include <fedpp/aggregators.hpp>
#include <fedpp/attacks.hpp>
#include <fedpp/fedpp.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <sstream>
#include <string>

#include "cli.hpp"
#include "fmnist.hpp"

namespace {

using S = float;

// The rules compared, by name; f is the declared number of Byzantine clients.
const std::vector<std::pair<std::string, std::function<fedpp::AnyAggregator<S>(fedpp::Index)>>>& rules() {
  using A = fedpp::AnyAggregator<S>;
  static const std::vector<std::pair<std::string, std::function<A(fedpp::Index)>>> r = {
      {"mean", [](fedpp::Index) { return A(fedpp::WeightedMean(fedpp::Weighting::uniform)); }},
      {"median", [](fedpp::Index) { return A(fedpp::CoordinateMedian()); }},
      {"trimmed-mean", [](fedpp::Index f) { return A(fedpp::TrimmedMean::count(f)); }},
      {"meamed", [](fedpp::Index f) { return A(fedpp::Meamed(f)); }},
      {"krum", [](fedpp::Index f) { return A(fedpp::Krum(f)); }},
      {"multi-krum", [](fedpp::Index f) { return A(fedpp::MultiKrum(f)); }},
      {"bulyan", [](fedpp::Index f) { return A(fedpp::Bulyan(f)); }},
      {"geometric-median", [](fedpp::Index) { return A(fedpp::GeometricMedian()); }},
      {"centered-clipping", [](fedpp::Index) { return A(fedpp::CenteredClipping(1.0, 3)); }},
      {"flag", [](fedpp::Index) { return A(fedpp::FlagAggregator(4)); }},
      {"nnm+trimmed-mean", [](fedpp::Index f) { return A(fedpp::Nnm<fedpp::TrimmedMean>(f, fedpp::TrimmedMean::count(f))); }},
      {"bucketing+median", [](fedpp::Index) { return A(fedpp::Bucketing<fedpp::CoordinateMedian>(2, 1)); }},
  };
  return r;
}

// The attacks compared, by name.
const std::vector<std::pair<std::string, std::function<fedpp::AnyAttack<S>()>>>& attacks() {
  using A = fedpp::AnyAttack<S>;
  static const std::vector<std::pair<std::string, std::function<A()>>> a = {
      {"none", [] { return A(fedpp::NoAttack()); }},
      {"sign-flip-x10", [] { return A(fedpp::SignFlip(10.0)); }},
      {"gaussian", [] { return A(fedpp::GaussianNoise(1.0)); }},
      {"alie", [] { return A(fedpp::Alie()); }},
      {"ipm", [] { return A(fedpp::Ipm(0.1)); }},
      {"label-flip", [] { return A(fedpp::LabelFlip()); }},
  };
  return a;
}

struct Cell {
  double final_acc = 0, best_acc = 0, seconds = 0;
  std::size_t rejected = 0;
  std::string error;
};

template <typename M>
int run_all(const examples::Cli& cli, M model, const std::shared_ptr<const fedpp::Dataset<S>>& train,
            const std::shared_ptr<const fedpp::Dataset<S>>& test) {
  const auto clients = static_cast<std::size_t>(cli.integer("clients"));
  const auto f = static_cast<fedpp::Index>(cli.integer("byzantine"));
  const auto seed = static_cast<std::uint64_t>(cli.integer("seed"));
  const double alpha = cli.num("alpha");
  auto shards = alpha > 0 ? fedpp::dirichlet_split(train, static_cast<fedpp::Index>(clients), alpha, seed)
                          : fedpp::iid_split(train, static_cast<fedpp::Index>(clients), seed);
  fedpp::SimulationOptions opts;
  opts.rounds = static_cast<std::uint64_t>(cli.integer("rounds"));
  opts.fraction = 1.0;
  opts.seed = seed;
  opts.threads = static_cast<int>(cli.integer("threads"));
  opts.byzantine = static_cast<std::size_t>(f);
  opts.eval_every = static_cast<std::uint64_t>(cli.integer("eval-every"));
  fedpp::Simulation sim(model, shards, test, opts);
  const fedpp::LocalSgd opt({.lr = cli.num("lr"), .epochs = static_cast<int>(cli.integer("epochs")),
                             .batch_size = cli.integer("batch")});

  std::vector<std::string> rule_names, attack_names;
  for (const auto& [name, make] : rules()) rule_names.push_back(name);
  for (const auto& [name, make] : attacks()) attack_names.push_back(name);
  if (cli.str("rules") != "all") rule_names = cli.strings("rules");
  if (cli.str("attacks") != "all") attack_names = cli.strings("attacks");
  auto find_rule = [](const std::string& n) {
    for (const auto& [name, make] : rules())
      if (name == n) return make;
    throw fedpp::InvalidArgument("robust_fmnist: unknown rule '" + n + "' (see --help)");
  };
  auto find_attack = [](const std::string& n) {
    for (const auto& [name, make] : attacks())
      if (name == n) return make;
    throw fedpp::InvalidArgument("robust_fmnist: unknown attack '" + n + "' (see --help)");
  };

  std::printf("robust_fmnist: %zu clients (%lld Byzantine: ids", clients, static_cast<long long>(f));
  for (auto id : sim.byzantine_ids()) std::printf(" %u", id);
  std::printf("), %s, model %s (%lld parameters), %llu rounds, %zu train / %lld test samples, seed %llu\n",
              alpha > 0 ? ("Dirichlet(" + cli.str("alpha") + ")").c_str() : "IID", cli.str("model").c_str(),
              static_cast<long long>(model.num_params()), static_cast<unsigned long long>(opts.rounds),
              static_cast<std::size_t>(train->size()), static_cast<long long>(test->size()),
              static_cast<unsigned long long>(seed));

  std::ofstream csv;
  if (!cli.str("csv").empty()) {
    csv.open(cli.str("csv"));
    if (!csv) throw fedpp::DataError("robust_fmnist: cannot write " + cli.str("csv"));
    csv << "rule,attack,final_accuracy,best_accuracy,rejected,seconds,error\n";
  }
  std::map<std::pair<std::string, std::string>, Cell> table;
  for (const auto& rn : rule_names) {
    const auto make_rule = find_rule(rn);
    for (const auto& an : attack_names) {
      const auto make_attack = find_attack(an);
      Cell cell;
      const auto t0 = std::chrono::steady_clock::now();
      try {
        const auto r = sim.run(make_rule(f), make_attack(), opt);
        cell.final_acc = r.final_accuracy();
        for (const auto& h : r.history) {
          if (!std::isnan(h.test_accuracy)) cell.best_acc = std::max(cell.best_acc, h.test_accuracy);
          cell.rejected += h.rejected();
        }
      } catch (const fedpp::Error& e) {
        cell.error = e.what();
      }
      cell.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (cell.error.empty())
        std::printf("  %-18s %-14s final %6.2f%%  best %6.2f%%  %6.1fs\n", rn.c_str(), an.c_str(), 100 * cell.final_acc,
                    100 * cell.best_acc, cell.seconds);
      else
        std::printf("  %-18s %-14s error: %s\n", rn.c_str(), an.c_str(), cell.error.c_str());
      std::fflush(stdout);
      if (csv) {
        std::string err = cell.error;
        for (auto& c : err)
          if (c == ',' || c == '\n') c = ';';
        csv << rn << ',' << an << ',' << cell.final_acc << ',' << cell.best_acc << ',' << cell.rejected << ','
            << cell.seconds << ',' << err << '\n';
      }
      table[{rn, an}] = cell;
    }
  }

  // Markdown table: final test accuracy in percent.
  std::ostringstream md;
  md << "| rule |";
  for (const auto& an : attack_names) md << ' ' << an << " |";
  md << "\n|---|";
  for (std::size_t i = 0; i < attack_names.size(); ++i) md << "---|";
  md << '\n';
  for (const auto& rn : rule_names) {
    md << "| " << rn << " |";
    for (const auto& an : attack_names) {
      const Cell& c = table[{rn, an}];
      char buf[32];
      if (c.error.empty())
        std::snprintf(buf, sizeof buf, " %.1f |", 100 * c.final_acc);
      else
        std::snprintf(buf, sizeof buf, " error |");
      md << buf;
    }
    md << '\n';
  }
  std::cout << '\n' << md.str();
  if (!cli.str("markdown").empty()) {
    std::ofstream out(cli.str("markdown"));
    out << md.str();
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  examples::Cli cli("robust_fmnist", "Robust aggregation rules against Byzantine attacks on Fashion-MNIST (fedpp).");
  cli.flag("quick", "softmax regression on 12000 training / 2000 test images, 15 rounds (< 2 min on 2 cores)")
      .option("model", "softmax", "softmax | mlp")
      .option("hidden", "200", "MLP hidden layer sizes, comma-separated")
      .option("clients", "20", "number of clients (all participate every round)")
      .option("byzantine", "4", "number of Byzantine clients (also the f given to the rules)")
      .option("alpha", "0", "Dirichlet concentration for non-IID shards (0 = IID)")
      .option("rounds", "30", "communication rounds")
      .option("lr", "0.05", "local learning rate")
      .option("epochs", "1", "local epochs per round")
      .option("batch", "32", "local mini-batch size")
      .option("seed", "1", "seed of every random stream")
      .option("threads", "0", "worker threads (0 = all cores)")
      .option("eval-every", "5", "evaluate on the test set every N rounds (and the last)")
      .option("rules", "all", "comma-separated rules, or all")
      .option("attacks", "all", "comma-separated attacks, or all")
      .option("csv", "", "write one CSV row per (rule, attack) run to this file")
      .option("markdown", "", "also write the markdown table to this file");
  examples::data_options(cli).parse(argc, argv);
  try {
    if (cli.on("quick")) {
      if (!cli.given("rounds")) cli.set("rounds", "15");
      if (!cli.given("model")) cli.set("model", "softmax");
    }
    const auto data = examples::load_fmnist<S>(cli, 12000, 2000);
    return examples::with_model(cli, data, "robust_fmnist",
                                [&](const auto& model) { return run_all(cli, model, data.train, data.test); });
  } catch (const fedpp::Error& e) {
    std::cerr << "robust_fmnist: " << e.what() << "\n";
    return 1;
  }
}
