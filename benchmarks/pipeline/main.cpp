// bench_pipeline: the server's per-update overhead. One round of n Identity payloads of d floats
// through RoundPipeline (begin, accept each reply, commit with WeightedMean and ServerSgd), with
// streaming collection (WeightedMean's O(d) accumulator) and with batch collection, timed against
// the bare work measured in the same run with interleaved repetitions: decoding the same bytes
// into a d x n batch plus WeightedMean's batch mean. Also reports what the Ordered adapter holds
// when the replies arrive in reverse participant order. See docs/performance.md.
#include <cstring>
#include <iostream>
#include <numeric>
#include <string>
#include <vector>

#include "common/bench.hpp"
#include "fedpp/aggregators/weighted_mean.hpp"
#include "fedpp/compressors/identity.hpp"
#include "fedpp/core/rng.hpp"
#include "fedpp/optimizers/server_sgd.hpp"
#include "fedpp/runtime/pipeline.hpp"
#include "fedpp/runtime/transport.hpp"

namespace {

using namespace fedpp;
using namespace fedpp::bench;

constexpr RowStyle row_style{.name_width = 34,
                             .ms_width = 8,
                             .gbps_column = true,
                             .probe_text = ProbeText::min_median_paired,
                             .probe_precision = 3,
                             .json_gbps_at_median = true};

// WeightedMean without its streaming accumulator: the pipeline collects a batch for it.
struct BatchOnlyMean {
  WeightedMean mean;
  template <typename S>
  void aggregate(const UpdateBatch<S>& batch, Vector<S>& out) const {
    mean.aggregate(batch, out);
  }
};
static_assert(Aggregator<BatchOnlyMean, float> && !StreamingAggregator<BatchOnlyMean, float>);

// A transport that delivers a fixed list of replies in reverse participant order.
struct ReverseTransport {
  std::vector<Reply>* replies = nullptr;
  ReplyHandler h;
  std::size_t num_clients() const { return replies->size(); }
  std::vector<ClientId> available_clients() const {
    std::vector<ClientId> v(replies->size());
    std::iota(v.begin(), v.end(), ClientId{0});
    return v;
  }
  void start_round(const RoundRequest<float>&, std::span<const ClientId>, ReplyHandler handler) { h = std::move(handler); }
  bool run_until(Deadline) {
    for (std::size_t k = replies->size(); k-- > 0;) h(Reply((*replies)[k]));
    return true;
  }
  void cancel_round() {}
};
static_assert(Transport<ReverseTransport, float>);

template <typename Agg>
void pipeline_round(RoundPipeline<float, Agg, ServerSgd, Identity>& pipe, const std::vector<ClientId>& who,
                    const std::vector<Reply>& replies) {
  pipe.begin(who);
  for (const Reply& r : replies) pipe.accept(r);
  pipe.commit();
}

int run(int argc, char** argv) {
  Flags flags(argc, argv, "bench_pipeline");
  const Index n = flags.get_int("n", 100, "number of replies (clients)");
  const Index d = flags.get_int("d", 1000000, "update dimension");
  const Timing timing = Timing::read(flags, 9, 1, 1, "OpenMP threads (default 1: the server handles replies on one thread)");
  const double max_ratio =
      flags.get_double("target", "1.3", "pass when WeightedMean's pipeline round (streaming) / (decode + batch mean), paired median, <= this");
  const std::string json_path = json_flag(flags);
  if (flags.finish()) return 0;
  if (n < 1 || d < 1 || timing.reps < 1 || timing.warmup < 0)
    throw std::invalid_argument("n, d, reps must be >= 1, warmup >= 0");
  timing.apply_threads();

  // Replies: client i's update uniform in [-0.5, 0.5), weight a sample count, encoded by Identity.
  std::vector<Reply> replies(static_cast<std::size_t>(n));
  std::vector<ClientId> who(static_cast<std::size_t>(n));
  {
    Vector<float> u(d);
    for (Index i = 0; i < n; ++i) {
      auto rng = make_rng(1, 0, static_cast<std::uint64_t>(i), Purpose::user);
      for (Index k = 0; k < d; ++k) u(k) = rng.uniform_float() - 0.5f;
      Reply& r = replies[static_cast<std::size_t>(i)];
      r.client = static_cast<ClientId>(i);
      r.round = 0;
      r.weight = static_cast<double>(1 + rng.uniform_index(100));
      r.local.train_loss = 1.0;
      Identity::State st;
      r.payload = Identity().encode(as_span(std::as_const(u)), st, rng);
      who[static_cast<std::size_t>(i)] = static_cast<ClientId>(i);
    }
  }
  const double bytes = static_cast<double>(n) * static_cast<double>(d) * sizeof(float);

  // Baseline: decode every payload into its column of a d x n batch, then the batch mean.
  UpdateBatch<float> batch(d, n);
  for (Index i = 0; i < n; ++i) batch.push_back(static_cast<ClientId>(i), replies[static_cast<std::size_t>(i)].weight,
                                                std::vector<float>(static_cast<std::size_t>(d)));
  const WeightedMean mean;
  Vector<float> out_base(d);
  const Identity identity;

  const Vector<float> zero = Vector<float>::Zero(d);
  RoundPipeline<float, WeightedMean, ServerSgd, Identity> streaming(zero, 1, 1);
  RoundPipeline<float, BatchOnlyMean, ServerSgd, Identity> batched(zero, 1, 1);

  std::vector<Case> cases;
  cases.push_back({"decode + batch mean (baseline)", [&] {
                     for (Index i = 0; i < n; ++i) identity.decode(replies[static_cast<std::size_t>(i)].payload, batch.column(i));
                     mean.aggregate(batch, out_base);
                   },
                   {}});
  cases.push_back({"pipeline, streaming collection", [&] {
                     streaming.restore({0, zero, {}, {}, {}});
                     pipeline_round(streaming, who, replies);
                   },
                   {}});
  cases.push_back({"pipeline, batch collection", [&] {
                     batched.restore({0, zero, {}, {}, {}});
                     pipeline_round(batched, who, replies);
                   },
                   {}});
  run_interleaved(cases, timing.reps, timing.warmup);
  // Both pipelines applied the mean to a zero model with ServerSgd (lr 1): params == the baseline mean.
  const bool stream_same = std::memcmp(streaming.params().data(), out_base.data(), static_cast<std::size_t>(d) * 4) == 0;
  const bool batch_same = std::memcmp(batched.params().data(), out_base.data(), static_cast<std::size_t>(d) * 4) == 0;

  // The ordering adapter with replies arriving in reverse order: it must hold all but one.
  ReverseTransport rt{&replies, {}};
  Ordered<ReverseTransport, float> ordered(rt);
  std::size_t handed = 0;
  ordered.start_round(RoundRequest<float>{}, who, [&](Reply&&) { ++handed; });
  ordered.run_until(no_deadline);
  const OrderingStats os = ordered.stats();

  const double r_stream = ratio_paired_median(cases[1].times, cases[0].times);
  const double r_batch = ratio_paired_median(cases[2].times, cases[0].times);
  // WeightedMean streams, so its round is the streaming one; batch collection (rules without an
  // accumulator) is reported beside it.
  const Target target{r_stream, max_ratio};

  std::cout << "bench_pipeline: n=" << n << " d=" << d << " float, " << max_threads() << " threads, " << timing.reps
            << " reps; " << cpu_model() << "\n";
  Json j = open_report("bench_pipeline");
  j.value("n", static_cast<long long>(n));
  j.value("d", static_cast<long long>(d));
  j.value("scalar", "float");
  timing.write(j);
  j.value("payload_bytes_per_round", bytes);
  j.end_object();
  report_array(j, "results", cases, bytes, row_style);
  j.begin_object("ratios");
  j.value("streaming_over_baseline_paired_median", r_stream);
  j.value("batch_over_baseline_paired_median", r_batch);
  j.end_object();
  j.begin_object("target");
  target.write(j, "WeightedMean's round through the pipeline (streaming collection) / (decode + batch mean), paired median over repetitions");
  j.end_object();
  j.begin_object("ordering_adapter_reverse_arrival");
  j.value("replies", static_cast<long long>(n));
  j.value("peak_replies_held", static_cast<long long>(os.peak_replies));
  j.value("peak_payload_bytes_held", static_cast<double>(os.peak_bytes));
  j.value("replies_handed_on", static_cast<long long>(handed));
  j.end_object();
  j.begin_object("checks");
  j.value("streaming_model_equals_baseline_mean", stream_same);
  j.value("batch_model_equals_baseline_mean", batch_same);
  j.end_object();
  j.end_object();

  target.print("streaming pipeline / baseline (paired median)");
  std::cout << "; streaming " << r_stream << ", batch " << r_batch << "; models equal the baseline mean: "
            << (stream_same && batch_same ? "yes" : "NO") << "\n  ordering adapter, reverse arrival: held "
            << os.peak_replies << " replies, " << static_cast<double>(os.peak_bytes) / 1e6 << " MB at peak\n";
  save_report(json_path, j);
  return stream_same && batch_same && handed == static_cast<std::size_t>(n) ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) { return fedpp::bench::guarded_main("bench_pipeline", run, argc, argv); }
