#pragma once
/// @file messages.hpp
/// What crosses between server and clients in one round, independent of the transport.

#include <chrono>
#include <cstdint>
#include <limits>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "fedpp/core/payload.hpp"
#include "fedpp/core/rng.hpp"
#include "fedpp/core/types.hpp"

namespace fedpp {

/// Loss and accuracy of a model on a labelled set.
struct EvalResult {
  double loss_sum = 0.0;  ///< sum of per-sample losses
  Index correct = 0;      ///< correctly classified samples
  Index count = 0;        ///< samples evaluated

  /// Mean loss (NaN when nothing was evaluated).
  [[nodiscard]] double loss() const noexcept {
    return count ? loss_sum / static_cast<double>(count) : std::numeric_limits<double>::quiet_NaN();
  }
  /// Fraction of correct predictions (NaN when nothing was evaluated).
  [[nodiscard]] double accuracy() const noexcept {
    return count ? static_cast<double>(correct) / static_cast<double>(count) : std::numeric_limits<double>::quiet_NaN();
  }
  /// Adds another partial result (for chunked evaluation).
  EvalResult& operator+=(const EvalResult& o) noexcept {
    loss_sum += o.loss_sum;
    correct += o.correct;
    count += o.count;
    return *this;
  }
};

/// What a local optimizer reports after training.
struct LocalResult {
  double train_loss = 0.0;  ///< mean mini-batch loss over the local steps
  Index steps = 0;          ///< local optimizer steps taken
  Index samples = 0;        ///< samples processed (with repetition over epochs)
};

/// Per-round information a client's local training may use.
struct RoundContext {
  std::uint64_t round = 0;  ///< round index, from 0
  std::uint64_t seed = 0;   ///< run seed (for deriving streams)
  ClientId client = 0;      ///< the training client
};

/// What the server sends to each participant of a round.
/**
 * `model` and `aux` are views; `owner`, when set, keeps the buffers they point into alive, so a
 * copy of the request stays valid after the call that built it returns (a network send that
 * outlives it, a reply computed later). Requests made by `RoundRequest::shared` own their buffers.
 */
template <typename S>
struct RoundRequest {
  std::uint64_t round = 0;      ///< round index, from 0
  std::uint64_t seed = 0;       ///< run seed
  std::span<const S> model;     ///< current global parameters
  std::span<const S> aux{};     ///< the server optimizer's broadcast (SCAFFOLD's control variate c); empty when none
  std::shared_ptr<const void> owner{};  ///< keeps `model` and `aux` alive (null: the caller's buffers)
  /// When the server stops waiting for replies (max(): no deadline); a network transport tells
  /// each client the time left.
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();

  /// A request that owns copies of `model` and `aux` (shared by every copy of the request).
  [[nodiscard]] static RoundRequest shared(std::uint64_t round, std::uint64_t seed, Vector<S> model, Vector<S> aux = {}) {
    auto buffers = std::make_shared<std::pair<Vector<S>, Vector<S>>>(std::move(model), std::move(aux));
    RoundRequest r{round, seed, {}, {}, {}};
    r.model = std::span<const S>(buffers->first.data(), static_cast<std::size_t>(buffers->first.size()));
    r.aux = std::span<const S>(buffers->second.data(), static_cast<std::size_t>(buffers->second.size()));
    r.owner = std::move(buffers);
    return r;
  }

  /// Bytes the request takes on the wire (dense model and broadcast plus a small fixed header).
  [[nodiscard]] std::size_t bytes() const noexcept { return 24 + (model.size() + aux.size()) * sizeof(S); }
};

/// How a client's participation in a round ended.
enum class ReplyStatus : std::uint8_t {
  ok = 0,       ///< payload delivered
  failed = 1,   ///< the client raised an error
  dropped = 2,  ///< no reply (disconnect or timeout)
};

/// Why a reply carries no usable update (machine-readable; Reply::error has the text).
enum class FailureReason : std::uint8_t {
  none = 0,          ///< not a failure
  client_error = 1,  ///< the client raised an error while training or encoding
  timeout = 2,       ///< no reply before the round's deadline
  disconnected = 3,  ///< the client went away (connection lost, process gone)
  malformed = 4,     ///< the reply could not be parsed (bad frame, truncated)
  cancelled = 5,     ///< the round was cancelled before the client answered
};

/// Name of a FailureReason ("none", "client_error", "timeout", ...).
[[nodiscard]] constexpr std::string_view to_string(FailureReason r) noexcept {
  switch (r) {
    case FailureReason::none: return "none";
    case FailureReason::client_error: return "client_error";
    case FailureReason::timeout: return "timeout";
    case FailureReason::disconnected: return "disconnected";
    case FailureReason::malformed: return "malformed";
    case FailureReason::cancelled: return "cancelled";
  }
  return "unknown";
}

/// A client's answer to a RoundRequest.
struct Reply {
  ClientId client = 0;                  ///< who answered
  ReplyStatus status = ReplyStatus::ok; ///< whether `payload` is usable
  Payload payload;                      ///< encoded update (local - global)
  Payload aux{};                        ///< the local optimizer's extra vector, dense (SCAFFOLD's delta c_i); empty when none
  double weight = 0.0;                  ///< aggregation weight (local sample count)
  LocalResult local;                    ///< training summary
  std::string error;                    ///< what went wrong when status != ok
  std::uint64_t round = 0;              ///< the round whose model the update was computed from
  FailureReason reason = FailureReason::none;  ///< why status != ok (none when ok)
  std::optional<std::uint64_t> checksum{};  ///< reply_digest() of payload and aux as sent, when the transport checks integrity

  /// A reply without an update: `status` failed for client_error, dropped otherwise.
  [[nodiscard]] static Reply failure(ClientId client, std::uint64_t round, FailureReason why, std::string text) {
    Reply r;
    r.client = client;
    r.round = round;
    r.status = why == FailureReason::client_error ? ReplyStatus::failed : ReplyStatus::dropped;
    r.reason = why;
    r.error = std::move(text);
    return r;
  }
};

/// A 64-bit digest of a reply's payload and aux bytes (integrity check of a transport, not a MAC).
/**
 * Four interleaved lanes over 8-byte little-endian words, each step `h = detail::mix64(h ^ w) * k`,
 * lengths folded in, lanes combined with mix64; any change of a byte or of a length changes the
 * digest with probability about 1 - 2^-64. Not cryptographic: TLS protects against tampering.
 */
[[nodiscard]] inline std::uint64_t reply_digest(const Payload& payload, const Payload& aux) noexcept {
  constexpr std::uint64_t k = 0x9e3779b97f4a7c15ULL;
  std::uint64_t lane[4] = {0x243f6a8885a308d3ULL, 0x13198a2e03707344ULL, 0xa4093822299f31d0ULL, 0x082efa98ec4e6c89ULL};
  auto absorb = [&](std::span<const std::uint8_t> b) {
    std::size_t i = 0;
    for (; i + 32 <= b.size(); i += 32)
      for (int l = 0; l < 4; ++l) {
        std::uint64_t w;
        std::memcpy(&w, b.data() + i + 8 * static_cast<std::size_t>(l), 8);
        lane[l] = detail::mix64(lane[l] ^ w) * k;
      }
    std::uint64_t tail = b.size();
    for (int sh = 0; i < b.size(); ++i, sh = (sh + 8) % 64) {
      tail ^= static_cast<std::uint64_t>(b[i]) << sh;
      if (sh == 56) tail = detail::mix64(tail);
    }
    lane[0] = detail::mix64(lane[0] ^ tail) * k;
  };
  absorb(payload.data());
  absorb(aux.data());
  return detail::mix64(lane[0] ^ detail::mix64(lane[1] ^ detail::mix64(lane[2] ^ detail::mix64(lane[3]))));
}

/// What a coupled local optimizer exchanges with its server optimizer in one round.
/**
 * `received` is the server optimizer's broadcast (RoundRequest::aux, e.g. SCAFFOLD's server
 * control variate); the optimizer may fill `reply` with one vector of the model's dimension that
 * travels back dense in Reply::aux (e.g. SCAFFOLD's control-variate change). Left empty, nothing
 * extra is sent.
 */
template <typename S>
struct LocalExchange {
  std::span<const S> received;  ///< what the server optimizer broadcast this round (empty when nothing)
  Vector<S> reply;              ///< what to send back besides the update (left empty for nothing)
};

/// What an aggregator or batch transform may know about the round it works on.
/**
 * Randomised rules (Bucketing) draw from `make_rng(seed, round, server_stream,
 * Purpose::aggregation)`, so a resumed or reordered run draws the same numbers.
 */
struct AggregationContext {
  std::uint64_t round = 0;  ///< round index, from 0
  std::uint64_t seed = 0;   ///< run seed
};

/// What the server tells a server optimizer about the round it applies.
struct ServerContext {
  std::uint64_t round = 0;      ///< round index, from 0
  std::size_t num_clients = 0;  ///< clients in the federation (N), participating or not
  std::size_t accepted = 0;     ///< updates that reached the aggregator this round
};

/// One accepted client update, as an observing server optimizer sees it (see ObservingServerOptimizer).
template <typename S>
struct ClientUpdateView {
  ClientId client = 0;          ///< whose update
  double weight = 0.0;          ///< its aggregation weight
  std::span<const S> update;    ///< the decoded update (local - global), after any batch transform
  std::span<const S> aux;       ///< the decoded Reply::aux (empty unless the optimizer needs it)
};

}  // namespace fedpp

namespace fedpp {

/// What a Byzantine attack may know about the round it corrupts.
struct AttackContext {
  std::uint64_t round = 0;   ///< round index
  Index num_clients = 0;     ///< participants this round (honest + Byzantine)
  Index num_byzantine = 0;   ///< Byzantine participants this round
};

}  // namespace fedpp
