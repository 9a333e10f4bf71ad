// Consumer of fedpp built with add_subdirectory(); returns nonzero on any wrong result
// (run by the ctest `package/add_subdirectory`).
#include <cstdio>
#include <vector>

#include <fedpp/core/config.hpp>
#include <fedpp/core/rng.hpp>
#include <fedpp/core/update_batch.hpp>

int main() {
  int failures = 0;
  if (FEDPP_HAS_OPENMP != FEDPP_EXPECT_OPENMP) {
    std::fprintf(stderr, "FAILED: OpenMP usage requirement not propagated by fedpp::fedpp\n");
    ++failures;
  }

  // A 2 x 3 batch built from a matrix: default weights 1, ids 0..2, column sums exact.
  fedpp::Matrix<float> updates(2, 3);
  updates << 1.f, 2.f, 3.f,
             4.f, 5.f, 6.f;
  const fedpp::UpdateBatch<float> batch(updates);
  const fedpp::Vector<float> sum = batch.matrix().rowwise().sum();
  if (batch.size() != 3 || batch.ids()[2] != 2 || batch.weights()[1] != 1.0 || sum(0) != 6.f || sum(1) != 15.f) {
    std::fprintf(stderr, "FAILED: UpdateBatch from a matrix\n");
    ++failures;
  }

  // Same key -> same stream; the stream differs from one keyed by another client.
  auto a = fedpp::make_rng(1, 0, 0, fedpp::Purpose::model_init);
  auto b = fedpp::make_rng(1, 0, 0, fedpp::Purpose::model_init);
  auto c = fedpp::make_rng(1, 0, 1, fedpp::Purpose::model_init);
  const auto xa = a(), xb = b(), xc = c();
  if (xa != xb || xa == xc) {
    std::fprintf(stderr, "FAILED: make_rng streams\n");
    ++failures;
  }

  if (failures == 0) std::printf("fedpp used through add_subdirectory: all checks passed\n");
  return failures == 0 ? 0 : 1;
}
