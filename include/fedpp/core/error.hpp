#pragma once
/// @file error.hpp
/// The fedpp exception hierarchy and helpers that build uniform messages of the form
/// `fedpp::TrimmedMean: trim_ratio must be in [0, 0.5), got 0.7`.

#include <charconv>
#include <concepts>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>

#include "fedpp/core/config.hpp"

namespace fedpp {

/// Base of every exception fedpp throws.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A hyperparameter or argument outside its valid range.
class InvalidArgument : public Error {
 public:
  using Error::Error;
};

/// Sizes that do not agree (dimension, number of weights, batch columns).
class DimensionError : public InvalidArgument {
 public:
  using InvalidArgument::InvalidArgument;
};

/// A data file that is missing, unreadable or corrupt.
class DataError : public Error {
 public:
  using Error::Error;
};

/// A payload or frame that cannot be decoded.
class DecodeError : public Error {
 public:
  using Error::Error;
};

/// A round that could not complete (e.g. too few valid client updates).
class RoundError : public Error {
 public:
  using Error::Error;
};

namespace detail {

/// Shortest round-trip text for a value (numbers via to_chars, strings verbatim).
template <typename T>
std::string to_text(const T& v) {
  if constexpr (std::is_same_v<T, bool>) {
    return v ? "true" : "false";
  } else if constexpr (std::is_arithmetic_v<T>) {
    char buf[64];
    auto res = std::to_chars(buf, buf + sizeof(buf), v);
    return std::string(buf, res.ptr);
  } else if constexpr (std::is_convertible_v<const T&, std::string_view>) {
    return std::string(std::string_view(v));
  } else {
    std::ostringstream os;
    os << v;
    return os.str();
  }
}

/// Builds "where: what, got value".
template <typename V>
std::string message(std::string_view where, std::string_view what, const V& got) {
  std::string m(where);
  m += ": ";
  m += what;
  m += ", got ";
  m += to_text(got);
  return m;
}

/// Builds "where: what".
inline std::string message(std::string_view where, std::string_view what) {
  std::string m(where);
  m += ": ";
  m += what;
  return m;
}

}  // namespace detail

/// Throws `E` with message "where: what, got value".
template <typename E = InvalidArgument, typename V>
[[noreturn]] void fail(std::string_view where, std::string_view what, const V& got) {
  FEDPP_THROW(E(detail::message(where, what, got)));
}

/// Throws `E` with message "where: what".
template <typename E = InvalidArgument>
[[noreturn]] void fail(std::string_view where, std::string_view what) {
  FEDPP_THROW(E(detail::message(where, what)));
}

/// Throws `E` ("where: what, got value") unless `ok`; returns `got` for use in initialisers.
template <typename E = InvalidArgument, typename V>
const V& require(bool ok, std::string_view where, std::string_view what, const V& got) {
  if (!ok) fail<E>(where, what, got);
  return got;
}

}  // namespace fedpp
