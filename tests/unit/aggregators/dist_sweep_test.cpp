// Tests of detail/dist_sweep.hpp (one pass: center update + squared distances, or squared norms):
// long double references and bit identity across thread counts and compiled kernels.
#include <catch2/catch.hpp>

#include <cfloat>
#include <cmath>
#include <cstring>
#include <vector>

#include "fedpp/aggregators/detail/dist_sweep.hpp"
#include "fedpp/aggregators/weighted_mean.hpp"
#include "fedpp/core/rng.hpp"
#include "fedpp/core/update_batch.hpp"
#include "support/aggregator_inputs.hpp"
#include "support/aggregator_isas.hpp"
#include "support/checks.hpp"

using namespace fedpp;
using namespace fedpp_test;

namespace {

// One full pass: returns the new center (when update) and the squared distances.
template <typename S>
std::pair<std::vector<double>, std::vector<double>> run_pass(const Matrix<S>& x, std::vector<double> z,
                                                             const std::vector<double>& w, double denom, double a,
                                                             bool update, bool zero_center, detail::DistIsa isa,
                                                             Index sub = 0) {
  const Index d = x.rows(), n = x.cols(), chunks = detail::sweep_num_chunks(d);
  std::vector<double> partial(static_cast<std::size_t>(chunks * n)), dist;
  detail::SweepPass<S> p;
  p.data = x.data();
  p.d = d;
  p.n = n;
  p.center = zero_center ? nullptr : z.data();
  p.update = update;
  p.w = w.data();
  p.denom = denom;
  p.a = a;
  p.partial = partial.data();
  p.sub = sub;
  detail::sweep_pass(p, isa);
  detail::sweep_sum_partials(partial, n, chunks, dist);
  return {z, dist};
}

}  // namespace

TEMPLATE_TEST_CASE("sweep pass: center update and distances match a long double reference",
                   "[aggregators][dist_sweep]", float, double) {
  using S = TestType;
  const Index n = GENERATE(1, 2, 5, 9);
  const Index d = GENERATE(as<Index>{}, 1, 7, 8, 1023, 1025, 3 * detail::sweep_chunk + 13);
  const Matrix<S> x = scaled_columns<S>(d, n, static_cast<std::uint64_t>(n * 7919 + d), 0.5);
  std::vector<double> z0(static_cast<std::size_t>(d)), w(static_cast<std::size_t>(n));
  auto rng = make_rng(3, 0, 0, Purpose::user);
  for (auto& v : z0) v = rng.normal();
  double denom = 0;
  for (auto& v : w) {
    v = 0.1 + rng.uniform();
    denom += v;
  }
  for (double a : {0.0, 0.375}) {
    const auto [z, dist] = run_pass(x, z0, w, denom, a, /*update=*/true, false, detail::DistIsa::best);
    Index bad = 0;
    std::vector<long double> ref_dist(static_cast<std::size_t>(n), 0.0L), scale(static_cast<std::size_t>(n), 0.0L);
    for (Index j = 0; j < d; ++j) {
      long double acc = 0, mag = 0;
      for (Index i = 0; i < n; ++i) {
        acc += static_cast<long double>(w[static_cast<std::size_t>(i)]) * x(j, i);
        mag += std::fabs(static_cast<long double>(w[static_cast<std::size_t>(i)]) * x(j, i));
      }
      const long double zj = a * static_cast<long double>(z0[static_cast<std::size_t>(j)]) + acc / denom;
      const long double tol = 4.0L * static_cast<long double>(n + 4) * DBL_EPSILON *
                              (mag / denom + std::fabs(a * static_cast<long double>(z0[static_cast<std::size_t>(j)])));
      if (std::fabs(static_cast<long double>(z[static_cast<std::size_t>(j)]) - zj) > tol) ++bad;
      for (Index i = 0; i < n; ++i) {
        const long double t = static_cast<long double>(x(j, i)) - static_cast<long double>(z[static_cast<std::size_t>(j)]);
        ref_dist[static_cast<std::size_t>(i)] += t * t;
        scale[static_cast<std::size_t>(i)] += t * t;
      }
    }
    for (Index i = 0; i < n; ++i) {
      const auto k = static_cast<std::size_t>(i);
      if (std::fabs(static_cast<long double>(dist[k]) - ref_dist[k]) > 4.0L * (d + 8) * DBL_EPSILON * scale[k]) ++bad;
    }
    CAPTURE(n, d, a);
    CHECK(bad == 0);
  }
}

TEMPLATE_TEST_CASE("sweep pass: distances to a fixed center and squared norms", "[aggregators][dist_sweep]", float,
                   double) {
  using S = TestType;
  const Index n = 6, d = 2 * detail::sweep_chunk + 5;
  const Matrix<S> x = scaled_columns<S>(d, n, 17, 0.5);
  std::vector<double> z(static_cast<std::size_t>(d), 0.25);
  const auto [z_after, dist] = run_pass(x, z, {}, 1.0, 0.0, /*update=*/false, false, detail::DistIsa::best);
  CHECK(z_after == z);  // no update: the center is untouched
  const std::vector<double> norms = detail::column_sq_norms(x.data(), d, n);
  const std::vector<double> zero(static_cast<std::size_t>(d), 0.0);
  const auto [unused, to_zero] = run_pass(x, zero, {}, 1.0, 0.0, false, false, detail::DistIsa::best);
  CHECK(same_bits(norms, to_zero));  // a null center and an explicit zero center agree bit for bit
  for (Index i = 0; i < n; ++i) {
    long double r = 0, nr = 0;
    for (Index j = 0; j < d; ++j) {
      r += (static_cast<long double>(x(j, i)) - 0.25L) * (static_cast<long double>(x(j, i)) - 0.25L);
      nr += static_cast<long double>(x(j, i)) * x(j, i);
    }
    CHECK(std::fabs(dist[static_cast<std::size_t>(i)] - r) <= 1e-12 * r);
    CHECK(std::fabs(norms[static_cast<std::size_t>(i)] - nr) <= 1e-12 * nr);
  }
  // Small integers: every step is exact.
  Matrix<S> small(3, 2);
  small << 1, 4, 2, 5, 3, 6;
  const auto sq = detail::column_sq_norms(small.data(), 3, 2);
  CHECK(sq == std::vector<double>{14.0, 77.0});
}

TEMPLATE_TEST_CASE("sweep pass is bit-identical on 1, 2, 3 threads and with every kernel",
                   "[aggregators][dist_sweep][threads]", float, double) {
  using S = TestType;
  ThreadGuard guard;
  const Index n = 13, d = 40 * detail::sweep_chunk + 77;  // enough for several threads
  const Matrix<S> x = scaled_columns<S>(d, n, 23, 0.5);
  std::vector<double> z0(static_cast<std::size_t>(d)), w(static_cast<std::size_t>(n));
  for (std::size_t j = 0; j < z0.size(); ++j) z0[j] = 0.1 + 1e-3 * static_cast<double>(j % 977);
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = 1.0 / (1.0 + static_cast<double>(i));
  std::vector<std::vector<double>> zs, ds;
  for (int t : {1, 2, 3}) {
    set_max_threads(t);
    for (auto isa : all_dist_isas) {
      if (!dist_isa_runs(isa)) continue;
      // a = 0.3: a * z is inexact, so a fused multiply-add anywhere would change bits.
      const auto [z, dist] = run_pass(x, z0, w, 3.0, 0.3, true, false, isa);
      zs.push_back(z);
      ds.push_back(dist);
      const auto [z2, norms] = run_pass(x, z0, w, 3.0, 0.3, false, true, isa);
      ds.push_back(norms);
    }
  }
  for (const auto& z : zs) CHECK(same_bits(z, zs.front()));
  for (std::size_t k = 0; k < ds.size(); k += 2) CHECK(same_bits(ds[k], ds.front()));
  for (std::size_t k = 1; k < ds.size(); k += 2) CHECK(same_bits(ds[k], ds[1]));
  // The cache block (how a chunk is walked) changes no bit either.
  for (Index sub : {Index{8}, Index{64}, Index{200}, Index{1024}}) {
    const auto [z, dist] = run_pass(x, z0, w, 3.0, 0.3, true, false, detail::DistIsa::best, sub);
    CAPTURE(sub);
    CHECK(same_bits(z, zs.front()));
    CHECK(same_bits(dist, ds.front()));
  }
}
