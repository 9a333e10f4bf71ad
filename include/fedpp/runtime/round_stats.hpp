#pragma once
/// @file round_stats.hpp
/// What happened in a round and in a run, as reported to callbacks and returned by runs.

#include <cstdint>
#include <limits>
#include <vector>

#include "fedpp/core/messages.hpp"
#include "fedpp/core/types.hpp"

namespace fedpp {

/// Statistics of one round: every outcome of every reply is one of its counters.
/**
 * Each participant ends in exactly one of accepted, surplus, failed, dropped, timed_out,
 * rejected_malformed, rejected_nonfinite (so they sum to `participants`). Replies that are not
 * a participant's first answer to this round are counted in late, duplicates or unexpected and
 * never touch the model. See docs/architecture.md, "Round semantics".
 */
struct RoundStats {
  std::uint64_t round = 0;        ///< round index, from 0
  std::uint64_t rounds = 0;       ///< total rounds of the run (0 when unknown)
  std::size_t available = 0;      ///< clients available when the round started
  std::size_t target = 0;         ///< updates wanted (m); participants exceed it with over-selection
  std::size_t participants = 0;   ///< clients asked to train (m' >= m with over-selection)
  std::size_t accepted = 0;       ///< updates that reached the aggregator
  std::size_t surplus = 0;        ///< over-selected participants not used (valid beyond the first m, or not waited for)
  std::size_t failed = 0;         ///< clients that reported an error (FailureReason::client_error)
  std::size_t dropped = 0;        ///< clients that went away (disconnected, cancelled)
  std::size_t timed_out = 0;      ///< participants with no reply by the deadline
  std::size_t rejected_malformed = 0;  ///< payloads that failed to decode or to verify (wrong size, corrupt, truncated)
  std::size_t rejected_nonfinite = 0;  ///< updates containing NaN or infinity, or with a bad weight
  std::size_t late = 0;           ///< replies for an earlier round, dropped
  std::size_t duplicates = 0;     ///< further replies from a participant that already answered, ignored
  std::size_t unexpected = 0;     ///< replies from clients not asked this round, ignored
  bool quorum_met = false;        ///< accepted >= min_updates
  bool rolled_back = false;       ///< the server step gave non-finite parameters and was undone
  bool applied = false;           ///< whether the global model was updated (quorum met, step finite)
  double train_loss = std::numeric_limits<double>::quiet_NaN();  ///< weighted mean of local losses
  double test_loss = std::numeric_limits<double>::quiet_NaN();   ///< global model on the test set
  double test_accuracy = std::numeric_limits<double>::quiet_NaN();  ///< in [0, 1]
  double update_norm = std::numeric_limits<double>::quiet_NaN();    ///< L2 norm of the aggregate
  std::uint64_t bytes_up = 0;     ///< payload bytes received from clients (every reply, counted or not)
  std::uint64_t bytes_down = 0;   ///< model bytes sent to clients
  double seconds = 0.0;           ///< wall time of the round (training, aggregation, evaluation)

  /// Updates rejected by validation (malformed + non-finite).
  [[nodiscard]] std::size_t rejected() const noexcept { return rejected_malformed + rejected_nonfinite; }
  /// Replies ignored because they were not a participant's first answer to this round.
  [[nodiscard]] std::size_t ignored() const noexcept { return late + duplicates + unexpected; }
};

/// Result of a whole run.
template <typename S>
struct RunResult {
  Vector<S> params;                ///< final global model
  std::vector<RoundStats> history; ///< one entry per completed round
  EvalResult final_test;           ///< final model on the test set (count 0 if no evaluator)

  /// Final test accuracy in [0, 1] (NaN without an evaluator).
  [[nodiscard]] double final_accuracy() const noexcept { return final_test.accuracy(); }
  /// Total payload bytes sent by clients.
  [[nodiscard]] std::uint64_t bytes_up() const noexcept {
    std::uint64_t b = 0;
    for (const auto& r : history) b += r.bytes_up;
    return b;
  }
  /// Total model bytes sent to clients.
  [[nodiscard]] std::uint64_t bytes_down() const noexcept {
    std::uint64_t b = 0;
    for (const auto& r : history) b += r.bytes_down;
    return b;
  }
};

}  // namespace fedpp
