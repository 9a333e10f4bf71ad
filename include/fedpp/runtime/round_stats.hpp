#pragma once
/// @file round_stats.hpp
/// What happened in a round and in a run, as reported to callbacks and returned by runs.

#include <cstdint>
#include <limits>
#include <vector>

#include "fedpp/core/messages.hpp"
#include "fedpp/core/types.hpp"

namespace fedpp {

/// Statistics of one round.
struct RoundStats {
  std::uint64_t round = 0;        ///< round index, from 0
  std::uint64_t rounds = 0;       ///< total rounds of the run (0 when unknown)
  std::size_t participants = 0;   ///< clients asked to train
  std::size_t accepted = 0;       ///< updates that reached the aggregator
  std::size_t failed = 0;         ///< clients that reported an error
  std::size_t dropped = 0;        ///< clients that did not answer
  std::size_t rejected_malformed = 0;  ///< payloads that failed to decode (wrong size, corrupt)
  std::size_t rejected_nonfinite = 0;  ///< updates containing NaN or infinity
  bool applied = false;           ///< whether the global model was updated (quorum met)
  double train_loss = std::numeric_limits<double>::quiet_NaN();  ///< weighted mean of local losses
  double test_loss = std::numeric_limits<double>::quiet_NaN();   ///< global model on the test set
  double test_accuracy = std::numeric_limits<double>::quiet_NaN();  ///< in [0, 1]
  double update_norm = std::numeric_limits<double>::quiet_NaN();    ///< L2 norm of the aggregate
  std::uint64_t bytes_up = 0;     ///< payload bytes received from clients
  std::uint64_t bytes_down = 0;   ///< model bytes sent to clients
  double seconds = 0.0;           ///< wall time of the round (training, aggregation, evaluation)

  /// Updates rejected by validation (malformed + non-finite).
  [[nodiscard]] std::size_t rejected() const noexcept { return rejected_malformed + rejected_nonfinite; }
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
