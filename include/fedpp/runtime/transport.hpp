#pragma once
/// @file transport.hpp
/// The transport concept (rounds with deadlines, replies in arrival order), the adapter that
/// lifts a blocking in-order transport to it, the ordering adapter that restores participant
/// order, and the blocking "run one round" convenience.

#include <algorithm>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "fedpp/core/concepts.hpp"
#include "fedpp/core/error.hpp"
#include "fedpp/core/messages.hpp"

namespace fedpp {

/// The clock of round deadlines.
using RoundClock = std::chrono::steady_clock;
/// A round deadline (RoundClock::time_point::max() waits for every reply).
using Deadline = RoundClock::time_point;
/// Called by a transport once per delivered reply, on the thread that runs `run_until`.
using ReplyHandler = std::function<void(Reply&&)>;

/// Every client id of a federation of `n` clients, 0..n-1 (the availability of transports whose
/// clients are always reachable).
[[nodiscard]] inline std::vector<ClientId> all_clients(std::size_t n) {
  std::vector<ClientId> ids(n);
  for (std::size_t i = 0; i < n; ++i) ids[i] = static_cast<ClientId>(i);
  return ids;
}

/// No deadline: wait until every participant has answered.
inline constexpr Deadline no_deadline = Deadline::max();

/// Moves round requests to clients and their replies back, in arrival order (in-process or over a network).
/**
 * Required, for a transport `t`:
 * - `t.num_clients()`: the federation's size N (client ids are 0..N-1);
 * - `t.available_clients()`: the ids (sorted) that can be asked now (connected, not busy);
 * - `t.start_round(request, participants, handler)`: sends the request to each id in
 *   `participants` (distinct ids) and returns at once; the transport keeps a copy of the request
 *   (RoundRequest::owner keeps shared buffers alive; a request with a null owner must stay valid
 *   until the round ends) and of `handler`;
 * - `t.run_until(deadline)`: delivers replies to the current round's handler as they arrive, on
 *   the calling thread, and returns true once every participant's reply has been delivered, false
 *   when the deadline passed first or the round was cancelled. A reply carries the round it
 *   answers (Reply::round): a transport may deliver a reply of an earlier round during a later
 *   round, and the server drops it. A failure (client error, disconnect, malformed frame) is a
 *   Reply with a FailureReason, never an exception;
 * - `t.cancel_round()`: stops the current round (also from inside the handler): replies not yet
 *   delivered are discarded and `run_until` returns false.
 * The handler may throw; the transport then cancels the round and lets the exception leave
 * `run_until`.
 */
template <typename T, typename S = float>
concept Transport = requires(T& t, const RoundRequest<S>& req, std::span<const ClientId> who, ReplyHandler h,
                             Deadline deadline) {
  { t.num_clients() } -> std::convertible_to<std::size_t>;
  { t.available_clients() } -> std::convertible_to<std::vector<ClientId>>;
  { t.start_round(req, who, std::move(h)) } -> std::same_as<void>;
  { t.run_until(deadline) } -> std::same_as<bool>;
  { t.cancel_round() } -> std::same_as<void>;
};

/// A simple blocking transport: delivers one round's replies in participant order, then returns.
/**
 * Required: `t.num_clients()`; `t.run_round(request, participants, sink)` calls `sink` exactly
 * once per participant (sorted ascending), in that order (status dropped/failed when the client
 * did not answer). Use it through SynchronousAdapter (Server does so automatically). It has no
 * deadline and no availability: every client is available and a round takes as long as it takes.
 */
template <typename T, typename S = float>
concept SynchronousTransport =
    requires(T& t, const RoundRequest<S>& req, std::span<const ClientId> who, const ReplyHandler& sink) {
      { t.num_clients() } -> std::convertible_to<std::size_t>;
      { t.run_round(req, who, sink) } -> std::same_as<void>;
    };

/// Lifts a SynchronousTransport to a Transport (the round runs inside `run_until`).
/**
 * A synchronous transport answers the round it is asked, so each reply's Reply::round is set to
 * the request's round. Every client is always available; the deadline is not enforced (the round
 * runs to its end).
 * @tparam T a SynchronousTransport (held by reference)
 */
template <typename T, typename S>
  requires SynchronousTransport<T, S>
class SynchronousAdapter {
 public:
  /// Wraps `t` (not owned; must outlive the adapter).
  explicit SynchronousAdapter(T& t) : t_(&t) {}

  /// Number of clients of the wrapped transport.
  [[nodiscard]] std::size_t num_clients() const { return t_->num_clients(); }
  /// Every client id.
  [[nodiscard]] std::vector<ClientId> available_clients() const { return all_clients(num_clients()); }
  /// Remembers the round; it runs in run_until.
  void start_round(const RoundRequest<S>& req, std::span<const ClientId> who, ReplyHandler h) {
    req_ = req;
    who_.assign(who.begin(), who.end());
    std::sort(who_.begin(), who_.end());
    handler_ = std::move(h);
    pending_ = true;
    cancelled_ = false;
  }
  /// Runs the wrapped round, delivering each reply as the wrapped transport produces it.
  bool run_until(Deadline /*deadline*/) {
    if (!pending_) return !cancelled_;
    pending_ = false;
    const std::uint64_t round = req_.round;
    t_->run_round(req_, who_, [&](Reply&& r) {
      if (cancelled_) return;
      r.round = round;
      handler_(std::move(r));
    });
    return !cancelled_;
  }
  /// Drops the replies the wrapped round still produces.
  void cancel_round() { cancelled_ = true; }

 private:
  T* t_;
  RoundRequest<S> req_;
  std::vector<ClientId> who_;
  ReplyHandler handler_;
  bool pending_ = false, cancelled_ = false;
};

/// What an Ordered adapter buffered while restoring participant order.
struct OrderingStats {
  std::size_t peak_replies = 0;      ///< most replies held at once
  std::uint64_t peak_bytes = 0;      ///< most payload + aux bytes held at once
  std::uint64_t delivered = 0;       ///< replies handed on in order
};

/// Ordering adapter: hands replies on in participant order (the order given to start_round), whatever order they arrive in.
/**
 * Replies that arrive ahead of their turn are held until every participant before them has
 * answered; the server then sees exactly the sequence a synchronous in-order transport gives,
 * which keeps in-process simulation bit-identical for any thread count and arrival order. At
 * the deadline (run_until returning false) the held replies are handed on in order, skipping
 * the participants that did not answer. A reply for another round or from a non-participant is
 * passed through at once (the server drops it); a second reply from a participant is handed on
 * right after the first (at once when the first was already handed on), so the server keeps the
 * first and counts the second as a duplicate, and the sequence of first replies stays in order. Memory: the held replies
 * (at most one per participant; see stats() for the peak).
 * @tparam T a Transport (held by reference)
 */
template <typename T, typename S>
  requires Transport<T, S>
class Ordered {
 public:
  /// Wraps `t` (not owned; must outlive the adapter).
  explicit Ordered(T& t) : t_(&t) {}

  /// Number of clients of the wrapped transport.
  [[nodiscard]] std::size_t num_clients() const { return t_->num_clients(); }
  /// The wrapped transport's available clients.
  [[nodiscard]] std::vector<ClientId> available_clients() const { return t_->available_clients(); }
  /// The wrapped transport.
  [[nodiscard]] T& inner() noexcept { return *t_; }
  /// Buffering statistics since construction.
  [[nodiscard]] const OrderingStats& stats() const noexcept { return stats_; }

  /// Starts the round on the wrapped transport with an ordering handler in front of `h`.
  void start_round(const RoundRequest<S>& req, std::span<const ClientId> who, ReplyHandler h) {
    by_id_.clear();
    for (std::size_t i = 0; i < who.size(); ++i) by_id_.emplace_back(who[i], i);
    std::sort(by_id_.begin(), by_id_.end());
    slots_.assign(who.size(), std::nullopt);
    dups_.assign(who.size(), {});
    done_.assign(who.size(), false);
    next_ = 0;
    held_ = 0;
    held_bytes_ = 0;
    round_ = req.round;
    handler_ = std::move(h);
    t_->start_round(req, who, [this](Reply&& r) { take(std::move(r)); });
  }

  /// Runs the wrapped transport; on a deadline or cancellation hands on the held replies in order.
  bool run_until(Deadline deadline) {
    const bool complete = t_->run_until(deadline);
    if (!complete) flush();
    return complete;
  }

  /// Cancels the wrapped round and forgets the held replies.
  void cancel_round() {
    slots_.assign(slots_.size(), std::nullopt);
    dups_.assign(dups_.size(), {});
    held_ = 0;
    held_bytes_ = 0;
    next_ = slots_.size();
    t_->cancel_round();
  }

 private:
  void take(Reply&& r) {
    const auto it = std::lower_bound(by_id_.begin(), by_id_.end(), std::pair<ClientId, std::size_t>(r.client, 0));
    if (r.round != round_ || it == by_id_.end() || it->first != r.client) {
      deliver(std::move(r));
      return;
    }
    const std::size_t i = it->second;
    if (slots_[i].has_value()) {  // a duplicate of a held reply: it follows the original
      dups_[i].push_back(std::move(r));
      return;
    }
    if (done_[i]) {  // a duplicate of a reply already handed on: pass it on, the server counts it
      deliver(std::move(r));
      return;
    }
    done_[i] = true;
    held_bytes_ += r.payload.bytes() + r.aux.bytes();
    slots_[i].emplace(std::move(r));
    ++held_;
    stats_.peak_replies = std::max(stats_.peak_replies, held_);
    stats_.peak_bytes = std::max(stats_.peak_bytes, held_bytes_);
    while (next_ < slots_.size() && slots_[next_].has_value()) release(next_++);
  }

  void flush() {
    for (; next_ < slots_.size(); ++next_)
      if (slots_[next_].has_value()) release(next_);
  }

  void release(std::size_t i) {
    Reply r = std::move(*slots_[i]);
    slots_[i].reset();
    --held_;
    held_bytes_ -= r.payload.bytes() + r.aux.bytes();
    std::vector<Reply> dups = std::move(dups_[i]);
    dups_[i].clear();
    deliver(std::move(r));
    for (Reply& d : dups) deliver(std::move(d));
  }

  void deliver(Reply&& r) {
    ++stats_.delivered;
    handler_(std::move(r));
  }

  T* t_;
  std::vector<std::pair<ClientId, std::size_t>> by_id_;  // (id, position in the participant order), by id
  std::vector<std::optional<Reply>> slots_;
  std::vector<std::vector<Reply>> dups_;  // duplicates that arrived while their original was held
  std::vector<bool> done_;
  std::size_t next_ = 0, held_ = 0;
  std::uint64_t held_bytes_ = 0;
  std::uint64_t round_ = 0;
  ReplyHandler handler_;
  OrderingStats stats_;
};

/// Runs one round to its end and calls `sink` once per participant, in participant order.
/**
 * The blocking convenience on top of a Transport: start_round, then run_until(deadline)
 * through an Ordered adapter. A participant without a reply by the deadline gets a `timeout`
 * failure reply (in its place in the order). Replies for other rounds, from non-participants
 * or repeated are not passed to `sink`.
 */
template <typename S, typename T>
  requires Transport<T, S>
void run_round(T& t, const RoundRequest<S>& req, std::span<const ClientId> who, const ReplyHandler& sink,
               Deadline deadline = no_deadline) {
  std::vector<std::pair<ClientId, std::size_t>> by_id;
  for (std::size_t i = 0; i < who.size(); ++i) by_id.emplace_back(who[i], i);
  std::sort(by_id.begin(), by_id.end());
  std::vector<bool> seen(who.size(), false);
  std::size_t next = 0;
  auto emit_missing_before = [&](std::size_t i) {
    for (; next < i; ++next)
      if (!seen[next]) sink(Reply::failure(who[next], req.round, FailureReason::timeout, "no reply by the deadline"));
  };
  Ordered<T, S> ordered(t);
  ordered.start_round(req, who, [&](Reply&& r) {
    const auto it = std::lower_bound(by_id.begin(), by_id.end(), std::pair<ClientId, std::size_t>(r.client, 0));
    if (r.round != req.round || it == by_id.end() || it->first != r.client) return;
    const std::size_t i = it->second;
    if (seen[i]) return;
    emit_missing_before(i);
    seen[i] = true;
    next = i + 1;
    sink(std::move(r));
  });
  const bool complete = ordered.run_until(deadline);
  if (!complete) ordered.cancel_round();
  emit_missing_before(who.size());
}

}  // namespace fedpp
