// AnyAttack: forwards corrupt and label_map (identity for update-level attacks).
#include <catch2/catch.hpp>

#include "fedpp/attacks/any_attack.hpp"
#include "fedpp/attacks/no_attack.hpp"

using namespace fedpp;

namespace {
struct Negate {
  void corrupt(UpdateBatch<float>& byz, const UpdateBatch<float>&, const AttackContext&, Rng&) const {
    byz.matrix() *= -1.0f;
  }
};
struct Reverse {
  std::vector<Label> label_map(int c) const {
    std::vector<Label> m(static_cast<std::size_t>(c));
    for (int y = 0; y < c; ++y) m[static_cast<std::size_t>(y)] = c - 1 - y;
    return m;
  }
  void corrupt(UpdateBatch<float>&, const UpdateBatch<float>&, const AttackContext&, Rng&) const {}
};
}  // namespace

TEST_CASE("AnyAttack forwards to the held attack", "[attacks][AnyAttack]") {
  Matrix<float> m(2, 2);
  m << 1, 2, 3, 4;
  UpdateBatch<float> byz(m), honest(m);
  Rng rng(1);
  AnyAttack<float> neg(Negate{}, "negate");
  neg.corrupt(byz, honest, AttackContext{0, 4, 2}, rng);
  CHECK(byz.matrix() == Matrix<float>(-m));
  CHECK_FALSE(neg.is_data_attack());
  CHECK(neg.label_map(3) == std::vector<Label>{0, 1, 2});
  AnyAttack<float> rev(Reverse{}, "reverse");
  CHECK(rev.is_data_attack());
  CHECK(rev.label_map(4) == std::vector<Label>{3, 2, 1, 0});
  AnyAttack<float> copy = rev;
  CHECK(copy.name() == "reverse");
  CHECK(AnyAttack<float>(NoAttack{}).label_map(2) == std::vector<Label>{0, 1});
}
