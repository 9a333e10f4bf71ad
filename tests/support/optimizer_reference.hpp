#pragma once
// Helpers for the server-optimizer tests: the fields a state's serialize() lists, and vectors widened
// to long double for the independent reference implementations.
#include <cstddef>
#include <vector>

#include "fedpp/core/types.hpp"

namespace fedpp_test {

/// An archive stand-in that records the address of every field serialize() hands it, in order.
struct FieldRecorder {
  std::vector<const void*> fields;  ///< the addresses of the listed fields
  /// Records the address of each field.
  template <class... T>
  void operator()(T&... t) {
    (fields.push_back(static_cast<const void*>(&t)), ...);
  }
};

/// The entries of a, converted to long double.
template <typename S>
std::vector<long double> to_ld(const fedpp::Vector<S>& a) {
  std::vector<long double> out(static_cast<std::size_t>(a.size()));
  for (fedpp::Index i = 0; i < a.size(); ++i) out[static_cast<std::size_t>(i)] = static_cast<long double>(a[i]);
  return out;
}

}  // namespace fedpp_test
