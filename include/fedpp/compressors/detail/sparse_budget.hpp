#pragma once
/// @file sparse_budget.hpp
/// How many coordinates a sparsifier keeps (a count k or a density rho) and the value format its
/// payload uses: the settings TopK and RandomK share (private CRTP base).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "fedpp/compressors/sparse.hpp"
#include "fedpp/core/bytes.hpp"
#include "fedpp/core/error.hpp"
#include "fedpp/core/payload.hpp"
#include "fedpp/core/types.hpp"

namespace fedpp::detail {

/// k = ceil(rho d) (products within 1e-12 relative of an integer round to it), in [1, d].
[[nodiscard]] inline Index density_k(double rho, Index d) noexcept {
  const double t = rho * static_cast<double>(d);
  const double r = std::round(t);
  const double kd = std::abs(t - r) <= 1e-12 * std::max(1.0, t) ? r : std::ceil(t);
  return std::clamp(static_cast<Index>(kd), Index{1}, d);
}

/// Count/density budget and value format of a sparsifier `Derived` (which names itself in `Derived::who`).
template <typename Derived>
class SparseBudget {
 public:
  /// Keeps k >= 1 coordinates.
  [[nodiscard]] static Derived count(Index k) {
    require(k >= 1, Derived::who, "k must be >= 1", k);
    Derived t;
    static_cast<SparseBudget&>(t).k_ = k;
    return t;
  }

  /// Keeps ceil(rho * d) coordinates (at least 1), rho in (0, 1].
  [[nodiscard]] static Derived density(double rho) {
    require(rho > 0.0 && rho <= 1.0, Derived::who, "density must be in (0, 1]", rho);
    Derived t;
    static_cast<SparseBudget&>(t).rho_ = rho;
    return t;
  }

  /// A copy that sends values in format `fmt`.
  [[nodiscard]] Derived with_format(ValueFormat fmt) const {
    require(static_cast<std::uint8_t>(fmt) <= 3, Derived::who, "format must be f32, f64, f16 or bf16",
            static_cast<unsigned>(fmt));
    Derived t = static_cast<const Derived&>(*this);
    static_cast<SparseBudget&>(t).fmt_ = fmt;
    return t;
  }

  /// Number of coordinates kept for dimension d (min(k, d), or max(1, ceil(rho d)) capped at d).
  [[nodiscard]] Index k_for(Index d) const noexcept {
    if (d <= 0) return 0;
    if (k_) return std::min(*k_, d);
    return density_k(rho_, d);
  }

  /// The configured value format, or none for the update's own precision.
  [[nodiscard]] std::optional<ValueFormat> format() const noexcept { return fmt_; }

 protected:
  /// The format values of scalar S travel in.
  template <typename S>
  [[nodiscard]] ValueFormat wire_format() const noexcept {
    return fmt_ ? *fmt_ : native_format<S>();
  }

  /// Decodes a sparse payload into `out`, first checking that it carries exactly k_for(out.size()) values.
  template <typename S>
  void decode_budget(const Payload& p, std::span<S> out, std::string_view who) const {
    const auto k = static_cast<std::uint64_t>(k_for(static_cast<Index>(out.size())));
    ByteReader r(p.data(), who);
    const PayloadHeader h = PayloadHeader::read(r);
    if (h.codec == Codec::sparse && h.dim == out.size() && h.count != k)
      fail<DecodeError>(who, "count must be k = " + std::to_string(k), h.count);
    decode_sparse(p, out, who, wire_format<S>());
  }

 private:
  std::optional<Index> k_;
  double rho_ = 1.0;
  std::optional<ValueFormat> fmt_;
};

}  // namespace fedpp::detail
