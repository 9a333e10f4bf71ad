#pragma once
// IDX files for the data loader tests: the bytes of an unsigned-byte IDX array, and writing bytes
// to a plain or a gzip file (checked with REQUIRE).
#include <catch2/catch.hpp>
#include <zlib.h>

#include <cstdint>
#include <fstream>
#include <ios>
#include <string>
#include <vector>

namespace fedpp_test {

/// The bytes of an IDX file: magic 00 00 `type` ndim, big-endian sizes, then `data`.
inline std::vector<std::uint8_t> idx_bytes(const std::vector<std::uint32_t>& dims,
                                           const std::vector<std::uint8_t>& data, std::uint8_t type = 0x08) {
  std::vector<std::uint8_t> b = {0, 0, type, static_cast<std::uint8_t>(dims.size())};
  for (std::uint32_t d : dims)
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<std::uint8_t>(d >> s));
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

/// Writes `bytes` to the file `path` as they are.
inline void write_plain(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

/// Writes `bytes` gzip-compressed to the file `path`.
inline void write_gzip(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  if (!bytes.empty())
    REQUIRE(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) == static_cast<int>(bytes.size()));
  REQUIRE(gzclose(f) == Z_OK);
}

}  // namespace fedpp_test
