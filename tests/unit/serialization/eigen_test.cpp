// cereal support for Eigen dense types: round trips in binary, portable binary and JSON archives,
// and rejection of inconsistent sizes.
#include <catch2/catch.hpp>

#include <cereal/archives/binary.hpp>
#include <cereal/archives/json.hpp>
#include <cereal/archives/portable_binary.hpp>

#include <sstream>

#include "fedpp/core/rng.hpp"
#include "fedpp/core/types.hpp"
#include "fedpp/serialization/eigen.hpp"

using namespace fedpp;

namespace {

template <class Out, class In, typename T>
T round_trip(const T& value) {
  std::stringstream ss;
  {
    Out ar(ss);
    ar(value);
  }
  T back;
  {
    In ar(ss);
    ar(back);
  }
  return back;
}

template <class Out, class In>
void check_round_trips() {
  Rng rng(3);
  Vector<float> vf(17);
  for (auto& v : vf) v = static_cast<float>(rng.normal());
  vf(3) = -0.0f;
  vf(4) = 1e-40f;  // subnormal
  Vector<double> vd(9);
  for (auto& v : vd) v = rng.normal() * 1e300;
  Matrix<double> md(3, 4);
  for (Index j = 0; j < 4; ++j)
    for (Index i = 0; i < 3; ++i) md(i, j) = static_cast<double>(10 * i + j) + 0.125;
  Eigen::Matrix3f fixed = Eigen::Matrix3f::Identity() * 2.5f;
  Eigen::Matrix<std::int32_t, Eigen::Dynamic, 1> vi(4);
  vi << -7, 0, 1, 2147483647;

  CHECK(round_trip<Out, In>(vf) == vf);
  CHECK(std::signbit(round_trip<Out, In>(vf)(3)));
  CHECK(round_trip<Out, In>(vd) == vd);
  const Matrix<double> md2 = round_trip<Out, In>(md);
  CHECK(md2.rows() == 3);
  CHECK(md2.cols() == 4);
  CHECK(md2 == md);
  CHECK(round_trip<Out, In>(fixed) == fixed);
  CHECK(round_trip<Out, In>(vi) == vi);
  CHECK(round_trip<Out, In>(Vector<float>()).size() == 0);
}

}  // namespace

TEST_CASE("Eigen vectors and matrices round-trip through cereal archives", "[serialization][eigen]") {
  SECTION("binary") { check_round_trips<cereal::BinaryOutputArchive, cereal::BinaryInputArchive>(); }
  SECTION("portable binary") {
    check_round_trips<cereal::PortableBinaryOutputArchive, cereal::PortableBinaryInputArchive>();
  }
  SECTION("JSON") { check_round_trips<cereal::JSONOutputArchive, cereal::JSONInputArchive>(); }
}

TEST_CASE("Eigen JSON layout and size validation", "[serialization][eigen]") {
  Vector<double> v(2);
  v << 1.5, -2.0;
  std::stringstream ss;
  {
    cereal::JSONOutputArchive ar(ss);
    ar(cereal::make_nvp("v", v));
  }
  const std::string text = ss.str();
  CHECK(text.find("\"rows\": 2") != std::string::npos);
  CHECK(text.find("\"cols\": 1") != std::string::npos);
  CHECK(text.find("1.5") != std::string::npos);

  // A 2-vector cannot be loaded into a fixed 3-vector.
  {
    std::stringstream in(text);
    cereal::JSONInputArchive ar(in);
    Eigen::Vector3d fixed;
    CHECK_THROWS_AS(ar(cereal::make_nvp("v", fixed)), cereal::Exception);
  }
  // The number of coefficients must match rows * cols.
  {
    std::stringstream in(R"({"v": {"rows": 3, "cols": 1, "data": [1.0, 2.0]}})");
    cereal::JSONInputArchive ar(in);
    Vector<double> back;
    CHECK_THROWS_WITH(ar(cereal::make_nvp("v", back)), Catch::Contains("count 2 does not match 3"));
  }
  // Negative sizes are refused.
  {
    std::stringstream in(R"({"v": {"rows": -1, "cols": 1, "data": []}})");
    cereal::JSONInputArchive ar(in);
    Vector<double> back;
    CHECK_THROWS_WITH(ar(cereal::make_nvp("v", back)), Catch::Contains("invalid Eigen matrix size -1 x 1"));
  }
  // A truncated binary stream throws instead of reading past the end.
  {
    std::stringstream bin;
    {
      cereal::BinaryOutputArchive ar(bin);
      ar(Vector<double>::Ones(100).eval());
    }
    std::string bytes = bin.str();
    bytes.resize(bytes.size() - 8);
    std::stringstream in(bytes);
    cereal::BinaryInputArchive ar(in);
    Vector<double> back;
    CHECK_THROWS_AS(ar(back), cereal::Exception);
  }
}
