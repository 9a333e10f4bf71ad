#pragma once
/// @file dataset.hpp
/// Labelled data sets (one column per sample) and per-client views into them.

#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "fedpp/core/error.hpp"
#include "fedpp/core/types.hpp"

namespace fedpp {

/// Class label of one sample.
using Label = std::int32_t;

/// A labelled classification data set: `features` is d_in x N (one column per sample).
template <typename S = float>
struct Dataset {
  Matrix<S> features;        ///< d_in x N, column j is sample j
  std::vector<Label> labels; ///< N labels in [0, num_classes)
  int num_classes = 0;       ///< number of classes

  /// Number of samples.
  [[nodiscard]] Index size() const noexcept { return features.cols(); }
  /// Number of input features per sample.
  [[nodiscard]] Index dim() const noexcept { return features.rows(); }

  /// Throws DimensionError/InvalidArgument when sizes or labels are inconsistent.
  void validate(std::string_view where = "fedpp::Dataset") const {
    if (static_cast<Index>(labels.size()) != features.cols())
      fail<DimensionError>(where, "labels must have one entry per feature column (" +
                                      std::to_string(features.cols()) + ")", labels.size());
    require(num_classes > 0, where, "num_classes must be > 0", num_classes);
    for (Label y : labels)
      if (y < 0 || y >= num_classes)
        fail(where, "labels must be in [0, " + std::to_string(num_classes) + ")", y);
  }
};

/// A client's share of a data set: indices into a shared Dataset, plus an optional label map.
/**
 * Views are cheap to copy (the base is shared). `label_map`, when not empty, replaces each
 * label y by `label_map[y]` when batches are gathered (used by data-level attacks such as
 * label flipping); it must have `num_classes` entries.
 */
template <typename S = float>
struct DatasetView {
  std::shared_ptr<const Dataset<S>> base;   ///< the shared data set
  std::vector<std::uint32_t> indices;       ///< samples of this client, in base order or any order
  std::vector<Label> label_map;             ///< optional relabelling, empty = identity

  /// Number of samples in the view.
  [[nodiscard]] Index size() const noexcept { return static_cast<Index>(indices.size()); }
  /// Number of input features.
  [[nodiscard]] Index dim() const noexcept { return base ? base->dim() : 0; }
  /// Number of classes of the base data set.
  [[nodiscard]] int num_classes() const noexcept { return base ? base->num_classes : 0; }

  /// Label of the view's k-th sample, after the label map.
  [[nodiscard]] Label label(Index k) const noexcept {
    const Label y = base->labels[indices[static_cast<std::size_t>(k)]];
    return label_map.empty() ? y : label_map[static_cast<std::size_t>(y)];
  }

  /// Copies the samples at the view positions listed in `order` into X (d_in x m) and y (m), m = order.size().
  void gather(std::span<const std::uint32_t> order, Matrix<S>& X, std::vector<Label>& y) const {
    const auto m = static_cast<Index>(order.size());
    X.resize(base->dim(), m);
    y.resize(order.size());
    for (Index j = 0; j < m; ++j) {
      const auto k = static_cast<Index>(order[static_cast<std::size_t>(j)]);
      X.col(j) = base->features.col(indices[static_cast<std::size_t>(k)]);
      y[static_cast<std::size_t>(j)] = label(k);
    }
  }

  /// A view of the whole data set.
  static DatasetView all(std::shared_ptr<const Dataset<S>> ds) {
    DatasetView v;
    v.indices.resize(static_cast<std::size_t>(ds->size()));
    for (std::size_t i = 0; i < v.indices.size(); ++i) v.indices[i] = static_cast<std::uint32_t>(i);
    v.base = std::move(ds);
    return v;
  }
};

}  // namespace fedpp
