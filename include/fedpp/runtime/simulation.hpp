#pragma once
/// @file simulation.hpp
/// One-call federated simulation: many in-process clients over shards of a data set, policies
/// given in any order and defaulted when omitted.

#include <array>
#include <filesystem>
#include <string>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "fedpp/attacks/no_attack.hpp"
#include "fedpp/core/concepts.hpp"
#include "fedpp/runtime/byzantine.hpp"
#include "fedpp/runtime/checkpoint.hpp"
#include "fedpp/runtime/client.hpp"
#include "fedpp/runtime/in_process.hpp"
#include "fedpp/runtime/server.hpp"

namespace fedpp {

/// Settings of a Simulation.
struct SimulationOptions {
  std::uint64_t rounds = 100;        ///< rounds to run
  double fraction = 0.1;             ///< fraction of clients per round, in (0, 1]
  std::size_t clients_per_round = 0; ///< when > 0, exactly this many per round
  std::size_t min_updates = 1;       ///< quorum of valid updates for a round to change the model
  std::uint64_t seed = 1;            ///< seed of every random stream (model init, sampling, clients)
  std::uint64_t eval_every = 1;      ///< test-set evaluation period in rounds (the last round always)
  int threads = 0;                   ///< worker threads (0 = all hardware threads)
  Index eval_chunk = 1000;           ///< test samples per evaluation task
  std::size_t byzantine = 0;         ///< number of Byzantine clients (overrides byzantine_fraction when > 0)
  double byzantine_fraction = 0.0;   ///< fraction of clients that are Byzantine, in [0, 1)
  double over_selection = 0.0;       ///< ask ceil(m (1 + over_selection)) clients, keep the first m valid (see Server)
  std::string checkpoint{};          ///< when set, the whole run (server and clients) is saved here after each round
  bool resume = false;               ///< start from `checkpoint` when that file exists (a fresh run otherwise)
};

namespace detail {

/// Role of a policy argument: 1 aggregator, 2 local optimizer, 3 compressor, 4 server optimizer,
/// 5 attack, 0 other (a callback).
template <typename P, typename M>
inline constexpr int policy_kind = [] {
  using T = std::remove_cvref_t<P>;
  using S = typename M::Scalar;
  if constexpr (Aggregator<T, S>) return 1;
  else if constexpr (LocalOptimizer<T, M>) return 2;
  else if constexpr (Compressor<T, S>) return 3;
  else if constexpr (ServerOptimizer<T, S>) return 4;
  else if constexpr (Attack<T, S>) return 5;
  else return 0;
}();

/// Position of the first argument of role K, or sizeof...(Ps) when there is none.
template <int K, typename M, typename... Ps>
constexpr std::size_t find_policy() {
  constexpr std::array<int, sizeof...(Ps) + 1> kinds{policy_kind<Ps, M>..., -1};
  std::size_t i = 0;
  while (i < sizeof...(Ps) && kinds[i] != K) ++i;
  return i;
}

/// Number of arguments of role K.
template <int K, typename M, typename... Ps>
constexpr std::size_t count_policy() {
  return ((policy_kind<Ps, M> == K ? 1u : 0u) + ... + 0u);
}

/// The first argument of role K (copied), or `def` when there is none.
template <int K, typename M, typename Default, typename... Ps>
auto pick_policy(Default def, Ps&... ps) {
  constexpr std::size_t i = find_policy<K, M, Ps...>();
  if constexpr (i == sizeof...(Ps))
    return def;
  else
    return std::remove_cvref_t<std::tuple_element_t<i, std::tuple<Ps...>>>(std::get<i>(std::tie(ps...)));
}

/// The server optimizer a local optimizer pairs with (`o.paired_server()`), or ServerSgd.
template <typename O>
auto default_server_for(const O& o) {
  if constexpr (requires { o.paired_server(); })
    return o.paired_server();
  else
    return ServerSgd();
}

}  // namespace detail

/// A federated simulation over in-process clients.
/**
 * Usage:
 * @code
 * fedpp::Simulation sim(fedpp::Mlp<>({784, 200, 10}), shards, test, {.rounds = 100, .fraction = 0.1});
 * auto r = sim.run(fedpp::LocalSgd({.lr = 0.05}), fedpp::ProgressPrinter{});
 * @endcode
 * `run` takes policies in any order, recognised by concept: an Aggregator (default
 * WeightedMean), a LocalOptimizer (default LocalSgd), a Compressor (default Identity), a
 * ServerOptimizer (default: the local optimizer's `paired_server()` when it has one, e.g.
 * ScaffoldServer for Scaffold and FedDynServer for FedDyn and FedSpeed, else ServerSgd), an Attack
 * (default NoAttack); every other argument is a callback. Byzantine clients (options `byzantine` / `byzantine_fraction`, a seeded random set
 * fixed for the whole simulation) train honestly, then the attack rewrites their updates each
 * round after the server has validated the round's updates and before it aggregates them, seeing
 * the honest updates of the round (the omniscient attacker of the literature); a data-level
 * attack (DataAttack) instead relabels the Byzantine clients' data. Each run starts from
 * the same seeded initial model with fresh client state, so runs are independent and repeatable;
 * the same seed gives bit-identical results for any thread count.
 * @tparam M a Model
 */
template <typename M>
  requires Model<M>
class Simulation {
 public:
  /// Scalar type of the model.
  using Scalar = typename M::Scalar;

  /// Clients `0..shards.size()-1` train on `shards`; the global model is evaluated on `test` (may be null).
  Simulation(M model, std::vector<DatasetView<Scalar>> shards, std::shared_ptr<const Dataset<Scalar>> test,
             SimulationOptions opts = {})
      : model_(std::move(model)), shards_(std::move(shards)), test_(std::move(test)), opts_(opts) {
    constexpr std::string_view who = "fedpp::Simulation";
    require(!shards_.empty(), who, "there must be at least one client shard", shards_.size());
    for (const auto& s : shards_)
      if (s.size() > 0 && s.dim() != model_.input_dim())
        fail<DimensionError>(who, "shard dimension must equal the model's input_dim " +
                                      std::to_string(model_.input_dim()), s.dim());
    if (test_) {
      test_->validate("fedpp::Simulation (test set)");
      if (test_->dim() != model_.input_dim())
        fail<DimensionError>(who, "test set dimension must equal the model's input_dim " +
                                      std::to_string(model_.input_dim()), test_->dim());
    }
    require(opts_.threads >= 0, who, "threads must be >= 0", opts_.threads);
    require(opts_.eval_chunk >= 1, who, "eval_chunk must be >= 1", opts_.eval_chunk);
    require(!opts_.resume || !opts_.checkpoint.empty(), who, "resume needs a checkpoint path", "empty");
    const std::size_t n = shards_.size();
    std::size_t f = opts_.byzantine;
    if (f == 0 && opts_.byzantine_fraction != 0.0) {
      require(std::isfinite(opts_.byzantine_fraction) && opts_.byzantine_fraction > 0 && opts_.byzantine_fraction < 1,
              who, "byzantine_fraction must be in [0, 1)", opts_.byzantine_fraction);
      f = static_cast<std::size_t>(std::llround(opts_.byzantine_fraction * static_cast<double>(n)));
    }
    require(f < n, who, "byzantine must be < the number of clients " + std::to_string(n), f);
    Rng brng = make_rng(opts_.seed, 0, server_stream, Purpose::attack);
    byzantine_ = sample_clients(n, f, brng);
    Rng rng = make_rng(opts_.seed, 0, server_stream, Purpose::model_init);
    model_.init_params(initial_, rng);
  }

  /// Runs the simulation with the given policies and callbacks (see the class comment).
  template <typename... Ps>
  RunResult<Scalar> run(Ps&&... args) {
    static_assert(detail::count_policy<1, M, Ps...>() <= 1, "fedpp::Simulation::run: more than one Aggregator given");
    static_assert(detail::count_policy<2, M, Ps...>() <= 1,
                  "fedpp::Simulation::run: more than one LocalOptimizer given");
    static_assert(detail::count_policy<3, M, Ps...>() <= 1, "fedpp::Simulation::run: more than one Compressor given");
    static_assert(detail::count_policy<4, M, Ps...>() <= 1,
                  "fedpp::Simulation::run: more than one ServerOptimizer given");
    static_assert(detail::count_policy<5, M, Ps...>() <= 1, "fedpp::Simulation::run: more than one Attack given");
    auto agg = detail::pick_policy<1, M>(WeightedMean(), args...);
    auto opt = detail::pick_policy<2, M>(LocalSgd(), args...);
    auto comp = detail::pick_policy<3, M>(Identity(), args...);
    auto sopt = detail::pick_policy<4, M>(detail::default_server_for(opt), args...);
    auto attack = detail::pick_policy<5, M>(NoAttack(), args...);
    constexpr bool has_attack = !std::is_same_v<decltype(attack), NoAttack>;
    using ClientT = Client<M, decltype(opt), decltype(comp)>;

    std::vector<ClientT> clients;
    clients.reserve(shards_.size());
    for (std::size_t i = 0; i < shards_.size(); ++i)
      clients.emplace_back(static_cast<ClientId>(i), model_, shards_[i], opt, comp);
    if constexpr (DataAttack<decltype(attack)>) {
      for (ClientId b : byzantine_) clients[b].data().label_map = attack.label_map(model_.num_classes());
    }
    InProcessTransport<ClientT> transport(std::move(clients), opts_.threads);

    ServerOptions so{opts_.rounds, opts_.fraction, opts_.clients_per_round, opts_.min_updates, opts_.seed,
                     opts_.eval_every, opts_.over_selection};
    using ServerT = Server<Scalar, decltype(agg), decltype(sopt), decltype(comp)>;
    ServerT server(initial_, so, agg, sopt, comp);
    if (test_)
      server.set_evaluator([this, &transport](std::span<const Scalar> p) { return evaluate(p, transport.pool()); });
    // The attack runs as a pipeline stage; the stage (and so a stateful attack's state, e.g.
    // Mimic's) is part of the checkpoint.
    using StageT = std::conditional_t<has_attack, ByzantineStage<decltype(attack), Scalar>, detail::NoState>;
    auto stage = [&] {
      if constexpr (has_attack)
        return std::make_shared<StageT>(attack, byzantine_);
      else
        return std::make_shared<StageT>();
    }();
    if constexpr (has_attack) {
      if (!byzantine_.empty())
        server.set_stage([stage](UpdateBatch<Scalar>& batch, const AggregationContext& ctx) { (*stage)(batch, ctx); });
    }
    const std::string tag = opts_.checkpoint.empty() ? std::string() : fingerprint_tag<decltype(attack)>(transport.clients()[0]);
    if (opts_.resume && !opts_.checkpoint.empty() && std::filesystem::exists(opts_.checkpoint)) {
      ClientStates<ClientT> part{transport.clients()};
      load_checkpoint(server, opts_.checkpoint, tag, part, *stage);
      transport.clients() = std::move(part.clients);
    }
    SimulationCheckpointer<ServerT, ClientT, StageT> saver{&server, &transport, stage.get(), opts_.checkpoint, tag};

    auto callbacks = std::tuple_cat(std::tuple<SimulationCheckpointer<ServerT, ClientT, StageT>&>(saver),
                                    callback_ref(args)...);
    return std::apply([&](auto&... cbs) { return server.run(transport, cbs...); }, callbacks);
  }

  /// Evaluates `params` on the test set in fixed chunks (deterministic for any thread count).
  EvalResult evaluate(std::span<const Scalar> params, ThreadPool& pool) const {
    const Index n = test_->size();
    const Index chunks = (n + opts_.eval_chunk - 1) / opts_.eval_chunk;
    std::vector<EvalResult> parts(static_cast<std::size_t>(chunks));
    pool.parallel_for(chunks, [&](Index c) {
      const Index first = c * opts_.eval_chunk;
      const Index count = std::min(opts_.eval_chunk, n - first);
      parts[static_cast<std::size_t>(c)] =
          model_.evaluate(params, test_->features.middleCols(first, count),
                          std::span<const Label>(test_->labels).subspan(static_cast<std::size_t>(first),
                                                                        static_cast<std::size_t>(count)));
    });
    EvalResult total;
    for (const auto& p : parts) total += p;
    return total;
  }

  /// Ids of the Byzantine clients (sorted; empty without an attack setting).
  [[nodiscard]] const std::vector<ClientId>& byzantine_ids() const noexcept { return byzantine_; }

  /// The seeded initial global model every run starts from.
  [[nodiscard]] const Vector<Scalar>& initial_params() const noexcept { return initial_; }
  /// The model.
  [[nodiscard]] const M& model() const noexcept { return model_; }
  /// The client shards.
  [[nodiscard]] const std::vector<DatasetView<Scalar>>& shards() const noexcept { return shards_; }
  /// The settings.
  [[nodiscard]] const SimulationOptions& options() const noexcept { return opts_; }

 private:
  /// Saves server and clients after each round (when a checkpoint path is set).
  template <typename ServerT, typename ClientT, typename StageT>
  struct SimulationCheckpointer {
    const ServerT* server;
    InProcessTransport<ClientT>* transport;
    const StageT* stage;
    std::string path;
    std::string tag;
    template <typename S>
    void on_round_end(const RoundStats& /*st*/, std::span<const S> /*params*/) {
      if (path.empty()) return;
      save_checkpoint(*server, path, tag, ClientStates<ClientT>{transport->clients()}, *stage);
    }
  };

  /// What the server fingerprint does not cover: the clients, their policies (types, and their
  /// settings through what a fresh copy of client 0 replies to the initial model), the attack and
  /// the data split.
  template <typename AttackT, typename ClientT>
  std::string fingerprint_tag(const ClientT& first) const {
    std::string t = "simulation; clients ";
    t += std::to_string(shards_.size());
    t += " (";
    t += detail::type_name<ClientT>();
    t += "); attack ";
    t += detail::type_name<AttackT>();
    t += "; byzantine";
    for (ClientId b : byzantine_) (t += ' ') += std::to_string(b);
    t += "; shard sizes";
    for (const auto& sh : shards_) (t += ' ') += std::to_string(sh.size());
    ClientT probe = first;  // a copy: the probe's training leaves the real client untouched
    const Reply r = probe.handle(RoundRequest<Scalar>{0, opts_.seed, as_span(initial_), {}, {}});
    t += "; client 0 replies ";
    t += r.status == ReplyStatus::ok ? detail::values_digest(r.payload.data().data(), r.payload.bytes()) : r.error;
    return t;
  }

  template <typename P>
  static auto callback_ref(P& p) {
    if constexpr (detail::policy_kind<P, M> == 0)
      return std::tuple<P&>(p);
    else
      return std::tuple<>();
  }

  M model_;
  std::vector<DatasetView<Scalar>> shards_;
  std::shared_ptr<const Dataset<Scalar>> test_;
  SimulationOptions opts_;
  Vector<Scalar> initial_;
  std::vector<ClientId> byzantine_;
};

}  // namespace fedpp
