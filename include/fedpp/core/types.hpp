#pragma once
/// @file types.hpp
/// Basic numeric types: dense vectors and matrices (Eigen), indices and client ids.

#include <Eigen/Core>
#include <cstdint>
#include <span>

namespace fedpp {

/// Index type for dimensions and counts (Eigen's signed index).
using Index = Eigen::Index;
/// Identifier of a client within a federation.
using ClientId = std::uint32_t;

/// Dense column vector: a flat parameter vector or one update.
template <typename S>
using Vector = Eigen::Matrix<S, Eigen::Dynamic, 1>;
/// Dense column-major matrix.
template <typename S>
using Matrix = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic>;
/// Mutable view of a vector's storage.
template <typename S>
using VectorMap = Eigen::Map<Vector<S>>;
/// Read-only view of a vector's storage.
template <typename S>
using ConstVectorMap = Eigen::Map<const Vector<S>>;

/// A span over a vector's contiguous storage.
template <typename S>
std::span<S> as_span(Vector<S>& v) noexcept {
  return {v.data(), static_cast<std::size_t>(v.size())};
}
/// A read-only span over a vector's contiguous storage.
template <typename S>
std::span<const S> as_span(const Vector<S>& v) noexcept {
  return {v.data(), static_cast<std::size_t>(v.size())};
}
/// A read-only Eigen view of a span.
template <typename S>
ConstVectorMap<S> as_map(std::span<const S> s) noexcept {
  return ConstVectorMap<S>(s.data(), static_cast<Index>(s.size()));
}
/// A mutable Eigen view of a span.
template <typename S>
VectorMap<S> as_map(std::span<S> s) noexcept {
  return VectorMap<S>(s.data(), static_cast<Index>(s.size()));
}

/// True when every element of the span is finite (no NaN or infinity).
/**
 * One pass summing x * 0 in 16 independent lanes (x * 0 is NaN exactly when x is NaN or
 * infinite, and a NaN survives any sum), which vectorises; Eigen's allFinite() does not and is
 * several times slower on the server's per-update check.
 */
template <typename S>
bool all_finite(std::span<const S> x) noexcept {
  constexpr std::size_t lanes = 16;
  S acc[lanes] = {};
  const S* p = x.data();
  const std::size_t n = x.size();
  std::size_t i = 0;
  for (; i + lanes <= n; i += lanes)
    for (std::size_t l = 0; l < lanes; ++l) acc[l] += p[i + l] * S(0);
  S total = S(0);
  for (; i < n; ++i) total += p[i] * S(0);
  for (std::size_t l = 0; l < lanes; ++l) total += acc[l];
  return total == S(0);
}

/// all_finite() of a whole vector.
template <typename S>
bool all_finite(const Vector<S>& v) noexcept {
  return all_finite(std::span<const S>(v.data(), static_cast<std::size_t>(v.size())));
}

}  // namespace fedpp
