#pragma once
// Shared helpers of fedpp's benchmark drivers: command-line flags, timing statistics, the
// read-bandwidth probe, machine facts, a small JSON writer, and the scaffolding every driver has
// (the common flags, the report rows, the target, the JSON file, main). Not part of the library.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <functional>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "fedpp/core/config.hpp"

namespace fedpp::bench {

// ---- command line ---------------------------------------------------------------------------

/// `--name value` / `--name=value` flags with defaults; `--help` prints them.
class Flags {
 public:
  Flags(int argc, char** argv, std::string program) : program_(std::move(program)) {
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      if (a == "--help" || a == "-h") {
        help_ = true;
        continue;
      }
      if (a.rfind("--", 0) != 0) throw std::invalid_argument("unexpected argument '" + a + "'");
      a = a.substr(2);
      const auto eq = a.find('=');
      if (eq != std::string::npos) {
        values_[a.substr(0, eq)] = a.substr(eq + 1);
      } else if (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0) {
        values_[a] = argv[++i];
      } else {
        values_[a] = "1";  // a bare switch
      }
    }
  }

  /// The flag's value as text, or `def`; records the flag for --help.
  std::string get(const std::string& name, const std::string& def, const std::string& doc) {
    doc_.push_back("  --" + name + " (default '" + def + "'): " + doc);
    used_.push_back(name);
    auto it = values_.find(name);
    return it == values_.end() ? def : it->second;
  }
  /// The flag's value as an integer, or `def`.
  long long get_int(const std::string& name, long long def, const std::string& doc) {
    const std::string v = get(name, std::to_string(def), doc);
    std::size_t pos = 0;
    const double x = std::stod(v, &pos);  // accepts 1e6
    if (pos != v.size()) throw std::invalid_argument("--" + name + " expects a number, got '" + v + "'");
    return static_cast<long long>(x);
  }
  /// The flag's value as a floating-point number, or `def` (kept as text so --help shows it as given).
  double get_double(const std::string& name, const std::string& def, const std::string& doc) {
    return std::stod(get(name, def, doc));
  }
  /// The flag's value as a boolean switch.
  bool get_bool(const std::string& name, const std::string& doc) { return get(name, "0", doc) != "0"; }

  /// After every get(): prints help and returns true when --help was given; throws on unknown flags.
  bool finish() const {
    if (help_) {
      std::cout << "usage: " << program_ << " [flags]\n";
      for (const auto& d : doc_) std::cout << d << "\n";
      return true;
    }
    for (const auto& [k, v] : values_)
      if (std::find(used_.begin(), used_.end(), k) == used_.end())
        throw std::invalid_argument("unknown flag --" + k + " (see --help)");
    return false;
  }

 private:
  std::string program_;
  std::map<std::string, std::string> values_;
  std::vector<std::string> doc_, used_;
  bool help_ = false;
};

// ---- timing -----------------------------------------------------------------------------------

/// Seconds taken by one call of fn (std::chrono::steady_clock).
inline double time_once(const std::function<void()>& fn) {
  const auto t0 = std::chrono::steady_clock::now();
  fn();
  const auto t1 = std::chrono::steady_clock::now();
  return std::chrono::duration<double>(t1 - t0).count();
}

/// Minimum and median of a sample.
struct Stats {
  double min = 0, median = 0;
};

inline Stats stats(std::vector<double> v) {
  if (v.empty()) return {};
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return {v.front(), v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m])};
}

/// A timed case: its name and one time per repetition.
struct Case {
  std::string name;
  std::function<void()> run;
  std::vector<double> times;
};

/// Median over rounds of a[k] / b[k] (times of two cases from the same interleaved rounds).
inline double ratio_paired_median(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> r;
  for (std::size_t k = 0; k < a.size() && k < b.size(); ++k) r.push_back(a[k] / b[k]);
  return stats(r).median;
}

/// Runs every case `warmup` times untimed, then `reps` interleaved rounds (one call of each case
/// per round, the order rotated each round so no case always follows the same one).
inline void run_interleaved(std::vector<Case>& cases, int reps, int warmup) {
  for (int r = 0; r < warmup; ++r)
    for (auto& c : cases) c.run();
  const std::size_t k = cases.size();
  for (int r = 0; r < reps; ++r)
    for (std::size_t s = 0; s < k; ++s) {
      Case& c = cases[(s + static_cast<std::size_t>(r)) % k];
      c.times.push_back(time_once(c.run));
    }
}

// ---- the read-bandwidth probe -----------------------------------------------------------------

/// Sum of `count` floats read once, in parallel over the OpenMP threads (static contiguous
/// partition), with 16 independent float accumulators per thread so the loop vectorises.
/// Its time is the reference: how fast this machine reads that buffer with that many threads.
inline double probe_sum(const float* p, std::int64_t count) {
  double total = 0.0;
#if FEDPP_HAS_OPENMP
#pragma omp parallel reduction(+ : total)
#endif
  {
#if FEDPP_HAS_OPENMP
    const std::int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
#else
    const std::int64_t t = 0, nt = 1;
#endif
    const std::int64_t per = (count / nt) & ~std::int64_t{15};
    const std::int64_t lo = t * per, hi = (t + 1 == nt) ? count : lo + per;
    float acc[16] = {};
    std::int64_t i = lo;
    for (; i + 16 <= hi; i += 16)
      for (int k = 0; k < 16; ++k) acc[k] += p[i + k];
    for (; i < hi; ++i) acc[0] += p[i];
    double s = 0.0;
    for (float a : acc) s += a;
    total += s;
  }
  return total;
}

/// The probe's result goes here, so the compiler cannot drop the sum.
inline volatile double probe_sink = 0.0;

/// The reference case, "probe (parallel sum)": probe_sum over `count` floats at `data`.
inline Case probe_case(const float* data, std::int64_t count) {
  return {"probe (parallel sum)", [data, count] { probe_sink = probe_sink + probe_sum(data, count); }, {}};
}

// ---- machine facts ---------------------------------------------------------------------------

/// The "model name" line of /proc/cpuinfo (or "unknown").
inline std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) {
      const auto c = line.find(':');
      if (c != std::string::npos) return line.substr(line.find_first_not_of(" \t", c + 1));
    }
  return "unknown";
}

/// "family F model M" from /proc/cpuinfo (identifies the core when the model name is generic).
inline std::string cpu_family_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line, family, model;
  auto value = [](const std::string& l) {
    const auto c = l.find(':');
    return c == std::string::npos ? std::string() : l.substr(l.find_first_not_of(" \t", c + 1));
  };
  while (std::getline(in, line) && (family.empty() || model.empty())) {
    if (line.rfind("cpu family", 0) == 0) family = value(line);
    if (line.rfind("model\t", 0) == 0) model = value(line);  // not "model name"
  }
  return family.empty() ? "unknown" : "family " + family + " model " + model;
}

/// The 1, 5 and 15-minute load averages from /proc/loadavg (or "unknown").
inline std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  if (!(in >> a >> b >> c)) return "unknown";
  return a + " " + b + " " + c;
}

/// Current UTC time as ISO 8601.
inline std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

/// First line printed by a shell command, or "" (used for the git commit).
inline std::string command_line_output(const std::string& cmd) {
  std::FILE* f = popen(cmd.c_str(), "r");
  if (!f) return "";
  char buf[256];
  std::string out;
  if (std::fgets(buf, sizeof buf, f)) out = buf;
  pclose(f);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

/// `git describe --always --dirty` of the source tree the benchmark was built from, or "unknown".
inline std::string git_commit() {
#ifdef FEDPP_SOURCE_DIR
  std::string c = command_line_output("git -C '" FEDPP_SOURCE_DIR "' describe --always --dirty --abbrev=12 2>/dev/null");
  if (!c.empty()) return c;
#endif
  return "unknown";
}

// ---- JSON ------------------------------------------------------------------------------------

/// Minimal JSON writer: objects, arrays, strings, numbers, booleans, with indentation.
class Json {
 public:
  Json& begin_object(const std::string& key = "") { return open(key, '{'); }
  Json& end_object() { return close('}'); }
  Json& begin_array(const std::string& key = "") { return open(key, '['); }
  Json& end_array() { return close(']'); }
  Json& value(const std::string& key, const std::string& v) { return item(key, quote(v)); }
  Json& value(const std::string& key, const char* v) { return item(key, quote(v)); }
  Json& value(const std::string& key, bool v) { return item(key, v ? "true" : "false"); }
  Json& value(const std::string& key, double v) {
    std::ostringstream os;
    os << std::setprecision(9) << v;
    return item(key, os.str());
  }
  Json& value(const std::string& key, long long v) { return item(key, std::to_string(v)); }
  Json& value(const std::string& key, int v) { return item(key, std::to_string(v)); }
  /// The document so far.
  [[nodiscard]] std::string str() const { return out_.str() + "\n"; }

 private:
  static std::string quote(const std::string& s) {
    std::string q = "\"";
    for (char c : s) {
      if (c == '"' || c == '\\') {
        q += '\\';
        q += c;
      } else if (static_cast<unsigned char>(c) < 0x20) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\u%04x", c);
        q += buf;
      } else {
        q += c;
      }
    }
    return q + "\"";
  }
  void prefix(const std::string& key) {
    if (!first_.empty()) {
      if (!first_.back()) out_ << ",";
      first_.back() = false;
      out_ << "\n" << std::string(2 * first_.size(), ' ');
    }
    if (!key.empty()) out_ << quote(key) << ": ";
  }
  Json& item(const std::string& key, const std::string& text) {
    prefix(key);
    out_ << text;
    return *this;
  }
  Json& open(const std::string& key, char bracket) {
    prefix(key);
    out_ << bracket;
    first_.push_back(true);
    return *this;
  }
  Json& close(char bracket) {
    const bool empty = first_.back();
    first_.pop_back();
    if (!empty) out_ << "\n" << std::string(2 * first_.size(), ' ');
    out_ << bracket;
    return *this;
  }
  std::ostringstream out_;
  std::vector<bool> first_;
};

/// Writes the common header fields (benchmark, date, commit, machine, build) into an open object.
inline void write_context(Json& j, const std::string& benchmark) {
  j.value("benchmark", benchmark);
  j.value("date", utc_now());
  j.value("git_commit", git_commit());
  j.value("cpu_model", cpu_model());
  j.value("cpu_family_model", cpu_family_model());
  j.value("load_average", load_average());
#if defined(__clang__)
  j.value("compiler", std::string("clang ") + __clang_version__);
#elif defined(__GNUC__)
  j.value("compiler", std::string("g++ ") + __VERSION__);
#endif
#ifdef FEDPP_BENCH_BUILD
  j.value("build", FEDPP_BENCH_BUILD);
#endif
  j.value("openmp", FEDPP_HAS_OPENMP != 0);
  j.value("threads", max_threads());
}

/// Writes `text` to `path` (no-op when path is empty); throws when the file cannot be written.
inline void write_file(const std::string& path, const std::string& text) {
  if (path.empty()) return;
  std::ofstream f(path);
  if (!f) throw std::runtime_error("cannot write " + path);
  f << text;
}

// ---- the drivers' common scaffolding ---------------------------------------------------------

/// The repetition flags every driver reads, in this order: --threads, --reps, --warmup.
struct Timing {
  int threads = 0;  ///< threads asked for (0: OMP_NUM_THREADS or all)
  int reps = 0;     ///< timed repetitions of each case
  int warmup = 0;   ///< untimed repetitions first

  /// Reads the three flags with these defaults (and the --threads default and help text).
  static Timing read(Flags& flags, long long reps_default, long long warmup_default, long long threads_default = 0,
                     const std::string& threads_doc = "OpenMP threads (0: OMP_NUM_THREADS or all)") {
    Timing t;
    t.threads = static_cast<int>(flags.get_int("threads", threads_default, threads_doc));
    t.reps = static_cast<int>(flags.get_int("reps", reps_default, "timed repetitions of each case"));
    t.warmup = static_cast<int>(flags.get_int("warmup", warmup_default, "untimed repetitions first"));
    return t;
  }
  /// Sets the OpenMP thread count when --threads was given (> 0).
  void apply_threads() const {
    if (threads > 0) set_max_threads(threads);
  }
  /// Writes "repetitions" and "warmup" into the open JSON object.
  void write(Json& j) const {
    j.value("repetitions", reps);
    j.value("warmup", warmup);
  }
};

/// Reads --json, the path of the JSON result ("" when not given).
inline std::string json_flag(Flags& flags) { return flags.get("json", "", "write the JSON result to this file"); }

/// Starts a driver's JSON document: opens it, writes write_context() and opens its "parameters" object.
inline Json open_report(const std::string& benchmark) {
  Json j;
  j.begin_object();
  write_context(j, benchmark);
  j.begin_object("parameters");
  return j;
}

/// Writes the finished document to `path` and prints "  wrote <path>"; does nothing when path is empty.
inline void save_report(const std::string& path, const Json& j) {
  write_file(path, j.str());
  if (!path.empty()) std::cout << "  wrote " << path << "\n";
}

/// A driver's headline target: pass when `ratio` (a paired median of time ratios) is <= `max`.
struct Target {
  double ratio = 0;  ///< the measured ratio
  double max = 0;    ///< its threshold (the --target flag)

  /// Whether the target is met.
  [[nodiscard]] bool pass() const { return ratio <= max; }
  /// Writes "metric", "ratio", "max" and "pass" into the open JSON object.
  void write(Json& j, const std::string& metric) const {
    j.value("metric", metric);
    j.value("ratio", ratio);
    j.value("max", max);
    j.value("pass", pass());
  }
  /// Prints "  target: <what> = <ratio> <= <max>: PASS|FAIL" (no newline) with `precision` digits.
  void print(const std::string& what, int precision = 3) const {
    std::cout << std::setprecision(precision) << "  target: " << what << " = " << ratio << " <= " << max << ": "
              << (pass() ? "PASS" : "FAIL");
  }
};

/// What a report row prints after the case's times when it has a probe.
enum class ProbeText {
  paired,            ///< "  x<paired> probe (paired)"
  paired_median,     ///< "  x<paired> probe (paired median)"
  min_paired,        ///< "  x<min> probe (min), x<paired> (paired)"
  min_median_paired  ///< "  x<min> probe (min), x<median> (median), x<paired> (paired)"
};

/// The layout of a driver's report rows: column widths, digits, and the optional fields.
struct RowStyle {
  int name_width = 34;                             ///< width of the (left-aligned) case name
  int ms_width = 9;                                ///< width of each time in ms
  int precision = 2;                               ///< digits of the times (and of the GB/s column)
  bool gbps_column = false;                        ///< every row: "  <GB/s at min> GB/s" after the times
  bool gbps_without_probe = false;                 ///< rows without a probe: "  <GB/s at min> GB/s", 1 digit
  ProbeText probe_text = ProbeText::paired_median;  ///< rows with a probe: the ratios printed
  int probe_precision = 2;                         ///< digits of those ratios
  bool json_repetitions = false;                   ///< JSON "repetitions" (the number of times)
  bool json_gbps_at_min = true;                    ///< JSON "gbps_at_min"
  bool json_gbps_at_median = false;                ///< JSON "gbps_at_median"
};

/// Writes the array "times_s" of a case's times into the open JSON object.
inline void write_times(Json& j, const std::vector<double>& times) {
  j.begin_array("times_s");
  for (double t : times) j.value("", t);
  j.end_array();
}

/// Prints one summary line and writes one object of a JSON array for case `c` (`bytes` read per
/// call); with a probe, the ratios to it; with a baseline, the speed-up over it (paired medians).
inline void report_case(Json& j, const Case& c, double bytes, const Case* probe, const RowStyle& style,
                        const Case* baseline = nullptr) {
  const Stats s = stats(c.times);
  std::cout << "  " << std::left << std::setw(style.name_width) << c.name << std::right << std::fixed
            << std::setprecision(style.precision) << " min " << std::setw(style.ms_width) << 1e3 * s.min
            << " ms  median " << std::setw(style.ms_width) << 1e3 * s.median << " ms";
  if (style.gbps_column) std::cout << "  " << std::setw(6) << bytes / s.min * 1e-9 << " GB/s";
  j.begin_object();
  j.value("name", c.name);
  if (style.json_repetitions) j.value("repetitions", static_cast<long long>(c.times.size()));
  j.value("min_s", s.min);
  j.value("median_s", s.median);
  if (style.json_gbps_at_min) j.value("gbps_at_min", bytes / s.min * 1e-9);
  if (style.json_gbps_at_median) j.value("gbps_at_median", bytes / s.median * 1e-9);
  if (probe) {
    const Stats p = stats(probe->times);
    const double paired = ratio_paired_median(c.times, probe->times);
    j.value("ratio_to_probe_min", s.min / p.min);
    j.value("ratio_to_probe_median", s.median / p.median);
    j.value("ratio_to_probe_paired_median", paired);
    std::cout << "  x" << std::setprecision(style.probe_precision);
    switch (style.probe_text) {
      case ProbeText::paired:
        std::cout << paired << " probe (paired)";
        break;
      case ProbeText::paired_median:
        std::cout << paired << " probe (paired median)";
        break;
      case ProbeText::min_paired:
        std::cout << s.min / p.min << " probe (min), x" << paired << " (paired)";
        break;
      case ProbeText::min_median_paired:
        std::cout << s.min / p.min << " probe (min), x" << s.median / p.median << " (median), x" << paired
                  << " (paired)";
        break;
    }
  } else if (style.gbps_without_probe) {
    std::cout << "  " << std::setprecision(1) << bytes / s.min * 1e-9 << " GB/s";
  }
  if (baseline) {
    const double speedup = ratio_paired_median(baseline->times, c.times);
    j.value("speedup_over_" + baseline->name, speedup);
    std::cout << ", " << std::setprecision(1) << speedup << "x faster than naive";
  }
  std::cout << "\n";
  write_times(j, c.times);
  j.end_object();
}

/// report_case() for every case into the open JSON array: the first (the probe) alone, the others against it.
inline void report_cases(Json& j, const std::vector<Case>& cases, double bytes, const RowStyle& style) {
  for (std::size_t k = 0; k < cases.size(); ++k) report_case(j, cases[k], bytes, k ? &cases[0] : nullptr, style);
}

/// report_cases() into a new JSON array `key` (e.g. "results") of the open object.
inline void report_array(Json& j, const std::string& key, const std::vector<Case>& cases, double bytes,
                         const RowStyle& style) {
  j.begin_array(key);
  report_cases(j, cases, bytes, style);
  j.end_array();
}

/// An extra section (a sweep of variants): prints `heading`, then report_array() under `key`.
inline void report_section(Json& j, const std::string& key, const std::string& heading, const std::vector<Case>& cases,
                           double bytes, const RowStyle& style) {
  std::cout << heading;
  report_array(j, key, cases, bytes, style);
}

/// A driver's main(): returns run(argc, argv); an exception prints "<program>: <what>" and returns 2.
inline int guarded_main(const char* program, int (*run)(int, char**), int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << program << ": " << e.what() << "\n";
    return 2;
  }
}

}  // namespace fedpp::bench
