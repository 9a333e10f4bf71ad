#pragma once
// Helpers shared by the unit tests: bit-exact comparison, the bytes of a payload, the message of
// an expected exception, and a guard that restores the OpenMP thread count.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <string>
#include <type_traits>
#include <vector>

#include <Eigen/Core>

#include "fedpp/core/config.hpp"
#include "fedpp/core/payload.hpp"
#include "fedpp/core/types.hpp"
#include "fedpp/core/update_batch.hpp"

namespace fedpp_test {

/// True when a and b have the same shape and the same bytes (so +0 != -0 and NaN payloads count).
template <typename A, typename B>
bool same_bits(const Eigen::PlainObjectBase<A>& a, const Eigen::PlainObjectBase<B>& b) {
  static_assert(std::is_same_v<typename A::Scalar, typename B::Scalar>);
  // (memcmp must not see the null data pointer of an empty object, even with a zero size)
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         (a.size() == 0 ||
          std::memcmp(a.data(), b.data(), static_cast<std::size_t>(a.size()) * sizeof(typename A::Scalar)) == 0);
}

/// True when a and b have the same length and the same bytes.
template <typename T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

/// True when two batches have the same shape and the same update bytes (weights and ids not compared).
template <typename S>
bool same_bits(const fedpp::UpdateBatch<S>& a, const fedpp::UpdateBatch<S>& b) {
  return a.dim() == b.dim() && a.size() == b.size() &&
         (a.dim() * a.size() == 0 ||
          std::memcmp(a.data(), b.data(), static_cast<std::size_t>(a.dim() * a.size()) * sizeof(S)) == 0);
}

/// Number of coordinates whose bytes differ; every coordinate that one vector has and the other
/// lacks counts as a mismatch, so a short or empty result never compares equal to a reference.
template <typename S>
fedpp::Index count_mismatches(const fedpp::Vector<S>& a, const fedpp::Vector<S>& b) {
  const fedpp::Index common = std::min(a.size(), b.size());
  fedpp::Index bad = std::max(a.size(), b.size()) - common;
  for (fedpp::Index j = 0; j < common; ++j)
    if (std::memcmp(&a(j), &b(j), sizeof(S)) != 0) ++bad;
  return bad;
}

/// The bytes of a payload, for comparisons.
inline std::vector<std::uint8_t> bytes_of(const fedpp::Payload& p) { return {p.data().begin(), p.data().end()}; }

/// what() of the std::exception fn throws, or "(no throw)".
template <typename Fn>
std::string message_of(Fn&& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no throw)";
}

/// Restores the OpenMP thread count on scope exit (tests that pin 1 or 2 threads).
struct ThreadGuard {
  int saved = fedpp::max_threads();  ///< the count to restore
  ~ThreadGuard() { fedpp::set_max_threads(saved); }
  ThreadGuard() = default;
  ThreadGuard(const ThreadGuard&) = delete;
  ThreadGuard& operator=(const ThreadGuard&) = delete;
};

}  // namespace fedpp_test
