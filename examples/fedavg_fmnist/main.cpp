// FedAvg on Fashion-MNIST: many simulated clients, a fraction sampled per round, IID or
// Dirichlet non-IID shards, softmax regression or an MLP. Prints one line per round and
// writes per-round metrics (CSV, or JSON lines for a .jsonl file).
//
//   fedavg_fmnist                                  # 100 clients, 10%, Dirichlet(0.5), MLP 784-200-10
//   fedavg_fmnist --partition iid --rounds 200     # the IID run of docs/results.md
//   fedavg_fmnist --centralized 20                 # the centralized baseline (one client, all data)

#include <fedpp/fedpp.hpp>

#include <cstdio>
#include <iostream>
#include <string>

#include "cli.hpp"
#include "fmnist.hpp"

namespace {

// Builds the shards for the chosen partition.
std::vector<fedpp::DatasetView<float>> make_shards(const examples::Cli& cli,
                                                   const std::shared_ptr<const fedpp::Dataset<float>>& train) {
  const auto clients = static_cast<std::size_t>(cli.integer("clients"));
  const auto seed = static_cast<std::uint64_t>(cli.integer("seed"));
  const std::string part = cli.on("iid") ? "iid" : cli.str("partition");
  if (part == "iid") return fedpp::iid_split(train, clients, seed);
  if (part == "dirichlet") return fedpp::dirichlet_split(train, clients, cli.num("alpha"), seed);
  if (part == "shards")
    return fedpp::shard_split(train, clients, static_cast<std::size_t>(cli.integer("shards-per-client")), seed);
  throw fedpp::InvalidArgument("fedavg_fmnist: --partition must be iid, dirichlet or shards, got " + part);
}

template <typename M>
int run(const examples::Cli& cli, M model, const fedpp::FashionMnist<float>& data) {
  const bool centralized = cli.integer("centralized") > 0;
  std::vector<fedpp::DatasetView<float>> shards;
  fedpp::SimulationOptions opts;
  opts.seed = static_cast<std::uint64_t>(cli.integer("seed"));
  opts.threads = static_cast<int>(cli.integer("threads"));
  opts.eval_every = static_cast<std::uint64_t>(cli.integer("eval-every"));
  fedpp::LocalSgd::Options lo;
  lo.lr = cli.num("lr");
  lo.batch_size = cli.integer("batch");
  lo.epochs = static_cast<int>(cli.integer("epochs"));
  lo.steps = cli.integer("steps");
  if (centralized) {
    // One client holding all the data, one epoch per round: plain mini-batch SGD.
    shards.push_back(fedpp::DatasetView<float>::all(data.train));
    opts.rounds = static_cast<std::uint64_t>(cli.integer("centralized"));
    opts.clients_per_round = 1;
    lo.epochs = 1;
    lo.steps = 0;
  } else {
    shards = make_shards(cli, data.train);
    opts.rounds = static_cast<std::uint64_t>(cli.integer("rounds"));
    opts.fraction = cli.num("fraction");
  }

  fedpp::Simulation sim(model, shards, data.test, opts);
  std::printf("fedavg_fmnist: %zu clients, %s, model %s (%lld parameters), %llu rounds, seed %llu\n", shards.size(),
              centralized ? "centralized" : (cli.on("iid") ? std::string("iid") : cli.str("partition")).c_str(),
              cli.str("model").c_str(), static_cast<long long>(model.num_params()),
              static_cast<unsigned long long>(opts.rounds), static_cast<unsigned long long>(opts.seed));

  fedpp::ProgressPrinter progress(std::cout, static_cast<std::uint64_t>(cli.integer("print-every")));
  fedpp::RunResult<float> result;
  if (!cli.str("metrics").empty()) {
    fedpp::MetricsWriter metrics(cli.str("metrics"));
    result = sim.run(fedpp::LocalSgd(lo), progress, metrics);
  } else {
    result = sim.run(fedpp::LocalSgd(lo), progress);
  }
  std::printf("final test accuracy %.2f%%  loss %.4f  upstream %s  downstream %s\n", 100.0 * result.final_accuracy(),
              result.final_test.loss(), fedpp::detail::human_bytes(static_cast<double>(result.bytes_up())).c_str(),
              fedpp::detail::human_bytes(static_cast<double>(result.bytes_down())).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  examples::Cli cli("fedavg_fmnist", "FedAvg on Fashion-MNIST with simulated clients (fedpp).");
  cli.option("rounds", "100", "communication rounds")
      .option("clients", "100", "number of clients")
      .option("fraction", "0.1", "fraction of clients sampled per round")
      .option("partition", "dirichlet", "iid | dirichlet | shards")
      .flag("iid", "shorthand for --partition iid")
      .option("alpha", "0.5", "Dirichlet concentration (per-class split over clients)")
      .option("shards-per-client", "2", "label shards per client (--partition shards)")
      .option("model", "mlp", "mlp | softmax")
      .option("hidden", "200", "MLP hidden layer sizes, comma-separated")
      .option("lr", "0.05", "local learning rate")
      .option("epochs", "5", "local epochs per round")
      .option("steps", "0", "local steps per round (overrides --epochs when > 0)")
      .option("batch", "50", "local mini-batch size")
      .option("seed", "1", "seed of every random stream")
      .option("threads", "0", "worker threads (0 = all cores)")
      .option("eval-every", "1", "evaluate on the test set every N rounds")
      .option("print-every", "1", "print progress every N rounds")
      .option("metrics", "", "write per-round metrics to this file (.csv or .jsonl)")
      .option("data-dir", "", "Fashion-MNIST directory (default: FEDPP_FASHION_MNIST_DIR or the Debian path)")
      .option("centralized", "0", "train centrally for N epochs instead (the baseline)");
  cli.parse(argc, argv);

  try {
    const auto data = cli.str("data-dir").empty() ? fedpp::load_fashion_mnist<float>()
                                                  : fedpp::load_fashion_mnist<float>(cli.str("data-dir"));
    return examples::with_model(cli, data, "fedavg_fmnist", [&](const auto& model) { return run(cli, model, data); });
  } catch (const fedpp::Error& e) {
    std::cerr << "fedavg_fmnist: " << e.what() << "\n";
    return 1;
  }
}
