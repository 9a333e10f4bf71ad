#pragma once
/// @file label_flip.hpp
/// Label flipping: a data-level attack; Byzantine clients train honestly on relabelled data.

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "fedpp/core/concepts.hpp"
#include "fedpp/core/dataset.hpp"
#include "fedpp/core/error.hpp"
#include "fedpp/core/messages.hpp"
#include "fedpp/core/rng.hpp"
#include "fedpp/core/update_batch.hpp"

namespace fedpp {

/// Label flipping: a Byzantine client's labels y become label_map(C)[y]; its updates are left as trained.
/**
 * The default map is y -> C - 1 - y for C classes (Yin et al., 2018, arXiv:1803.01498, use
 * "9 - y" on MNIST; ByzFL's `LabelFlipping` is the same map). A custom map (any y -> y', e.g.
 * a permutation or a single source -> target pair) can be given instead.
 *
 * Use: the runtime installs label_map(num_classes) as the DatasetView::label_map of each
 * Byzantine client, whose local training then produces the poisoned update; corrupt() leaves
 * the updates as they are. Because the poison comes from ordinary local training it works
 * unchanged in a real (TCP) client. Knowledge: none. Effect: a systematic pull toward the
 * wrong classes; the poisoned updates stay of honest size, so it is much weaker than
 * model-poisoning attacks with the same number of attackers, against the mean as well as
 * against robust rules.
 */
class LabelFlip {
 public:
  /// The reversing map y -> C - 1 - y.
  LabelFlip() = default;

  /// A custom map: label y becomes map[y]; the number of classes is map.size().
  /**
   * @throws InvalidArgument if `map` is empty or an entry is outside [0, map.size()).
   */
  explicit LabelFlip(std::vector<Label> map) : map_(std::move(map)) {
    require(!map_.empty(), name, "map must not be empty (one entry per class)", map_.size());
    for (std::size_t y = 0; y < map_.size(); ++y)
      if (map_[y] < 0 || static_cast<std::size_t>(map_[y]) >= map_.size())
        fail(name, "map[" + std::to_string(y) + "] must be in [0, " + std::to_string(map_.size()) + ")", map_[y]);
  }

  /// True when the default reversing map is used.
  [[nodiscard]] bool reverses() const noexcept { return map_.empty(); }
  /// The custom map (empty for the reversing map).
  [[nodiscard]] const std::vector<Label>& map() const noexcept { return map_; }

  /// The map y -> y' for `num_classes` classes (num_classes entries).
  /**
   * @throws InvalidArgument if num_classes <= 0, or it differs from the size of a custom map.
   */
  [[nodiscard]] std::vector<Label> label_map(int num_classes) const {
    require(num_classes > 0, label_map_name, "num_classes must be > 0", num_classes);
    if (!map_.empty()) {
      if (static_cast<std::size_t>(num_classes) != map_.size())
        fail(label_map_name, "num_classes must equal the size of the map (" + std::to_string(map_.size()) + ")",
             num_classes);
      return map_;
    }
    std::vector<Label> m(static_cast<std::size_t>(num_classes));
    for (int y = 0; y < num_classes; ++y) m[static_cast<std::size_t>(y)] = static_cast<Label>(num_classes - 1 - y);
    return m;
  }

  /// Leaves the updates as they are (the poisoned updates come from training on flipped labels).
  template <typename S>
  void corrupt(UpdateBatch<S>& /*byz*/, const UpdateBatch<S>& /*honest*/, const AttackContext& /*ctx*/,
               Rng& /*rng*/) const noexcept {}

 private:
  static constexpr const char* name = "fedpp::LabelFlip";
  static constexpr const char* label_map_name = "fedpp::LabelFlip::label_map";

  std::vector<Label> map_;
};

static_assert(Attack<LabelFlip, float> && Attack<LabelFlip, double>);
static_assert(DataAttack<LabelFlip>);

}  // namespace fedpp
