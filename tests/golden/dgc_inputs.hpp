#pragma once
// Inputs of the DGC golden cases, shared by the standalone generator tests/golden/dgc_golden.cpp and
// by tests/unit/compressors/dgc_test.cpp. Plain C++: no fedpp header may be included here.
// Every value is a stateless splitmix64 hash of (seed, i) turned into a float exactly (24 bits).
#include <cstdint>
#include <vector>

namespace dgc_golden {

/// The splitmix64 finaliser (Steele, Lea, Flood, "Fast splittable pseudorandom number generators", 2014).
inline std::uint64_t mix(std::uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/// A float in [0, 1) with 24 random bits (a multiple of 2^-24, so exact).
inline float unit(std::uint64_t seed, std::uint64_t i) {
  return static_cast<float>(mix(mix(seed) ^ i) >> 40) * 0x1.0p-24f;
}

/// How the input vector of a case is built.
enum Kind : int {
  uniform_signed = 0,  ///< v_i = 2 unit - 1, in [-1, 1)
  spiky = 1,           ///< v_i = unit, and 2.0 at the first top_k_samples sampled positions
  ties = 2,            ///< every v_i = -1.5
  tiny_ties = 3,       ///< v_i = unit / 4, with 1.0 at 5 and 40, -1.0 at 17 and 3.0 at 100 (n > 100)
};

/// The input vector of a case (start, stride, top_k_samples: the sampling plan and start, for `spiky`).
inline std::vector<float> make_input(int kind, std::uint64_t seed, std::uint64_t n, std::uint64_t start,
                                     std::uint64_t stride, std::uint64_t top_k_samples) {
  std::vector<float> v(n);
  for (std::uint64_t i = 0; i < n; ++i) {
    const float u = unit(seed, i);
    switch (kind) {
      case uniform_signed: v[i] = 2.0f * u - 1.0f; break;
      case spiky: v[i] = u; break;
      case ties: v[i] = -1.5f; break;
      default: v[i] = u / 4.0f; break;
    }
  }
  if (kind == spiky)
    for (std::uint64_t j = 0; j < top_k_samples && start + j * stride < n; ++j) v[start + j * stride] = 2.0f;
  if (kind == tiny_ties) {
    v[5] = 1.0f;
    v[17] = -1.0f;
    v[40] = 1.0f;
    v[100] = 3.0f;
  }
  return v;
}

}  // namespace dgc_golden
