#pragma once
// Minimal command-line flags for fedpp's examples: --name value, --flag, --help.

#include <cstdlib>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace examples {

/// Declares flags with defaults and help text, then parses argv.
class Cli {
 public:
  explicit Cli(std::string program, std::string summary) : program_(std::move(program)), summary_(std::move(summary)) {}

  /// Declares an option taking a value.
  Cli& option(const std::string& name, std::string def, std::string help) {
    specs_.push_back({name, std::move(def), std::move(help), false});
    return *this;
  }
  /// Declares a boolean flag (false unless given).
  Cli& flag(const std::string& name, std::string help) {
    specs_.push_back({name, "", std::move(help), true});
    return *this;
  }

  /// Parses argv; prints usage and exits on --help or an unknown/incomplete flag.
  void parse(int argc, char** argv) {
    for (const auto& s : specs_) values_[s.name] = s.is_flag ? "0" : s.def;
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      if (a == "--help" || a == "-h") usage(0);
      if (a.rfind("--", 0) != 0) fail("unexpected argument '" + a + "'");
      a = a.substr(2);
      std::string value;
      bool has_value = false;
      if (auto eq = a.find('='); eq != std::string::npos) {
        value = a.substr(eq + 1);
        a = a.substr(0, eq);
        has_value = true;
      }
      const Spec* spec = find(a);
      if (!spec) fail("unknown flag '--" + a + "'");
      given_.push_back(a);
      if (spec->is_flag) {
        values_[a] = "1";
        continue;
      }
      if (!has_value) {
        if (i + 1 >= argc) fail("flag '--" + a + "' needs a value");
        value = argv[++i];
      }
      values_[a] = value;
    }
  }

  /// The value of an option as text.
  std::string str(const std::string& name) const { return values_.at(name); }
  /// The value as a double (exits with a message if it is not a number).
  double num(const std::string& name) const { return convert<double>(name); }
  /// The value as an integer.
  long long integer(const std::string& name) const { return convert<long long>(name); }
  /// Whether the flag appeared on the command line.
  bool given(const std::string& name) const {
    for (const auto& g : given_)
      if (g == name) return true;
    return false;
  }
  /// Overrides a value (e.g. a preset that changes defaults the user did not set).
  void set(const std::string& name, std::string value) { values_.at(name) = std::move(value); }
  /// Whether a boolean flag was given.
  bool on(const std::string& name) const { return values_.at(name) == "1"; }
  /// A comma-separated list of words (empty items skipped).
  std::vector<std::string> strings(const std::string& name) const {
    std::vector<std::string> out;
    std::stringstream ss(values_.at(name));
    for (std::string item; std::getline(ss, item, ',');)
      if (!item.empty()) out.push_back(item);
    return out;
  }
  /// A comma-separated list of integers.
  std::vector<long long> integers(const std::string& name) const {
    std::vector<long long> out;
    for (const std::string& item : strings(name)) {
      std::istringstream is(item);
      long long v;
      if (!(is >> v) || !is.eof()) fail("flag '--" + name + "' expects comma-separated integers, got '" + values_.at(name) + "'");
      out.push_back(v);
    }
    return out;
  }

 private:
  struct Spec {
    std::string name, def, help;
    bool is_flag;
  };
  const Spec* find(const std::string& n) const {
    for (const auto& s : specs_)
      if (s.name == n) return &s;
    return nullptr;
  }
  template <typename T>
  T convert(const std::string& name) const {
    std::istringstream is(values_.at(name));
    T v{};
    if (!(is >> v) || !is.eof()) fail("flag '--" + name + "' expects a number, got '" + values_.at(name) + "'");
    return v;
  }
  [[noreturn]] void fail(const std::string& msg) const {
    std::cerr << program_ << ": " << msg << " (see --help)\n";
    std::exit(2);
  }
  [[noreturn]] void usage(int code) const {
    std::cout << "usage: " << program_ << " [flags]\n" << summary_ << "\n\nflags:\n";
    for (const auto& s : specs_) {
      std::string left = "  --" + s.name + (s.is_flag ? "" : " <" + (s.def.empty() ? std::string("value") : s.def) + ">");
      std::cout << left << std::string(left.size() < 30 ? 30 - left.size() : 1, ' ') << s.help << '\n';
    }
    std::exit(code);
  }

  std::string program_, summary_;
  std::vector<Spec> specs_;
  std::map<std::string, std::string> values_;
  std::vector<std::string> given_;
};

}  // namespace examples
