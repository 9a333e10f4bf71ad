#pragma once
/// @file layout.hpp
/// The layout of a flat parameter vector: named segments (one per layer or tensor) with offsets
/// and shapes, for policies that work per tensor.

#include <numeric>
#include <string>
#include <string_view>
#include <vector>

#include "fedpp/core/error.hpp"
#include "fedpp/core/types.hpp"

namespace fedpp {

/// One named tensor inside a flat parameter vector.
struct Segment {
  std::string name;          ///< e.g. "fc1.weight"
  Index offset = 0;          ///< first element in the flat vector
  std::vector<Index> shape;  ///< tensor shape, row-major description (e.g. {out, in})

  /// Number of elements (product of the shape).
  [[nodiscard]] Index size() const noexcept {
    return std::accumulate(shape.begin(), shape.end(), Index{1}, std::multiplies<>());
  }
};

/// Ordered, contiguous segments covering a parameter vector.
class ParameterLayout {
 public:
  ParameterLayout() = default;

  /// Appends a segment after the last one; returns its offset.
  Index add(std::string name, std::vector<Index> shape) {
    for (Index e : shape) require(e > 0, "fedpp::ParameterLayout", "segment extents must be positive", e);
    Segment s{std::move(name), total_, std::move(shape)};
    total_ += s.size();
    segments_.push_back(std::move(s));
    return segments_.back().offset;
  }

  /// Total number of parameters.
  [[nodiscard]] Index total() const noexcept { return total_; }
  /// The segments, in order.
  [[nodiscard]] const std::vector<Segment>& segments() const noexcept { return segments_; }
  /// Number of segments.
  [[nodiscard]] std::size_t size() const noexcept { return segments_.size(); }

  /// The segment called `name`; throws InvalidArgument when there is none.
  [[nodiscard]] const Segment& at(std::string_view name) const {
    for (const auto& s : segments_)
      if (s.name == name) return s;
    fail("fedpp::ParameterLayout::at", "no segment with this name", name);
  }

  /// A layout with one segment covering `d` parameters (for policies that ignore the layout).
  static ParameterLayout flat(Index d, std::string name = "params") {
    ParameterLayout l;
    l.add(std::move(name), {d});
    return l;
  }

 private:
  std::vector<Segment> segments_;
  Index total_ = 0;
};

}  // namespace fedpp
