// The shared comparison helpers of tests/support/checks.hpp compare everything they are given:
// a result of the wrong length never passes a "bit for bit" check.
#include <catch2/catch.hpp>

#include <initializer_list>
#include <limits>
#include <vector>

#include "support/checks.hpp"

namespace {
fedpp::Vector<float> checks_vec(std::initializer_list<float> v) {
  fedpp::Vector<float> out(static_cast<fedpp::Index>(v.size()));
  fedpp::Index i = 0;
  for (float x : v) out(i++) = x;
  return out;
}
}  // namespace

TEST_CASE("count_mismatches counts every differing and every missing coordinate", "[support]") {
  const fedpp::Vector<float> ref = checks_vec({1.0f, 2.0f, 3.0f, 4.0f});
  CHECK(fedpp_test::count_mismatches<float>(ref, ref) == 0);
  CHECK(fedpp_test::count_mismatches<float>(checks_vec({1.0f, 2.5f, 3.0f, 4.5f}), ref) == 2);
  // A short or empty result: the coordinates it lacks count.
  CHECK(fedpp_test::count_mismatches<float>(checks_vec({1.0f, 2.0f}), ref) == 2);
  CHECK(fedpp_test::count_mismatches<float>(ref, checks_vec({1.0f, 2.0f})) == 2);
  CHECK(fedpp_test::count_mismatches<float>(fedpp::Vector<float>(), ref) == 4);
  CHECK(fedpp_test::count_mismatches<float>(checks_vec({1.0f, 9.0f}), ref) == 3);
  // Bytes, not values: +0 and -0 differ, and the same NaN matches itself.
  CHECK(fedpp_test::count_mismatches<float>(checks_vec({0.0f}), checks_vec({-0.0f})) == 1);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  CHECK(fedpp_test::count_mismatches<float>(checks_vec({nan}), checks_vec({nan})) == 0);
}

TEST_CASE("same_bits compares shapes and bytes", "[support]") {
  const fedpp::Vector<float> ref = checks_vec({1.0f, 2.0f, 3.0f});
  CHECK(fedpp_test::same_bits(ref, ref));
  CHECK_FALSE(fedpp_test::same_bits(checks_vec({1.0f, 2.0f}), ref));
  CHECK_FALSE(fedpp_test::same_bits(checks_vec({1.0f, 2.0f, -3.0f}), ref));
  CHECK_FALSE(fedpp_test::same_bits(checks_vec({0.0f}), checks_vec({-0.0f})));
  CHECK(fedpp_test::same_bits(std::vector<int>{1, 2}, std::vector<int>{1, 2}));
  CHECK_FALSE(fedpp_test::same_bits(std::vector<int>{1, 2}, std::vector<int>{1, 2, 3}));
}
