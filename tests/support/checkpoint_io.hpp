#pragma once
// Checkpoint round trips through strings, for the serialization tests.
#include <sstream>
#include <string>

#include "fedpp/serialization/checkpoint.hpp"
#include "support/checks.hpp"

namespace fedpp_test {

/// The checkpoint of `value` (fedpp::save_state) as bytes in a string.
template <typename T>
std::string checkpoint(const T& value) {
  std::ostringstream os;
  fedpp::save_state(value, os);
  return os.str();
}

/// Loads `bytes` (a checkpoint) into `value` (fedpp::load_state).
template <typename T>
void restore(T& value, const std::string& bytes) {
  std::istringstream is(bytes);
  fedpp::load_state(value, is);
}

}  // namespace fedpp_test
