// Tests of fedpp::PreAggregated and pre_aggregate: transforms applied in order (closed forms with
// transforms written here), the context reaching every transform and the inner rule, the
// built-in transforms composed by hand, the four wrappers equal to their spelled-out
// compositions bit for bit, state forwarding, accessors and the concepts' negative cases.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "fedpp/aggregators/arc.hpp"
#include "fedpp/aggregators/bucketing.hpp"
#include "fedpp/aggregators/centered_clipping.hpp"
#include "fedpp/aggregators/coordinate_median.hpp"
#include "fedpp/aggregators/krum.hpp"
#include "fedpp/aggregators/nnm.hpp"
#include "fedpp/aggregators/norm_clipping.hpp"
#include "fedpp/aggregators/pre_aggregated.hpp"
#include "fedpp/aggregators/trimmed_mean.hpp"
#include "fedpp/aggregators/weighted_mean.hpp"
#include "support/aggregator_inputs.hpp"
#include "support/checks.hpp"

using namespace fedpp;
using namespace fedpp_test;

namespace {

// x -> x + add (every value); ignores the context.
struct PaShift {
  double add = 1.0;
  template <typename S>
  UpdateBatch<S> transform(const UpdateBatch<S>& batch, const AggregationContext& /*ctx*/) const {
    UpdateBatch<S> out = batch;
    out.matrix().array() += static_cast<S>(add);
    return out;
  }
};

// x -> x * factor (every value); ignores the context.
struct PaScale {
  double factor = 2.0;
  template <typename S>
  UpdateBatch<S> transform(const UpdateBatch<S>& batch, const AggregationContext& /*ctx*/) const {
    UpdateBatch<S> out = batch;
    out.matrix().array() *= static_cast<S>(factor);
    return out;
  }
};

// x -> x + round + 1000 * seed: shows which context a transform was given.
struct PaStamp {
  template <typename S>
  UpdateBatch<S> transform(const UpdateBatch<S>& batch, const AggregationContext& ctx) const {
    UpdateBatch<S> out = batch;
    const double add = static_cast<double>(ctx.round) + 1000.0 * static_cast<double>(ctx.seed);
    out.matrix().array() += static_cast<S>(add);
    return out;
  }
};

// Drops the last column (the number of columns may change).
struct PaDropLast {
  template <typename S>
  UpdateBatch<S> transform(const UpdateBatch<S>& batch, const AggregationContext& /*ctx*/) const {
    UpdateBatch<S> out = batch;
    const Index last = out.size() - 1;
    out.remove_columns_if([last](Index i) { return i == last; });
    return out;
  }
};

// Column sum; the context form adds 10^6 * (round + 1), the plain form adds -1.
struct PaContextSum {
  void aggregate(const UpdateBatch<double>& b, Vector<double>& out) { out = b.matrix().rowwise().sum().array() - 1.0; }
  void aggregate(const UpdateBatch<double>& b, Vector<double>& out, const AggregationContext& ctx) {
    out = b.matrix().rowwise().sum().array() + 1e6 * static_cast<double>(ctx.round + 1);
  }
};

// A transform whose transform() is not const, and one that returns a matrix: not BatchTransforms.
struct PaMutableTransform {
  template <typename S>
  UpdateBatch<S> transform(const UpdateBatch<S>& batch, const AggregationContext& /*ctx*/) {
    return batch;
  }
};
struct PaMatrixTransform {
  template <typename S>
  Matrix<S> transform(const UpdateBatch<S>& batch, const AggregationContext& /*ctx*/) const {
    return batch.matrix();
  }
};

// Whether PreAggregated<A, Ts...> names a valid type (its requirements hold).
template <typename A, typename... Ts>
concept PaComposable = requires { typename PreAggregated<A, Ts...>; };

static_assert(BatchTransform<PaShift, double> && BatchTransform<PaStamp, float> &&
              ContextAggregator<PaContextSum, double>);
static_assert(!BatchTransform<int, float> && !BatchTransform<WeightedMean, float> &&
              !BatchTransform<PaMutableTransform, float> && !BatchTransform<PaMatrixTransform, float>);
static_assert(!Aggregator<NnmMixing, float> && !Aggregator<BucketMeans, double>);
static_assert(PaComposable<WeightedMean, NnmMixing, NormClip> && PaComposable<Krum> &&
              PaComposable<Nnm<Krum>, BucketMeans>);
static_assert(!PaComposable<WeightedMean, int> && !PaComposable<int, NnmMixing> &&
              !PaComposable<NnmMixing, WeightedMean> && !PaComposable<WeightedMean, PaMutableTransform>);
// A composition in the transform list would lose its inner rule: refused, though it is a BatchTransform.
static_assert(BatchTransform<Nnm<Krum>, float> && BatchTransform<PreAggregated<Krum, NnmMixing>, float>);
static_assert(!PaComposable<WeightedMean, Nnm<Krum>> && !PaComposable<WeightedMean, PreAggregated<Krum, NnmMixing>>);
// The factory takes the aggregator last; CTAD takes it first.
static_assert(std::is_same_v<decltype(pre_aggregate(NnmMixing(1), NormClip(), Krum(1))),
                             PreAggregated<Krum, NnmMixing, NormClip>>);
static_assert(std::is_same_v<decltype(pre_aggregate(WeightedMean())), PreAggregated<WeightedMean>>);
static_assert(std::is_same_v<decltype(PreAggregated(Krum(1), BucketMeans(), ArcClipping())),
                             PreAggregated<Krum, BucketMeans, ArcClipping>>);
static_assert(PreAggregated<Krum, NnmMixing, NormClip>::num_transforms == 2);
// Every composition is a ContextAggregator; it is a StatefulAggregator exactly when its inner rule is.
static_assert(ContextAggregator<PreAggregated<WeightedMean, NnmMixing>, float> &&
              ContextAggregator<PreAggregated<Krum>, double>);
static_assert(StatefulAggregator<CenteredClipping> && !StatefulAggregator<WeightedMean> && !StatefulAggregator<Krum>);
static_assert(StatefulAggregator<PreAggregated<CenteredClipping, NnmMixing>> && StatefulAggregator<Nnm<CenteredClipping>> &&
              StatefulAggregator<Bucketing<Arc<CenteredClipping>>> &&
              StatefulAggregator<NormClipping<CenteredClipping>>);
static_assert(!StatefulAggregator<PreAggregated<WeightedMean, NnmMixing>> && !StatefulAggregator<Nnm<>> &&
              !StatefulAggregator<Bucketing<Krum>> && !StatefulAggregator<Arc<>> && !StatefulAggregator<NormClipping<>>);
static_assert(std::is_same_v<decltype(std::declval<Nnm<CenteredClipping>&>().state()), CenteredClipping::State&>);
static_assert(std::is_same_v<decltype(std::declval<const Nnm<CenteredClipping>&>().state()),
                             const CenteredClipping::State&>);

// 3 x 2 batch [[1, 4], [2, 5], [3, 6]] (columns (1, 2, 3) and (4, 5, 6)).
UpdateBatch<double> pa_small_batch() {
  Matrix<double> m(3, 2);
  m << 1, 4, 2, 5, 3, 6;
  return UpdateBatch<double>(m);
}

}  // namespace

TEST_CASE("PreAggregated applies its transforms in order, then the rule", "[aggregators][PreAggregated]") {
  const UpdateBatch<double> batch = pa_small_batch();
  Vector<double> out;
  // Shift by 1, then scale by 3: 3 (x + 1); the weighted mean of (1, 2, 3) and (4, 5, 6) is (2.5, 3.5, 4.5).
  auto shift_scale = pre_aggregate(PaShift{1.0}, PaScale{3.0}, WeightedMean());
  shift_scale.aggregate(batch, out);
  CHECK(out == Eigen::Vector3d(10.5, 13.5, 16.5));
  // The other order: 3 x + 1.
  auto scale_shift = pre_aggregate(PaScale{3.0}, PaShift{1.0}, WeightedMean());
  scale_shift.aggregate(batch, out);
  CHECK(out == Eigen::Vector3d(8.5, 11.5, 14.5));
  // transform() is the batch the rule sees: column 0 becomes 3 * (2, 3, 4).
  const UpdateBatch<double> seen = shift_scale.transform(batch, {});
  CHECK(seen.matrix().col(0) == Eigen::Vector3d(6, 9, 12));
  CHECK(seen.matrix().col(1) == Eigen::Vector3d(15, 18, 21));
  // Three transforms, one of which drops a column: only column 0 reaches the rule.
  auto three = pre_aggregate(PaShift{1.0}, PaDropLast{}, PaScale{2.0}, WeightedMean());
  three.aggregate(batch, out);
  CHECK(out == Eigen::Vector3d(4, 6, 8));
  // No transform: the rule itself.
  auto none = pre_aggregate(WeightedMean());
  none.aggregate(batch, out);
  CHECK(out == Eigen::Vector3d(2.5, 3.5, 4.5));
  CHECK(same_bits(none.transform(batch, {}), batch));
}

TEST_CASE("PreAggregated passes the context to every transform and to the inner rule", "[aggregators][PreAggregated]") {
  const UpdateBatch<double> batch = pa_small_batch();
  const AggregationContext ctx{.round = 3, .seed = 2};
  Vector<double> out;
  // Two stamps add 2 * (3 + 2000) to each of the 2 columns: column sums (5, 7, 9) + 4 * 2003, then
  // the inner rule's context form adds 10^6 * 4.
  auto p = pre_aggregate(PaStamp{}, PaStamp{}, PaContextSum{});
  p.aggregate(batch, out, ctx);
  CHECK(out == Eigen::Vector3d(5 + 8012 + 4e6, 7 + 8012 + 4e6, 9 + 8012 + 4e6));
  // Without a context: the transforms see round 0, seed 0 and the inner rule's plain form runs.
  p.aggregate(batch, out);
  CHECK(out == Eigen::Vector3d(4, 6, 8));
  // With no transform, the context still reaches the inner rule.
  auto bare = pre_aggregate(PaContextSum{});
  bare.aggregate(batch, out, ctx);
  CHECK(out == Eigen::Vector3d(5 + 4e6, 7 + 4e6, 9 + 4e6));
  bare.aggregate(batch, out);
  CHECK(out == Eigen::Vector3d(4, 6, 8));
  // A composition as the inner rule gets the context too.
  auto nested = pre_aggregate(PaStamp{}, pre_aggregate(PaStamp{}, PaContextSum{}));
  nested.aggregate(batch, out, ctx);
  CHECK(out == Eigen::Vector3d(5 + 8012 + 4e6, 7 + 8012 + 4e6, 9 + 8012 + 4e6));
  // transform() stamps with the context it is given.
  CHECK(p.transform(batch, ctx).matrix()(0, 0) == 1 + 2 * 2003);
}

TEMPLATE_TEST_CASE("PreAggregated of built-in transforms equals applying them by hand, bit for bit",
                   "[aggregators][PreAggregated]", float, double) {
  using S = TestType;
  const Index d = 2053, n = 12, f = 2;
  const UpdateBatch<S> batch(scaled_columns<S>(d, n, 17));
  const NormClip clip(1.5 * std::sqrt(static_cast<double>(d)));
  const NnmMixing nnm(f);
  const ArcClipping arc(f);
  const AggregationContext ctx{.round = 5, .seed = 9};
  // Clipping scales some columns and not others on this input (so the order below matters).
  const std::vector<double> s = clip.scales(batch);
  const auto clipped = static_cast<Index>(std::count_if(s.begin(), s.end(), [](double v) { return v < 1.0; }));
  REQUIRE(clipped >= 2);
  REQUIRE(clipped <= n - 2);

  const UpdateBatch<S> by_hand = arc.transform(nnm.transform(clip.transform(batch, ctx), ctx), ctx);
  Vector<S> ref, out;
  TrimmedMean::count(f).aggregate(by_hand, ref);
  auto p = pre_aggregate(clip, nnm, arc, TrimmedMean::count(f));
  p.aggregate(batch, out, ctx);
  CHECK(count_mismatches(out, ref) == 0);
  p.aggregate(batch, out);
  CHECK(count_mismatches(out, ref) == 0);
  CHECK(same_bits(p.transform(batch, ctx), by_hand));

  // Mixing before clipping is another rule on this input.
  const UpdateBatch<S> swapped = clip.transform(nnm.transform(batch, ctx), ctx);
  CHECK_FALSE(same_bits(swapped, nnm.transform(clip.transform(batch, ctx), ctx)));
  Vector<S> ref_swapped;
  TrimmedMean::count(f).aggregate(swapped, ref_swapped);
  pre_aggregate(nnm, clip, TrimmedMean::count(f)).aggregate(batch, out, ctx);
  CHECK(count_mismatches(out, ref_swapped) == 0);
  Vector<S> clip_first;
  pre_aggregate(clip, nnm, TrimmedMean::count(f)).aggregate(batch, clip_first, ctx);
  CHECK(count_mismatches(out, clip_first) > 0);

  // Bucketing inside a longer chain: the same buckets as BucketMeans given the same context.
  const BucketMeans buckets(3, 4);
  const UpdateBatch<S> bucketed = buckets.transform(clip.transform(batch, ctx), ctx);
  Vector<S> ref_b;
  CoordinateMedian().aggregate(bucketed, ref_b);
  pre_aggregate(clip, buckets, CoordinateMedian()).aggregate(batch, out, ctx);
  CHECK(count_mismatches(out, ref_b) == 0);
}

TEMPLATE_TEST_CASE("Nnm, Arc, NormClipping and Bucketing equal their spelled-out compositions, bit for bit",
                   "[aggregators][PreAggregated]", float, double) {
  using S = TestType;
  const Index d = 3001, n = 11, f = 2;
  const UpdateBatch<S> batch(scaled_columns<S>(d, n, 23, 0.5));
  const AggregationContext ctx{.round = 7, .seed = 31};
  Vector<S> a, b;

  Nnm<TrimmedMean> nnm(f, TrimmedMean::count(f));
  auto nnm_spelled = pre_aggregate(NnmMixing(f), TrimmedMean::count(f));
  nnm.aggregate(batch, a, ctx);
  nnm_spelled.aggregate(batch, b, ctx);
  CHECK(count_mismatches(a, b) == 0);
  nnm.aggregate(batch, a);
  CHECK(count_mismatches(a, b) == 0);
  CHECK(same_bits(nnm.transform(batch), nnm_spelled.transform(batch, ctx)));

  Arc<Krum> arc(f, Krum(f));
  auto arc_spelled = pre_aggregate(ArcClipping(f), Krum(f));
  arc.aggregate(batch, a, ctx);
  arc_spelled.aggregate(batch, b, ctx);
  CHECK(count_mismatches(a, b) == 0);
  CHECK(same_bits(arc.transform(batch), arc_spelled.transform(batch, ctx)));
  CHECK(arc.scales(batch) == ArcClipping(f).scales(batch));

  NormClipping<CoordinateMedian> clip(20.0, CoordinateMedian());
  auto clip_spelled = pre_aggregate(NormClip(20.0), CoordinateMedian());
  clip.aggregate(batch, a, ctx);
  clip_spelled.aggregate(batch, b, ctx);
  CHECK(count_mismatches(a, b) == 0);
  CHECK(same_bits(clip.transform(batch), clip_spelled.transform(batch, ctx)));

  Bucketing<CoordinateMedian> bucketing(2, 77, CoordinateMedian());
  auto bucketing_spelled = pre_aggregate(BucketMeans(2, 77), CoordinateMedian());
  bucketing.aggregate(batch, a, ctx);
  bucketing_spelled.aggregate(batch, b, ctx);
  CHECK(count_mismatches(a, b) == 0);
  CHECK(same_bits(bucketing.transform(batch, ctx), bucketing_spelled.transform(batch, ctx)));
}

TEST_CASE("PreAggregated accessors", "[aggregators][PreAggregated]") {
  auto p = pre_aggregate(NnmMixing(2), NormClip(3.0), Krum(1));
  CHECK(p.transform_at<0>().f() == 2);
  CHECK(p.transform_at<1>().c() == 3.0);
  CHECK(std::get<1>(p.transforms()).c() == 3.0);
  CHECK(p.inner().f() == 1);
  p.transform_at<1>() = NormClip(5.0);
  CHECK(std::get<1>(std::as_const(p).transforms()).c() == 5.0);
  std::get<0>(p.transforms()) = NnmMixing(4);
  CHECK(std::as_const(p).transform_at<0>().f() == 4);
  const PreAggregated<WeightedMean, NormClip> defaults;
  CHECK(defaults.transform_at<0>().c() == 2.0);
  // The wrappers' settings live in their transform.
  CHECK(Nnm<>(3).transform_at<0>().f() == 3);
  CHECK(Arc<>(2).transform_at<0>().num_clipped(10) == 3);
  CHECK(NormClipping<>(1.5).transform_at<0>().c() == 1.5);
  CHECK(Bucketing<>(4, 9).transform_at<0>().s() == 4);
  CHECK(Bucketing<>(4, 9).seed() == 9);
}

TEST_CASE("PreAggregated forwards a stateful rule's state, and a restored state continues bit for bit",
          "[aggregators][PreAggregated]") {
  const Index d = 300, n = 9;
  auto p = pre_aggregate(NnmMixing(2), CenteredClipping(5.0, 2));
  CHECK(&p.state() == &p.inner().state());
  CHECK(&std::as_const(p).state() == &p.inner().state());
  Vector<double> out;
  for (std::uint64_t r = 0; r < 3; ++r)
    p.aggregate(UpdateBatch<double>(cloud<double>(d, n, 1.0, 4.0, 100 + r)), out, {.round = r, .seed = 1});
  CHECK(p.state().center == out);
  // Restore the saved state into a fresh composition: the next rounds agree bit for bit.
  const CenteredClipping::State saved = p.state();
  auto q = pre_aggregate(NnmMixing(2), CenteredClipping(5.0, 2));
  q.state() = saved;
  for (std::uint64_t r = 3; r < 5; ++r) {
    const UpdateBatch<double> batch(cloud<double>(d, n, 1.0, 4.0, 100 + r));
    Vector<double> from_p, from_q;
    p.aggregate(batch, from_p, {.round = r, .seed = 1});
    q.aggregate(batch, from_q, {.round = r, .seed = 1});
    CHECK(count_mismatches(from_p, from_q) == 0);
  }
  // Without the restore, a fresh composition starts from 0 and differs.
  auto fresh = pre_aggregate(NnmMixing(2), CenteredClipping(5.0, 2));
  const UpdateBatch<double> batch(cloud<double>(d, n, 1.0, 4.0, 200));
  Vector<double> from_p, from_fresh;
  p.aggregate(batch, from_p);
  fresh.aggregate(batch, from_fresh);
  CHECK(count_mismatches(from_p, from_fresh) > 0);
  // The wrappers forward it the same way.
  Nnm<CenteredClipping> nnm(1, CenteredClipping(100.0, 1));
  nnm.aggregate(UpdateBatch<double>(byzfl_x<double>()), out);
  CHECK(nnm.state().center == Eigen::Vector3d(3.5, 4.5, 5.5));
}
