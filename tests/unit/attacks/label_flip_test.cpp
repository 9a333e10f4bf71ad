// Tests of fedpp::LabelFlip: the reversing map, custom maps, their use through a DatasetView,
// corrupt() leaving updates untouched, and errors.
#include <catch2/catch.hpp>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "fedpp/attacks/label_flip.hpp"
#include "fedpp/core/rng.hpp"
#include "support/checks.hpp"

using namespace fedpp;
using namespace fedpp_test;

static_assert(Attack<LabelFlip, float> && Attack<LabelFlip, double>);
static_assert(DataAttack<LabelFlip>);

TEST_CASE("LabelFlip maps y to C - 1 - y by default", "[attacks][LabelFlip]") {
  const LabelFlip flip;
  CHECK(flip.reverses());
  CHECK(flip.label_map(10) == std::vector<Label>{9, 8, 7, 6, 5, 4, 3, 2, 1, 0});
  CHECK(flip.label_map(1) == std::vector<Label>{0});
  CHECK(flip.label_map(2) == std::vector<Label>{1, 0});
  for (int c = 1; c <= 50; ++c) {
    const auto m = flip.label_map(c);
    REQUIRE(static_cast<int>(m.size()) == c);
    for (int y = 0; y < c; ++y) {
      REQUIRE(m[static_cast<std::size_t>(y)] == c - 1 - y);
      REQUIRE(m[static_cast<std::size_t>(m[static_cast<std::size_t>(y)])] == y);  // an involution
    }
  }
}

TEST_CASE("LabelFlip accepts a custom map", "[attacks][LabelFlip]") {
  const std::vector<Label> shift{1, 2, 3, 0};  // a permutation
  const LabelFlip perm(shift);
  CHECK_FALSE(perm.reverses());
  CHECK(perm.map() == shift);
  CHECK(perm.label_map(4) == shift);
  const LabelFlip pair(std::vector<Label>{0, 1, 2, 3, 4, 5, 6, 1, 8, 9});  // 7 -> 1 only
  CHECK(pair.label_map(10)[7] == 1);
  CHECK(pair.label_map(10)[1] == 1);
}

TEST_CASE("LabelFlip relabels a Byzantine client's data through its DatasetView", "[attacks][LabelFlip]") {
  auto ds = std::make_shared<Dataset<float>>();
  ds->features = Matrix<float>::Zero(2, 6);
  ds->labels = {0, 1, 2, 3, 4, 2};
  ds->num_classes = 5;
  auto view = DatasetView<float>::all(ds);
  view.label_map = LabelFlip().label_map(ds->num_classes);
  const std::vector<Label> want{4, 3, 2, 1, 0, 2};
  for (Index k = 0; k < 6; ++k) CHECK(view.label(k) == want[static_cast<std::size_t>(k)]);
}

TEMPLATE_TEST_CASE("LabelFlip::corrupt leaves the updates as trained", "[attacks][LabelFlip]", float, double) {
  using S = TestType;
  Matrix<S> m = Matrix<S>::Random(7, 3);
  UpdateBatch<S> byz(m);
  const auto before = byz;
  Rng rng(1), ref(1);
  LabelFlip().corrupt(byz, UpdateBatch<S>(7), AttackContext{0, 5, 3}, rng);
  CHECK(std::memcmp(byz.data(), before.data(), 21 * sizeof(S)) == 0);
  CHECK(rng() == ref());  // no draws
}

TEST_CASE("LabelFlip validates its settings", "[attacks][LabelFlip]") {
  CHECK(message_of([] { LabelFlip(std::vector<Label>{}); }) ==
        "fedpp::LabelFlip: map must not be empty (one entry per class), got 0");
  CHECK(message_of([] { LabelFlip(std::vector<Label>{0, 3, 1}); }) ==
        "fedpp::LabelFlip: map[1] must be in [0, 3), got 3");
  CHECK(message_of([] { LabelFlip(std::vector<Label>{-1, 0}); }) ==
        "fedpp::LabelFlip: map[0] must be in [0, 2), got -1");
  CHECK(message_of([] { (void)LabelFlip().label_map(0); }) ==
        "fedpp::LabelFlip::label_map: num_classes must be > 0, got 0");
  CHECK(message_of([] { (void)LabelFlip(std::vector<Label>{1, 0}).label_map(3); }) ==
        "fedpp::LabelFlip::label_map: num_classes must equal the size of the map (2), got 3");
}
