#pragma once
/// @file in_process.hpp
/// In-process transport: runs many clients concurrently on a thread pool and delivers their
/// replies in arrival order (a bounded window keeps memory at O(threads) replies).

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <vector>

#include "fedpp/core/archetypes.hpp"
#include "fedpp/core/concepts.hpp"
#include "fedpp/runtime/client.hpp"
#include "fedpp/runtime/thread_pool.hpp"
#include "fedpp/runtime/transport.hpp"

namespace fedpp {

/// Transport whose clients live in this process (a deterministic simulation of many clients).
/**
 * `start_round` starts the participants' local training on the pool, in participant order;
 * `run_until` hands each reply to the round's handler on the calling thread as soon as it is
 * ready (arrival order: whichever client finishes first). Workers start a participant only
 * while it is fewer than `2 * threads` places ahead of the first participant not yet
 * delivered, so at most that many finished replies wait at once. Wrap the transport in
 * Ordered (Server and Simulation do) for participant order and so results independent of the
 * thread count. `run_round` is the blocking in-order convenience. Every client is always
 * available. A deadline is wall-clock: clients still training when it passes finish on the pool
 * and their replies are discarded when the round is cancelled or the next one starts.
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

  InProcessTransport(const InProcessTransport&) = delete;
  InProcessTransport& operator=(const InProcessTransport&) = delete;

  /// Stops the round in progress (waiting for clients still training) before the workers go.
  ~InProcessTransport() { stop_workers(); }

  /// Number of clients.
  [[nodiscard]] std::size_t num_clients() const noexcept { return clients_.size(); }
  /// Every client id (in-process clients are always reachable).
  [[nodiscard]] std::vector<ClientId> available_clients() const { return all_clients(clients_.size()); }
  /// Number of worker threads.
  [[nodiscard]] int threads() const noexcept { return pool_.size(); }
  /// The clients (e.g. to inspect state or install label maps between runs).
  [[nodiscard]] std::vector<C>& clients() noexcept { return clients_; }
  /// The clients, read-only.
  [[nodiscard]] const std::vector<C>& clients() const noexcept { return clients_; }
  /// The worker pool (shared with e.g. evaluation between rounds).
  [[nodiscard]] ThreadPool& pool() noexcept { return pool_; }

  /// Starts training the participants on the pool (a round still running is cancelled first).
  /// @throws InvalidArgument for an unknown or repeated client id.
  void start_round(const RoundRequest<Scalar>& req, std::span<const ClientId> who, ReplyHandler handler) {
    stop_workers();
    std::vector<ClientId> ids(who.begin(), who.end());
    for (ClientId id : ids)
      if (id >= clients_.size()) fail("fedpp::InProcessTransport::start_round", "unknown client id", id);
    std::vector<ClientId> sorted = ids;
    std::sort(sorted.begin(), sorted.end());
    if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end())
      fail("fedpp::InProcessTransport::start_round", "participants must be distinct; repeated id",
           *std::adjacent_find(sorted.begin(), sorted.end()));
    req_ = req;
    who_ = std::move(ids);
    handler_ = std::move(handler);
    const std::size_t m = who_.size();
    {
      std::lock_guard lk(mu_);
      ready_.clear();
      delivered_.assign(m, false);
      first_open_ = 0;
      next_take_ = 0;
      delivered_count_ = 0;
      abort_ = false;
    }
    running_ = m > 0;
    if (!running_) return;
    const std::size_t window = 2 * static_cast<std::size_t>(pool_.size());
    pool_.start([this, m, window](int) {
      for (;;) {
        std::size_t i;
        {
          std::unique_lock lk(mu_);
          cv_.wait(lk, [&] { return abort_ || next_take_ >= m || next_take_ < first_open_ + window; });
          if (abort_ || next_take_ >= m) return;
          i = next_take_++;
        }
        Reply r = clients_[who_[i]].handle(req_);  // never throws: errors become status failed
        {
          std::lock_guard lk(mu_);
          ready_.emplace_back(i, std::move(r));
        }
        cv_.notify_all();
      }
    });
  }

  /// Delivers finished replies to the handler until all are delivered (true) or the deadline passes (false).
  bool run_until(Deadline deadline) {
    const std::size_t m = who_.size();
    try {
      for (;;) {
        std::pair<std::size_t, Reply> item;
        {
          std::unique_lock lk(mu_);
          if (delivered_count_ == m || abort_) break;
          const auto has = [&] { return !ready_.empty() || abort_; };
          if (deadline == no_deadline)
            cv_.wait(lk, has);
          else if (!cv_.wait_until(lk, deadline, has))
            return false;
          if (abort_) break;
          item = std::move(ready_.front());
          ready_.pop_front();
          delivered_[item.first] = true;
          ++delivered_count_;
          while (first_open_ < m && delivered_[first_open_]) ++first_open_;
        }
        cv_.notify_all();
        handler_(std::move(item.second));
      }
    } catch (...) {
      stop_workers();
      throw;
    }
    std::unique_lock lk(mu_);
    const bool complete = delivered_count_ == m && !abort_;
    lk.unlock();
    if (complete) stop_workers();
    return complete;
  }

  /// Stops the round: no more replies are delivered; clients still training finish first.
  void cancel_round() { stop_workers(); }

  /// Runs one round to its end and calls `sink` once per participant, in participant order.
  void run_round(const RoundRequest<Scalar>& req, std::span<const ClientId> who, const ReplyHandler& sink) {
    fedpp::run_round<Scalar>(*this, req, who, sink);
  }

 private:
  void stop_workers() {
    if (!running_) return;
    {
      std::lock_guard lk(mu_);
      abort_ = true;
    }
    cv_.notify_all();
    running_ = false;
    pool_.wait();
  }

  std::vector<C> clients_;
  ThreadPool pool_;
  RoundRequest<Scalar> req_;
  std::vector<ClientId> who_;
  ReplyHandler handler_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<std::size_t, Reply>> ready_;
  std::vector<bool> delivered_;
  std::size_t first_open_ = 0, next_take_ = 0, delivered_count_ = 0;
  bool abort_ = false;
  bool running_ = false;
};

static_assert(Transport<InProcessTransport<Client<archetypes::ModelArchetype<float>>>, float> &&
              Transport<InProcessTransport<Client<archetypes::ModelArchetype<double>>>, double> &&
              SynchronousTransport<InProcessTransport<Client<archetypes::ModelArchetype<float>>>, float>);

}  // namespace fedpp
