#pragma once
/// @file any_aggregator.hpp
/// A type-erased aggregator, for choosing the rule at run time (command-line flags, sweeps).

#include <memory>
#include <string>
#include <type_traits>
#include <utility>

#include "fedpp/core/concepts.hpp"
#include "fedpp/core/messages.hpp"

namespace fedpp {

/// Holds any Aggregator<A, S> by value behind one type; copies clone the held rule (and its state).
/**
 * Costs one virtual call per aggregation. Streaming is not offered through the erased type: a
 * Server holding an AnyAggregator always collects the round's batch. The context form
 * `aggregate(batch, out, ctx)` reaches the held rule through detail::aggregate_in_context (its
 * own context form when it has one, e.g. Bucketing<A>, else its plain aggregate), so an
 * AnyAggregator is always a ContextAggregator. The held rule's state() is not forwarded (the
 * erased type cannot name it): an AnyAggregator is never a StatefulAggregator, and a checkpoint
 * does not carry the state of a stateful rule held in one.
 * @tparam S scalar type of the updates.
 */
template <typename S = float>
class AnyAggregator {
 public:
  /// Wraps `rule`, with an optional display name.
  template <typename A>
    requires(!std::is_same_v<std::remove_cvref_t<A>, AnyAggregator>) && Aggregator<std::remove_cvref_t<A>, S>
  explicit AnyAggregator(A&& rule, std::string name = {})
      : impl_(std::make_unique<Holder<std::remove_cvref_t<A>>>(std::forward<A>(rule))), name_(std::move(name)) {}

  /// Copies the held rule.
  AnyAggregator(const AnyAggregator& o) : impl_(o.impl_->clone()), name_(o.name_) {}
  /// Copy-assigns the held rule.
  AnyAggregator& operator=(const AnyAggregator& o) {
    if (this != &o) {
      impl_ = o.impl_->clone();
      name_ = o.name_;
    }
    return *this;
  }
  AnyAggregator(AnyAggregator&&) noexcept = default;
  AnyAggregator& operator=(AnyAggregator&&) noexcept = default;
  ~AnyAggregator() = default;

  /// Aggregates with the held rule.
  void aggregate(const UpdateBatch<S>& batch, Vector<S>& out) { impl_->aggregate(batch, out); }
  /// Aggregates with the held rule in the round's context (its context form when it has one).
  void aggregate(const UpdateBatch<S>& batch, Vector<S>& out, const AggregationContext& ctx) {
    impl_->aggregate(batch, out, ctx);
  }

  /// The display name given at construction.
  [[nodiscard]] const std::string& name() const noexcept { return name_; }

 private:
  struct Base {
    virtual ~Base() = default;
    virtual void aggregate(const UpdateBatch<S>& batch, Vector<S>& out) = 0;
    virtual void aggregate(const UpdateBatch<S>& batch, Vector<S>& out, const AggregationContext& ctx) = 0;
    [[nodiscard]] virtual std::unique_ptr<Base> clone() const = 0;
  };
  template <typename A>
  struct Holder final : Base {
    explicit Holder(A a) : rule(std::move(a)) {}
    void aggregate(const UpdateBatch<S>& batch, Vector<S>& out) override { rule.aggregate(batch, out); }
    void aggregate(const UpdateBatch<S>& batch, Vector<S>& out, const AggregationContext& ctx) override {
      detail::aggregate_in_context(rule, batch, out, ctx);
    }
    [[nodiscard]] std::unique_ptr<Base> clone() const override { return std::make_unique<Holder>(rule); }
    A rule;
  };

  std::unique_ptr<Base> impl_;
  std::string name_;
};

static_assert(Aggregator<AnyAggregator<float>, float> && Aggregator<AnyAggregator<double>, double> &&
              ContextAggregator<AnyAggregator<float>, float> && !StatefulAggregator<AnyAggregator<float>>);

}  // namespace fedpp
