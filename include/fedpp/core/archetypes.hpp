#pragma once
/// @file archetypes.hpp
/// Minimal types that satisfy a concept and nothing more, used to static_assert that generic
/// policies and hosts ask no more of their arguments than the concept promises.

#include <span>

#include "fedpp/core/concepts.hpp"

namespace fedpp::archetypes {

/// The least a Model provides (a linear score with no parameters beyond a bias per class).
template <typename S = float>
struct ModelArchetype {
  /// Scalar type.
  using Scalar = S;
  /// Parameter count.
  [[nodiscard]] Index num_params() const noexcept { return 1; }
  /// Input features.
  [[nodiscard]] Index input_dim() const noexcept { return 1; }
  /// Classes.
  [[nodiscard]] int num_classes() const noexcept { return 2; }
  /// One flat segment.
  [[nodiscard]] ParameterLayout layout() const { return ParameterLayout::flat(1); }
  /// Zero-initialised parameters.
  void init_params(Vector<S>& v, Rng& /*rng*/) const { v = Vector<S>::Zero(1); }
  /// Zero loss and gradient.
  double loss_and_gradient(std::span<const S> /*p*/, const Eigen::Ref<const Matrix<S>>& /*X*/,
                           std::span<const Label> /*y*/, std::span<S> g) const {
    for (auto& x : g) x = S(0);
    return 0.0;
  }
  /// Nothing evaluated.
  EvalResult evaluate(std::span<const S> /*p*/, const Eigen::Ref<const Matrix<S>>& /*X*/,
                      std::span<const Label> /*y*/) const {
    return {};
  }
};

static_assert(Model<ModelArchetype<float>> && Model<ModelArchetype<double>>);

}  // namespace fedpp::archetypes
