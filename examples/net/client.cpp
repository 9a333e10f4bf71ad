// fedpp_client: one client of a federation trained over TCP (issue 14). Client i of N loads
// Fashion-MNIST, takes shard i of the split every client computes the same way (iid or Dirichlet,
// seeded), connects to fedpp_server and trains each round it is asked for, until the server says
// goodbye. It reconnects by itself when the connection is lost (the server restarted, say) and
// replays a round the server asks for again, so a resumed server ends bit-identical.
//
//   fedpp_client --port 7000 --id 2 --clients 4 --tls-ca ca.pem --tls-cert client-2.pem --tls-key client-2.key
//   fedpp_client --port 7000 --id 3 --clients 4 --insecure-plaintext --byzantine sign-flip --byzantine-scale 10
//
// Exit status: 0 after the server's goodbye, 1 run-time error (e.g. no server reachable within
// --give-up), 2 bad flags, 3 rejected by the server (wrong token or certificate, unknown id, other
// model size or codec).

#include <fedpp/net.hpp>
#include <fedpp/runtime/client.hpp>

#include <chrono>

#include "common.hpp"

namespace {

using namespace fedpp_net;
constexpr int exit_rejected = 3;

/// What a Byzantine client does to its own update (label flipping is done on the data instead).
enum class Attack { none, sign_flip, gaussian };

/// FedProx (mu = 0: plain local SGD, bit-identical to fedpp::LocalSgd), optionally followed by
/// an attack on the update: after training, the local parameters are rewritten so that
/// delta = local - global becomes -scale * delta (sign flip) or a N(0, std^2) vector (Gaussian,
/// drawn from the stream (seed, round, client, attack), so runs repeat exactly).
class LocalTraining {
 public:
  template <typename T>
  using State = fedpp::FedProx::State<T>;

  LocalTraining(fedpp::FedProx inner, Attack attack, double scale, double stddev)
      : inner_(std::move(inner)), attack_(attack), scale_(scale), stddev_(stddev) {}

  template <fedpp::Model M>
  [[nodiscard]] State<typename M::Scalar> make_state(const M& model) const {
    return inner_.make_state(model);
  }

  template <fedpp::Model M>
  fedpp::LocalResult train(const M& model, fedpp::Vector<typename M::Scalar>& params,
                           const fedpp::DatasetView<typename M::Scalar>& data, State<typename M::Scalar>& state,
                           const fedpp::RoundContext& ctx, fedpp::Rng& rng) const {
    using T = typename M::Scalar;
    if (attack_ == Attack::none) return inner_.train(model, params, data, state, ctx, rng);
    const fedpp::Vector<T> global = params;
    const fedpp::LocalResult r = inner_.train(model, params, data, state, ctx, rng);
    if (attack_ == Attack::sign_flip) {
      params = global - static_cast<T>(scale_) * (params - global);
    } else {
      fedpp::Rng noise = fedpp::make_rng(ctx.seed, ctx.round, ctx.client, fedpp::Purpose::attack);
      for (fedpp::Index k = 0; k < params.size(); ++k) params(k) = global(k) + static_cast<T>(stddev_ * noise.normal());
    }
    return r;
  }

 private:
  fedpp::FedProx inner_;
  Attack attack_;
  double scale_, stddev_;
};

struct Flags {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  std::uint32_t id = 0;
  std::size_t clients = 0;
  std::string partition = "iid";
  double alpha = 0.5;
  std::uint64_t seed = 1;
  std::string local_optimizer = "sgd";
  double lr = 0.05, mu = 0.01, momentum = 0.0;
  bool keep_momentum = false;
  int epochs = 1;
  fedpp::Index steps = 0, batch = 32;
  CompressorFlags comp;
  ModelFlags model;
  std::string tls_ca, server_name, tls_cert, tls_key, token, tokens;
  bool insecure_plaintext = false;
  std::string byzantine = "none";
  double byzantine_scale = 1.0, byzantine_std = 1.0;
  long long retry_max_ms = 2000;
  double give_up = 60;
  long long idle_timeout_ms = 30000;
};

std::string prefix(const Flags& f) { return "fedpp_client[" + std::to_string(f.id) + "]: "; }

fedpp::net::ClientSecurity make_security(const Flags& f) {
  fedpp::net::ClientSecurity sec;
  const bool tls = !f.tls_ca.empty();
  if (tls && f.insecure_plaintext) usage_fail("--insecure-plaintext", "contradicts --tls-ca", "");
  if (!tls && !f.insecure_plaintext)
    usage_fail("--tls-ca", "is required (the CA that signed the server's certificate) unless --insecure-plaintext is given",
               "");
  if (!tls && (!f.tls_cert.empty() || !f.tls_key.empty() || !f.server_name.empty()))
    usage_fail(!f.server_name.empty() ? "--server-name" : !f.tls_cert.empty() ? "--tls-cert" : "--tls-key",
               "needs TLS (--tls-ca)", "");
  if (f.tls_cert.empty() != f.tls_key.empty())
    usage_fail(f.tls_cert.empty() ? "--tls-cert" : "--tls-key",
               "is required with " + std::string(f.tls_cert.empty() ? "--tls-key" : "--tls-cert"), "");
  if (!f.token.empty() && !f.tokens.empty()) usage_fail("--token", "contradicts --tokens (give one)", "");
  require_file("--tls-ca", f.tls_ca);
  require_file("--tls-cert", f.tls_cert);
  require_file("--tls-key", f.tls_key);
  if (f.insecure_plaintext) sec = fedpp::net::ClientSecurity::insecure_plaintext();
  if (tls) {
    sec.mode = fedpp::net::ClientSecurity::Mode::tls;
    sec.ca_file = f.tls_ca;
    sec.server_name = f.server_name;
    sec.cert_file = f.tls_cert;
    sec.key_file = f.tls_key;
  }
  sec.token = f.token;
  if (!f.tokens.empty()) {
    const auto all = read_tokens(f.tokens);
    if (f.id >= all.size())
      usage_fail("--tokens", "has no line " + std::to_string(f.id + 1) + " for --id " + std::to_string(f.id), f.tokens);
    sec.token = all[f.id];
  }
  return sec;
}

template <typename M>
int train(const Flags& f, const fedpp::net::ClientSecurity& sec, const M& model, fedpp::DatasetView<S> shard,
          const LocalTraining& opt, const Compressor& comp) {
  using ClientT = fedpp::Client<M, LocalTraining, Compressor>;
  ClientT client(static_cast<fedpp::ClientId>(f.id), model, std::move(shard), opt, comp);
  fedpp::net::ClientOptions co;
  co.host = f.host;
  co.port = f.port;
  co.security = sec;
  co.retry_max = std::chrono::milliseconds(f.retry_max_ms);
  co.give_up_after = std::chrono::milliseconds(static_cast<long long>(f.give_up * 1000));
  co.timeouts.idle = std::chrono::milliseconds(f.idle_timeout_ms);
  co.software = "fedpp_client";
  const std::string pre = prefix(f);
  co.on_event = [pre](const fedpp::net::ConnectionEvent& e) { say(pre + fedpp::net::describe(e)); };
  fedpp::net::NetworkClient<ClientT> net(client, co);
  try {
    const fedpp::net::ClientRunStats st = net.run();
    say(pre + "done: " + std::to_string(st.rounds) + " rounds trained, " + std::to_string(st.connections) +
        " connection(s), " + std::to_string(st.replays) + " round(s) replayed, " + std::to_string(st.failures) +
        " failed; the server said: " + st.goodbye);
    return 0;
  } catch (const fedpp::net::RejectedError& e) {
    say(pre + "rejected: " + e.what());
    return exit_rejected;
  }
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  CLI::App app{"One client of a federation trained over TCP (fedpp): trains shard --id of --clients on Fashion-MNIST.",
               "fedpp_client"};
  app.get_formatter()->column_width(34);
  app.footer(
      "Exit status: 0 after the server's goodbye, 1 run-time error (no server within --give-up, ...), 2 bad flags,\n"
      "3 rejected by the server. Every client must use the same --clients, --partition, --alpha, --seed and\n"
      "--train-limit (they define the split), and the server's --model/--hidden and --compressor parameters.");
  app.add_option("--host", f.host, "server address or name")->capture_default_str();
  app.add_option("--port", f.port, "server port")->required()->check(CLI::Range(1, 65535));
  app.add_option("--id", f.id, "this client's id, in 0..N-1")->required();
  app.add_option("--clients", f.clients, "federation size N")
      ->required()
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 20));
  app.add_option("--partition", f.partition, "how the training set is split: iid or dirichlet")
      ->check(CLI::IsMember({"iid", "dirichlet"}))
      ->capture_default_str();
  app.add_option("--alpha", f.alpha, "Dirichlet concentration (--partition dirichlet), > 0")
      ->check(positive())
      ->capture_default_str();
  app.add_option("--seed", f.seed, "partition seed (the same on every client)")->capture_default_str();
  app.add_option("--local-optimizer", f.local_optimizer, "sgd or fedprox")
      ->check(CLI::IsMember({"sgd", "fedprox"}))
      ->capture_default_str();
  app.add_option("--lr", f.lr, "local learning rate, > 0")->check(positive())->capture_default_str();
  app.add_option("--epochs", f.epochs, "local epochs per round")->check(CLI::Range(1, 1000000))->capture_default_str();
  app.add_option("--steps", f.steps, "local steps per round instead of epochs (0: use --epochs)")
      ->check(positive(true))
      ->capture_default_str();
  app.add_option("--batch", f.batch, "local mini-batch size")->check(positive())->capture_default_str();
  app.add_option("--mu", f.mu, "fedprox proximal coefficient, >= 0")->check(positive(true))->capture_default_str();
  app.add_option("--momentum", f.momentum, "local heavy-ball momentum, in [0, 1)")
      ->check(CLI::Range(0.0, 0.999999))
      ->capture_default_str();
  app.add_flag("--keep-momentum", f.keep_momentum, "keep the momentum buffer across rounds (client state)");
  add_compressor_flags(app, f.comp);
  app.add_flag("--error-feedback", f.comp.error_feedback,
               "error feedback around the compressor (client state; the server needs no flag)");
  add_model_flags(app, f.model, true, false);
  app.add_option("--tls-ca", f.tls_ca, "CA that signed the server's certificate (PEM): enables TLS");
  app.add_option("--server-name", f.server_name, "name or address the server's certificate must carry (default: --host)");
  app.add_option("--tls-cert", f.tls_cert, "client certificate (PEM) for mutual TLS, CN client-<id>");
  app.add_option("--tls-key", f.tls_key, "client private key (PEM)");
  app.add_option("--token", f.token, "this client's token");
  app.add_option("--tokens", f.tokens, "a tokens file: this client's token is line --id + 1");
  app.add_flag("--insecure-plaintext", f.insecure_plaintext, "no TLS (required explicitly when not using TLS)");
  app.add_option("--byzantine", f.byzantine, "none, sign-flip, gaussian or label-flip (a Byzantine client)")
      ->check(CLI::IsMember({"none", "sign-flip", "gaussian", "label-flip"}))
      ->capture_default_str();
  app.add_option("--byzantine-scale", f.byzantine_scale, "sign-flip: send -scale * delta")
      ->check(positive())
      ->capture_default_str();
  app.add_option("--byzantine-std", f.byzantine_std, "gaussian: send N(0, std^2) noise")
      ->check(positive())
      ->capture_default_str();
  app.add_option("--retry-max", f.retry_max_ms, "longest wait between connection attempts, ms")
      ->check(CLI::Range(100LL, 3600000LL))
      ->capture_default_str();
  app.add_option("--give-up", f.give_up, "give up after this many seconds without a connection (0: never)")
      ->check(positive(true))
      ->capture_default_str();
  app.add_option("--idle-timeout", f.idle_timeout_ms, "reconnect when the server is silent this many ms")
      ->check(CLI::Range(2LL, 86400000LL))
      ->capture_default_str();
  if (const int rc = parse(app, argc, argv); rc >= 0) return rc;

  const std::string pre = prefix(f);
  try {
    if (f.id >= f.clients) usage_fail("--id", "must be < --clients " + std::to_string(f.clients), f.id);
    if (app.count("--mu") > 0 && f.local_optimizer != "fedprox")
      usage_fail("--mu", "is only used with --local-optimizer fedprox", f.mu);
    if (app.count("--alpha") > 0 && f.partition != "dirichlet")
      usage_fail("--alpha", "is only used with --partition dirichlet", f.alpha);
    const fedpp::net::ClientSecurity sec = make_security(f);
    std::optional<LocalTraining> opt;
    std::optional<Compressor> comp;
    try {
      fedpp::FedProxOptions po;
      po.mu = f.local_optimizer == "fedprox" ? f.mu : 0.0;
      po.sgd.lr = f.lr;
      po.sgd.epochs = f.epochs;
      po.sgd.steps = f.steps;
      po.sgd.batch_size = f.batch;
      po.sgd.momentum = f.momentum;
      po.sgd.reset_momentum_each_round = !f.keep_momentum;
      const Attack attack = f.byzantine == "sign-flip" ? Attack::sign_flip
                            : f.byzantine == "gaussian" ? Attack::gaussian
                                                        : Attack::none;
      opt.emplace(fedpp::FedProx(po), attack, f.byzantine_scale, f.byzantine_std);
      comp.emplace(make_compressor(f.comp));
    } catch (const fedpp::InvalidArgument& e) {
      throw UsageError(e.what());
    }

    const auto data = load_data(f.model, true, false);
    auto shards = f.partition == "dirichlet"
                      ? fedpp::dirichlet_split(data.train, static_cast<fedpp::Index>(f.clients), f.alpha, f.seed)
                      : fedpp::iid_split(data.train, static_cast<fedpp::Index>(f.clients), f.seed);
    fedpp::DatasetView<S> shard = std::move(shards[f.id]);
    const int classes = data.train->num_classes;
    if (f.byzantine == "label-flip") {
      shard.label_map.resize(static_cast<std::size_t>(classes));
      for (int y = 0; y < classes; ++y) shard.label_map[static_cast<std::size_t>(y)] = classes - 1 - y;
    }
    say(pre + "shard " + std::to_string(f.id) + " of " + std::to_string(f.clients) + " (" + f.partition + "): " +
        std::to_string(shard.size()) + " samples; model " + model_text(f.model, data.train->dim(), classes) +
        (f.byzantine != "none" ? "; Byzantine: " + f.byzantine : std::string()) + "; server " + f.host + ":" +
        std::to_string(f.port));
    return with_model(f.model, data.train->dim(), classes,
                      [&](const auto& model) { return train(f, sec, model, std::move(shard), *opt, *comp); });
  } catch (const UsageError& e) {
    std::cerr << "fedpp_client: " << e.what() << " (see --help)\n";
    return exit_usage;
  } catch (const std::exception& e) {
    say(pre + "error: " + e.what());
    return 1;
  }
}
