#pragma once
// Shared helpers of fedpp's benchmark drivers: command-line flags, timing statistics, the
// read-bandwidth probe, machine facts and a small JSON writer. Not part of the library.

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

}  // namespace fedpp::bench
