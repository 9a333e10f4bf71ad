// fedpp_server: the server of a federation trained over TCP (issue 14). It listens on an address
// and port, waits for its N clients (fedpp_client --id 0..N-1), runs the rounds (sampling,
// deadline, quorum, over-selection), evaluates the global model on the Fashion-MNIST test set,
// prints one progress line per round and one line per connection event (stderr), checkpoints
// after every round, and finally says goodbye to the clients.
//
//   fedpp_server --clients 4 --rounds 5 --port 7000 --tls-cert server.pem --tls-key server.key
//                --tls-ca ca.pem --require-client-cert          (one command line)
//   fedpp_server --clients 4 --insecure-plaintext --checkpoint ckpt --resume   # continues a killed run
//
// scripts/cluster.sh starts a server and N clients on loopback; see also fedpp_client --help.

#include <fedpp/net.hpp>
#include <fedpp/runtime/callbacks.hpp>
#include <fedpp/runtime/checkpoint.hpp>
#include <fedpp/runtime/server.hpp>

#include <bit>
#include <chrono>
#include <cmath>
#include <optional>

#include "common.hpp"

namespace {

using namespace fedpp_net;
constexpr const char* program = "fedpp_server";

struct Flags {
  std::string address = "127.0.0.1";
  std::uint16_t port = 0;
  std::string port_file;
  std::size_t clients = 0;
  std::uint64_t rounds = 10;
  double fraction = 1.0;
  std::size_t clients_per_round = 0;
  long long deadline_ms = 0;
  std::size_t quorum = 1;
  double over_selection = 0.0;
  bool arrival_order = false;
  std::uint64_t seed = 1;
  std::string aggregator = "fedavg";
  fedpp::Index byzantine_f = 0;
  ServerOptimizerFlags sopt;
  CompressorFlags comp;
  ModelFlags model;
  std::string tls_cert, tls_key, tls_ca, tokens;
  bool require_client_cert = false, insecure_plaintext = false, allow_unauthenticated = false;
  std::string checkpoint;
  bool resume = false;
  std::string save_model, metrics;
  std::size_t wait_clients = 0;
  double wait_timeout = 120;
  std::uint64_t eval_every = 1;
  std::uint64_t print_every = 1;
  long long heartbeat_ms = 1000;
  long long idle_timeout_ms = 30000;
};

// ---- checks of flag combinations (exit 2) ----

fedpp::net::ServerSecurity make_security(const Flags& f) {
  fedpp::net::ServerSecurity sec;
  const bool tls = !f.tls_cert.empty() || !f.tls_key.empty();
  if (tls && (f.tls_cert.empty() || f.tls_key.empty()))
    usage_fail(f.tls_cert.empty() ? "--tls-cert" : "--tls-key", "is required with " +
                   std::string(f.tls_cert.empty() ? "--tls-key" : "--tls-cert"), "");
  if (tls && f.insecure_plaintext) usage_fail("--insecure-plaintext", "contradicts --tls-cert/--tls-key", "");
  if (!tls && !f.insecure_plaintext)
    usage_fail("--tls-cert/--tls-key", "are required unless --insecure-plaintext is given (traffic would be unencrypted)",
               "");
  if (f.require_client_cert && !tls) usage_fail("--require-client-cert", "needs TLS (--tls-cert and --tls-key)", "");
  if (f.require_client_cert && f.tls_ca.empty())
    usage_fail("--tls-ca", "is required with --require-client-cert (the CA that signs client certificates)", "");
  if (!f.tls_ca.empty() && !f.require_client_cert)
    usage_fail("--tls-ca", "is only used with --require-client-cert", f.tls_ca);
  require_file("--tls-cert", f.tls_cert);
  require_file("--tls-key", f.tls_key);
  require_file("--tls-ca", f.tls_ca);
  if (f.insecure_plaintext) sec = fedpp::net::ServerSecurity::insecure_plaintext();
  if (tls) {
    sec.mode = fedpp::net::ServerSecurity::Mode::tls;
    sec.cert_file = f.tls_cert;
    sec.key_file = f.tls_key;
    sec.ca_file = f.tls_ca;
    sec.require_client_certificate = f.require_client_cert;
    sec.allow_unauthenticated = f.allow_unauthenticated;
  }
  if (!f.tokens.empty()) {
    sec.tokens = read_tokens(f.tokens);
    if (sec.tokens.size() != f.clients)
      usage_fail("--tokens", "must hold one token per client (" + std::to_string(f.clients) + " lines), it has " +
                                 std::to_string(sec.tokens.size()),
                 f.tokens);
  }
  if (tls && !f.require_client_cert && sec.tokens.empty() && !f.allow_unauthenticated)
    usage_fail("--require-client-cert/--tokens", "one is required with TLS (or --allow-unauthenticated: anyone may join)",
               "");
  return sec;
}

void check_flags(const Flags& f) {
  if (f.fraction <= 0 || f.fraction > 1) usage_fail("--fraction", "must be in (0, 1]", f.fraction);
  if (f.clients_per_round > f.clients)
    usage_fail("--clients-per-round", "must be <= --clients " + std::to_string(f.clients), f.clients_per_round);
  if (f.quorum > f.clients) usage_fail("--quorum", "must be <= --clients " + std::to_string(f.clients), f.quorum);
  if (f.wait_clients > f.clients)
    usage_fail("--wait-clients", "must be <= --clients " + std::to_string(f.clients), f.wait_clients);
  if (f.resume && f.checkpoint.empty()) usage_fail("--resume", "needs --checkpoint DIR", "");
  if (f.idle_timeout_ms <= f.heartbeat_ms)
    usage_fail("--idle-timeout", "must exceed --heartbeat " + std::to_string(f.heartbeat_ms) + " ms", f.idle_timeout_ms);
}

// ---- the run ----

/// Every per-round action in one callback object (one Server::run instantiation): progress,
/// metrics (merged with the rows of the interrupted run when resuming), then the checkpoint.
template <typename ServerT>
class RoundActions {
 public:
  RoundActions(const ServerT& server, const Flags& f, std::uint64_t resumed_at, std::string tag)
      : server_(&server), progress_(std::cout, f.print_every), tag_(std::move(tag)) {
    if (!f.checkpoint.empty()) checkpoint_ = std::filesystem::path(f.checkpoint) / "server.ckpt";
    if (f.metrics.empty()) return;
    std::error_code ec;
    if (resumed_at > 0 && std::filesystem::exists(f.metrics, ec)) {
      // fedpp::MetricsWriter truncates its file: keep the rows of rounds 1..resumed_at, let the
      // writer fill a side file and append each of its rows to the real one.
      // Rows start with the round: "7,..." (CSV, after a header line) or {"round":7,...} (JSON lines).
      const bool json = f.metrics.ends_with(".jsonl") || f.metrics.ends_with(".json");
      std::ifstream in(f.metrics);
      std::string kept, line;
      for (bool first = true; std::getline(in, line); first = false) {
        if (first && !json) {
          kept += line + "\n";
          continue;
        }
        const std::size_t at = json ? line.find(':') + 1 : 0;
        unsigned long long round = 0;
        if (std::sscanf(line.c_str() + std::min(at, line.size()), "%llu", &round) == 1 && round <= resumed_at)
          kept += line + "\n";
      }
      fedpp::write_file_atomically(f.metrics, kept);
      side_ = f.metrics + ".resumed";
      metrics_.emplace(side_, json ? fedpp::MetricsWriter::Format::json_lines : fedpp::MetricsWriter::Format::csv);
      append_.open(f.metrics, std::ios::app);
      if (!append_) throw fedpp::DataError(std::string(program) + ": cannot append to " + f.metrics);
    } else {
      metrics_.emplace(f.metrics);
    }
  }

  ~RoundActions() {
    if (!side_.empty()) {
      std::error_code ec;
      metrics_.reset();
      std::filesystem::remove(side_, ec);
    }
  }

  template <typename T>
  void on_round_end(const fedpp::RoundStats& st, std::span<const T> params) {
    progress_.on_round_end(st, params);
    if (metrics_) {
      metrics_->on_round_end(st, params);
      if (append_.is_open()) {
        std::ifstream in(side_);
        std::string line, last;
        while (std::getline(in, line))
          if (!line.empty()) last = line;
        append_ << last << '\n' << std::flush;
      }
    }
    if (checkpoint_) fedpp::save_checkpoint(*server_, *checkpoint_, tag_);
    if (between_rounds_) between_rounds_();
  }

  /// Called after each round's actions (e.g. waiting for clients before the next round).
  void set_between_rounds(std::function<void()> f) { between_rounds_ = std::move(f); }

 private:
  const ServerT* server_;
  fedpp::ProgressPrinter progress_;
  std::optional<fedpp::MetricsWriter> metrics_;
  std::string side_;
  std::ofstream append_;
  std::optional<std::filesystem::path> checkpoint_;
  std::string tag_;
  std::function<void()> between_rounds_;
};

/// The deadline `seconds` from now (none for 0).
fedpp::Deadline after_seconds(double seconds) {
  if (seconds <= 0) return fedpp::no_deadline;
  return fedpp::RoundClock::now() + std::chrono::milliseconds(static_cast<long long>(seconds * 1000));
}

/// Writes the parameters as raw little-endian floats.
void save_model(const std::string& path, const fedpp::Vector<S>& w) {
  std::string bytes(static_cast<std::size_t>(w.size()) * sizeof(S), '\0');
  for (fedpp::Index i = 0; i < w.size(); ++i) {
    auto u = std::bit_cast<std::uint32_t>(w(i));
    for (std::size_t b = 0; b < 4; ++b)
      bytes[static_cast<std::size_t>(i) * 4 + b] = static_cast<char>((u >> (8 * b)) & 0xffu);
  }
  fedpp::write_file_atomically(path, bytes);
}

template <typename M>
int serve(const Flags& f, const M& model, const fedpp::FashionMnist<S>& data) {
  static_assert(sizeof(S) == 4);
  // Policies and options (a value the library refuses is a usage error: exit 2).
  fedpp::ServerOptions so;
  so.rounds = f.rounds;
  so.fraction = f.fraction;
  so.clients_per_round = f.clients_per_round;
  so.min_updates = f.quorum;
  so.seed = f.seed;
  so.eval_every = f.eval_every;
  so.over_selection = f.over_selection;
  so.round_timeout = std::chrono::milliseconds(f.deadline_ms);
  so.arrival_order = f.arrival_order;
  const std::string tag = "fedpp_server; model " + model_text(f.model, data.test->dim(), data.test->num_classes);

  using ServerT = fedpp::Server<S, fedpp::AnyAggregator<S>, ServerOptimizer, Compressor>;
  std::optional<ServerT> server;
  fedpp::net::TransportOptions to;
  try {
    fedpp::AnyAggregator<S> agg = [&] {
      for (const auto& [name, make] : aggregators<S>())
        if (name == f.aggregator) return make(f.byzantine_f);
      usage_fail("--aggregator", "must be " + join_names(names_of(aggregators<S>())), f.aggregator);
    }();
    std::optional<ServerOptimizer> sopt;
    for (const auto& [name, make] : server_optimizers())
      if (name == f.sopt.name) sopt.emplace(make(f.sopt));
    if (!sopt) usage_fail("--server-optimizer", "must be " + join_names(names_of(server_optimizers())), f.sopt.name);
    const Compressor comp = make_compressor(f.comp);
    server.emplace(initial_params(model, f.seed), so, std::move(agg), *sopt, comp);
    to.address = f.address;
    to.port = f.port;
    to.num_clients = f.clients;
    to.dim = static_cast<std::uint64_t>(model.num_params());
    to.codec = fedpp::net::probe_codec<S>(comp);
    to.security = make_security(f);
    to.heartbeat_interval = std::chrono::milliseconds(f.heartbeat_ms);
    to.timeouts.idle = std::chrono::milliseconds(f.idle_timeout_ms);
  } catch (const fedpp::InvalidArgument& e) {
    throw UsageError(e.what());
  }
  to.on_event = [](const fedpp::net::ConnectionEvent& e) {
    say(std::string(program) + ": " + fedpp::net::describe(e));
  };

  // Evaluation on the test set, in fixed chunks.
  const auto test = data.test;
  server->set_evaluator([&model, test](std::span<const S> p) {
    fedpp::EvalResult total;
    constexpr fedpp::Index chunk = 1000;
    for (fedpp::Index first = 0; first < test->size(); first += chunk) {
      const fedpp::Index count = std::min(chunk, test->size() - first);
      total += model.evaluate(p, test->features.middleCols(first, count),
                              std::span<const fedpp::Label>(test->labels)
                                  .subspan(static_cast<std::size_t>(first), static_cast<std::size_t>(count)));
    }
    return total;
  });

  // Resume.
  std::uint64_t resumed_at = 0;
  if (!f.checkpoint.empty()) {
    std::filesystem::create_directories(f.checkpoint);
    const auto path = std::filesystem::path(f.checkpoint) / "server.ckpt";
    if (stateful_rule(f.aggregator))
      say(std::string(program) + ": note: the checkpoint does not keep the state of --aggregator " + f.aggregator +
          " (fedpp::AnyAggregator does not forward it); a resumed run restarts that state");
    if (f.resume && std::filesystem::exists(path)) {
      try {
        fedpp::load_checkpoint(*server, path, tag);
      } catch (const fedpp::InvalidArgument& e) {
        throw UsageError(std::string("--resume: ") + e.what());
      }
      resumed_at = server->round();
      say(std::string(program) + ": resumed from " + path.string() + " after round " + std::to_string(resumed_at));
    } else if (f.resume) {
      say(std::string(program) + ": no checkpoint in " + f.checkpoint + " yet; starting at round 1");
    }
  }

  fedpp::net::TcpTransport<S> transport(to);
  std::printf("%s: listening on %s:%u; %zu clients, model %s (%lld parameters), %llu rounds, aggregator %s, "
              "server optimizer %s, compressor %s, seed %llu\n",
              program, f.address.c_str(), static_cast<unsigned>(transport.port()), f.clients,
              model_text(f.model, data.test->dim(), data.test->num_classes).c_str(),
              static_cast<long long>(model.num_params()), static_cast<unsigned long long>(f.rounds), f.aggregator.c_str(),
              f.sopt.name.c_str(), f.comp.name.c_str(), static_cast<unsigned long long>(f.seed));
  std::fflush(stdout);
  if (!f.port_file.empty()) fedpp::write_file_atomically(f.port_file, std::to_string(transport.port()) + "\n");

  const std::size_t want = f.wait_clients ? f.wait_clients : f.clients;
  if (!transport.wait_for_clients(want, after_seconds(f.wait_timeout))) {
    const std::size_t have = transport.connected_clients().size();
    transport.close(fedpp::net::GoodbyeReason::shutting_down, "the server gave up waiting for clients");
    std::ostringstream os;
    os << "only " << have << " of the " << want << " clients (--wait-clients) connected within --wait-timeout "
       << f.wait_timeout << " s";
    throw fedpp::Error(os.str());
  }
  say(std::string(program) + ": " + std::to_string(transport.connected_clients().size()) + " clients connected; " +
      (resumed_at ? "continuing at round " + std::to_string(resumed_at + 1) : std::string("starting")));

  fedpp::RunResult<S> result;
  try {
    RoundActions<ServerT> actions(*server, f, resumed_at, tag);
    // fedpp::Server samples among the clients available when a round starts and runs a round
    // with none at once; after clients were lost, wait until --quorum of them are back first.
    actions.set_between_rounds([&] {
      if (server->round() >= f.rounds || transport.available_clients().size() >= f.quorum) return;
      say(std::string(program) + ": " + std::to_string(transport.available_clients().size()) +
          " clients available, fewer than --quorum " + std::to_string(f.quorum) + "; waiting for more");
      if (!transport.wait_for_clients(f.quorum, after_seconds(f.wait_timeout))) {
        std::ostringstream os;
        os << "fewer than --quorum " << f.quorum << " clients available for --wait-timeout " << f.wait_timeout << " s";
        throw fedpp::Error(os.str());
      }
    });
    result = server->run(transport, actions);
  } catch (const std::exception& e) {
    transport.close(fedpp::net::GoodbyeReason::shutting_down, std::string("the server failed: ") + e.what());
    throw;
  }
  if (!f.save_model.empty()) save_model(f.save_model, result.params);
  std::printf("%s: final test accuracy %.2f%%  loss %.4f  after %llu rounds  upstream %s  downstream %s\n", program,
              100.0 * result.final_test.accuracy(), result.final_test.loss(),
              static_cast<unsigned long long>(server->round()),
              fedpp::detail::human_bytes(static_cast<double>(result.bytes_up())).c_str(),
              fedpp::detail::human_bytes(static_cast<double>(result.bytes_down())).c_str());
  std::fflush(stdout);
  transport.close(fedpp::net::GoodbyeReason::finished, "training finished");
  const auto c = transport.counters();
  say(std::string(program) + ": done; connections accepted " + std::to_string(c.connected) + ", rejected " +
      std::to_string(c.rejected) + ", closed with an error " + std::to_string(c.errors));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  CLI::App app{"The server of a federation trained over TCP (fedpp): Fashion-MNIST, N fedpp_client processes.",
               program};
  app.get_formatter()->column_width(34);
  app.footer(
      "Exit status: 0 done, 1 run-time error, 2 bad flags. Progress goes to stdout, connection events to stderr.\n"
      "Server and clients must agree on --model/--hidden and --compressor (with its parameters); a client\n"
      "with another model size or codec is rejected when it connects.");
  app.add_option("--address", f.address, "address to listen on")->capture_default_str();
  app.add_option("--port", f.port, "port to listen on (0: any free port, see --port-file)")->capture_default_str();
  app.add_option("--port-file", f.port_file, "write the port listened on to this file (once listening)");
  app.add_option("--clients", f.clients, "federation size N (client ids 0..N-1)")
      ->required()
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 20));
  app.add_option("--rounds", f.rounds, "rounds to run (a resumed run continues until this many)")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 40))
      ->capture_default_str();
  app.add_option("--fraction", f.fraction, "fraction of the clients sampled per round, in (0, 1]")->capture_default_str();
  app.add_option("--clients-per-round", f.clients_per_round, "sample exactly this many per round (overrides --fraction)")
      ->capture_default_str();
  app.add_option("--deadline", f.deadline_ms, "round timeout in ms (0: wait for every reply)")
      ->check(positive(true))
      ->capture_default_str();
  app.add_option("--quorum", f.quorum, "fewest valid updates that change the model (min_updates)")
      ->check(positive())
      ->capture_default_str();
  app.add_option("--over-selection", f.over_selection, "ask ceil(m (1 + x)) clients, keep the first m valid")
      ->check(positive(true))
      ->capture_default_str();
  app.add_flag("--arrival-order", f.arrival_order, "aggregate in arrival order (O(d) memory; not bit-reproducible)");
  app.add_option("--seed", f.seed, "run seed (sampling, initial model, every client stream)")->capture_default_str();
  app.add_option("--aggregator", f.aggregator, "aggregation rule: " + join_names(names_of(aggregators<S>())))
      ->check(CLI::IsMember(names_of(aggregators<S>())))
      ->capture_default_str();
  app.add_option("--byzantine-f", f.byzantine_f, "number of Byzantine clients the robust rules assume (f)")
      ->check(positive(true))
      ->capture_default_str();
  app.add_option("--server-optimizer", f.sopt.name, "server step: " + join_names(names_of(server_optimizers())))
      ->check(CLI::IsMember(names_of(server_optimizers())))
      ->capture_default_str();
  app.add_option("--server-lr", f.sopt.lr, "server learning rate (0: 1 for sgd/fedavgm, 0.01 for fedadam/fedyogi/fedadagrad)")
      ->check(positive(true))
      ->capture_default_str();
  app.add_option("--server-momentum", f.sopt.momentum, "fedavgm momentum, in [0, 1)")
      ->check(CLI::Range(0.0, 0.999999))
      ->capture_default_str();
  app.add_option("--server-tau", f.sopt.tau, "fedadam/fedyogi/fedadagrad adaptivity tau, > 0")
      ->check(positive())
      ->capture_default_str();
  add_compressor_flags(app, f.comp);
  add_model_flags(app, f.model, false, true);
  app.add_option("--eval-every", f.eval_every, "evaluate on the test set every N rounds (and the last)")
      ->check(positive())
      ->capture_default_str();
  app.add_option("--print-every", f.print_every, "print progress every N rounds (and the last)")
      ->check(positive())
      ->capture_default_str();
  app.add_option("--tls-cert", f.tls_cert, "server certificate chain (PEM): enables TLS");
  app.add_option("--tls-key", f.tls_key, "server private key (PEM)");
  app.add_option("--tls-ca", f.tls_ca, "CA that signs the client certificates (PEM), with --require-client-cert");
  app.add_flag("--require-client-cert", f.require_client_cert,
               "mutual TLS: client i must present a certificate with CN client-<i> from --tls-ca");
  app.add_option("--tokens", f.tokens, "per-client tokens, one per line (the first line is client 0's)");
  app.add_flag("--insecure-plaintext", f.insecure_plaintext, "no TLS (required explicitly when not using TLS)");
  app.add_flag("--allow-unauthenticated", f.allow_unauthenticated,
               "with TLS: accept clients without a certificate or token");
  app.add_option("--checkpoint", f.checkpoint, "save the server state to DIR/server.ckpt after every round (atomically)");
  app.add_flag("--resume", f.resume, "continue from DIR/server.ckpt when present (clients reconnect by themselves)");
  app.add_option("--save-model", f.save_model, "write the final parameters to FILE (raw little-endian float32)");
  app.add_option("--metrics", f.metrics, "write per-round metrics to FILE (CSV; JSON lines for .jsonl)");
  app.add_option("--wait-clients", f.wait_clients, "wait until N clients are connected before round 1 (0: all)")
      ->capture_default_str();
  app.add_option("--wait-timeout", f.wait_timeout,
                 "give up waiting for them (or, between rounds, for --quorum clients) after this many s (0: never)")
      ->check(positive(true))
      ->capture_default_str();
  app.add_option("--heartbeat", f.heartbeat_ms, "clients send a heartbeat every this many ms")
      ->check(CLI::Range(1LL, 3600000LL))
      ->capture_default_str();
  app.add_option("--idle-timeout", f.idle_timeout_ms, "close a connection silent for this many ms")
      ->check(CLI::Range(2LL, 86400000LL))
      ->capture_default_str();
  if (const int rc = parse(app, argc, argv); rc >= 0) return rc;

  try {
    check_flags(f);
    (void)make_security(f);  // flag errors before the data is loaded
    const auto data = load_data(f.model, false, true);
    return with_model(f.model, data.test->dim(), data.test->num_classes,
                      [&](const auto& model) { return serve(f, model, data); });
  } catch (const UsageError& e) {
    std::cerr << program << ": " << e.what() << " (see --help)\n";
    return exit_usage;
  } catch (const std::exception& e) {
    std::cerr << program << ": error: " << e.what() << "\n";
    return 1;
  }
}
