#pragma once
/// @file rng.hpp
/// Seeded random streams. Every random draw in fedpp comes from a stream derived from
/// (seed, round, client, purpose), so results do not depend on thread count or scheduling.

#include <cmath>
#include <cstdint>
#include <limits>
#include <numbers>

namespace fedpp {

/// What a random stream is used for; part of the stream key so uses never share draws.
enum class Purpose : std::uint64_t {
  model_init = 1,     ///< initial global model
  sampling = 2,       ///< choosing the clients of a round
  partition = 3,      ///< splitting a data set over clients
  shuffle = 4,        ///< local mini-batch order
  compression = 5,    ///< stochastic compressors (random-k, QSGD)
  attack = 6,         ///< Byzantine behaviour
  synthetic = 7,      ///< synthetic data generators
  aggregation = 8,    ///< randomised aggregators (bucketing, power iterations)
  fault_injection = 9,  ///< simulated transport faults (FaultInjector)
  user = 1000         ///< first value free for user code
};

namespace detail {
__extension__ typedef unsigned __int128 uint128;
/// SplitMix64 finaliser: a bijective 64-bit mix (Steele, Lea, Flood 2014).
constexpr std::uint64_t mix64(std::uint64_t z) noexcept {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
constexpr std::uint64_t rotl(std::uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }
}  // namespace detail

/// Pseudo-random generator (xoshiro256++, Blackman & Vigna 2018); a UniformRandomBitGenerator.
class Rng {
 public:
  using result_type = std::uint64_t;

  /// Seeds the four state words from one 64-bit key via SplitMix64.
  explicit constexpr Rng(std::uint64_t key = 0) noexcept {
    std::uint64_t z = key;
    for (auto& w : s_) {
      z += 0x9e3779b97f4a7c15ULL;
      w = detail::mix64(z);
    }
  }

  /// Smallest value returned.
  static constexpr result_type min() noexcept { return 0; }
  /// Largest value returned.
  static constexpr result_type max() noexcept { return std::numeric_limits<result_type>::max(); }

  /// Next 64 random bits.
  constexpr result_type operator()() noexcept {
    const std::uint64_t out = detail::rotl(s_[0] + s_[3], 23) + s_[0];
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = detail::rotl(s_[3], 45);
    return out;
  }

  /// Uniform double in [0, 1) with 53 random bits.
  double uniform() noexcept { return static_cast<double>((*this)() >> 11) * 0x1.0p-53; }

  /// Uniform float in [0, 1) with 24 random bits.
  float uniform_float() noexcept { return static_cast<float>((*this)() >> 40) * 0x1.0p-24f; }

  /// Uniform integer in [0, n) without modulo bias (Lemire 2019); n must be > 0.
  std::uint64_t uniform_index(std::uint64_t n) noexcept {
    detail::uint128 m = static_cast<detail::uint128>((*this)()) * n;
    auto low = static_cast<std::uint64_t>(m);
    if (low < n) {
      const std::uint64_t threshold = (0 - n) % n;
      while (low < threshold) {
        m = static_cast<detail::uint128>((*this)()) * n;
        low = static_cast<std::uint64_t>(m);
      }
    }
    return static_cast<std::uint64_t>(m >> 64);
  }

  /// Standard normal draw (Box-Muller, one draw per call, no hidden cache).
  double normal() noexcept {
    const double u1 = 1.0 - uniform();  // (0, 1]
    const double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
  }

 private:
  std::uint64_t s_[4]{};
};

/// The stream for (seed, round, client, purpose); distinct keys give independent streams.
constexpr Rng make_rng(std::uint64_t seed, std::uint64_t round, std::uint64_t client, Purpose purpose) noexcept {
  std::uint64_t h = detail::mix64(seed);
  h = detail::mix64(h ^ detail::mix64(round + 0x51ed270b27b1f2cbULL));
  h = detail::mix64(h ^ detail::mix64(client + 0x2545f4914f6cdd1dULL));
  h = detail::mix64(h ^ detail::mix64(static_cast<std::uint64_t>(purpose) + 0x632be59bd9b4e019ULL));
  return Rng(h);
}

/// Client index used in stream keys for draws that belong to the server, not a client.
inline constexpr std::uint64_t server_stream = ~std::uint64_t{0};

}  // namespace fedpp
