#pragma once
// A small federation for the network tests: softmax regression on Gaussian blobs (float), local
// SGD with momentum kept across rounds and top-k with error feedback (both stateful, so a lost
// or reset client state shows in the model), plus helpers that run NetworkClients on threads.
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "fedpp/compressors/error_feedback.hpp"
#include "fedpp/compressors/top_k.hpp"
#include "fedpp/models/softmax_regression.hpp"
#include "fedpp/net.hpp"
#include "fedpp/optimizers/local_sgd.hpp"
#include "fedpp/runtime/client.hpp"
#include "support/blobs.hpp"

namespace fedpp_test {

/// The federation: N clients over contiguous shards of one blob data set.
struct NetFederation {
  using Model = fedpp::SoftmaxRegression<float>;
  using Comp = fedpp::ErrorFeedback<fedpp::TopK>;
  using ClientT = fedpp::Client<Model, fedpp::LocalSgd, Comp>;

  std::size_t n = 4;
  std::shared_ptr<fedpp::Dataset<float>> data = blobs<float>(240, 8, 3, 11);
  Model model{8, 3};
  fedpp::LocalSgd opt{fedpp::LocalSgdOptions{.lr = 0.1, .batch_size = 16, .momentum = 0.9,
                                             .reset_momentum_each_round = false}};
  Comp comp{fedpp::TopK::density(0.3)};
  fedpp::Vector<float> w0 = [this] {
    fedpp::Vector<float> w;
    fedpp::Rng init(5);
    model.init_params(w, init);
    return w;
  }();

  explicit NetFederation(std::size_t clients = 4) : n(clients) {}

  /// Fresh clients 0..n-1.
  [[nodiscard]] std::vector<ClientT> clients() const {
    const auto shards = contiguous_split(data, n);
    std::vector<ClientT> out;
    for (std::size_t i = 0; i < n; ++i) out.emplace_back(static_cast<fedpp::ClientId>(i), model, shards[i], opt, comp);
    return out;
  }

  /// Server-side transport options for this federation (plaintext unless changed).
  [[nodiscard]] fedpp::net::TransportOptions transport_options() const {
    fedpp::net::TransportOptions o;
    o.num_clients = n;
    o.dim = static_cast<std::uint64_t>(model.num_params());
    o.codec = fedpp::net::probe_codec<float>(comp);
    o.security = fedpp::net::ServerSecurity::insecure_plaintext();
    o.heartbeat_interval = std::chrono::milliseconds(50);
    o.timeouts = {std::chrono::milliseconds(2000), std::chrono::milliseconds(2000), std::chrono::milliseconds(2000)};
    return o;
  }
};

/// Client options to reach `port` on 127.0.0.1 (plaintext unless changed).
inline fedpp::net::ClientOptions loopback_client(std::uint16_t port) {
  fedpp::net::ClientOptions o;
  o.port = port;
  o.security = fedpp::net::ClientSecurity::insecure_plaintext();
  o.retry_initial = std::chrono::milliseconds(20);
  o.retry_max = std::chrono::milliseconds(200);
  o.give_up_after = std::chrono::milliseconds(10000);
  o.timeouts = {std::chrono::milliseconds(2000), std::chrono::milliseconds(2000), std::chrono::milliseconds(2000)};
  return o;
}

/// NetworkClients running on their own threads; joins them on destruction.
template <typename C>
class ClientThreads {
 public:
  /// Starts one NetworkClient per client, each with options `make(i)`.
  ClientThreads(std::vector<C>& clients, const std::function<fedpp::net::ClientOptions(std::size_t)>& make) {
    for (std::size_t i = 0; i < clients.size(); ++i)
      nets_.push_back(std::make_unique<fedpp::net::NetworkClient<C>>(clients[i], make(i)));
    errors_.resize(clients.size());
    for (std::size_t i = 0; i < clients.size(); ++i)
      threads_.emplace_back([this, i] {
        try {
          nets_[i]->run();
        } catch (const std::exception& e) {
          std::lock_guard lk(mu_);
          errors_[i] = e.what();
        }
      });
  }
  ClientThreads(const ClientThreads&) = delete;
  ClientThreads& operator=(const ClientThreads&) = delete;
  ~ClientThreads() { join(); }

  /// Waits for every client thread.
  void join() {
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }
  /// The NetworkClient of client i.
  fedpp::net::NetworkClient<C>& net(std::size_t i) { return *nets_[i]; }
  /// What client i's run() threw (empty when it returned).
  std::string error(std::size_t i) {
    std::lock_guard lk(mu_);
    return errors_[i];
  }

 private:
  std::vector<std::unique_ptr<fedpp::net::NetworkClient<C>>> nets_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::vector<std::string> errors_;
};

}  // namespace fedpp_test
