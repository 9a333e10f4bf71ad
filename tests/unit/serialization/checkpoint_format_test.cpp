// The checkpoint format byte by byte (written out by hand from the documented layout), the
// versioning checks, a failing output stream, and Eigen size validation at its limits.
#include <catch2/catch.hpp>

#include <cereal/archives/json.hpp>

#include <cstdint>
#include <ios>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "fedpp/core/error.hpp"
#include "fedpp/core/types.hpp"
#include "fedpp/serialization/checkpoint.hpp"
#include "fedpp/serialization/eigen.hpp"

using namespace fedpp;

namespace {

std::string format_bytes_of(const std::vector<std::uint8_t>& v) { return std::string(v.begin(), v.end()); }

// Little-endian bytes of a 64-bit value.
void format_put64(std::vector<std::uint8_t>& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

// The checkpoint of Vector<double>{1.5, -2} by hand: portable-binary endianness byte (1 = little),
// u32 magic "FPCK", u32 version 1, then the vector: i64 rows 2, i64 cols 1, u64 coefficient count 2,
// and the IEEE-754 doubles 1.5 = 0x3ff8000000000000 and -2 = 0xc000000000000000.
std::vector<std::uint8_t> format_expected_vector_checkpoint() {
  std::vector<std::uint8_t> b{0x01, 'F', 'P', 'C', 'K', 0x01, 0x00, 0x00, 0x00};
  format_put64(b, 2);
  format_put64(b, 1);
  format_put64(b, 2);
  format_put64(b, 0x3ff8000000000000ULL);
  format_put64(b, 0xc000000000000000ULL);
  return b;
}

}  // namespace

TEST_CASE("a checkpoint has the documented byte layout", "[serialization][checkpoint]") {
  Vector<double> v(2);
  v << 1.5, -2.0;
  std::ostringstream os;
  save_state(v, os);
  CHECK(os.str() == format_bytes_of(format_expected_vector_checkpoint()));
  CHECK(checkpoint_magic == 0x4b435046u);
  CHECK(checkpoint_format_version == 1);

  // The hand-written bytes load back.
  Vector<double> back;
  std::istringstream is(format_bytes_of(format_expected_vector_checkpoint()));
  load_state(back, is);
  CHECK(back == v);
}

TEST_CASE("load_state names the bad magic number or version", "[serialization][checkpoint]") {
  auto bytes = format_expected_vector_checkpoint();
  Vector<double> target = Vector<double>::Constant(3, 7.0);
  const auto load = [&](const std::vector<std::uint8_t>& b) {
    std::istringstream is(format_bytes_of(b));
    load_state(target, is);
  };
  auto bad_magic = bytes;
  bad_magic[4] = 'L';  // "FPCL" = 0x4c435046
  CHECK_THROWS_WITH(load(bad_magic), "fedpp::load_state: not a fedpp checkpoint (bad magic number), got 1279479878");
  for (std::uint8_t version : {std::uint8_t{0}, std::uint8_t{2}}) {
    auto bad_version = bytes;
    bad_version[5] = version;
    CHECK_THROWS_AS(load(bad_version), DecodeError);
    CHECK_THROWS_WITH(load(bad_version), "fedpp::load_state: unsupported checkpoint version (expected 1), got " +
                                             std::to_string(version));
  }
  // A count that disagrees with rows x cols, and a stream cut inside the coefficients.
  auto bad_count = bytes;
  bad_count[25] = 3;
  CHECK_THROWS_WITH(load(bad_count), Catch::StartsWith("fedpp::load_state: malformed checkpoint, got ") &&
                                         Catch::Contains("count 3 does not match 2"));
  auto cut = bytes;
  cut.resize(cut.size() - 1);
  CHECK_THROWS_AS(load(cut), DecodeError);
  CHECK_THROWS_WITH(load(cut), Catch::StartsWith("fedpp::load_state: malformed checkpoint"));
  CHECK_THROWS_AS(load({}), DecodeError);
  // Nothing was loaded by the failed attempts.
  CHECK(target == Vector<double>::Constant(3, 7.0));
  load(bytes);
  CHECK(target.size() == 2);
}

TEST_CASE("save_state reports a failing output stream", "[serialization][checkpoint]") {
  std::ostringstream os;
  os.setstate(std::ios::badbit);
  CHECK_THROWS_AS(save_state(Vector<float>::Ones(4).eval(), os), Error);
  CHECK_THROWS_WITH(save_state(Vector<float>::Ones(4).eval(), os), "fedpp::save_state: the output stream failed");
}

TEST_CASE("Eigen loading rejects sizes beyond the type's limits or the address space", "[serialization][eigen]") {
  const auto load_json = [](const std::string& text, auto& m) {
    std::istringstream in(text);
    cereal::JSONInputArchive ar(in);
    ar(cereal::make_nvp("m", m));
  };
  // rows * cols * sizeof(double) overflows 64 bits: refused before any allocation.
  Matrix<double> big;
  CHECK_THROWS_WITH(load_json(R"({"m": {"rows": 4611686018427387904, "cols": 4, "data": []}})", big),
                    Catch::Contains("invalid Eigen matrix size 4611686018427387904 x 4"));
  CHECK_THROWS_WITH(load_json(R"({"m": {"rows": 2, "cols": -3, "data": []}})", big),
                    Catch::Contains("invalid Eigen matrix size 2 x -3"));
  // A fixed number of columns, and a bounded number of rows.
  Eigen::Matrix<double, Eigen::Dynamic, 2> two_cols;
  CHECK_THROWS_AS(load_json(R"({"m": {"rows": 1, "cols": 3, "data": [1, 2, 3]}})", two_cols), cereal::Exception);
  load_json(R"({"m": {"rows": 1, "cols": 2, "data": [1, 2]}})", two_cols);
  CHECK(two_cols(0, 1) == 2.0);
  Eigen::Matrix<double, Eigen::Dynamic, 1, 0, 3, 1> at_most_3;
  CHECK_THROWS_WITH(load_json(R"({"m": {"rows": 4, "cols": 1, "data": [1, 2, 3, 4]}})", at_most_3),
                    Catch::Contains("invalid Eigen matrix size 4 x 1"));
  load_json(R"({"m": {"rows": 3, "cols": 1, "data": [1, 2, 3]}})", at_most_3);
  CHECK(at_most_3.size() == 3);
  // An empty matrix with rows but no columns is fine.
  load_json(R"({"m": {"rows": 5, "cols": 0, "data": []}})", big);
  CHECK(big.rows() == 5);
  CHECK(big.cols() == 0);
}
