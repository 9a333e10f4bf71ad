#pragma once
/// @file centered_clipping.hpp
/// Centered clipping: iterative clipping of the updates around a center kept across rounds.

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "fedpp/aggregators/detail/dist_sweep.hpp"
#include "fedpp/core/concepts.hpp"
#include "fedpp/core/config.hpp"
#include "fedpp/core/error.hpp"
#include "fedpp/core/types.hpp"
#include "fedpp/core/update_batch.hpp"

namespace fedpp {

/// Centered clipping: v <- v + (1/n) sum_i (x_i - v) min(1, tau / ||x_i - v||), L times.
/**
 * Karimireddy, He, Jaggi, 2021, "Learning from History for Byzantine Robust Optimization",
 * arXiv:2012.10333. The center v is state: the first call starts from v = 0 (as ByzFL's
 * CenteredClipping), and every call stores its result as the next call's start (the paper's
 * momentum center). reset() forgets it; set_center() sets it; state() exposes it as a
 * checkpointable State (a StatefulAggregator: the server's checkpoint saves and restores it, and a
 * restored copy continues bit for bit). Unweighted (client weights are
 * ignored, as in ByzFL); inputs must be finite. Defaults tau = 100, L = 1 (ByzFL's).
 *
 * Computed as v' = (1 - sum_i c_i / n) v + (sum_i c_i x_i) / n with c_i = min(1, tau / ||x_i - v||)
 * (c_i = 1 when ||x_i - v|| <= tau), in double whatever S. When no update is clipped the result
 * is exactly the mean. Each iteration is one pass over the batch that also measures the
 * distances to the new center (detail/dist_sweep.hpp); a call makes L + 1 passes (the first
 * measures the distances to the stored center). Bit-identical on any thread count.
 * Memory: the center (d doubles, kept between calls) plus n * ceil(d / 1024) doubles.
 */
class CenteredClipping {
 public:
  /// What a checkpoint keeps of a CenteredClipping: the center carried to the next call.
  struct State {
    Vector<double> center;  ///< the stored center (empty: the next call starts from 0)

    /// Lists the fields for cereal (Eigen vectors need fedpp/serialization/eigen.hpp).
    template <class Archive>
    void serialize(Archive& ar) {
      ar(center);
    }
  };

  /// Clipping radius tau (> 0, finite) and iterations L (>= 0) per call.
  /// @throws InvalidArgument on a setting outside its range.
  explicit CenteredClipping(double tau = 100.0, Index iterations = 1)
      : tau_(require(tau > 0.0 && std::isfinite(tau), name, "tau must be finite and > 0", tau)),
        iterations_(require(iterations >= 0, name, "iterations must be >= 0", iterations)) {}

  /// Clipping radius.
  [[nodiscard]] double tau() const noexcept { return tau_; }
  /// Clipping iterations per call.
  [[nodiscard]] Index iterations() const noexcept { return iterations_; }
  /// The stored center (empty before the first call or after reset()).
  [[nodiscard]] const Vector<double>& center() const noexcept { return state_.center; }
  /// Sets the center the next call starts from (its size must then match the batch dimension).
  void set_center(Vector<double> v) { state_.center = std::move(v); }
  /// Forgets the center: the next call starts from 0.
  void reset() noexcept { state_.center.resize(0); }
  /// The state kept across calls (the center), for checkpoints; assigning it restores a saved one.
  [[nodiscard]] State& state() noexcept { return state_; }
  /// The state kept across calls, read-only.
  [[nodiscard]] const State& state() const noexcept { return state_; }

  /// Clips around the stored center, writes the new center into `out` and keeps it.
  /**
   * @throws InvalidArgument on an empty batch; DimensionError when a stored center has another
   * dimension than the batch (call reset() when the model changes).
   */
  template <typename S>
  void aggregate(const UpdateBatch<S>& batch, Vector<S>& out) {
    aggregate(batch, out, detail::DistIsa::best);
  }

  /// aggregate() with a chosen compiled kernel (tests; every kernel gives the same bits).
  template <typename S>
  void aggregate(const UpdateBatch<S>& batch, Vector<S>& out, detail::DistIsa isa) {
    batch.check_nonempty(agg_name);
    const Index n = batch.size(), d = batch.dim();
    const bool from_zero = state_.center.size() == 0;
    if (!from_zero && state_.center.size() != d)
      fail<DimensionError>(agg_name, "the stored center has dimension " + std::to_string(state_.center.size()) +
                                         " (call reset() for a new model); batch dimension", d);
    Vector<double> v = from_zero ? Vector<double>::Zero(d) : state_.center;
    const auto nn = static_cast<std::size_t>(n);
    const Index chunks = detail::sweep_num_chunks(d);
    std::vector<double> partial(static_cast<std::size_t>(chunks * n)), dist, c(nn);
    detail::SweepPass<S> p;
    p.data = batch.data();
    p.d = d;
    p.n = n;
    if (iterations_ > 0) {
      p.center = from_zero ? nullptr : v.data();  // a null center measures the norms
      p.partial = partial.data();
      detail::sweep_pass(p, isa);
    }
    for (Index l = 1; l <= iterations_; ++l) {
      detail::sweep_sum_partials(partial, n, chunks, dist);
      double sum_c = 0.0;
      for (std::size_t i = 0; i < nn; ++i) {
        const double r = std::sqrt(dist[i]);
        c[i] = r <= tau_ ? 1.0 : tau_ / r;
        sum_c += c[i];
      }
      p.center = v.data();
      p.update = true;
      p.w = c.data();
      p.denom = static_cast<double>(n);
      p.a = 1.0 - sum_c / static_cast<double>(n);
      p.partial = l < iterations_ ? partial.data() : nullptr;
      detail::sweep_pass(p, isa);
    }
    out.resize(d);
    for (Index j = 0; j < d; ++j) out(j) = static_cast<S>(v(j));
    state_.center = std::move(v);
  }

 private:
  static constexpr const char* name = "fedpp::CenteredClipping";
  static constexpr const char* agg_name = "fedpp::CenteredClipping::aggregate";

  double tau_;
  Index iterations_;
  State state_;
};

static_assert(Aggregator<CenteredClipping, float> && Aggregator<CenteredClipping, double> &&
              StatefulAggregator<CenteredClipping> && !ContextAggregator<CenteredClipping, float>);

}  // namespace fedpp
