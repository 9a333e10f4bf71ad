// Qsgd: golden codes and payloads from the standalone generator tests/golden/qsgd_golden.cpp (the
// documented counter-based RNG re-implemented without fedpp, indices past 2^32 included), a
// chi-square test of the unit draw, the two-neighbouring-levels rule on many configurations,
// unbiasedness per bucket, the paper's variance, sparsity and code-length bounds, exact sizes,
// determinism and strict validation of malformed payloads.
#include <catch2/catch.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "fedpp/compressors/qsgd.hpp"
#include "support/compressor_common.hpp"

using namespace fedpp;
using namespace fedpp_test;

namespace {

struct QsgdGoldenBits {
  std::uint64_t index;
  std::uint32_t bits;
};
#include "golden/qsgd_golden.inc"

// Length of the Elias omega code of k >= 1, from its recursive definition.
std::uint64_t omega_len(std::uint64_t k) {
  std::uint64_t n = 1;  // the final 0
  while (k > 1) {
    const auto w = static_cast<std::uint64_t>(std::bit_width(k));
    n += w;
    k = w - 1;
  }
  return n;
}

// Reference norms (naive order, rounded up to float32) and, per coordinate, r = |x_i| s / norm: the
// documented rule sends level floor(r) or floor(r) + 1 (never anything else), whatever the draw.
template <typename S>
struct Reference {
  std::vector<float> norms;
  std::vector<S> r;
};

template <typename S>
Reference<S> reference(const std::vector<S>& x, std::uint64_t b, std::uint32_t s, QsgdNorm kind) {
  Reference<S> ref;
  const std::uint64_t d = x.size();
  for (std::uint64_t lo = 0; lo < d; lo += b) {
    double acc = 0;
    for (std::uint64_t i = lo; i < std::min(d, lo + b); ++i) {
      const double a = std::abs(static_cast<double>(x[i]));
      acc = kind == QsgdNorm::l2 ? acc + a * a : std::max(acc, a);
    }
    if (kind == QsgdNorm::l2) acc = std::sqrt(acc);
    float f = static_cast<float>(acc);
    if (static_cast<double>(f) < acc) f = std::nextafter(f, 1e30f);
    ref.norms.push_back(f);
  }
  for (std::uint64_t i = 0; i < d; ++i) {
    const S norm = static_cast<S>(ref.norms[i / b]);
    const S smax = static_cast<S>(s);
    S r = norm > 0 ? std::abs(x[i]) * (smax / norm) : S(0);
    ref.r.push_back(std::min(r, smax));
  }
  return ref;
}

std::size_t prefix_bytes(std::uint64_t d, std::uint64_t count, std::uint32_t s, std::uint64_t b, std::uint64_t nb) {
  return 2 + 1 + varint_len(d) + varint_len(count) + 1 + 1 + varint_len(s) + varint_len(b) + 4 * nb;
}

}  // namespace

TEMPLATE_TEST_CASE("Qsgd decodes to one of the two neighbouring levels, with exact norms and sizes",
                   "[compressors][Qsgd]", float, double) {
  using S = TestType;
  struct Cfg {
    std::size_t d;
    std::uint32_t s;
    Index bucket;
    QsgdCoding coding;
    QsgdNorm norm;
  };
  const std::vector<Cfg> cfgs{
      {1000, 8, 512, QsgdCoding::packed, QsgdNorm::l2},     {1000, 8, 512, QsgdCoding::elias_omega, QsgdNorm::l2},
      {5000, 1, 0, QsgdCoding::packed, QsgdNorm::l2},       {5000, 255, 0, QsgdCoding::packed, QsgdNorm::max},
      {9001, 3, 7, QsgdCoding::packed, QsgdNorm::l2},       {9001, 70, 4096, QsgdCoding::elias, QsgdNorm::max},
      {130, 1 << 24, 1, QsgdCoding::packed, QsgdNorm::l2},  {77, 16, 1000, QsgdCoding::elias_omega, QsgdNorm::l2},
      {8192, 15, 64, QsgdCoding::packed, QsgdNorm::l2}};
  std::uint64_t seed = 10;
  for (const auto& c : cfgs) {
    CAPTURE(c.d, c.s, c.bucket, static_cast<int>(c.coding), static_cast<int>(c.norm));
    const Qsgd q(c.s, c.bucket, c.coding, c.norm);
    auto x = gaussian<S>(c.d, ++seed);
    x[3] = 0;  // exact zeros quantise to level 0 without a sign
    x[4] = -0.0;
    Rng rng(seed * 7);
    Rng copy = rng;
    Payload p;
    const auto out = round_trip(q, x, rng, &p);
    const std::uint64_t b = q.effective_bucket(c.d);
    const auto ref = reference(x, b, c.s, c.norm);
    const S ss = static_cast<S>(c.s);
    std::size_t bad = 0, up = 0, fractional = 0;
    std::uint64_t nnz = 0, elias_bits = 0, prev = 0;
    for (std::size_t i = 0; i < c.d; ++i) {
      const S norm = static_cast<S>(ref.norms[i / b]);
      const auto l = static_cast<std::uint32_t>(std::floor(ref.r[i]));
      const bool neg = x[i] < 0;
      auto value = [&](std::uint32_t lev) {
        const S q = norm * (static_cast<S>(lev) / ss);
        return (neg && lev > 0) ? -q : q;
      };
      std::uint32_t lev;
      if (out[i] == value(l) && std::signbit(out[i]) == std::signbit(value(l))) {
        lev = l;
      } else if (l < c.s && out[i] == value(l + 1) && std::signbit(out[i]) == std::signbit(value(l + 1))) {
        lev = l + 1;
        ++up;
      } else {
        ++bad;
        continue;
      }
      if (ref.r[i] == static_cast<S>(l) && lev != l) ++bad;  // no fractional part: never rounded up
      fractional += ref.r[i] != static_cast<S>(l);
      if (lev > 0) {
        ++nnz;
        elias_bits += omega_len(i + 1 - prev) + 1 + omega_len(lev);
        prev = i + 1;
      }
    }
    CHECK(bad == 0);
    if (fractional > 100) {  // both neighbours occur (a draw that never rounds up, or always does, fails)
      CHECK(up > 0);
      CHECK(up < fractional);
    }
    CHECK(out[3] == 0);
    CHECK(!std::signbit(out[4]));
    // Exactly one 64-bit draw was taken from the Rng.
    copy();
    CHECK(rng() == copy());
    const std::uint64_t nb = ref.norms.size();
    if (c.coding == QsgdCoding::packed) {
      const unsigned w = 1 + static_cast<unsigned>(std::bit_width(c.s));
      CHECK(p.header().count == c.d);
      CHECK(p.bytes() == prefix_bytes(c.d, c.d, c.s, b, nb) + (c.d * w + 7) / 8);
    } else {
      CHECK(p.header().count == nnz);
      CHECK(p.bytes() == prefix_bytes(c.d, nnz, c.s, b, nb) + (elias_bits + 7) / 8);
    }
    // The bucket norms on the wire are the reference's.
    std::vector<float> wire(nb);
    const std::size_t at = prefix_bytes(c.d, p.header().count, c.s, b, 0);
    std::memcpy(wire.data(), p.data().data() + at, 4 * nb);
    CHECK(wire == ref.norms);
  }
}

TEMPLATE_TEST_CASE("Qsgd is unbiased: the mean of seeded draws converges to v within a CLT bound, per bucket",
                   "[compressors][Qsgd]", float, double) {
  using S = TestType;
  const std::size_t d = 64;
  const int draws = 10000;
  ThreadGuard guard;
  set_max_threads(1);  // tiny encodes: a parallel region per encode would cost more than the work
  auto v = gaussian<S>(d, 99);
  for (std::size_t i = 40; i < d; ++i) v[i] *= S(8);  // buckets of very different norms
  for (Index bucket : {Qsgd::whole_vector, Index{24}}) {  // one bucket; or 24, 24, 16
    for (QsgdNorm kind : {QsgdNorm::l2, QsgdNorm::max}) {
      for (std::uint32_t s : {1u, 2u, 4u, 16u}) {
        CAPTURE(bucket, s, static_cast<int>(kind));
        const Qsgd q(s, bucket, QsgdCoding::packed, kind);
        std::vector<double> sum(d, 0.0);
        for (int t = 0; t < draws; ++t) {
          Rng rng = make_rng(5, static_cast<std::uint64_t>(t), 0, Purpose::compression);
          const auto out = round_trip(q, v, rng);
          for (std::size_t i = 0; i < d; ++i) sum[i] += static_cast<double>(out[i]);
        }
        const std::uint64_t b = q.effective_bucket(d);
        const auto ref = reference(v, b, s, kind);
        int violations = 0;
        for (std::size_t i = 0; i < d; ++i) {
          const double norm = ref.norms[i / b];
          // One draw is norm/s * (l or l + 1): variance (norm/s)^2 p (1 - p). 5 standard errors.
          const double r = std::min(std::abs(static_cast<double>(v[i])) * s / norm, double(s));
          const double p = r - std::floor(r);
          const double se = norm / s * std::sqrt(p * (1 - p) / draws);
          const double tol = 5 * se + 1e-5 * norm / s;
          violations += std::abs(sum[i] / draws - static_cast<double>(v[i])) <= tol ? 0 : 1;
        }
        CHECK(violations == 0);
      }
    }
  }
}

TEST_CASE("Qsgd variance and sparsity stay within the paper's bounds", "[compressors][Qsgd]") {
  const int draws = 400;
  for (std::size_t d : {100u, 10000u}) {
    const auto v = gaussian<double>(d, d);
    double nv2 = 0;
    for (double x : v) nv2 += x * x;
    for (std::uint32_t s : {1u, 2u, 4u, 16u}) {
      CAPTURE(d, s);
      const Qsgd q(s, Qsgd::whole_vector);
      double err = 0, nnz = 0;
      for (int t = 0; t < draws; ++t) {
        Rng rng(1000 * s + static_cast<std::uint64_t>(t));
        const auto out = round_trip(q, v, rng);
        for (std::size_t i = 0; i < d; ++i) {
          err += (out[i] - v[i]) * (out[i] - v[i]);
          nnz += out[i] != 0 ? 1 : 0;
        }
      }
      err /= draws;
      nnz /= draws;
      const double dd = static_cast<double>(d);
      // Paper, Lemma 3.1: E||Q(v) - v||^2 <= min(d/s^2, sqrt(d)/s) ||v||^2 and E||Q(v)||_0 <= s(s + sqrt(d)).
      CHECK(err <= std::min(dd / (s * s), std::sqrt(dd) / s) * nv2);
      CHECK(nnz <= s * (s + std::sqrt(dd)));
      // And both agree with their exact expectations (so the checks above test the quantiser, not noise).
      const double norm = reference(v, d, s, QsgdNorm::l2).norms[0];
      double exp_err = 0, exp_nnz = 0;
      for (double x : v) {
        const double r = std::abs(x) * s / norm, p = r - std::floor(r);
        exp_err += norm * norm / (s * s) * p * (1 - p);
        exp_nnz += std::floor(r) >= 1 ? 1 : p;
      }
      CHECK(err == Approx(exp_err).epsilon(0.1));
      CHECK(nnz == Approx(exp_nnz).epsilon(0.1).margin(0.5));
    }
  }
}

TEST_CASE("Qsgd Elias omega coding with s = sqrt(d) takes at most 2.8 d + 32 bits on average",
          "[compressors][Qsgd]") {
  for (std::size_t d : {1024u, 4096u}) {
    const auto s = static_cast<std::uint32_t>(std::sqrt(static_cast<double>(d)));
    const Qsgd q(s, Qsgd::whole_vector, QsgdCoding::elias_omega);
    const auto v = gaussian<float>(d, 3 + d);
    double bits = 0;
    const int draws = 50;
    for (int t = 0; t < draws; ++t) {
      Rng rng(static_cast<std::uint64_t>(t));
      Payload p;
      round_trip(q, v, rng, &p);
      const std::size_t prefix = prefix_bytes(d, p.header().count, s, d, 1);  // includes the 4-byte norm
      bits += 8.0 * static_cast<double>(p.bytes() - prefix) + 32;            // Code_s: norm + codes
    }
    CAPTURE(d, bits / draws);
    CHECK(bits / draws <= 2.8 * static_cast<double>(d) + 32);
  }
}

TEMPLATE_TEST_CASE("Qsgd maps zero to zero and handles empty, tiny and huge inputs", "[compressors][Qsgd]", float,
                   double) {
  using S = TestType;
  for (QsgdCoding coding : {QsgdCoding::packed, QsgdCoding::elias_omega}) {
    const Qsgd q(8, 16, coding);
    Rng rng(1);
    const std::vector<S> zero(40, S(0));
    Payload p;
    const auto out = round_trip(q, zero, rng, &p);
    for (S v : out) CHECK((v == 0 && !std::signbit(v)));
    if (coding == QsgdCoding::elias_omega) CHECK(p.header().count == 0);
    const std::vector<S> empty;
    CHECK(round_trip(q, empty, rng).empty());
    // Tiny values: s / norm overflows float, the divide-first path keeps the result in [-norm, norm].
    std::vector<S> tiny(40, S(0));
    tiny[1] = std::numeric_limits<float>::denorm_min();
    tiny[2] = -3 * std::numeric_limits<float>::denorm_min();
    const auto t = round_trip(q, tiny, rng);
    for (std::size_t i = 0; i < tiny.size(); ++i) {
      CHECK(std::isfinite(t[i]));
      CHECK(std::abs(t[i]) <= S(4) * static_cast<S>(std::numeric_limits<float>::denorm_min()));
    }
  }
  // Norm beyond float32 (double input) and non-finite input are rejected at encode.
  const Qsgd q;
  auto st = q.make_state<S>(3);
  Rng rng(1);
  std::vector<S> bad{S(1), std::numeric_limits<S>::quiet_NaN(), S(2)};
  CHECK_THROWS_WITH(q.encode(std::span<const S>(bad), st, rng), Catch::Contains("fedpp::Qsgd") && Catch::Contains("finite"));
  bad[1] = std::numeric_limits<S>::infinity();
  CHECK_THROWS_AS(q.encode(std::span<const S>(bad), st, rng), InvalidArgument);
  const Qsgd qmax(8, 512, QsgdCoding::packed, QsgdNorm::max);
  CHECK_THROWS_AS(qmax.encode(std::span<const S>(bad), st, rng), InvalidArgument);
  if constexpr (std::is_same_v<S, double>) {
    const std::vector<double> huge{1e300, 1.0};
    CHECK_THROWS_WITH(q.encode(std::span<const double>(huge), st, rng), Catch::Contains("float32"));
  }
}

TEST_CASE("Qsgd gives the same bits on 1 and 2 threads and from every kernel", "[compressors][Qsgd]") {
  const auto x = gaussian<float>(100003, 42);
  for (QsgdCoding coding : {QsgdCoding::packed, QsgdCoding::elias_omega}) {
    for (Index bucket : {Index{0}, Index{512}, Index{5000}}) {
      const Qsgd q(8, bucket, coding);
      auto st = q.make_state<float>(100003);
      Rng r1(7), r2(7);
      const Payload p1 = encode_on_threads(q, x, st, r1, 1);
      const Payload p2 = encode_on_threads(q, x, st, r2, 2);
      CHECK(std::equal(p1.data().begin(), p1.data().end(), p2.data().begin(), p2.data().end()));
    }
  }
  // Every instruction-set kernel this CPU runs (base, AVX2, AVX-512) gives the base kernel's codes and sums.
  for (int isa = 1; isa <= detail::qsgd_isa(); ++isa) {
    CAPTURE(isa);
    for (float scale : {0.37f, 8.0f, 1e-3f}) {
      std::vector<std::uint32_t> a(4095), b(4095);
      detail::qsgd_codes_kernel<float>(0)(x.data(), 4095, scale, 8.0f, 0x1234567890abcdefULL, 4096, a.data());
      detail::qsgd_codes_kernel<float>(isa)(x.data(), 4095, scale, 8.0f, 0x1234567890abcdefULL, 4096, b.data());
      CHECK(a == b);
      std::vector<double> xd(x.begin(), x.begin() + 4095);
      detail::qsgd_codes_kernel<double>(0)(xd.data(), 4095, scale, 8.0, 99, (1ULL << 32) + 4096, a.data());
      detail::qsgd_codes_kernel<double>(isa)(xd.data(), 4095, scale, 8.0, 99, (1ULL << 32) + 4096, b.data());
      CHECK(a == b);
    }
    CHECK(detail::sum_squares(x.data(), 100003, 0) == detail::sum_squares(x.data(), 100003, isa));
    CHECK(detail::sum_squares(x.data() + 1, 8191, 0) == detail::sum_squares(x.data() + 1, 8191, isa));
  }
  if (detail::qsgd_isa() < 2)
    WARN("this CPU lacks " << (detail::qsgd_isa() < 1 ? "AVX2 and AVX-512" : "AVX-512")
                           << ": those QSGD kernels were not compared with the base kernel");
}

// ---- golden values (tests/golden/qsgd_golden.cpp) ---------------------------------------------

TEST_CASE("Qsgd counter-based bits equal the documented hash, including indices at and past 2^32",
          "[compressors][Qsgd]") {
  for (const QsgdGoldenBits& g : qsgd_golden_bits) {
    CAPTURE(g.index);
    CHECK(detail::qsgd_random_bits(qsgd_golden_key, g.index) == g.bits);
  }
}

TEST_CASE("Qsgd quantisation kernels give the golden codes (every kernel this CPU runs)", "[compressors][Qsgd]") {
  const std::uint32_t* f32[2] = {qsgd_golden_codes_f32_0, qsgd_golden_codes_f32_1};
  const std::uint32_t* f64[2] = {qsgd_golden_codes_f64_0, qsgd_golden_codes_f64_1};
  std::vector<float> xf(qsgd_golden_kernel_x, qsgd_golden_kernel_x + 16);
  const std::vector<double> xd(qsgd_golden_kernel_x, qsgd_golden_kernel_x + 16);
  for (int isa = 0; isa <= detail::qsgd_isa(); ++isa)
    for (int f = 0; f < 2; ++f) {
      CAPTURE(isa, f);
      std::vector<std::uint32_t> got(16);
      detail::qsgd_codes_kernel<float>(isa)(xf.data(), 16, 8.0f / 3.0f, 8.0f, qsgd_golden_key, qsgd_golden_firsts[f],
                                            got.data());
      CHECK(got == std::vector<std::uint32_t>(f32[f], f32[f] + 16));
      detail::qsgd_codes_kernel<double>(isa)(xd.data(), 16, 8.0 / 3.0, 8.0, qsgd_golden_key, qsgd_golden_firsts[f],
                                             got.data());
      CHECK(got == std::vector<std::uint32_t>(f64[f], f64[f] + 16));
    }
  // The high half of the counter matters: the codes at 2^32 + 4096 are not those at 4096.
  CHECK(std::vector<std::uint32_t>(qsgd_golden_codes_f32_0, qsgd_golden_codes_f32_0 + 16) !=
        std::vector<std::uint32_t>(qsgd_golden_codes_f32_1, qsgd_golden_codes_f32_1 + 16));
}

namespace {
template <typename S, std::size_t N, std::size_t M>
void check_qsgd_golden_payload(const Qsgd& q, std::uint64_t seed, std::uint64_t key, const std::uint8_t (&bytes)[N],
                               const S (&decoded)[M]) {
  const std::vector<S> x(qsgd_golden_payload_x, qsgd_golden_payload_x + M);
  Rng rng(seed), peek = rng;
  REQUIRE(peek() == key);  // the one datum the golden program takes from fedpp
  auto st = q.make_state<S>(static_cast<Index>(M));
  const Payload p = q.encode(std::span<const S>(x), st, rng);
  CHECK(bytes_of(p) == std::vector<std::uint8_t>(bytes, bytes + N));
  std::vector<S> out(M, S(9));
  q.decode(Payload(std::vector<std::uint8_t>(bytes, bytes + N)), std::span<S>(out));
  for (std::size_t i = 0; i < M; ++i) {
    CAPTURE(i);
    CHECK(out[i] == decoded[i]);
    CHECK(std::signbit(out[i]) == std::signbit(decoded[i]));
  }
}
}  // namespace

TEST_CASE("Qsgd payloads equal the golden bytes and decode to the golden values", "[compressors][Qsgd]") {
  // d = 11 in buckets of 4, 4, 3; s = 4: 4-bit fields, 44 bits and 4 zero padding bits.
  check_qsgd_golden_payload<float>(Qsgd(4, 4), 2024, qsgd_golden_key_2024, qsgd_golden_packed_f32_bytes,
                                   qsgd_golden_packed_f32_decoded);
  check_qsgd_golden_payload<double>(Qsgd(4, 4), 2024, qsgd_golden_key_2024, qsgd_golden_packed_f64_bytes,
                                    qsgd_golden_packed_f64_decoded);
  check_qsgd_golden_payload<float>(Qsgd(4, 4, QsgdCoding::elias_omega), 77, qsgd_golden_key_77,
                                   qsgd_golden_elias_f32_bytes, qsgd_golden_elias_f32_decoded);
  check_qsgd_golden_payload<double>(Qsgd(3, Qsgd::whole_vector), 77, qsgd_golden_key_77, qsgd_golden_whole_f64_bytes,
                                    qsgd_golden_whole_f64_decoded);
}

TEMPLATE_TEST_CASE("Qsgd's unit draw is uniform on the unit interval: chi-square over 64 bins, below and above 2^32",
                   "[compressors][Qsgd]", float, double) {
  using S = TestType;
  constexpr int bins = 64;
  constexpr std::uint64_t n = 1 << 16;
  for (std::uint64_t base : {std::uint64_t{0}, (std::uint64_t{1} << 32) - n / 2, std::uint64_t{5} << 40}) {
    CAPTURE(base);
    std::vector<double> count(bins, 0.0);
    S lo = 1, hi = 0;
    for (std::uint64_t i = base; i < base + n; ++i) {
      const S u = detail::qsgd_unit<S>(detail::qsgd_random_bits(0x9e3779b97f4a7c15ULL, i));
      lo = std::min(lo, u);
      hi = std::max(hi, u);
      REQUIRE(u >= S(0));
      REQUIRE(u < S(1));
      count[static_cast<std::size_t>(static_cast<double>(u) * bins)] += 1;
    }
    double chi2 = 0;
    const double expect = static_cast<double>(n) / bins;
    for (double c : count) chi2 += (c - expect) * (c - expect) / expect;
    // 63 degrees of freedom: P(chi2 > 156) is about 1e-9 (Wilson-Hilferty), mean 63.
    CHECK(chi2 < 156.0);
    CHECK(lo < S(1.0 / 4096));  // the whole range is reached
    CHECK(hi > S(1 - 1.0 / 4096));
  }
  // The draw has the documented resolution: float uses the top 24 bits, double all 32.
  CHECK(detail::qsgd_unit<S>(0xffffffffu) == (std::is_same_v<S, float> ? S(1) - S(0x1.0p-24) : S(1) - S(0x1.0p-32)));
  CHECK(detail::qsgd_unit<S>(0x00000100u) == (std::is_same_v<S, float> ? S(0x1.0p-24) : S(0x1.0p-24)));
  CHECK(detail::qsgd_unit<S>(0x000000ffu) == (std::is_same_v<S, float> ? S(0) : S(255 * 0x1.0p-32)));
}

TEST_CASE("Qsgd validates its parameters", "[compressors][Qsgd]") {
  CHECK_THROWS_WITH(Qsgd(0), Catch::Contains("fedpp::Qsgd: levels must be in [1, 16777216], got 0"));
  CHECK_THROWS_AS(Qsgd((1u << 24) + 1), InvalidArgument);
  CHECK_THROWS_WITH(Qsgd(4, -1), Catch::Contains("bucket_size") && Catch::Contains("got -1"));
  CHECK_THROWS_AS(Qsgd(4, 8, static_cast<QsgdCoding>(2)), InvalidArgument);
  CHECK_THROWS_AS(Qsgd(4, 8, QsgdCoding::packed, static_cast<QsgdNorm>(5)), InvalidArgument);
  const Qsgd q(4, 100);
  CHECK(q.levels() == 4);
  CHECK(q.bucket_size() == 100);
  CHECK(q.effective_bucket(50) == 50);
  CHECK(q.effective_bucket(0) == 1);
  CHECK(q.effective_bucket(1000) == 100);
}

TEST_CASE("Qsgd rejects malformed payloads with DecodeError", "[compressors][Qsgd]") {
  const std::size_t d = 20;
  const auto x = gaussian<float>(d, 5);
  std::vector<float> out(d);
  for (QsgdCoding coding : {QsgdCoding::packed, QsgdCoding::elias_omega}) {
    CAPTURE(static_cast<int>(coding));
    const Qsgd q(5, 8, coding);  // 3 buckets (8, 8, 4); packed fields of 4 bits (levels up to 7 representable)
    auto st = q.make_state<float>(d);
    Rng rng(3);
    const Payload good = q.encode(std::span<const float>(x), st, rng);
    const std::vector<std::uint8_t> bytes(good.data().begin(), good.data().end());
    auto decode = [&](const std::vector<std::uint8_t>& b) { q.decode(Payload(b), std::span<float>(out)); };
    REQUIRE_NOTHROW(decode(bytes));
    check_rejects_cut_and_extended(decode, bytes);
    std::vector<float> wrong(d + 1);
    CHECK_THROWS_WITH(q.decode(good, std::span<float>(wrong)), Catch::Contains("fedpp::Qsgd::decode") &&
                                                                   Catch::Contains("dimension"));
    // Layout: u16 codec, u8 version, varint dim (1 byte), varint count (1 byte), u8 coding, u8 norm kind,
    // varint s, varint bucket, 3 float norms, body.
    const std::size_t coding_at = 5, kind_at = 6, s_at = 7, b_at = 8, norms_at = 9, body_at = 21;
    auto mutate = [&](std::size_t at, std::uint8_t v) {
      auto m = bytes;
      m[at] = v;
      return m;
    };
    CHECK_THROWS_AS(decode(mutate(0, 99)), DecodeError);          // codec
    CHECK_THROWS_AS(decode(mutate(2, 2)), DecodeError);           // version
    CHECK_THROWS_AS(decode(mutate(3, 21)), DecodeError);          // dimension
    CHECK_THROWS_AS(decode(mutate(coding_at, 2)), DecodeError);   // coding
    CHECK_THROWS_AS(decode(mutate(kind_at, 2)), DecodeError);     // norm kind
    CHECK_THROWS_AS(decode(mutate(s_at, 0)), DecodeError);        // zero levels
    CHECK_THROWS_AS(decode(mutate(b_at, 0)), DecodeError);        // zero bucket
    CHECK_THROWS_AS(decode(mutate(b_at, 21)), DecodeError);       // bucket > dim
    CHECK_THROWS_AS(decode(mutate(norms_at + 3, 0x80 | bytes[norms_at + 3])), DecodeError);  // negative norm
    {
      auto m = bytes;  // infinite norm
      m[norms_at] = m[norms_at + 1] = 0;
      m[norms_at + 2] = 0x80;
      m[norms_at + 3] = 0x7f;
      CHECK_THROWS_AS(decode(m), DecodeError);
    }
    {
      auto m = bytes;  // NaN norm
      m[norms_at + 4] = 0;
      m[norms_at + 5] = 0;
      m[norms_at + 6] = 0xc0;
      m[norms_at + 7] = 0x7f;
      CHECK_THROWS_WITH(decode(m), Catch::Contains("finite"));
    }
    if (coding == QsgdCoding::packed) {
      CHECK_THROWS_AS(decode(mutate(4, 19)), DecodeError);                 // count != dim
      CHECK_THROWS_WITH(decode(mutate(body_at, 0x0c)), Catch::Contains("level above s"));  // field 0: level 6
      CHECK_THROWS_WITH(decode(mutate(body_at, 0x01)), Catch::Contains("signed zero"));    // field 0: level 0, sign
      auto m = bytes;  // s = 8: fields of 5 bits, so the body is too short
      m[s_at] = 8;
      CHECK_THROWS_WITH(decode(m), Catch::Contains("packed body"));
    } else {
      CHECK_THROWS_AS(decode(mutate(4, 21)), DecodeError);                                     // count > dim
      CHECK_THROWS_AS(decode(mutate(4, static_cast<std::uint8_t>(bytes[4] + 1))), DecodeError);  // one more nonzero
      CHECK_THROWS_AS(decode(mutate(s_at, 1)), DecodeError);  // levels above 1 present
      // A gap that jumps past the dimension: omega(21) = 1 0 0 | 1 0 1 0 1 | 0, LSB-first bytes.
      std::vector<std::uint8_t> m(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(body_at));
      m[4] = 1;
      detail::BitWriter bw(m);
      bw.put_elias_omega(21);
      bw.put_bit(false);
      bw.put_elias_omega(1);
      bw.finish();
      CHECK_THROWS_WITH(decode(m), Catch::Contains("past the dimension"));
    }
  }
}
