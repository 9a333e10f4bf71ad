// all_finite: false exactly when some element is NaN or infinite, wherever it sits (each of the
// 16 lanes, the tail), for float and double; extreme finite values (max, lowest, subnormal, -0)
// are finite.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include "fedpp/core/types.hpp"

using namespace fedpp;

TEMPLATE_TEST_CASE("all_finite finds a single NaN or infinity at any position", "[core][all_finite]", float, double) {
  using S = TestType;
  using L = std::numeric_limits<S>;
  const S bad[] = {L::quiet_NaN(), L::infinity(), -L::infinity(), -L::quiet_NaN()};
  for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{15}, std::size_t{16}, std::size_t{17}, std::size_t{47}, std::size_t{64}}) {
    std::vector<S> x(n);
    for (std::size_t i = 0; i < n; ++i) x[i] = static_cast<S>(i % 3 == 0 ? L::max() : (i % 3 == 1 ? L::lowest() : L::denorm_min()));
    CHECK(all_finite(std::span<const S>(x)));
    for (std::size_t i = 0; i < n; ++i)
      for (S b : bad) {
        std::vector<S> y = x;
        y[i] = b;
        CAPTURE(n, i, b);
        CHECK_FALSE(all_finite(std::span<const S>(y)));
      }
  }
  const std::vector<S> zeros{S(0), -S(0), L::min(), -L::denorm_min()};
  CHECK(all_finite(std::span<const S>(zeros)));
  Vector<S> v = Vector<S>::Constant(33, S(1));
  CHECK(all_finite(v));
  v(32) = L::infinity();
  CHECK_FALSE(all_finite(v));
}
