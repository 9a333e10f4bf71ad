#pragma once
/// @file any_attack.hpp
/// A type-erased attack, for choosing the attack at run time (command-line flags, sweeps).

#include <memory>
#include <numeric>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "fedpp/core/concepts.hpp"

namespace fedpp {

/// Holds any Attack<A, S> by value behind one type; copies clone the held attack.
/**
 * Always a DataAttack: `label_map` forwards to the held attack when it is one and is the identity
 * map otherwise, so wrapping never changes what the attack does.
 * @tparam S scalar type of the updates.
 */
template <typename S = float>
class AnyAttack {
 public:
  /// Wraps `attack`, with an optional display name.
  template <typename A>
    requires(!std::is_same_v<std::remove_cvref_t<A>, AnyAttack>) && Attack<std::remove_cvref_t<A>, S>
  explicit AnyAttack(A&& attack, std::string name = {})
      : impl_(std::make_unique<Holder<std::remove_cvref_t<A>>>(std::forward<A>(attack))), name_(std::move(name)) {}

  /// Copies the held attack.
  AnyAttack(const AnyAttack& o) : impl_(o.impl_->clone()), name_(o.name_) {}
  /// Copy-assigns the held attack.
  AnyAttack& operator=(const AnyAttack& o) {
    if (this != &o) {
      impl_ = o.impl_->clone();
      name_ = o.name_;
    }
    return *this;
  }
  AnyAttack(AnyAttack&&) noexcept = default;
  AnyAttack& operator=(AnyAttack&&) noexcept = default;
  ~AnyAttack() = default;

  /// Rewrites the Byzantine updates with the held attack.
  void corrupt(UpdateBatch<S>& byz, const UpdateBatch<S>& honest, const AttackContext& ctx, Rng& rng) {
    impl_->corrupt(byz, honest, ctx, rng);
  }
  /// The held attack's label map, or the identity when it is not a data-level attack.
  [[nodiscard]] std::vector<Label> label_map(int num_classes) const { return impl_->label_map(num_classes); }
  /// Whether the held attack is a data-level attack.
  [[nodiscard]] bool is_data_attack() const noexcept { return impl_->is_data_attack(); }
  /// The display name given at construction.
  [[nodiscard]] const std::string& name() const noexcept { return name_; }

 private:
  struct Base {
    virtual ~Base() = default;
    virtual void corrupt(UpdateBatch<S>&, const UpdateBatch<S>&, const AttackContext&, Rng&) = 0;
    [[nodiscard]] virtual std::vector<Label> label_map(int num_classes) const = 0;
    [[nodiscard]] virtual bool is_data_attack() const noexcept = 0;
    [[nodiscard]] virtual std::unique_ptr<Base> clone() const = 0;
  };
  template <typename A>
  struct Holder final : Base {
    explicit Holder(A a) : attack(std::move(a)) {}
    void corrupt(UpdateBatch<S>& byz, const UpdateBatch<S>& honest, const AttackContext& ctx, Rng& rng) override {
      attack.corrupt(byz, honest, ctx, rng);
    }
    [[nodiscard]] std::vector<Label> label_map(int num_classes) const override {
      if constexpr (DataAttack<A>) {
        return attack.label_map(num_classes);
      } else {
        std::vector<Label> m(static_cast<std::size_t>(num_classes));
        std::iota(m.begin(), m.end(), Label{0});
        return m;
      }
    }
    [[nodiscard]] bool is_data_attack() const noexcept override { return DataAttack<A>; }
    [[nodiscard]] std::unique_ptr<Base> clone() const override { return std::make_unique<Holder>(attack); }
    A attack;
  };

  std::unique_ptr<Base> impl_;
  std::string name_;
};

static_assert(Attack<AnyAttack<float>, float> && Attack<AnyAttack<double>, double>);
static_assert(DataAttack<AnyAttack<float>>);

}  // namespace fedpp
