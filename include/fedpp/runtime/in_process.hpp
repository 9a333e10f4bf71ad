#pragma once
/// @file in_process.hpp
/// In-process transport: runs many clients concurrently on a thread pool and delivers their
/// replies in participant order (a bounded reorder window keeps memory at O(threads) replies).

#include <condition_variable>
#include <mutex>
#include <optional>
#include <vector>

#include "fedpp/core/archetypes.hpp"
#include "fedpp/core/concepts.hpp"
#include "fedpp/runtime/client.hpp"
#include "fedpp/runtime/thread_pool.hpp"

namespace fedpp {

/// Transport whose clients live in this process (a deterministic simulation of many clients).
/**
 * `run_round` trains the participants on the pool; the calling thread hands replies to the
 * sink strictly in participant order, while workers run at most `2 * threads` clients ahead
 * of it. Results are therefore independent of the thread count and of scheduling.
 * @tparam C a client type with `Reply handle(const RoundRequest<S>&)` and `id()`.
 */
template <typename C>
class InProcessTransport {
 public:
  /// Scalar type of the clients' models.
  using Scalar = typename C::Scalar;

  /// Takes ownership of the clients (client i must have id i) and starts `threads` workers.
  explicit InProcessTransport(std::vector<C> clients, int threads = 0)
      : clients_(std::move(clients)), pool_(threads) {
    for (std::size_t i = 0; i < clients_.size(); ++i)
      if (clients_[i].id() != static_cast<ClientId>(i))
        fail("fedpp::InProcessTransport", "client at position " + std::to_string(i) + " must have id " +
                                              std::to_string(i), clients_[i].id());
  }

  /// Number of clients.
  [[nodiscard]] std::size_t num_clients() const noexcept { return clients_.size(); }
  /// Number of worker threads.
  [[nodiscard]] int threads() const noexcept { return pool_.size(); }
  /// The clients (e.g. to inspect state or install label maps between runs).
  [[nodiscard]] std::vector<C>& clients() noexcept { return clients_; }
  /// The clients, read-only.
  [[nodiscard]] const std::vector<C>& clients() const noexcept { return clients_; }
  /// The worker pool (shared with e.g. evaluation).
  [[nodiscard]] ThreadPool& pool() noexcept { return pool_; }

  /// Runs the participants' local training and calls `sink` once per participant, in order.
  void run_round(const RoundRequest<Scalar>& req, std::span<const ClientId> who, const ReplySink& sink) {
    for (ClientId id : who)
      if (id >= clients_.size()) fail("fedpp::InProcessTransport::run_round", "unknown client id", id);
    const std::size_t m = who.size();
    const std::size_t window = 2 * static_cast<std::size_t>(pool_.size());
    std::vector<std::optional<Reply>> slots(m);
    std::mutex mu;
    std::condition_variable cv;
    std::size_t next_take = 0, emitted = 0;
    bool abort = false;

    pool_.start([&](int) {
      for (;;) {
        std::size_t i;
        {
          std::unique_lock lk(mu);
          cv.wait(lk, [&] { return abort || next_take >= m || next_take < emitted + window; });
          if (abort || next_take >= m) return;
          i = next_take++;
        }
        Reply r = clients_[who[i]].handle(req);  // never throws: errors become status failed
        {
          std::lock_guard lk(mu);
          slots[i].emplace(std::move(r));
        }
        cv.notify_all();
      }
    });

    try {
      for (std::size_t k = 0; k < m; ++k) {
        Reply r;
        {
          std::unique_lock lk(mu);
          cv.wait(lk, [&] { return slots[k].has_value(); });
          r = std::move(*slots[k]);
          slots[k].reset();
          ++emitted;
        }
        cv.notify_all();
        sink(std::move(r));
      }
    } catch (...) {
      {
        std::lock_guard lk(mu);
        abort = true;
      }
      cv.notify_all();
      pool_.wait();
      throw;
    }
    pool_.wait();
  }

 private:
  std::vector<C> clients_;
  ThreadPool pool_;
};

static_assert(Transport<InProcessTransport<Client<archetypes::ModelArchetype<float>>>, float> &&
              Transport<InProcessTransport<Client<archetypes::ModelArchetype<double>>>, double>);

}  // namespace fedpp
