// Consumer of an installed fedpp: uses core headers through fedpp::fedpp and returns nonzero
// on any wrong result (run by the ctest `package/find_package`).
#include <cstdio>
#include <cstring>
#include <span>
#include <vector>

#include <fedpp/core/config.hpp>
#include <fedpp/core/rng.hpp>
#include <fedpp/core/update_batch.hpp>
#include <fedpp/version.hpp>

namespace {
int failures = 0;

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "FAILED: %s\n", what);
    ++failures;
  }
}
}  // namespace

int main() {
  check(std::strcmp(fedpp::version_string, FEDPP_EXPECTED_VERSION) == 0, "version.hpp matches the package version");
  check(FEDPP_HAS_OPENMP == FEDPP_EXPECT_OPENMP, "fedpp::fedpp carries OpenMP exactly when fedpp was built with it");

  // Columns pushed out of id order; sort_by_id must reorder columns, weights and ids together.
  fedpp::UpdateBatch<double> batch(3);
  const std::vector<double> u7{1.0, 2.0, 3.0};
  const std::vector<double> u2{10.0, 20.0, 30.0};
  batch.push_back(7, 1.0, u7);
  batch.push_back(2, 3.0, u2);
  batch.sort_by_id();
  check(batch.size() == 2 && batch.dim() == 3, "batch shape is 3 x 2");
  check(batch.ids()[0] == 2 && batch.ids()[1] == 7, "ids sorted");
  check(batch.weights()[0] == 3.0 && batch.weights()[1] == 1.0, "weights follow their columns");
  check(batch.column(0)[2] == 30.0 && batch.column(1)[0] == 1.0, "columns follow their ids");
  // Weighted mean of coordinate 1: (3 * 20 + 1 * 2) / 4 = 15.5 (exact in binary).
  const auto m = batch.matrix();
  const double mean1 = (batch.weights()[0] * m(1, 0) + batch.weights()[1] * m(1, 1)) / 4.0;
  check(mean1 == 15.5, "weighted mean through the Eigen view");

  // Streams: same key -> same draws, different purpose -> different draws, values in range.
  auto a = fedpp::make_rng(42, 3, 7, fedpp::Purpose::shuffle);
  auto b = fedpp::make_rng(42, 3, 7, fedpp::Purpose::shuffle);
  auto c = fedpp::make_rng(42, 3, 7, fedpp::Purpose::sampling);
  bool same = true, differs = false, in_range = true;
  for (int i = 0; i < 100; ++i) {
    const auto x = a();
    same = same && x == b();
    differs = differs || x != c();
    const double u = a.uniform();
    in_range = in_range && u >= 0.0 && u < 1.0 && b.uniform() == u;
    in_range = in_range && a.uniform_index(10) < 10 && b.uniform_index(10) < 10;
  }
  check(same, "equal keys give equal streams");
  check(differs, "different purposes give different streams");
  check(in_range, "uniform() in [0, 1), uniform_index(10) < 10");

  // Errors reach the user as fedpp exceptions with the class name in the message.
  bool threw = false;
  try {
    batch.push_back(1, 1.0, std::span<const double>(u7.data(), 2));
  } catch (const fedpp::Error& e) {
    threw = std::strstr(e.what(), "fedpp::UpdateBatch") != nullptr;
  }
  check(threw, "a wrong update size throws a fedpp::Error naming the class");

  if (failures == 0) std::printf("fedpp %s found through find_package: all checks passed\n", fedpp::version_string);
  return failures == 0 ? 0 : 1;
}
