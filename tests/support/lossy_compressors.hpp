#pragma once
// Tiny test-local lossy compressors (independent of the library's TopK/Qsgd) for error-feedback,
// runtime and serialisation tests: an exact top-k and a stochastic grid quantiser.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <span>
#include <vector>

#include "fedpp/core/concepts.hpp"
#include "fedpp/core/payload.hpp"

namespace fedpp_test {

/// Keeps the k largest magnitudes (ties: lowest index); payload = header + k x (u32 index, S value).
/// Its state counts the encodes (so that a checkpoint has something non-empty to carry).
struct TestTopK {
  fedpp::Index k = 1;

  struct State {
    std::uint64_t encodes = 0;
    template <class Archive>
    void serialize(Archive& ar) {
      ar(encodes);
    }
  };

  template <typename S>
  State make_state(fedpp::Index) const {
    return {};
  }

  /// The kept indices, ascending.
  template <typename S>
  std::vector<fedpp::Index> select(std::span<const S> x) const {
    std::vector<fedpp::Index> idx(x.size());
    std::iota(idx.begin(), idx.end(), fedpp::Index{0});
    const auto kk = std::min<std::size_t>(static_cast<std::size_t>(k), x.size());
    auto larger = [&](fedpp::Index a, fedpp::Index b) {
      const auto fa = std::abs(x[static_cast<std::size_t>(a)]), fb = std::abs(x[static_cast<std::size_t>(b)]);
      return fa > fb || (fa == fb && a < b);
    };
    std::nth_element(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(kk), idx.end(), larger);
    idx.resize(kk);
    std::sort(idx.begin(), idx.end());
    return idx;
  }

  template <typename S>
  fedpp::Payload encode(std::span<const S> x, State& st, fedpp::Rng&) const {
    if (!fedpp::all_finite(x)) fedpp::fail("TestTopK", "update must be finite", "nan");
    ++st.encodes;
    const auto idx = select(x);
    fedpp::Payload p;
    fedpp::ByteWriter w(p.buffer());
    fedpp::PayloadHeader{fedpp::Codec::sparse, 200, x.size(), idx.size()}.write(w);
    for (auto i : idx) {
      w.put(static_cast<std::uint32_t>(i));
      w.put(x[static_cast<std::size_t>(i)]);
    }
    return p;
  }

  template <typename S>
  void decode(const fedpp::Payload& p, std::span<S> out) const {
    fedpp::ByteReader r(p.data(), "TestTopK");
    const auto h = fedpp::PayloadHeader::read(r);
    if (h.codec != fedpp::Codec::sparse || h.version != 200 || h.dim != out.size() || h.count > h.dim)
      fedpp::fail<fedpp::DecodeError>("TestTopK", "bad header", h.dim);
    std::fill(out.begin(), out.end(), S(0));
    for (std::uint64_t j = 0; j < h.count; ++j) {
      const auto i = r.get<std::uint32_t>();
      if (i >= out.size()) fedpp::fail<fedpp::DecodeError>("TestTopK", "index out of range", i);
      out[i] = r.get<S>();
    }
    r.expect_end();
  }
};
static_assert(fedpp::Compressor<TestTopK, float> && fedpp::Compressor<TestTopK, double>);

/// Stochastic rounding to the grid h * Z (unbiased); payload = header + one i64 per coordinate.
struct TestGrid {
  double h = 0.25;

  struct State {};

  template <typename S>
  State make_state(fedpp::Index) const {
    return {};
  }

  template <typename S>
  fedpp::Payload encode(std::span<const S> x, State&, fedpp::Rng& rng) const {
    if (!fedpp::all_finite(x)) fedpp::fail("TestGrid", "update must be finite", "nan");
    fedpp::Payload p;
    fedpp::ByteWriter w(p.buffer());
    fedpp::PayloadHeader{fedpp::Codec::qsgd, 200, x.size(), x.size()}.write(w);
    for (S v : x) {
      const double t = static_cast<double>(v) / h;
      const double lo = std::floor(t);
      w.put(static_cast<std::int64_t>(lo + (rng.uniform() < t - lo ? 1.0 : 0.0)));
    }
    return p;
  }

  template <typename S>
  void decode(const fedpp::Payload& p, std::span<S> out) const {
    fedpp::ByteReader r(p.data(), "TestGrid");
    const auto h0 = fedpp::PayloadHeader::read(r);
    if (h0.codec != fedpp::Codec::qsgd || h0.version != 200 || h0.dim != out.size() || h0.count != h0.dim)
      fedpp::fail<fedpp::DecodeError>("TestGrid", "bad header", h0.dim);
    for (auto& v : out) v = static_cast<S>(static_cast<double>(r.get<std::int64_t>()) * h);
    r.expect_end();
  }
};
static_assert(fedpp::Compressor<TestGrid, float> && fedpp::Compressor<TestGrid, double>);

}  // namespace fedpp_test
