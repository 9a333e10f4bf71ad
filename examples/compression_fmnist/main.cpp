// Compressed federated training on Fashion-MNIST: dense updates against top-k with error
// feedback, QSGD with error feedback, and Deep Gradient Compression at 99.9 % sparsity.
//
// 20 clients with Dirichlet(0.5) shards train an MLP; every round all of them run K local SGD
// steps and send their compressed update. Prints, per method, the final and best test
// accuracy, the upstream bytes (exactly the encoded payloads) and the compression ratio
// against the dense run, as a markdown table (and CSV).
//
//   compression_fmnist                               # the run of docs/results.md
//   compression_fmnist --quick                       # a subset: a few minutes on 2 cores
//   compression_fmnist --methods dense,dgc --rounds 300 --dgc-momentum 0.5

#include <fedpp/compressors.hpp>
#include <fedpp/fedpp.hpp>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>

#include "cli.hpp"
#include "fmnist.hpp"

namespace {

using S = float;

struct Outcome {
  std::string method;
  double final_acc = 0, best_acc = 0, seconds = 0;
  std::uint64_t bytes_up = 0;
  std::uint64_t rounds = 0;
  std::size_t rejected = 0;
};

template <typename M>
int run_all(const examples::Cli& cli, const M& model, const fedpp::FashionMnist<S>& data) {
  const auto clients = static_cast<std::size_t>(cli.integer("clients"));
  const auto seed = static_cast<std::uint64_t>(cli.integer("seed"));
  const double alpha = cli.num("alpha");
  const auto shards = alpha > 0 ? fedpp::dirichlet_split(data.train, clients, alpha, seed)
                                : fedpp::iid_split(data.train, clients, seed);
  fedpp::SimulationOptions opts;
  opts.rounds = static_cast<std::uint64_t>(cli.integer("rounds"));
  opts.fraction = cli.num("fraction");
  opts.seed = seed;
  opts.threads = static_cast<int>(cli.integer("threads"));
  opts.eval_every = static_cast<std::uint64_t>(cli.integer("eval-every"));
  fedpp::Simulation sim(model, shards, data.test, opts);

  fedpp::LocalSgd::Options lo;
  lo.lr = cli.num("lr");
  lo.batch_size = cli.integer("batch");
  lo.steps = cli.integer("steps");
  lo.epochs = 1;
  const fedpp::LocalSgd local(lo);
  const fedpp::ServerSgd server({.lr = cli.num("server-lr")});
  const fedpp::ServerSgd dgc_server({.lr = cli.num("dgc-server-lr")});

  fedpp::DgcOptions dgc;
  dgc.density = cli.num("dgc-density");
  dgc.momentum = cli.num("dgc-momentum");
  dgc.warmup_rounds = static_cast<std::uint64_t>(cli.integer("dgc-warmup"));
  dgc.warmup = dgc.warmup_rounds > 0 ? fedpp::DgcWarmup::paper : fedpp::DgcWarmup::none;
  const double topk_density = cli.num("topk-density");
  const auto qsgd_levels = static_cast<std::uint32_t>(cli.integer("qsgd-levels"));
  const auto qsgd_bucket = static_cast<fedpp::Index>(cli.integer("qsgd-bucket"));
  const auto qsgd_ef_bucket = static_cast<fedpp::Index>(cli.integer("qsgd-ef-bucket"));

  std::printf("compression_fmnist: %zu clients (%.0f%% per round), %s, model %s (%lld parameters), %llu rounds of %lld "
              "local steps (batch %lld, lr %g), seed %llu\n",
              clients, 100.0 * opts.fraction, alpha > 0 ? ("Dirichlet(" + cli.str("alpha") + ")").c_str() : "IID",
              cli.str("model").c_str(), static_cast<long long>(model.num_params()),
              static_cast<unsigned long long>(opts.rounds), static_cast<long long>(lo.steps),
              static_cast<long long>(lo.batch_size), lo.lr, static_cast<unsigned long long>(seed));

  std::ofstream csv;
  if (!cli.str("csv").empty()) {
    csv.open(cli.str("csv"));
    if (!csv) throw fedpp::DataError("compression_fmnist: cannot write " + cli.str("csv"));
    csv << "method,round,test_accuracy,bytes_up_cumulative\n";
  }

  std::vector<Outcome> outcomes;
  for (const std::string& method : cli.strings("methods")) {
    fedpp::RunResult<S> r;
    const auto t0 = std::chrono::steady_clock::now();
    if (method == "dense") {
      r = sim.run(local, server, fedpp::Identity());
    } else if (method == "topk") {
      r = sim.run(local, server, fedpp::TopK::density(dgc.density));
    } else if (method == "topk-ef") {
      r = sim.run(local, server, fedpp::ErrorFeedback<fedpp::TopK>(fedpp::TopK::density(topk_density)));
    } else if (method == "qsgd") {
      r = sim.run(local, server, fedpp::Qsgd(qsgd_levels, qsgd_bucket));
    } else if (method == "qsgd-ef") {
      // Error feedback needs a contractive compressor (E|C(x) - x|^2 < |x|^2): QSGD's variance
      // factor min(b/s^2, sqrt(b)/s) must be < 1, hence the smaller bucket b.
      r = sim.run(local, server, fedpp::ErrorFeedback<fedpp::Qsgd>(fedpp::Qsgd(qsgd_levels, qsgd_ef_bucket)));
    } else if (method == "sign-ef") {
      r = sim.run(local, server, fedpp::ErrorFeedback<fedpp::ScaledSign>(fedpp::ScaledSign(model.layout())));
    } else if (method == "dgc") {
      r = sim.run(local, dgc_server, fedpp::Dgc(dgc, model.layout()));
    } else {
      throw fedpp::InvalidArgument("compression_fmnist: unknown method '" + method +
                                   "' (dense, topk, topk-ef, qsgd, qsgd-ef, sign-ef, dgc)");
    }
    Outcome o;
    o.method = method;
    o.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    o.final_acc = r.final_accuracy();
    o.bytes_up = r.bytes_up();
    o.rounds = r.history.size();
    std::uint64_t cumulative = 0;
    for (const auto& h : r.history) {
      cumulative += h.bytes_up;
      o.rejected += h.rejected();
      if (!std::isnan(h.test_accuracy)) {
        o.best_acc = std::max(o.best_acc, h.test_accuracy);
        if (csv) csv << method << ',' << h.round + 1 << ',' << h.test_accuracy << ',' << cumulative << '\n';
      }
    }
    std::printf("  %-8s final %6.2f%%  best %6.2f%%  upstream %s  %6.1fs\n", method.c_str(), 100 * o.final_acc,
                100 * o.best_acc, fedpp::detail::human_bytes(static_cast<double>(o.bytes_up)).c_str(), o.seconds);
    std::fflush(stdout);
    outcomes.push_back(o);
  }

  // Markdown summary: the ratio is against the dense run when there is one.
  double dense_bytes = 0, dense_acc = 0;
  for (const auto& o : outcomes)
    if (o.method == "dense") dense_bytes = static_cast<double>(o.bytes_up), dense_acc = o.final_acc;
  std::ostringstream md;
  md << "| method | final accuracy | best accuracy | upstream bytes | bytes per client-round | vs dense |\n"
        "|---|---|---|---|---|---|\n";
  const double client_rounds = static_cast<double>(opts.rounds) *
                               std::max(1.0, std::round(opts.fraction * static_cast<double>(clients)));
  for (const auto& o : outcomes) {
    char buf[320];
    const double b = static_cast<double>(o.bytes_up);
    std::string ratio = "—";
    if (dense_bytes > 0 && o.method != "dense") {
      char rb[96];
      std::snprintf(rb, sizeof rb, "%.0f× fewer bytes, %+.2f points", dense_bytes / b, 100 * (o.final_acc - dense_acc));
      ratio = rb;
    }
    std::snprintf(buf, sizeof buf, "| %s | %.2f %% | %.2f %% | %s | %.0f | %s |\n", o.method.c_str(), 100 * o.final_acc,
                  100 * o.best_acc, fedpp::detail::human_bytes(b).c_str(), b / client_rounds, ratio.c_str());
    md << buf;
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
  examples::Cli cli("compression_fmnist", "Compressed updates on Fashion-MNIST: dense, top-k + EF, QSGD + EF, DGC (fedpp).");
  cli.flag("quick", "20 000 training / 2 000 test images, 60 rounds (a few minutes on 2 cores)")
      .option("methods", "dense,topk,topk-ef,qsgd,qsgd-ef,dgc", "comma-separated: dense, topk, topk-ef, qsgd, qsgd-ef, sign-ef, dgc")
      .option("model", "mlp", "mlp | softmax")
      .option("hidden", "200", "MLP hidden layer sizes, comma-separated")
      .option("clients", "20", "number of clients")
      .option("fraction", "1", "fraction of clients per round")
      .option("alpha", "0.5", "Dirichlet concentration of the shards (0 = IID)")
      .option("rounds", "200", "communication rounds")
      .option("steps", "10", "local SGD steps per round")
      .option("batch", "32", "local mini-batch size")
      .option("lr", "0.05", "local learning rate")
      .option("server-lr", "1", "server learning rate (dense, top-k, QSGD, sign)")
      .option("dgc-server-lr", "1", "server learning rate of the DGC run")
      .option("dgc-density", "0.001", "DGC target density (also the density of plain top-k)")
      .option("dgc-momentum", "0.5", "DGC momentum-correction coefficient m (the paper's 0.9 overshoots here)")
      .option("dgc-warmup", "5", "DGC warm-up rounds (paper schedule; 0 = none)")
      .option("topk-density", "0.01", "density of top-k with error feedback")
      .option("qsgd-levels", "8", "QSGD quantisation levels s")
      .option("qsgd-bucket", "512", "QSGD bucket size (plain QSGD)")
      .option("qsgd-ef-bucket", "32", "QSGD bucket size under error feedback (variance factor < 1)")
      .option("seed", "1", "seed of every random stream")
      .option("threads", "0", "worker threads (0 = all cores)")
      .option("eval-every", "10", "evaluate on the test set every N rounds (and the last)")
      .option("csv", "", "write the accuracy curve of every method to this CSV file")
      .option("markdown", "", "also write the summary table to this file");
  examples::data_options(cli).parse(argc, argv);
  try {
    if (cli.on("quick") && !cli.given("rounds")) cli.set("rounds", "60");
    const auto data = examples::load_fmnist<S>(cli, 20000, 2000);
    return examples::with_model(cli, data, "compression_fmnist",
                                [&](const auto& model) { return run_all(cli, model, data); });
  } catch (const fedpp::Error& e) {
    std::cerr << "compression_fmnist: " << e.what() << "\n";
    return 1;
  }
}
