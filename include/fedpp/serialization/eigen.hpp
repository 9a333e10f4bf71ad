#pragma once
/// @file eigen.hpp
/// cereal save/load for Eigen dense matrices and vectors (Vector<S>, Matrix<S>, fixed sizes),
/// for binary, portable binary, JSON and XML archives.
/**
 * Layout: `rows`, `cols` (std::int64_t), then the coefficients in storage order as `data`:
 * one binary block in binary archives (byte-swapped as needed by the portable archive), a JSON/XML
 * array of numbers otherwise. Loading checks that the sizes are non-negative, fit the matrix
 * type's compile-time sizes and match the number of coefficients, and throws
 * cereal::Exception otherwise (checkpoint.hpp turns it into fedpp::DecodeError).
 */

#include <cereal/cereal.hpp>

#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>

#include <Eigen/Core>

namespace fedpp::detail {

/// A view of n contiguous coefficients, serialised as a sized sequence (text) or a blob (binary).
template <typename S>
struct DenseCoefficients {
  S* data;          ///< first coefficient
  std::size_t n;    ///< number of coefficients

  /// Writes n, then the coefficients.
  template <class Archive>
  void save(Archive& ar) const {
    ar(cereal::make_size_tag(static_cast<cereal::size_type>(n)));
    if constexpr (std::is_arithmetic_v<S> &&
                  cereal::traits::is_output_serializable<cereal::BinaryData<S*>, Archive>::value) {
      ar(cereal::binary_data(data, n * sizeof(S)));
    } else {
      for (std::size_t i = 0; i < n; ++i) ar(data[i]);
    }
  }

  /// Reads the count (which must be n), then the coefficients.
  template <class Archive>
  void load(Archive& ar) {
    cereal::size_type count = 0;
    ar(cereal::make_size_tag(count));
    if (count != static_cast<cereal::size_type>(n))
      throw cereal::Exception("fedpp: Eigen coefficient count " + std::to_string(count) + " does not match " +
                              std::to_string(n));
    if constexpr (std::is_arithmetic_v<S> &&
                  cereal::traits::is_input_serializable<cereal::BinaryData<S*>, Archive>::value) {
      ar(cereal::binary_data(data, n * sizeof(S)));
    } else {
      for (std::size_t i = 0; i < n; ++i) ar(data[i]);
    }
  }
};

}  // namespace fedpp::detail

namespace cereal {

/// Saves an Eigen dense matrix or vector: rows, cols, coefficients.
template <class Archive, typename S, int R, int C, int O, int MR, int MC>
void save(Archive& ar, const Eigen::Matrix<S, R, C, O, MR, MC>& m) {
  const std::int64_t rows = m.rows(), cols = m.cols();
  ar(make_nvp("rows", rows), make_nvp("cols", cols));
  const fedpp::detail::DenseCoefficients<S> coeffs{const_cast<S*>(m.data()), static_cast<std::size_t>(m.size())};
  ar(make_nvp("data", coeffs));
}

/// Loads an Eigen dense matrix or vector saved by save(); resizes dynamic dimensions.
template <class Archive, typename S, int R, int C, int O, int MR, int MC>
void load(Archive& ar, Eigen::Matrix<S, R, C, O, MR, MC>& m) {
  std::int64_t rows = 0, cols = 0;
  ar(make_nvp("rows", rows), make_nvp("cols", cols));
  if (rows < 0 || cols < 0 || (R != Eigen::Dynamic && rows != R) || (C != Eigen::Dynamic && cols != C) ||
      (MR != Eigen::Dynamic && rows > MR) || (MC != Eigen::Dynamic && cols > MC) ||
      (cols > 0 && rows > std::numeric_limits<std::int64_t>::max() / static_cast<std::int64_t>(sizeof(S)) / cols))
    throw Exception("fedpp: invalid Eigen matrix size " + std::to_string(rows) + " x " + std::to_string(cols));
  m.resize(static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(cols));
  fedpp::detail::DenseCoefficients<S> coeffs{m.data(), static_cast<std::size_t>(m.size())};
  ar(make_nvp("data", coeffs));
}

}  // namespace cereal
