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
template <typename S>
bool all_finite(std::span<const S> x) noexcept {
  return ConstVectorMap<S>(x.data(), static_cast<Index>(x.size())).allFinite();
}

}  // namespace fedpp
