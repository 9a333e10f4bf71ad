#pragma once
// Shared by fedpp_server and fedpp_client (examples/net): the policy-by-name tables, the flags both
// programs take (data, model, compressor), the model and data setup, and two small run-time
// choice wrappers that keep the number of template instantiations down: one Server and one
// TcpTransport instantiation in fedpp_server whatever the flags, one Client/NetworkClient per
// model type in fedpp_client.
//
// Exit codes of both programs: 0 done, 1 run-time error, 2 bad flags (the message names the flag
// and the value), 3 (fedpp_client) rejected by the server.

#include <CLI/CLI.hpp>

#include <fedpp/aggregators.hpp>
#include <fedpp/compressors/error_feedback.hpp>
#include <fedpp/compressors/identity.hpp>
#include <fedpp/compressors/qsgd.hpp>
#include <fedpp/compressors/sign.hpp>
#include <fedpp/compressors/top_k.hpp>
#include <fedpp/data/fashion_mnist.hpp>
#include <fedpp/data/partition.hpp>
#include <fedpp/models/mlp.hpp>
#include <fedpp/models/softmax_regression.hpp>
#include <fedpp/optimizers/adaptive.hpp>
#include <fedpp/optimizers/fed_prox.hpp>
#include <fedpp/optimizers/server_momentum.hpp>
#include <fedpp/optimizers/server_sgd.hpp>

#include <array>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace fedpp_net {

using S = float;  ///< the scalar of every model, update and payload

/// Exit code for a bad flag value.
inline constexpr int exit_usage = 2;

/// A usage error found after parsing (a combination of flags, or a value CLI11 cannot check).
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// "--flag: must be ..., got 'value'" (without the value part when it is empty).
template <typename T>
[[noreturn]] void usage_fail(const std::string& flag, const std::string& what, const T& value) {
  std::ostringstream os, v;
  v << value;
  os << flag << ": " << what;
  if (!v.str().empty()) os << ", got '" << v.str() << "'";
  throw UsageError(os.str());
}

/// A CLI11 check that the value is a number > 0 (or >= 0 with `or_zero`), with a short message.
inline CLI::Validator positive(bool or_zero = false) {
  return CLI::Validator(
      [or_zero](std::string& text) -> std::string {
        std::istringstream is(text);
        double v = 0;
        if (!(is >> v) || !is.eof()) return "must be a number, got '" + text + "'";
        if (or_zero ? !(v >= 0) : !(v > 0))
          return std::string(or_zero ? "must be >= 0" : "must be > 0") + ", got '" + text + "'";
        return {};
      },
      or_zero ? "NUMBER >= 0" : "NUMBER > 0");
}

namespace detail {

/// Calls f(std::integral_constant<std::size_t, I>) for the I equal to `index` (< N).
template <std::size_t N, typename F, std::size_t I = 0>
decltype(auto) at_index(std::size_t index, F&& f) {
  if constexpr (I + 1 == N) {
    return f(std::integral_constant<std::size_t, I>{});
  } else {
    if (index == I) return f(std::integral_constant<std::size_t, I>{});
    return at_index<N, F, I + 1>(index, std::forward<F>(f));
  }
}

/// A std::variant as a cereal part: the alternative's index, then its value (skipped when empty).
template <typename... Ts>
struct IndexedVariant {
  std::variant<Ts...> v;

  template <class Archive>
  void save(Archive& ar) const {
    ar(static_cast<std::uint32_t>(v.index()));
    std::visit(
        [&](const auto& x) {
          if constexpr (!std::is_empty_v<std::remove_cvref_t<decltype(x)>>) ar(x);
        },
        v);
  }

  template <class Archive>
  void load(Archive& ar) {
    std::uint32_t i = 0;
    ar(i);
    if (i >= sizeof...(Ts))
      fedpp::fail<fedpp::DecodeError>("fedpp_net::IndexedVariant", "alternative index out of range", i);
    at_index<sizeof...(Ts)>(i, [&](auto I) {
      auto& x = v.template emplace<I()>();
      if constexpr (!std::is_empty_v<std::remove_cvref_t<decltype(x)>>) ar(x);
    });
  }
};

}  // namespace detail

/// A Compressor chosen at run time among Cs (each with a stateless decoder).
/**
 * One type for every choice, so Server and Client are instantiated once. The per-client state is
 * the chosen compressor's state (a variant; checkpoints carry it); decoding is the chosen one's.
 */
template <typename... Cs>
class OneOfCompressors {
 public:
  /// The per-client state for scalar T.
  template <typename T>
  using State = detail::IndexedVariant<fedpp::compressor_state_t<Cs, T>...>;

  /// Holds `c` (one of Cs).
  template <typename C>
    requires(std::is_same_v<C, Cs> || ...)
  explicit OneOfCompressors(C c) : c_(std::move(c)) {}

  /// The chosen compressor's state.
  template <typename T>
  [[nodiscard]] State<T> make_state(fedpp::Index dim) const {
    return detail::at_index<sizeof...(Cs)>(c_.index(), [&](auto I) {
      State<T> st;
      st.v.template emplace<I()>(std::get<I()>(c_).template make_state<T>(dim));
      return st;
    });
  }

  /// Encodes with the chosen compressor.
  template <typename T>
  [[nodiscard]] fedpp::Payload encode(std::span<const T> x, State<T>& st, fedpp::Rng& rng) const {
    if (st.v.index() != c_.index())
      fedpp::fail("fedpp_net::OneOfCompressors::encode", "the state belongs to another compressor", st.v.index());
    return detail::at_index<sizeof...(Cs)>(
        c_.index(), [&](auto I) { return std::get<I()>(c_).encode(x, std::get<I()>(st.v), rng); });
  }

  /// Decodes with the chosen compressor.
  template <typename T>
  void decode(const fedpp::Payload& p, std::span<T> out) const {
    std::visit([&](const auto& c) { c.decode(p, out); }, c_);
  }

 private:
  std::variant<Cs...> c_;
};

/// A ServerOptimizer chosen at run time among Os (none of them coupled: no observe/broadcast).
template <typename... Os>
class OneOfServerOptimizers {
 public:
  /// The server state for scalar T.
  template <typename T>
  using State = detail::IndexedVariant<fedpp::server_state_t<Os, T>...>;

  /// Holds `o` (one of Os).
  template <typename O>
    requires(std::is_same_v<O, Os> || ...)
  explicit OneOfServerOptimizers(O o) : o_(std::move(o)) {}

  /// The chosen optimizer's state.
  template <typename T>
  [[nodiscard]] State<T> make_state(fedpp::Index dim) const {
    return detail::at_index<sizeof...(Os)>(o_.index(), [&](auto I) {
      State<T> st;
      st.v.template emplace<I()>(std::get<I()>(o_).template make_state<T>(dim));
      return st;
    });
  }

  /// One server step with the chosen optimizer.
  template <typename T>
  void step(fedpp::Vector<T>& params, const fedpp::Vector<T>& update, State<T>& st,
            const fedpp::ServerContext& ctx) const {
    if (st.v.index() != o_.index())
      fedpp::fail("fedpp_net::OneOfServerOptimizers::step", "the state belongs to another optimizer", st.v.index());
    detail::at_index<sizeof...(Os)>(o_.index(), [&](auto I) {
      fedpp::detail::server_step(std::get<I()>(o_), params, update, std::get<I()>(st.v), ctx);
    });
  }

 private:
  std::variant<Os...> o_;
};

/// The compressors both programs can use (the server decodes with the inner one).
using Compressor = OneOfCompressors<fedpp::Identity, fedpp::TopK, fedpp::Qsgd, fedpp::ScaledSign,
                                    fedpp::ErrorFeedback<fedpp::TopK>, fedpp::ErrorFeedback<fedpp::Qsgd>,
                                    fedpp::ErrorFeedback<fedpp::ScaledSign>>;
static_assert(fedpp::Compressor<Compressor, S>);

/// The server optimizers fedpp_server offers.
using ServerOptimizer =
    OneOfServerOptimizers<fedpp::ServerSgd, fedpp::ServerMomentum, fedpp::FedAdam, fedpp::FedYogi, fedpp::FedAdagrad>;
static_assert(fedpp::ServerOptimizer<ServerOptimizer, S>);

/// Names of a table, for --help and CLI::IsMember.
template <typename Table>
std::vector<std::string> names_of(const Table& t) {
  std::vector<std::string> out;
  for (const auto& e : t) out.push_back(e.first);
  return out;
}

/// "a, b or c".
inline std::string join_names(const std::vector<std::string>& v) {
  std::string s;
  for (std::size_t i = 0; i < v.size(); ++i) s += (i == 0 ? "" : i + 1 == v.size() ? " or " : ", ") + v[i];
  return s;
}

// ---- compressors --------------------------------------------------------------------------

/// Settings of --compressor and its parameters.
struct CompressorFlags {
  std::string name = "none";
  double ratio = 0.01;          ///< topk density
  std::uint32_t levels = 8;     ///< QSGD levels s
  fedpp::Index bucket = 512;    ///< QSGD bucket size
  bool error_feedback = false;  ///< clients only
};

/// --compressor, by name: builds the compressor (error feedback around it when asked).
inline const std::vector<std::pair<std::string, std::function<Compressor(const CompressorFlags&)>>>& compressors() {
  using F = std::function<Compressor(const CompressorFlags&)>;
  static const std::vector<std::pair<std::string, F>> t = {
      {"none", [](const CompressorFlags&) { return Compressor(fedpp::Identity()); }},
      {"topk",
       [](const CompressorFlags& f) {
         auto c = fedpp::TopK::density(f.ratio);
         return f.error_feedback ? Compressor(fedpp::ErrorFeedback<fedpp::TopK>(c)) : Compressor(c);
       }},
      {"qsgd",
       [](const CompressorFlags& f) {
         fedpp::Qsgd c(f.levels, f.bucket);
         return f.error_feedback ? Compressor(fedpp::ErrorFeedback<fedpp::Qsgd>(c)) : Compressor(c);
       }},
      {"sign",
       [](const CompressorFlags& f) {
         fedpp::ScaledSign c;
         return f.error_feedback ? Compressor(fedpp::ErrorFeedback<fedpp::ScaledSign>(c)) : Compressor(c);
       }},
  };
  return t;
}

/// Adds --compressor, --compress-ratio, --qsgd-levels, --qsgd-bucket.
inline void add_compressor_flags(CLI::App& app, CompressorFlags& f) {
  app.add_option("--compressor", f.name, "update compression: " + join_names(names_of(compressors())) +
                                             " (server and clients must agree, parameters included)")
      ->check(CLI::IsMember(names_of(compressors())))
      ->capture_default_str();
  app.add_option("--compress-ratio", f.ratio, "topk: fraction of coordinates kept, in (0, 1]")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--qsgd-levels", f.levels, "qsgd: quantisation levels s, in [1, 16777216]")
      ->check(CLI::Range(1u, 16777216u))
      ->capture_default_str();
  app.add_option("--qsgd-bucket", f.bucket, "qsgd: bucket size (0 = the whole vector)")
      ->check(positive(true))
      ->capture_default_str();
}

/// Builds the compressor of the flags (throws UsageError for a value the library refuses).
inline Compressor make_compressor(const CompressorFlags& f) {
  if (f.name == "topk" && !(f.ratio > 0.0)) usage_fail("--compress-ratio", "must be in (0, 1]", f.ratio);
  if (f.error_feedback && f.name == "none")
    usage_fail("--error-feedback", "needs a lossy --compressor (topk, qsgd or sign)", "--compressor none");
  for (const auto& [name, make] : compressors())
    if (name == f.name) return make(f);
  usage_fail("--compressor", "must be " + join_names(names_of(compressors())), f.name);
}

// ---- aggregators and server optimizers (fedpp_server) ------------------------------------

/// --aggregator, by name (the rules of robust_fmnist, plus fedavg); f is --byzantine-f.
/// A template, so only the program that uses the table instantiates the rules.
template <typename T = S>
const std::vector<std::pair<std::string, std::function<fedpp::AnyAggregator<T>(fedpp::Index)>>>& aggregators() {
  using A = fedpp::AnyAggregator<T>;
  using F = std::function<A(fedpp::Index)>;
  static const std::vector<std::pair<std::string, F>> t = {
      {"fedavg", [](fedpp::Index) { return A(fedpp::WeightedMean()); }},
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
      {"nnm+trimmed-mean",
       [](fedpp::Index f) { return A(fedpp::Nnm<fedpp::TrimmedMean>(f, fedpp::TrimmedMean::count(f))); }},
      {"bucketing+median", [](fedpp::Index) { return A(fedpp::Bucketing<fedpp::CoordinateMedian>(2, 1)); }},
  };
  return t;
}

/// Rules whose state a checkpoint does not carry through AnyAggregator (see the report in --help).
inline bool stateful_rule(const std::string& name) { return name == "centered-clipping"; }

/// Settings of --server-optimizer and its parameters (0 = the optimizer's default).
struct ServerOptimizerFlags {
  std::string name = "sgd";
  double lr = 0.0;
  double momentum = 0.9;
  double tau = 1e-3;
};

/// --server-optimizer, by name.
inline const std::vector<std::pair<std::string, std::function<ServerOptimizer(const ServerOptimizerFlags&)>>>&
server_optimizers() {
  using F = std::function<ServerOptimizer(const ServerOptimizerFlags&)>;
  const auto adaptive = [](const ServerOptimizerFlags& f) {
    fedpp::AdaptiveServerOptions o;
    if (f.lr > 0) o.lr = f.lr;
    o.tau = f.tau;
    return o;
  };
  static const std::vector<std::pair<std::string, F>> t = {
      {"sgd",
       [](const ServerOptimizerFlags& f) { return ServerOptimizer(fedpp::ServerSgd({.lr = f.lr > 0 ? f.lr : 1.0})); }},
      {"fedavgm",
       [](const ServerOptimizerFlags& f) {
         return ServerOptimizer(fedpp::ServerMomentum({.lr = f.lr > 0 ? f.lr : 1.0, .momentum = f.momentum}));
       }},
      {"fedadam", [adaptive](const ServerOptimizerFlags& f) { return ServerOptimizer(fedpp::FedAdam(adaptive(f))); }},
      {"fedyogi", [adaptive](const ServerOptimizerFlags& f) { return ServerOptimizer(fedpp::FedYogi(adaptive(f))); }},
      {"fedadagrad",
       [adaptive](const ServerOptimizerFlags& f) { return ServerOptimizer(fedpp::FedAdagrad(adaptive(f))); }},
  };
  return t;
}

// ---- data and model ------------------------------------------------------------------------

/// Settings of the data and model flags.
struct ModelFlags {
  std::string model = "softmax";
  std::vector<fedpp::Index> hidden{200};
  std::string data_dir;
  std::size_t train_limit = 0;
  std::size_t test_limit = 0;
};

/// Adds --model, --hidden, --data-dir and (unless `test` is false) the data limits.
inline void add_model_flags(CLI::App& app, ModelFlags& f, bool train, bool test) {
  app.add_option("--model", f.model, "softmax (regression) or mlp (server and clients must agree)")
      ->check(CLI::IsMember({"softmax", "mlp"}))
      ->capture_default_str();
  app.add_option("--hidden", f.hidden, "mlp hidden layer sizes, comma-separated")
      ->delimiter(',')
      ->check(positive())
      ->capture_default_str();
  app.add_option("--data-dir", f.data_dir, "Fashion-MNIST folder (default: FEDPP_FASHION_MNIST_DIR or the Debian path)");
  if (train)
    app.add_option("--train-limit", f.train_limit, "use only the first N training images (0 = all)")
        ->check(positive(true))
        ->capture_default_str();
  if (test)
    app.add_option("--test-limit", f.test_limit, "use only the first N test images (0 = all)")
        ->check(positive(true))
        ->capture_default_str();
}

/// Loads Fashion-MNIST (limits of 0 mean all; `need_train`/`need_test` false keep one sample of that part).
inline fedpp::FashionMnist<S> load_data(const ModelFlags& f, bool need_train, bool need_test) {
  const std::string dir = f.data_dir.empty() ? fedpp::default_fashion_mnist_dir() : f.data_dir;
  const std::size_t train = !need_train ? 1 : f.train_limit ? f.train_limit : fedpp::all_samples;
  const std::size_t test = !need_test ? 1 : f.test_limit ? f.test_limit : fedpp::all_samples;
  return fedpp::load_fashion_mnist<S>(dir, train, test);
}

/// A text naming the model, e.g. "mlp 784-200-10" or "softmax 784-10" (also the checkpoint tag).
inline std::string model_text(const ModelFlags& f, fedpp::Index in, int classes) {
  std::string s = f.model + " " + std::to_string(in);
  if (f.model == "mlp")
    for (fedpp::Index h : f.hidden) s += "-" + std::to_string(h);
  return s + "-" + std::to_string(classes);
}

/// Returns fn(model) for the model of the flags, shaped by `in` inputs and `classes` classes.
template <typename F>
int with_model(const ModelFlags& f, fedpp::Index in, int classes, F&& fn) {
  if (f.model == "mlp") {
    std::vector<fedpp::Index> sizes{in};
    sizes.insert(sizes.end(), f.hidden.begin(), f.hidden.end());
    sizes.push_back(classes);
    return fn(fedpp::Mlp<S>(sizes));
  }
  if (f.model == "softmax") return fn(fedpp::SoftmaxRegression<S>(in, classes));
  usage_fail("--model", "must be softmax or mlp", f.model);
}

/// The seeded initial global model (as fedpp::Simulation draws it).
template <typename M>
fedpp::Vector<S> initial_params(const M& model, std::uint64_t seed) {
  fedpp::Vector<S> w;
  fedpp::Rng rng = fedpp::make_rng(seed, 0, fedpp::server_stream, fedpp::Purpose::model_init);
  model.init_params(w, rng);
  return w;
}

// ---- TLS and tokens --------------------------------------------------------------------------

/// Reads a tokens file: one token per line (line i = client i); blank lines are an error.
inline std::vector<std::string> read_tokens(const std::string& path) {
  std::ifstream in(path);
  if (!in) usage_fail("--tokens", "must be a readable file", path);
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.pop_back();
    out.push_back(line);
  }
  while (!out.empty() && out.back().empty()) out.pop_back();  // a trailing newline
  for (std::size_t i = 0; i < out.size(); ++i)
    if (out[i].empty())
      usage_fail("--tokens", "line " + std::to_string(i + 1) + " is empty (line k holds client k-1's token)", path);
  return out;
}

/// Checks that a flag naming a file names a readable file.
inline void require_file(const std::string& flag, const std::string& path) {
  std::error_code ec;
  if (!path.empty() && !std::filesystem::is_regular_file(path, ec)) usage_fail(flag, "must be a readable file", path);
}

// ---- CLI11 -----------------------------------------------------------------------------------

/// Parses argv; returns -1 to go on, else the exit code (0 after --help, 2 for a bad flag).
inline int parse(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << app.get_name() << ": " << e.what() << " (see --help)\n";
    return exit_usage;
  }
  return -1;
}

/// Prints one line to stderr in a single write (the network thread and the main thread both print).
inline void say(const std::string& line) {
  const std::string s = line + "\n";
  std::fwrite(s.data(), 1, s.size(), stderr);
}

}  // namespace fedpp_net
