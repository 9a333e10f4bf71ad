#pragma once
/// @file callbacks.hpp
/// Round callbacks in the ensmallen style: any object with some of the hooks below can be
/// passed to a run; hooks it lacks cost nothing. Built-ins: ProgressPrinter, MetricsWriter.
///
/// Hooks (all optional):
/// - `on_round_begin(const RoundStats&)`: round and participants are set;
/// - `on_aggregate(const RoundStats&, std::span<const S> aggregate)`: before the server step;
/// - `on_round_end(const RoundStats&, std::span<const S> params)`: may return bool, true stops the run;
/// - `on_run_end(const RunResult<S>&)`.

#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <span>
#include <string>
#include <type_traits>

#include "fedpp/core/error.hpp"
#include "fedpp/runtime/round_stats.hpp"

namespace fedpp {

namespace detail {

template <typename CB>
void call_round_begin(CB& cb, const RoundStats& st) {
  if constexpr (requires { cb.on_round_begin(st); }) cb.on_round_begin(st);
}

template <typename CB, typename S>
void call_aggregate(CB& cb, const RoundStats& st, std::span<const S> agg) {
  if constexpr (requires { cb.on_aggregate(st, agg); }) cb.on_aggregate(st, agg);
}

/// Calls on_round_end; returns true when the callback asks to stop.
template <typename CB, typename S>
bool call_round_end(CB& cb, const RoundStats& st, std::span<const S> params) {
  if constexpr (requires { cb.on_round_end(st, params); }) {
    if constexpr (std::is_convertible_v<decltype(cb.on_round_end(st, params)), bool>)
      return static_cast<bool>(cb.on_round_end(st, params));
    else
      cb.on_round_end(st, params);
  }
  return false;
}

template <typename CB, typename S>
void call_run_end(CB& cb, const RunResult<S>& r) {
  if constexpr (requires { cb.on_run_end(r); }) cb.on_run_end(r);
}

/// Human-readable byte count (B, kB, MB, GB with 3 significant digits).
inline std::string human_bytes(double b) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB"};
  int u = 0;
  while (b >= 1000.0 && u < 4) {
    b /= 1000.0;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.3g %s", b, units[u]);
  return buf;
}

}  // namespace detail

/// Prints one line per round: round, train loss, test accuracy, bytes up/down, seconds.
class ProgressPrinter {
 public:
  /// Prints to `os` (default std::cout) every `every` rounds (and the last round).
  explicit ProgressPrinter(std::ostream& os = std::cout, std::uint64_t every = 1) : os_(&os), every_(every) {
    require(every >= 1, "fedpp::ProgressPrinter", "every must be >= 1", every);
  }

  /// Prints the round's line.
  template <typename S>
  void on_round_end(const RoundStats& st, std::span<const S> /*params*/) {
    if ((st.round + 1) % every_ != 0 && st.round + 1 != st.rounds) return;
    char buf[256];
    const int w = st.rounds ? static_cast<int>(std::to_string(st.rounds).size()) : 1;
    std::snprintf(buf, sizeof buf, "round %*llu/%llu  loss %.4f  acc %6.2f%%  up %9s  down %9s  %6.2fs  %zu/%zu ok",
                  w, static_cast<unsigned long long>(st.round + 1), static_cast<unsigned long long>(st.rounds),
                  st.train_loss, 100.0 * st.test_accuracy, detail::human_bytes(static_cast<double>(st.bytes_up)).c_str(),
                  detail::human_bytes(static_cast<double>(st.bytes_down)).c_str(), st.seconds, st.accepted,
                  st.participants);
    *os_ << buf;
    if (st.rejected()) *os_ << "  (" << st.rejected() << " rejected)";
    if (st.failed + st.dropped) *os_ << "  (" << st.failed + st.dropped << " failed/dropped)";
    if (st.timed_out) *os_ << "  (" << st.timed_out << " timed out)";
    if (st.ignored()) *os_ << "  (" << st.ignored() << " late/duplicate/unexpected ignored)";
    if (st.rolled_back) *os_ << "  [non-finite step rolled back: model unchanged]";
    if (!st.quorum_met)
      *os_ << "  [no quorum: model unchanged]";
    else if (!st.applied && !st.rolled_back)
      *os_ << "  [non-finite aggregate: model unchanged]";
    *os_ << '\n' << std::flush;
  }

 private:
  std::ostream* os_;
  std::uint64_t every_;
};

/// Writes one record per round to a file: CSV (header first) or JSON lines (".jsonl"/".json").
class MetricsWriter {
 public:
  /// Output format.
  enum class Format { csv, json_lines };

  /// Opens `path` for writing; the format follows the extension unless given.
  explicit MetricsWriter(const std::string& path) : MetricsWriter(path, format_for(path)) {}

  /// Opens `path` for writing in the given format; throws DataError when it cannot be opened.
  MetricsWriter(const std::string& path, Format f) : out_(path), format_(f) {
    if (!out_) fail<DataError>("fedpp::MetricsWriter", "cannot open metrics file for writing", path);
    if (format_ == Format::csv)
      out_ << "round,participants,accepted,failed,dropped,rejected_malformed,rejected_nonfinite,applied,"
              "train_loss,test_loss,test_accuracy,update_norm,bytes_up,bytes_down,seconds,available,target,surplus,timed_out,"
              "late,duplicates,unexpected,rolled_back\n";
  }

  // A writer owns its file: movable, not copyable.
  MetricsWriter(MetricsWriter&&) = default;
  MetricsWriter& operator=(MetricsWriter&&) = default;

  /// Appends the round's record and flushes.
  template <typename S>
  void on_round_end(const RoundStats& st, std::span<const S> /*params*/) {
    if (format_ == Format::csv) {
      out_ << st.round + 1 << ',' << st.participants << ',' << st.accepted << ',' << st.failed << ',' << st.dropped
           << ',' << st.rejected_malformed << ',' << st.rejected_nonfinite << ',' << (st.applied ? 1 : 0) << ','
           << num(st.train_loss) << ',' << num(st.test_loss) << ',' << num(st.test_accuracy) << ','
           << num(st.update_norm) << ',' << st.bytes_up << ',' << st.bytes_down << ',' << num(st.seconds) << ','
           << st.available << ',' << st.target << ',' << st.surplus << ',' << st.timed_out << ',' << st.late << ','
           << st.duplicates << ',' << st.unexpected << ',' << (st.rolled_back ? 1 : 0) << '\n';
    } else {
      out_ << "{\"round\":" << st.round + 1 << ",\"participants\":" << st.participants << ",\"accepted\":"
           << st.accepted << ",\"failed\":" << st.failed << ",\"dropped\":" << st.dropped
           << ",\"rejected_malformed\":" << st.rejected_malformed << ",\"rejected_nonfinite\":"
           << st.rejected_nonfinite << ",\"applied\":" << (st.applied ? "true" : "false")
           << ",\"train_loss\":" << json(st.train_loss) << ",\"test_loss\":" << json(st.test_loss)
           << ",\"test_accuracy\":" << json(st.test_accuracy) << ",\"update_norm\":" << json(st.update_norm)
           << ",\"bytes_up\":" << st.bytes_up << ",\"bytes_down\":" << st.bytes_down
           << ",\"seconds\":" << json(st.seconds) << ",\"available\":" << st.available << ",\"target\":" << st.target
           << ",\"surplus\":" << st.surplus << ",\"timed_out\":" << st.timed_out << ",\"late\":" << st.late
           << ",\"duplicates\":" << st.duplicates << ",\"unexpected\":" << st.unexpected
           << ",\"rolled_back\":" << (st.rolled_back ? "true" : "false") << "}\n";
    }
    out_.flush();
  }

 private:
  static Format format_for(const std::string& path) {
    auto ends = [&](std::string_view s) { return path.size() >= s.size() && path.compare(path.size() - s.size(), s.size(), s) == 0; };
    return ends(".jsonl") || ends(".json") ? Format::json_lines : Format::csv;
  }
  static std::string num(double v) { return std::isnan(v) ? std::string() : detail::to_text(v); }
  static std::string json(double v) { return std::isfinite(v) ? detail::to_text(v) : std::string("null"); }

  std::ofstream out_;
  Format format_;
};

}  // namespace fedpp
