// Tests of the partitioners (IID, two Dirichlet schemes, pathological priors, label shards), the
// Gamma/Dirichlet samplers and the partition statistics.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <vector>

#include "fedpp/core/rng.hpp"
#include "fedpp/data/partition.hpp"

using namespace fedpp;

namespace {

// A data set with the given number of samples per class, labels interleaved (i-th sample of the
// round-robin), feature = sample index.
std::shared_ptr<const Dataset<float>> make_labelled(const std::vector<Index>& class_sizes) {
  auto ds = std::make_shared<Dataset<float>>();
  ds->num_classes = static_cast<int>(class_sizes.size());
  std::vector<Index> left = class_sizes;
  bool any = true;
  while (any) {
    any = false;
    for (std::size_t k = 0; k < left.size(); ++k)
      if (left[k] > 0) {
        --left[k];
        ds->labels.push_back(static_cast<Label>(k));
        any = true;
      }
  }
  ds->features.resize(1, static_cast<Index>(ds->labels.size()));
  for (Index j = 0; j < ds->features.cols(); ++j) ds->features(0, j) = static_cast<float>(j);
  return ds;
}

std::shared_ptr<const Dataset<float>> balanced(int classes, Index per_class) {
  return make_labelled(std::vector<Index>(static_cast<std::size_t>(classes), per_class));
}

// How often each sample of the base appears over all views.
std::vector<int> use_counts(const std::vector<DatasetView<float>>& views, Index n) {
  std::vector<int> c(static_cast<std::size_t>(n), 0);
  for (const auto& v : views)
    for (auto i : v.indices) ++c.at(i);
  return c;
}

bool each_sample_once(const std::vector<DatasetView<float>>& views, Index n) {
  const auto c = use_counts(views, n);
  return std::all_of(c.begin(), c.end(), [](int x) { return x == 1; });
}

bool same_split(const std::vector<DatasetView<float>>& a, const std::vector<DatasetView<float>>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t c = 0; c < a.size(); ++c)
    if (a[c].indices != b[c].indices) return false;
  return true;
}

Index distinct_classes(const DatasetView<float>& v) {
  const auto h = label_histogram(v);
  return std::count_if(h.begin(), h.end(), [](Index x) { return x > 0; });
}

}  // namespace

// ---- samplers ---------------------------------------------------------------------------------

TEST_CASE("gamma_sample has mean and variance alpha", "[data][partition][dirichlet]") {
  const double alpha = GENERATE(0.2, 1.0, 4.5);
  auto rng = make_rng(7, 0, 0, Purpose::user);
  const int n = 200000;
  double s = 0.0, s2 = 0.0;
  for (int i = 0; i < n; ++i) {
    const double g = gamma_sample(rng, alpha);
    REQUIRE(g >= 0.0);
    s += g;
    s2 += g * g;
  }
  const double mean = s / n, var = s2 / n - mean * mean;
  INFO("alpha " << alpha << " mean " << mean << " var " << var);
  CHECK(mean == Approx(alpha).margin(5.0 * std::sqrt(alpha / n)));
  CHECK(var == Approx(alpha).epsilon(0.03));
}

TEST_CASE("dirichlet_sample has the Dirichlet mean and variance", "[data][partition][dirichlet]") {
  const double alpha = GENERATE(0.1, 0.5, 3.0);
  const std::size_t k = 4;
  auto rng = make_rng(9, 0, 0, Purpose::user);
  const int n = 50000;
  std::vector<double> s(k, 0.0), s2(k, 0.0);
  for (int i = 0; i < n; ++i) {
    const auto p = dirichlet_sample(rng, alpha, k);
    REQUIRE(p.size() == k);
    double sum = 0.0;
    for (std::size_t j = 0; j < k; ++j) {
      REQUIRE(p[j] >= 0.0);
      sum += p[j];
      s[j] += p[j];
      s2[j] += p[j] * p[j];
    }
    REQUIRE(sum == Approx(1.0).margin(1e-12));
  }
  // E[p_j] = 1/k, Var[p_j] = (1/k)(1 - 1/k) / (k alpha + 1).
  const double var_exact = 0.25 * 0.75 / (static_cast<double>(k) * alpha + 1.0);
  for (std::size_t j = 0; j < k; ++j) {
    const double mean = s[j] / n, var = s2[j] / n - mean * mean;
    INFO("alpha " << alpha << " j " << j << " mean " << mean << " var " << var << " exact " << var_exact);
    CHECK(mean == Approx(0.25).margin(5.0 * std::sqrt(var_exact / n)));
    CHECK(var == Approx(var_exact).epsilon(0.05));
  }
}

TEST_CASE("dirichlet_sample never returns zeros for tiny alpha", "[data][partition][dirichlet]") {
  auto rng = make_rng(3, 0, 0, Purpose::user);
  for (double alpha : {1e-3, 1e-8, 1e-100, 1e-300, 5e-324}) {
    double mean_max = 0.0;
    for (int i = 0; i < 200; ++i) {
      const auto p = dirichlet_sample(rng, alpha, 10);
      double sum = 0.0, mx = 0.0;
      for (double v : p) {
        REQUIRE(std::isfinite(v));
        REQUIRE(v >= 0.0);
        sum += v;
        mx = std::max(mx, v);
      }
      REQUIRE(sum == Approx(1.0).margin(1e-12));
      mean_max += mx / 200;
    }
    INFO("alpha " << alpha);
    CHECK(mean_max > 0.95);  // almost all mass on one category
  }
  // Large alpha: close to uniform.
  const auto p = dirichlet_sample(rng, 1e7, 5);
  for (double v : p) CHECK(v == Approx(0.2).margin(1e-3));
}

TEST_CASE("the samplers reject invalid alpha and k", "[data][partition][dirichlet]") {
  auto rng = make_rng(1, 0, 0, Purpose::user);
  for (double bad : {0.0, -1.0, std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity()}) {
    CHECK_THROWS_AS(gamma_sample(rng, bad), InvalidArgument);
    CHECK_THROWS_AS(dirichlet_sample(rng, bad, 3), InvalidArgument);
  }
  CHECK_THROWS_WITH(dirichlet_sample(rng, -2.0, 3), Catch::Contains("alpha must be finite and > 0, got -2"));
  CHECK_THROWS_AS(dirichlet_sample(rng, 1.0, 0), InvalidArgument);
}

// ---- IID ----------------------------------------------------------------------------------------

TEST_CASE("iid_split uses every sample once with sizes differing by at most 1", "[data][partition][iid]") {
  const auto ds = balanced(10, 103);  // 1030 samples
  const Index n = GENERATE(1, 7, 100, 1030);
  const auto views = iid_split(ds, n, 5);
  REQUIRE(static_cast<Index>(views.size()) == n);
  CHECK(each_sample_once(views, ds->size()));
  const auto sizes = client_sizes(views);
  const auto [mn, mx] = std::minmax_element(sizes.begin(), sizes.end());
  CHECK(*mx - *mn <= 1);
  CHECK(*mn == ds->size() / n);
  for (const auto& v : views) CHECK(v.base == ds);
  CHECK(same_split(views, iid_split(ds, n, 5)));
  if (n < ds->size()) CHECK_FALSE(same_split(views, iid_split(ds, n, 6)));
}

TEST_CASE("iid_split shuffles: clients see the global label mix", "[data][partition][iid]") {
  const auto ds = make_labelled({500, 500});  // interleaved 0,1,0,1,...
  auto sorted = std::make_shared<Dataset<float>>(*ds);
  std::sort(sorted->labels.begin(), sorted->labels.end());  // 500 zeros then 500 ones
  const auto views = iid_split(sorted, 10, 1);
  for (const auto& v : views) {
    const auto h = label_histogram(v);
    CHECK(h[0] > 20);  // a contiguous split would give 100 / 0
    CHECK(h[1] > 20);
  }
}

TEST_CASE("partitioners validate their arguments", "[data][partition]") {
  const auto ds = balanced(3, 10);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_WITH(iid_split(ds, 0, 1), Catch::Contains("fedpp::iid_split: num_clients must be in [1, 30]") &&
                                             Catch::Contains("got 0"));
  CHECK_THROWS_AS(iid_split(ds, 31, 1), InvalidArgument);
  CHECK_THROWS_AS(iid_split(ds, -1, 1), InvalidArgument);
  CHECK_THROWS_AS(iid_split(std::shared_ptr<const Dataset<float>>{}, 2, 1), InvalidArgument);
  for (double bad : {0.0, -0.5, nan, std::numeric_limits<double>::infinity()}) {
    CHECK_THROWS_WITH(dirichlet_split(ds, 3, bad, 1), Catch::Contains("fedpp::dirichlet_split: alpha must be finite and > 0"));
    CHECK_THROWS_WITH(dirichlet_prior_split(ds, 3, bad, 1),
                      Catch::Contains("fedpp::dirichlet_prior_split: alpha must be finite and > 0"));
  }
  CHECK_THROWS_AS(dirichlet_split(ds, 0, 1.0, 1), InvalidArgument);
  CHECK_THROWS_AS(dirichlet_prior_split(ds, 31, 1.0, 1), InvalidArgument);
  CHECK_THROWS_WITH(dirichlet_split(ds, 3, 1.0, 1, 11), Catch::Contains("min_size must be <= N / num_clients = 10") &&
                                                            Catch::Contains("got 11"));
  CHECK_THROWS_AS(dirichlet_split(ds, 3, 1.0, 1, -1, 0), InvalidArgument);
  CHECK_THROWS_WITH(shard_split(ds, 10, 4, 1), Catch::Contains("fedpp::shard_split: shards_per_client must be in [1, N / num_clients = 3]"));
  CHECK_THROWS_AS(shard_split(ds, 10, 0, 1), InvalidArgument);
  CHECK_THROWS_AS(pathological_prior_split(ds, 3, 0, 1), InvalidArgument);
  CHECK_THROWS_AS(pathological_prior_split(ds, 3, 4, 1), InvalidArgument);
  // Inconsistent data sets.
  auto bad = std::make_shared<Dataset<float>>(*ds);
  bad->labels[4] = 3;
  CHECK_THROWS_WITH(iid_split(bad, 2, 1), Catch::Contains("labels must be in [0, 3)") && Catch::Contains("got 3"));
  bad->labels.pop_back();
  CHECK_THROWS_AS(iid_split(bad, 2, 1), DimensionError);
}

// ---- hetero-dir (scheme b) ------------------------------------------------------------------------

TEST_CASE("dirichlet_split uses every sample once and respects min_size", "[data][partition][dirichlet]") {
  const auto ds = balanced(10, 300);  // N = 3000
  const double alpha = GENERATE(0.1, 0.5, 5.0, 1000.0);
  const Index n = GENERATE(5, 20, 50);
  const auto views = dirichlet_split(ds, n, alpha, 3);
  REQUIRE(static_cast<Index>(views.size()) == n);
  CHECK(each_sample_once(views, ds->size()));
  const auto sizes = client_sizes(views);
  // Default min_size = min(num_classes, N / n); the balancing step stops a client from growing
  // once it holds N / n samples, so it ends below N / n + the largest class.
  const Index min_size = std::min<Index>(10, ds->size() / n);
  for (Index s : sizes) {
    CHECK(s >= min_size);
    CHECK(s < ds->size() / n + 1 + 300);
  }
  CHECK(same_split(views, dirichlet_split(ds, n, alpha, 3)));
  CHECK_FALSE(same_split(views, dirichlet_split(ds, n, alpha, 4)));
}

TEST_CASE("dirichlet_split honours an explicit min_size and gives up with a clear error", "[data][partition][dirichlet]") {
  const auto ds = balanced(10, 100);
  const auto views = dirichlet_split(ds, 10, 0.5, 1, 60);
  for (Index s : client_sizes(views)) CHECK(s >= 60);
  CHECK(each_sample_once(views, ds->size()));
  // Two classes, ten clients, tiny alpha: each class lands on about one client, so no attempt
  // gives every client 10 samples.
  const auto two = balanced(2, 50);
  CHECK_THROWS_WITH(dirichlet_split(two, 10, 0.01, 1, 10, 20),
                    Catch::Contains("fedpp::dirichlet_split: could not give every client >= 10 samples") &&
                        Catch::Contains("alpha 0.01") && Catch::Contains("got 20"));
  // min_size 0 always succeeds.
  CHECK(each_sample_once(dirichlet_split(two, 10, 0.01, 1, 0, 1), 100));
}

TEST_CASE("dirichlet_split handles empty classes and unbalanced classes", "[data][partition][dirichlet]") {
  const auto ds = make_labelled({40, 0, 900, 0, 60});
  const auto views = dirichlet_split(ds, 8, 0.3, 2, 5);
  CHECK(each_sample_once(views, ds->size()));
  for (const auto& v : views) {
    const auto h = label_histogram(v);
    CHECK(h[1] == 0);
    CHECK(h[3] == 0);
  }
}

TEST_CASE("Dirichlet label skew falls monotonically with alpha (section 9 experiment)", "[data][partition][dirichlet]") {
  // 10 classes x 5,000 samples, 100 clients: mean classes covering 90% of a client's data and
  // mean total-variation distance to the global label distribution.
  const auto ds = balanced(10, 5000);
  const std::vector<double> alphas = {0.1, 0.3, 0.6, 100.0};
  for (int scheme = 0; scheme < 2; ++scheme) {
    std::vector<double> cover, tv;
    for (double a : alphas) {
      const auto views = scheme == 0 ? dirichlet_split(ds, 100, a, 1) : dirichlet_prior_split(ds, 100, a, 1);
      const PartitionSummary s = summarize_partition(views);
      cover.push_back(s.mean_classes_to_cover);
      tv.push_back(s.mean_tv);
      // Brute force from the raw labels: sorted class counts, and TV to the uniform global mix.
      double bf_cover = 0.0, bf_tv = 0.0;
      for (const auto& v : views) {
        std::vector<double> cnt(10, 0.0);
        for (auto i : v.indices) cnt[static_cast<std::size_t>(ds->labels[i])] += 1.0;
        const double m = static_cast<double>(v.indices.size());
        for (double c : cnt) bf_tv += 0.5 * std::abs(c / m - 0.1) / 100.0;
        std::sort(cnt.rbegin(), cnt.rend());
        double cum = 0.0;
        int k = 0;
        while (cum < 0.9 * m) cum += cnt[static_cast<std::size_t>(k++)];
        bf_cover += k / 100.0;
      }
      CHECK(s.mean_classes_to_cover == Approx(bf_cover).epsilon(1e-12));
      CHECK(s.mean_tv == Approx(bf_tv).epsilon(1e-12));
    }
    INFO("scheme " << (scheme == 0 ? "hetero-dir" : "prior") << " cover " << cover[0] << " " << cover[1] << " "
                   << cover[2] << " " << cover[3] << " tv " << tv[0] << " " << tv[1] << " " << tv[2] << " " << tv[3]);
    for (std::size_t i = 1; i < alphas.size(); ++i) {
      CHECK(cover[i] > cover[i - 1]);
      CHECK(tv[i] < tv[i - 1]);
    }
    CHECK(cover[0] >= 1.0);
    CHECK(cover[0] <= 3.0);  // alpha = 0.1: a few classes
    CHECK(cover[3] >= 8.5);  // alpha = 100: about 9 of 10 classes
    CHECK(tv[3] < 0.1);
    CHECK(tv[0] > 0.6);
  }
}

// ---- per-client priors (scheme a) ---------------------------------------------------------------

TEST_CASE("dirichlet_prior_split gives equal sizes (client 0 takes the remainder)", "[data][partition][dirichlet]") {
  const auto ds = balanced(10, 100);  // N = 1000
  const auto views = dirichlet_prior_split(ds, 10, 0.5, 1);
  for (Index s : client_sizes(views)) CHECK(s == 100);
  const auto uneven = dirichlet_prior_split(ds, 7, 0.5, 1);  // 1000 = 7 * 142 + 6
  const auto sizes = client_sizes(uneven);
  CHECK(sizes[0] == 148);
  for (std::size_t c = 1; c < sizes.size(); ++c) CHECK(sizes[c] == 142);
  Index total = 0;
  for (Index s : sizes) total += s;
  CHECK(total == 1000);
  CHECK(same_split(views, dirichlet_prior_split(ds, 10, 0.5, 1)));
  CHECK_FALSE(same_split(views, dirichlet_prior_split(ds, 10, 0.5, 2)));
}

TEST_CASE("dirichlet_prior_split reuses the samples of an exhausted class", "[data][partition][dirichlet]") {
  // Class 0 has 5 samples, class 1 has 995; with alpha = 1e4 every prior is about (0.5, 0.5), so
  // about 500 slots ask for class 0 and its 5 samples are used again and again.
  const auto ds = make_labelled({5, 995});
  const auto views = dirichlet_prior_split(ds, 10, 1e4, 1);
  Index class0 = 0;
  std::set<std::uint32_t> distinct0;
  for (const auto& v : views) {
    class0 += label_histogram(v)[0];
    for (auto i : v.indices)
      if (ds->labels[i] == 0) distinct0.insert(i);
  }
  CHECK(class0 > 400);
  CHECK(class0 < 600);
  CHECK(distinct0.size() == 5);
  const auto used = use_counts(views, ds->size());
  CHECK(std::count(used.begin(), used.end(), 0) > 300);  // many class-1 samples never used
  CHECK(*std::max_element(used.begin(), used.end()) > 50);
}

TEST_CASE("dirichlet_prior_split skips empty classes", "[data][partition][dirichlet]") {
  const auto ds = make_labelled({0, 50, 0, 50});
  const auto views = dirichlet_prior_split(ds, 4, 0.05, 3);
  for (const auto& v : views) {
    CHECK(v.size() == 25);
    const auto h = label_histogram(v);
    CHECK(h[0] == 0);
    CHECK(h[2] == 0);
  }
}

TEST_CASE("pathological_prior_split gives each client its classes only", "[data][partition]") {
  const auto ds = balanced(10, 200);
  const int c = GENERATE(1, 2, 3);
  const auto views = pathological_prior_split(ds, 20, c, 4);
  std::set<Index> seen_counts;
  for (const auto& v : views) {
    CHECK(v.size() == 100);
    CHECK(distinct_classes(v) <= c);
    seen_counts.insert(distinct_classes(v));
  }
  CHECK(seen_counts.count(c) == 1);  // most clients see all c classes
}

// ---- shards ---------------------------------------------------------------------------------------

TEST_CASE("shard_split gives each client at most shards_per_client classes", "[data][partition][shards]") {
  const auto ds = balanced(10, 600);  // 6000 samples, 200 shards of 30
  const Index spc = GENERATE(1, 2, 3);
  const auto views = shard_split(ds, 100, spc, 1);
  CHECK(each_sample_once(views, ds->size()));
  for (const auto& v : views) {
    CHECK(v.size() == 60);
    CHECK(distinct_classes(v) <= spc);
    CHECK(distinct_classes(v) >= 1);
  }
  CHECK(same_split(views, shard_split(ds, 100, spc, 1)));
  CHECK_FALSE(same_split(views, shard_split(ds, 100, spc, 2)));
}

TEST_CASE("shard_split with uneven shards still uses every sample once", "[data][partition][shards]") {
  const auto ds = make_labelled({400, 301, 300});  // N = 1001, 30 shards of 33 or 34
  const auto views = shard_split(ds, 10, 3, 9);
  CHECK(each_sample_once(views, ds->size()));
  for (Index s : client_sizes(views)) {
    CHECK(s >= 99);
    CHECK(s <= 102);
  }
}

// ---- views, overloads, statistics -----------------------------------------------------------------

TEST_CASE("partitioners accept a mutable shared data set", "[data][partition]") {
  auto mut = std::make_shared<Dataset<float>>(*balanced(4, 25));
  std::shared_ptr<const Dataset<float>> con = mut;
  CHECK(same_split(iid_split(mut, 4, 1), iid_split(con, 4, 1)));
  CHECK(same_split(dirichlet_split(mut, 4, 1.0, 1), dirichlet_split(con, 4, 1.0, 1)));
  CHECK(same_split(dirichlet_prior_split(mut, 4, 1.0, 1), dirichlet_prior_split(con, 4, 1.0, 1)));
  CHECK(same_split(pathological_prior_split(mut, 4, 2, 1), pathological_prior_split(con, 4, 2, 1)));
  CHECK(same_split(shard_split(mut, 4, 2, 1), shard_split(con, 4, 2, 1)));
}

TEST_CASE("views gather the samples they index", "[data][partition]") {
  const auto ds = balanced(3, 7);
  const auto views = dirichlet_split(ds, 3, 1.0, 11, 0);
  for (const auto& v : views) {
    Matrix<float> X;
    std::vector<Label> y;
    std::vector<std::uint32_t> order(v.indices.size());
    for (std::uint32_t k = 0; k < order.size(); ++k) order[k] = k;
    v.gather(order, X, y);
    for (std::size_t k = 0; k < order.size(); ++k) {
      CHECK(X(0, static_cast<Index>(k)) == static_cast<float>(v.indices[k]));
      CHECK(y[k] == ds->labels[v.indices[k]]);
    }
  }
}

TEST_CASE("label_histogram, classes_to_cover, total_variation, summarize_partition", "[data][partition][stats]") {
  const auto ds = make_labelled({2, 2});  // labels 0 1 0 1
  DatasetView<float> a{ds, {0, 2}, {}}, b{ds, {1}, {}}, empty{ds, {}, {}};
  CHECK(label_histogram(a) == std::vector<Index>{2, 0});
  CHECK(label_histogram(b) == std::vector<Index>{0, 1});
  CHECK(label_histogram(*ds) == std::vector<Index>{2, 2});
  DatasetView<float> flipped{ds, {0, 2, 1}, {1, 0}};
  CHECK(label_histogram(flipped) == std::vector<Index>{1, 2});

  const std::vector<Index> h = {3, 0, 5, 2};
  CHECK(classes_to_cover(h, 0.9) == 3);
  CHECK(classes_to_cover(h, 0.8) == 2);
  CHECK(classes_to_cover(h, 0.5) == 1);
  CHECK(classes_to_cover(h, 1.0) == 3);
  CHECK(classes_to_cover(std::vector<Index>{0, 0}) == 0);

  CHECK(total_variation(std::vector<Index>{1, 1}, std::vector<Index>{1, 0}) == 0.5);
  CHECK(total_variation(std::vector<Index>{1, 3}, std::vector<Index>{2, 6}) == 0.0);
  CHECK(total_variation(std::vector<Index>{1, 0}, std::vector<Index>{0, 4}) == 1.0);
  CHECK_THROWS_AS(total_variation(std::vector<Index>{1}, std::vector<Index>{1, 1}), DimensionError);
  CHECK_THROWS_AS(total_variation(std::vector<Index>{0, 0}, std::vector<Index>{1, 1}), InvalidArgument);

  const PartitionSummary s = summarize_partition(std::vector<DatasetView<float>>{a, b, empty});
  CHECK(s.clients == 3);
  CHECK(s.min_size == 0);
  CHECK(s.max_size == 2);
  CHECK(s.mean_size == 1.0);
  CHECK(s.mean_classes_to_cover == 1.0);
  CHECK(s.mean_tv == 0.5);
  CHECK(summarize_partition(std::vector<DatasetView<float>>{}).clients == 0);
}

// ---- seeded behaviour against exact predictions ---------------------------------------------------

TEST_CASE("iid_split draws every permutation equally often", "[data][partition][iid]") {
  // One client over 3 samples: the view is the shuffled permutation. Over 6000 seeds each of the
  // 3! = 6 permutations should appear 1000 +- 5 sd (sd = sqrt(6000 * 1/6 * 5/6) = 28.9) times; a
  // biased shuffle (e.g. Sattolo's off-by-one, which only makes cycles) misses some entirely.
  const auto ds = balanced(3, 1);
  std::map<std::vector<std::uint32_t>, int> seen;
  for (std::uint64_t seed = 0; seed < 6000; ++seed) ++seen[iid_split(ds, 1, seed)[0].indices];
  REQUIRE(seen.size() == 6);
  for (const auto& [perm, count] : seen) {
    INFO("permutation " << perm[0] << perm[1] << perm[2]);
    CHECK(std::abs(count - 1000) < 145);
  }
}

TEST_CASE("iid_split cuts the permutation at floor(c N / n)", "[data][partition][iid]") {
  // N = 10, n = 4: cuts at 0, 2, 5, 7, 10, so the sizes are 2, 3, 2, 3 in client order.
  const auto views = iid_split(balanced(2, 5), 4, 3);
  CHECK(client_sizes(views) == std::vector<Index>{2, 3, 2, 3});
}

TEST_CASE("dirichlet_split with a huge alpha cuts each class at floor(cumsum(1/n) * |class|)",
          "[data][partition][dirichlet]") {
  // alpha = 1e7 gives p = 1/3 +- 1e-3 per client, far from the rounding boundaries: with 10 samples
  // per class the cuts fall at floor(3.33) = 3 and floor(6.67) = 6, so clients 0 and 1 get 3 samples
  // of every class and client 2 gets 4. Every client stays below N / n = 10 before the last class,
  // so the balancing step never intervenes.
  const auto ds = balanced(3, 10);
  for (std::uint64_t seed = 1; seed <= 3; ++seed) {
    const auto views = dirichlet_split(ds, 3, 1e7, seed);
    REQUIRE(views.size() == 3);
    CHECK(label_histogram(views[0]) == std::vector<Index>{3, 3, 3});
    CHECK(label_histogram(views[1]) == std::vector<Index>{3, 3, 3});
    CHECK(label_histogram(views[2]) == std::vector<Index>{4, 4, 4});
    CHECK(each_sample_once(views, ds->size()));
  }
}

TEST_CASE("dirichlet_split stops giving to a client once it holds N / n samples", "[data][partition][dirichlet]") {
  // alpha = 1e-200: every Dirichlet draw is one-hot, so a class goes whole to one client. Two
  // classes of 5 over 2 clients: the client that took class 0 holds N / n = 5 samples and must get
  // none of class 1, so both clients end with 5 samples of one class, on every seed (no retries).
  const auto ds = balanced(2, 5);
  for (std::uint64_t seed = 1; seed <= 12; ++seed) {
    CAPTURE(seed);
    const auto views = dirichlet_split(ds, 2, 1e-200, seed, 0, 1);
    REQUIRE(views.size() == 2);
    CHECK(client_sizes(views) == std::vector<Index>{5, 5});
    CHECK(distinct_classes(views[0]) == 1);
    CHECK(distinct_classes(views[1]) == 1);
  }
}

TEST_CASE("shard_split shuffles the samples within a label before cutting shards", "[data][partition][shards]") {
  // Interleaved labels: class k is the samples k, k + 10, k + 20, ... Without the shuffle a shard
  // would be a run of consecutive samples of its class (indices in steps of 10).
  const auto ds = balanced(10, 600);
  const auto views = shard_split(ds, 100, 1, 5);
  int runs = 0;
  for (const auto& v : views) {
    std::vector<std::uint32_t> idx = v.indices;
    REQUIRE(idx.size() == 60);
    std::sort(idx.begin(), idx.end());
    bool run = true;
    for (std::size_t i = 1; i < idx.size(); ++i) run = run && idx[i] - idx[i - 1] == 10;
    runs += run;
  }
  CHECK(runs == 0);
}

TEST_CASE("pathological_prior_split gives every client exactly its classes_per_client classes",
          "[data][partition]") {
  // 100 slots per client (2000 samples, 20 clients): a client drawing from c <= 5 classes misses one
  // of them with probability at most 5 * (4/5)^100 < 1e-9, so every client shows exactly c classes.
  const auto ds = balanced(10, 200);
  for (int c : {1, 2, 5}) {
    const auto views = pathological_prior_split(ds, 20, c, 4);
    for (const auto& v : views) CHECK(distinct_classes(v) == c);
  }
}

TEST_CASE("partitioner and sampler errors name the function, the rule and the value", "[data][partition]") {
  const auto ds = balanced(3, 10);
  CHECK_THROWS_WITH(iid_split(std::shared_ptr<const Dataset<float>>{}, 2, 1),
                    "fedpp::iid_split: dataset must not be null");
  auto no_classes = std::make_shared<Dataset<float>>(*ds);
  no_classes->num_classes = 0;
  CHECK_THROWS_WITH(shard_split(no_classes, 2, 1, 1), "fedpp::shard_split: dataset num_classes must be >= 1, got 0");
  auto short_labels = std::make_shared<Dataset<float>>(*ds);
  short_labels->labels.pop_back();
  CHECK_THROWS_WITH(dirichlet_split(short_labels, 2, 1.0, 1),
                    "fedpp::dirichlet_split: dataset labels must have one entry per feature column (30), got 29");
  auto negative = std::make_shared<Dataset<float>>(*ds);
  negative->labels[0] = -1;
  CHECK_THROWS_WITH(dirichlet_prior_split(negative, 2, 1.0, 1),
                    "fedpp::dirichlet_prior_split: dataset labels must be in [0, 3), got -1");
  CHECK_THROWS_WITH(iid_split(ds, 31, 1), "fedpp::iid_split: num_clients must be in [1, 30] (the number of samples), got 31");
  CHECK_THROWS_WITH(dirichlet_split(ds, 3, 1.0, 1, -1, 0), "fedpp::dirichlet_split: max_retries must be >= 1, got 0");
  CHECK_THROWS_WITH(pathological_prior_split(ds, 3, 4, 1),
                    "fedpp::pathological_prior_split: classes_per_client must be in [1, 3], got 4");
  CHECK_THROWS_WITH(pathological_prior_split(ds, 3, 0, 1),
                    "fedpp::pathological_prior_split: classes_per_client must be in [1, 3], got 0");
  CHECK_THROWS_WITH(shard_split(ds, 10, 0, 1),
                    "fedpp::shard_split: shards_per_client must be in [1, N / num_clients = 3], got 0");
  CHECK_NOTHROW(shard_split(ds, 10, 3, 1));
  auto rng = make_rng(1, 0, 0, Purpose::user);
  CHECK_THROWS_WITH(gamma_sample(rng, 0.0), "fedpp::log_gamma_sample: alpha must be finite and > 0, got 0");
  CHECK_THROWS_WITH(dirichlet_sample(rng, 1.0, 0), "fedpp::dirichlet_sample: k must be >= 1, got 0");
  CHECK(dirichlet_sample(rng, 1.0, 1) == std::vector<double>{1.0});
  CHECK_THROWS_WITH(total_variation(std::vector<Index>{1}, std::vector<Index>{1, 1}),
                    "fedpp::total_variation: histograms must have the same length (1), got 2");
  CHECK_THROWS_WITH(total_variation(std::vector<Index>{2, 0}, std::vector<Index>{0, 0}),
                    "fedpp::total_variation: histograms must have a positive total, got 0");
}
