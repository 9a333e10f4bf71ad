#pragma once
// Inputs and brute-force references shared by the compressor tests: seeded Gaussian vectors, the
// length of a LEB128 varint, the exact top-k by a full stable sort, an encode/decode round trip, an
// encode with a given OpenMP thread count, and the rejection of truncated or extended payloads.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "fedpp/core/error.hpp"
#include "fedpp/core/payload.hpp"
#include "fedpp/core/rng.hpp"
#include "fedpp/core/types.hpp"
#include "support/checks.hpp"

namespace fedpp_test {

/// d standard-normal values S(Rng(seed).normal()), in draw order.
template <typename S>
std::vector<S> gaussian(std::size_t d, std::uint64_t seed) {
  fedpp::Rng rng(seed);
  std::vector<S> v(d);
  for (auto& x : v) x = static_cast<S>(rng.normal());
  return v;
}

/// Bytes of the LEB128 varint of v (7 bits a byte).
inline std::size_t varint_len(std::uint64_t v) {
  std::size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

/// All indices of x by |x_i| descending, ties in increasing index order (a stable sort).
template <typename S>
std::vector<fedpp::Index> magnitude_order(const std::vector<S>& x) {
  std::vector<fedpp::Index> order(x.size());
  std::iota(order.begin(), order.end(), fedpp::Index{0});
  std::stable_sort(order.begin(), order.end(), [&](fedpp::Index a, fedpp::Index b) {
    return std::abs(x[static_cast<std::size_t>(a)]) > std::abs(x[static_cast<std::size_t>(b)]);
  });
  return order;
}

/// The first min(k, size) entries of `order`, in increasing order.
inline std::vector<fedpp::Index> first_k_sorted(const std::vector<fedpp::Index>& order, std::size_t k) {
  std::vector<fedpp::Index> r(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(std::min(k, order.size())));
  std::sort(r.begin(), r.end());
  return r;
}

/// Indices of the k largest |x_i| (ties to the lowest index), in increasing order.
template <typename S>
std::vector<fedpp::Index> brute_top_k(const std::vector<S>& x, std::size_t k) {
  return first_k_sorted(magnitude_order(x), k);
}

/// x encoded by c (fresh state, rng) and decoded into a vector pre-set to `fill`, a value decode must
/// overwrite; the payload goes to *keep when given.
template <typename C, typename S>
std::vector<S> round_trip(const C& c, const std::vector<S>& x, fedpp::Rng& rng, fedpp::Payload* keep = nullptr,
                          std::type_identity_t<S> fill = S(123)) {
  auto st = c.template make_state<S>(static_cast<fedpp::Index>(x.size()));
  fedpp::Payload p = c.encode(std::span<const S>(x), st, rng);
  std::vector<S> out(x.size(), fill);
  c.decode(p, std::span<S>(out));
  if (keep) *keep = std::move(p);
  return out;
}

/// c.encode(x, st, rng) run with `threads` OpenMP threads (the previous count is restored after).
template <typename C, typename S, typename State>
fedpp::Payload encode_on_threads(const C& c, const std::vector<S>& x, State& st, fedpp::Rng& rng, int threads) {
  ThreadGuard guard;
  fedpp::set_max_threads(threads);
  return c.encode(std::span<const S>(x), st, rng);
}

/// CHECKs that decode(b) throws DecodeError for every proper prefix b of `bytes` and for `bytes` plus a
/// zero byte.
template <typename Decode>
void check_rejects_cut_and_extended(const Decode& decode, const std::vector<std::uint8_t>& bytes) {
  for (std::size_t len = 0; len < bytes.size(); ++len)
    CHECK_THROWS_AS(decode(std::vector<std::uint8_t>(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(len))),
                    fedpp::DecodeError);
  auto longer = bytes;
  longer.push_back(0);
  CHECK_THROWS_AS(decode(longer), fedpp::DecodeError);
}

}  // namespace fedpp_test
