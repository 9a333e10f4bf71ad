#pragma once
/// @file fault_injection.hpp
/// A transport decorator that injects seeded network faults into the replies of any Transport:
/// lost, late, duplicated, reordered and corrupted replies, and clients that disconnect and come
/// back. For testing a server's fault handling end to end.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fedpp/core/error.hpp"
#include "fedpp/core/messages.hpp"
#include "fedpp/core/rng.hpp"
#include "fedpp/runtime/transport.hpp"

namespace fedpp {

/// The probability of each fault a FaultInjector injects (each in [0, 1]) and its seed.
struct FaultOptions {
  double drop = 0.0;        ///< the reply is lost (the round misses its deadline without it)
  double delay = 0.0;       ///< the reply arrives after the deadline, during the next round (late)
  double duplicate = 0.0;   ///< the reply is delivered twice
  double reorder = 0.0;     ///< per round: the round's replies are delivered in a seeded permutation
  double bit_flip = 0.0;    ///< `flip_bits` distinct payload bits flip (a frame checksum catches it)
  double truncate = 0.0;    ///< the payload is cut short, with no checksum (the decoder must reject it)
  double disconnect = 0.0;  ///< the client disconnects for 1..max_away_rounds rounds; its reply becomes a failure
  std::size_t flip_bits = 1;          ///< bits flipped per corrupted payload (>= 1; at most the payload's bits)
  std::uint64_t max_away_rounds = 3;  ///< longest absence of a disconnected client, in rounds (>= 1)
  std::uint64_t seed = 0;             ///< seed of every fault decision
};

/// What a FaultInjector did in one round (FaultInjector::log) or in all rounds (totals).
struct FaultCounts {
  std::uint64_t round = 0;          ///< the round (totals: the last round started)
  std::size_t dropped = 0;          ///< replies swallowed
  std::size_t delayed = 0;          ///< replies held back for the next round
  std::size_t delivered_late = 0;   ///< held-back replies of earlier rounds delivered in this round
  std::size_t duplicated = 0;       ///< second copies delivered
  std::size_t flipped = 0;          ///< replies with flipped payload bits delivered
  std::size_t truncated = 0;        ///< replies with a truncated payload delivered
  std::size_t disconnected = 0;     ///< `disconnected` failures delivered
  std::size_t reordered = 0;        ///< rounds delivered in a seeded permutation (0 or 1 per round)

  /// Adds another round's counts (keeps the later round index).
  FaultCounts& operator+=(const FaultCounts& o) noexcept {
    round = std::max(round, o.round);
    dropped += o.dropped;
    delayed += o.delayed;
    delivered_late += o.delivered_late;
    duplicated += o.duplicated;
    flipped += o.flipped;
    truncated += o.truncated;
    disconnected += o.disconnected;
    reordered += o.reordered;
    return *this;
  }
};

/// Transport decorator that, from a seed, drops, delays, duplicates, reorders and corrupts replies and disconnects clients.
/**
 * Wraps any Transport (by reference) and is one. Every decision comes from the stream
 * `make_rng(seed, round, client, Purpose::fault_injection)` of the participant, drawn when the
 * round starts: six uniforms u0..u5 in this order, then (on a fresh disconnect) the absence
 * 1 + uniform_index(max_away_rounds), then (on arrival) the truncated length uniform_index(bytes)
 * or the flipped bits (Floyd's sampling of flip_bits distinct bit indices); the round's
 * permutation comes from the stream (seed, round, server_stream, fault_injection): one uniform
 * (reorder when < reorder), then a Fisher-Yates shuffle. So the faults do not depend on thread
 * count or arrival order. One fate per reply, by precedence: disconnect (u0 < disconnect, or the
 * client is away), else drop (u1), delay (u2), truncate (u3), bit flip (u4), else none; then a
 * reply delivered from a connected client is duplicated when u5 < duplicate.
 *
 * - drop: the reply is swallowed. Waiting for a real deadline would be slow and nondeterministic,
 *   so run_until returns false (the deadline passed) as soon as the inner round is complete and a
 *   reply was swallowed: the server counts the participant timed out.
 * - delay: also missing at this round's deadline; delivered, with its old Reply::round, at the
 *   start of the next round's run_until, so the server counts it late.
 * - duplicate: a copy (same bytes, corruption included) follows the original, or goes anywhere in
 *   a reordered round; the first copy delivered counts under its fault, the second as duplicated.
 * - reorder: the round's replies are held until the inner round ends, sorted by participant
 *   position and delivered in a seeded permutation.
 * - bit_flip: Reply::checksum is first set to reply_digest() of the original bytes when it has
 *   none (a sender's frame checksum), then `flip_bits` distinct payload bits flip: the server's
 *   integrity check rejects it as malformed. truncate: the payload is cut to a random shorter
 *   length and no checksum is set, so the decoder itself must reject it. A failure reply or an
 *   empty payload is not corrupted.
 * - disconnect: the reply becomes Reply::failure(..., disconnected) and the client leaves
 *   available_clients() for the next k rounds, k in [1, max_away_rounds]; it is back for round
 *   r + k + 1. A participant still away answers `disconnected` too. Rounds are those of the
 *   requests: availability for the next round is that of the last round started plus one.
 * Replies the inner transport sends for other rounds or repeats pass through untouched; after
 * cancel_round (also from the handler) nothing more is delivered. The counters (log(), totals())
 * count what reached the handler, so over a fault-free inner transport a round's RoundStats has
 * rejected_malformed = truncated + flipped, duplicates = duplicated, late = delivered_late,
 * dropped = disconnected, and (without over-selection, which may close a round before every
 * reply arrived) timed_out = dropped + delayed.
 * @tparam T a Transport (held by reference; must outlive the injector)
 */
template <typename T, typename S>
  requires Transport<T, S>
class FaultInjector {
 public:
  /// Wraps `inner` with the faults of `opts`.
  /// @throws InvalidArgument when a probability is not in [0, 1], flip_bits or max_away_rounds is 0.
  FaultInjector(T& inner, FaultOptions opts) : inner_(&inner), opts_(checked(opts)) {}

  /// The settings.
  [[nodiscard]] const FaultOptions& options() const noexcept { return opts_; }
  /// The wrapped transport.
  [[nodiscard]] T& inner() noexcept { return *inner_; }
  /// Number of clients of the wrapped transport.
  [[nodiscard]] std::size_t num_clients() const { return inner_->num_clients(); }
  /// Whether client `c` is connected for the next round (not away after a disconnect).
  [[nodiscard]] bool connected(ClientId c) const { return connected_at(c, next_round_); }
  /// The wrapped transport's available clients, less those away for the next round.
  [[nodiscard]] std::vector<ClientId> available_clients() const {
    std::vector<ClientId> ids = inner_->available_clients();
    std::erase_if(ids, [&](ClientId c) { return !connected(c); });
    return ids;
  }
  /// The counts of each round started, in order.
  [[nodiscard]] const std::vector<FaultCounts>& log() const noexcept { return log_; }
  /// The counts summed over every round.
  [[nodiscard]] FaultCounts totals() const noexcept {
    FaultCounts t;
    for (const FaultCounts& c : log_) t += c;
    return t;
  }
  /// Replies delayed and not yet delivered.
  [[nodiscard]] std::size_t held() const noexcept { return held_.size() + due_.size(); }

  /// Decides the round's faults and starts it on the wrapped transport.
  void start_round(const RoundRequest<S>& req, std::span<const ClientId> who, ReplyHandler h) {
    round_ = req.round;
    next_round_ = req.round + 1;
    handler_ = std::move(h);
    cancelled_ = false;
    swallowed_ = false;
    pending_.clear();
    for (Reply& r : held_) due_.push_back(std::move(r));
    held_.clear();
    log_.push_back(FaultCounts{round_});
    std::erase_if(away_, [&](const auto& kv) { return kv.second <= round_; });
    by_id_.clear();
    plans_.clear();
    for (std::size_t i = 0; i < who.size(); ++i) {
      by_id_.emplace_back(who[i], i);
      plans_.push_back(plan(who[i]));
    }
    std::sort(by_id_.begin(), by_id_.end());
    Rng rr = make_rng(opts_.seed, round_, server_stream, Purpose::fault_injection);
    reorder_ = rr.uniform() < opts_.reorder;
    shuffle_ = rr;
    if (reorder_) ++log_.back().reordered;
    inner_->start_round(req, who, [this](Reply&& r) { arrive(std::move(r)); });
  }

  /// Delivers the replies held from earlier rounds, runs the wrapped round, then any permuted replies.
  /// Returns false when the wrapped round did not complete, a reply was swallowed or the round was cancelled.
  bool run_until(Deadline deadline) {
    try {
      std::vector<Reply> due = std::move(due_);
      due_.clear();
      for (Reply& r : due) deliver(no_pos, Tag::late, std::move(r));
      const bool complete = !cancelled_ && inner_->run_until(deadline);
      if (reorder_ && !cancelled_) {
        std::stable_sort(pending_.begin(), pending_.end(),
                         [](const Item& a, const Item& b) { return a.pos < b.pos; });
        for (std::size_t i = pending_.size(); i > 1; --i)
          std::swap(pending_[i - 1], pending_[shuffle_.uniform_index(i)]);
        std::vector<Item> items = std::move(pending_);
        pending_.clear();
        for (Item& it : items) deliver(it.pos, it.tag, std::move(it.reply));
      }
      return complete && !swallowed_ && !cancelled_;
    } catch (...) {
      cancel_round();
      throw;
    }
  }

  /// Cancels the round: nothing more is delivered; the wrapped round is cancelled.
  void cancel_round() {
    cancelled_ = true;
    pending_.clear();
    inner_->cancel_round();
  }

 private:
  enum class Fate : std::uint8_t { none, disconnect, drop, delay, truncate, flip };
  enum class Tag : std::uint8_t { plain, disconnected, truncated, flipped, late };
  static constexpr std::size_t no_pos = ~std::size_t{0};
  struct Plan {
    Fate fate = Fate::none;
    bool duplicate = false;
    bool arrived = false;
    bool delivered = false;  // a first copy reached the handler (a second one counts as duplicated)
    Rng rng;
  };
  struct Item {
    std::size_t pos;
    Tag tag;
    Reply reply;
  };

  static FaultOptions checked(const FaultOptions& o) {
    constexpr std::string_view who = "fedpp::FaultInjector";
    const std::pair<const char*, double> probs[] = {
        {"drop", o.drop},         {"delay", o.delay},       {"duplicate", o.duplicate}, {"reorder", o.reorder},
        {"bit_flip", o.bit_flip}, {"truncate", o.truncate}, {"disconnect", o.disconnect}};
    for (const auto& [name, p] : probs)
      require(std::isfinite(p) && p >= 0.0 && p <= 1.0, who, std::string(name) + " must be in [0, 1]", p);
    require(o.flip_bits >= 1, who, "flip_bits must be >= 1", o.flip_bits);
    require(o.max_away_rounds >= 1, who, "max_away_rounds must be >= 1", o.max_away_rounds);
    return o;
  }

  [[nodiscard]] bool connected_at(ClientId c, std::uint64_t round) const {
    const auto it = away_.find(c);
    return it == away_.end() || round >= it->second;
  }

  Plan plan(ClientId c) {
    Plan p{Fate::none, false, false, false, make_rng(opts_.seed, round_, c, Purpose::fault_injection)};
    double u[6];
    for (double& x : u) x = p.rng.uniform();
    if (!connected_at(c, round_)) {
      p.fate = Fate::disconnect;
    } else if (u[0] < opts_.disconnect) {
      p.fate = Fate::disconnect;
      away_[c] = round_ + 2 + p.rng.uniform_index(opts_.max_away_rounds);  // back for round r + k + 1
    } else if (u[1] < opts_.drop) {
      p.fate = Fate::drop;
    } else if (u[2] < opts_.delay) {
      p.fate = Fate::delay;
    } else if (u[3] < opts_.truncate) {
      p.fate = Fate::truncate;
    } else if (u[4] < opts_.bit_flip) {
      p.fate = Fate::flip;
    }
    p.duplicate = p.fate != Fate::disconnect && u[5] < opts_.duplicate;
    return p;
  }

  void arrive(Reply&& r) {
    if (cancelled_) return;
    const auto it = std::lower_bound(by_id_.begin(), by_id_.end(), std::pair<ClientId, std::size_t>(r.client, 0));
    if (r.round != round_ || it == by_id_.end() || it->first != r.client || plans_[it->second].arrived) {
      deliver(no_pos, Tag::plain, std::move(r));  // not the participant's first reply to this round: untouched
      return;
    }
    const std::size_t pos = it->second;
    Plan& p = plans_[pos];
    p.arrived = true;
    Tag tag = Tag::plain;
    const bool corruptible = r.status == ReplyStatus::ok && r.payload.bytes() > 0;
    switch (p.fate) {
      case Fate::drop:
        ++log_.back().dropped;
        swallowed_ = true;
        return;
      case Fate::delay:
        ++log_.back().delayed;
        swallowed_ = true;
        held_.push_back(std::move(r));
        return;
      case Fate::disconnect:
        r = Reply::failure(r.client, r.round, FailureReason::disconnected, "fedpp::FaultInjector: client disconnected");
        tag = Tag::disconnected;
        break;
      case Fate::truncate:
        if (corruptible) {
          r.payload.buffer().resize(p.rng.uniform_index(r.payload.bytes()));
          tag = Tag::truncated;
        }
        break;
      case Fate::flip:
        if (corruptible) {
          if (!r.checksum) r.checksum = reply_digest(r.payload, r.aux);
          flip_bits(r.payload.buffer(), p.rng);
          tag = Tag::flipped;
        }
        break;
      case Fate::none: break;
    }
    if (p.duplicate) {
      Reply copy = r;
      emit(pos, tag, std::move(r));
      emit(pos, tag, std::move(copy));
    } else {
      emit(pos, tag, std::move(r));
    }
  }

  // Flips min(flip_bits, 8 * size) distinct bits chosen by Floyd's algorithm.
  void flip_bits(std::vector<std::uint8_t>& bytes, Rng& rng) const {
    const std::uint64_t n = 8 * static_cast<std::uint64_t>(bytes.size());
    const std::uint64_t k = std::min<std::uint64_t>(opts_.flip_bits, n);
    std::vector<std::uint64_t> chosen;
    for (std::uint64_t j = n - k; j < n; ++j) {
      const std::uint64_t t = rng.uniform_index(j + 1);
      chosen.push_back(std::find(chosen.begin(), chosen.end(), t) == chosen.end() ? t : j);
    }
    for (std::uint64_t b : chosen) bytes[b / 8] ^= static_cast<std::uint8_t>(1u << (b % 8));
  }

  void emit(std::size_t pos, Tag tag, Reply&& r) {
    if (reorder_)
      pending_.push_back(Item{pos, tag, std::move(r)});
    else
      deliver(pos, tag, std::move(r));
  }

  // Counts what reaches the handler: a participant's first copy by its fault, a second one as duplicated.
  void deliver(std::size_t pos, Tag tag, Reply&& r) {
    if (cancelled_) return;
    FaultCounts& c = log_.back();
    if (pos != no_pos && plans_[pos].delivered) {
      ++c.duplicated;
    } else {
      if (pos != no_pos) plans_[pos].delivered = true;
      switch (tag) {
        case Tag::plain: break;
        case Tag::disconnected: ++c.disconnected; break;
        case Tag::truncated: ++c.truncated; break;
        case Tag::flipped: ++c.flipped; break;
        case Tag::late: ++c.delivered_late; break;
      }
    }
    handler_(std::move(r));
  }

  T* inner_;
  FaultOptions opts_;
  std::uint64_t round_ = 0, next_round_ = 0;
  ReplyHandler handler_;
  bool cancelled_ = false, swallowed_ = false, reorder_ = false;
  Rng shuffle_;
  std::vector<std::pair<ClientId, std::size_t>> by_id_;  // (id, position in the participant order), by id
  std::vector<Plan> plans_;                              // by participant position
  std::vector<Item> pending_;                            // a reordered round's replies
  std::vector<Reply> held_, due_;                        // delayed in this round / to deliver in the next
  std::map<ClientId, std::uint64_t> away_;               // disconnected client -> first round it is back
  std::vector<FaultCounts> log_;
};

namespace detail {
/// The least a Transport provides (for the concept check below).
template <typename S>
struct TransportArchetype {
  [[nodiscard]] std::size_t num_clients() const { return 0; }
  [[nodiscard]] std::vector<ClientId> available_clients() const { return {}; }
  void start_round(const RoundRequest<S>& /*req*/, std::span<const ClientId> /*who*/, ReplyHandler /*h*/) {}
  bool run_until(Deadline /*deadline*/) { return true; }
  void cancel_round() {}
};
}  // namespace detail

static_assert(Transport<FaultInjector<detail::TransportArchetype<float>, float>, float> &&
              Transport<FaultInjector<detail::TransportArchetype<double>, double>, double>);

}  // namespace fedpp
