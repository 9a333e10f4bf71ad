// Standalone generator of the QSGD golden values (tests/golden/qsgd_golden.inc), written from the
// documented definitions (docs/compressors/quantization.md: "Exact rule", "Randomness", "Wire format";
// algorithms.md 5.3 for QSGD and Elias omega). It does NOT include fedpp.
//
// Build and run from the repository root (any C++20 compiler):
//   g++ -std=c++20 -O2 -o /tmp/qsgd_golden tests/golden/qsgd_golden.cpp
//   /tmp/qsgd_golden > tests/golden/qsgd_golden.inc
// The output must equal the committed file (regenerate and `git diff` after changing this program).
//
// Data taken from fedpp: the payload keys are the first 64-bit draw of fedpp::Rng(2024) and
// fedpp::Rng(77) (QSGD's encode takes exactly one draw); the test checks them.
//
// Randomness (documented): h = hash32(hash32(lo32(i) ^ lo32(key)) + (hi32(key) ^ hi32(i) * 0x9e3779b9)),
// hash32 = the "lowbias32" xor-shift/multiply integer hash (C. Wellons); u = (h >> 8) 2^-24 in float,
// h 2^-32 in double. Level rule in the input's precision S: scale = S(s) / S(N), r = min(|v| scale, s),
// l = floor(r), level = l + [u < r - l], code = (level << 1) | (v < 0 and level > 0).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

std::uint32_t lowbias32(std::uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}

std::uint32_t bits_of(std::uint64_t key, std::uint64_t i) {
  const std::uint32_t lo_i = static_cast<std::uint32_t>(i & 0xffffffffu), hi_i = static_cast<std::uint32_t>(i >> 32);
  const std::uint32_t lo_k = static_cast<std::uint32_t>(key & 0xffffffffu), hi_k = static_cast<std::uint32_t>(key >> 32);
  return lowbias32(lowbias32(lo_i ^ lo_k) + (hi_k ^ static_cast<std::uint32_t>(hi_i * 0x9e3779b9U)));
}

template <typename S>
S unit_of(std::uint32_t h) {
  if constexpr (sizeof(S) == 4)
    return static_cast<float>(h >> 8) / 16777216.0f;
  else
    return static_cast<double>(h) / 4294967296.0;
}

template <typename S>
std::uint32_t code_of(S v, S scale, std::uint32_t s, std::uint32_t h) {
  S r = std::fabs(v) * scale;
  if (r > static_cast<S>(s)) r = static_cast<S>(s);
  const S l = std::floor(r);
  const std::uint32_t level = static_cast<std::uint32_t>(l) + (unit_of<S>(h) < r - l ? 1u : 0u);
  return (level << 1) | ((v < 0 && level > 0) ? 1u : 0u);
}

// Little-endian byte string writer, LSB-first bit stream.
struct Bytes {
  std::vector<std::uint8_t> b;
  std::uint64_t nbits = 0;
  void u8(unsigned v) { b.push_back(static_cast<std::uint8_t>(v)); }
  void u16(unsigned v) { u8(v & 0xff); u8(v >> 8); }
  void varint(std::uint64_t v) {
    do {
      const unsigned low = v & 0x7f;
      v >>= 7;
      u8(v ? (low | 0x80) : low);
    } while (v);
  }
  void f32(float f) {
    std::uint32_t u;
    std::memcpy(&u, &f, 4);
    for (int k = 0; k < 4; ++k) u8((u >> (8 * k)) & 0xff);
  }
  void bit(unsigned x) {  // bits appended after the byte part
    if (nbits % 8 == 0) b.push_back(0);
    b.back() = static_cast<std::uint8_t>(b.back() | ((x & 1u) << (nbits % 8)));
    ++nbits;
  }
  void msb_first(std::uint64_t v, unsigned n) {
    for (unsigned k = n; k-- > 0;) bit(static_cast<unsigned>((v >> k) & 1u));
  }
  // Elias omega (algorithms.md 5.3): write "0"; while k > 1 prepend binary(k), k = len(binary(k)) - 1.
  void omega(std::uint64_t k) {
    std::string code = "0";
    while (k > 1) {
      std::string bin;
      for (std::uint64_t t = k; t; t >>= 1) bin.insert(bin.begin(), static_cast<char>('0' + (t & 1)));
      code = bin + code;
      k = bin.size() - 1;
    }
    for (char c : code) bit(static_cast<unsigned>(c - '0'));
  }
};

float round_up_f32(double v) {
  float f = static_cast<float>(v);
  if (static_cast<double>(f) < v) f = std::nextafter(f, INFINITY);
  return f;
}

unsigned bit_width(std::uint32_t s) {
  unsigned n = 0;
  while (s) { ++n; s >>= 1; }
  return n;
}

template <typename S>
void payload(const char* name, const std::vector<double>& x, std::uint32_t s, std::uint64_t b, bool elias,
             std::uint64_t key) {
  const std::uint64_t d = x.size();
  std::vector<float> norms;
  for (std::uint64_t lo = 0; lo < d; lo += b) {
    double ss = 0;  // the inputs are dyadic with few bits: every sum is exact, in any order
    for (std::uint64_t i = lo; i < d && i < lo + b; ++i) ss += x[i] * x[i];
    norms.push_back(round_up_f32(std::sqrt(ss)));
  }
  std::vector<std::uint32_t> codes(d);
  std::vector<S> decoded(d);
  for (std::uint64_t i = 0; i < d; ++i) {
    const S n = static_cast<S>(norms[i / b]);
    const S scale = n > 0 ? static_cast<S>(s) / n : S(0);
    codes[i] = code_of<S>(static_cast<S>(x[i]), scale, s, bits_of(key, i));
    const S q = n * (static_cast<S>(codes[i] >> 1) / static_cast<S>(s));
    decoded[i] = (codes[i] & 1u) ? -q : q;
  }
  std::uint64_t nnz = 0;
  for (auto c : codes) nnz += (c >> 1) != 0;
  Bytes out;
  out.u16(6);
  out.u8(1);
  out.varint(d);
  out.varint(elias ? nnz : d);
  out.u8(elias ? 1 : 0);
  out.u8(0);
  out.varint(s);
  out.varint(b);
  for (float f : norms) out.f32(f);
  if (!elias) {
    const unsigned w = 1 + bit_width(s);
    for (auto c : codes)
      for (unsigned k = 0; k < w; ++k) out.bit((c >> k) & 1u);  // field j at bits [jw, jw + w), LSB first
  } else {
    std::uint64_t prev = 0;
    for (std::uint64_t i = 0; i < d; ++i) {
      if ((codes[i] >> 1) == 0) continue;
      out.omega(i + 1 - prev);
      out.bit(codes[i] & 1u);
      out.omega(codes[i] >> 1);
      prev = i + 1;
    }
  }
  std::printf("inline constexpr std::uint8_t %s_bytes[] = {", name);
  for (std::size_t j = 0; j < out.b.size(); ++j) std::printf("%s0x%02x,", j % 16 == 0 ? "\n    " : " ", out.b[j]);
  std::printf("\n};\n");
  std::printf("inline constexpr %s %s_decoded[] = {", sizeof(S) == 4 ? "float" : "double", name);
  for (std::size_t j = 0; j < decoded.size(); ++j)
    std::printf("%s%a%s,", j % 4 == 0 ? "\n    " : " ", static_cast<double>(decoded[j]), sizeof(S) == 4 ? "f" : "");
  std::printf("\n};\n\n");
}

}  // namespace

int main() {
  std::printf("// Generated by tests/golden/qsgd_golden.cpp (see its header); do not edit.\n\n");
  // 1. Raw counter-based bits: (key, i) -> h, including indices at and above 2^32.
  const std::uint64_t key = 0x0123456789abcdefULL;
  const std::uint64_t idx[] = {0, 1, 7, 4095, 0xffffffffULL, 0x100000000ULL, 0x100000007ULL, 0x10000000003ULL,
                               0x8000000000000005ULL};
  std::printf("inline constexpr std::uint64_t qsgd_golden_key = 0x%016llxULL;\n", static_cast<unsigned long long>(key));
  std::printf("inline constexpr QsgdGoldenBits qsgd_golden_bits[] = {\n");
  for (auto i : idx)
    std::printf("    {0x%llxULL, 0x%08xU},\n", static_cast<unsigned long long>(i), bits_of(key, i));
  std::printf("};\n\n");
  // 2. Kernel codes of 16 coordinates at first = 0 and first = 2^32 + 4096, scale 8 / 3, s = 8.
  const double xs[16] = {0.5, -0.25, 0.75, 1.125, -1.0625, 2.0, 0.0, -0.0, 3.0, -2.875, 0.1875, 1.5, -0.6875, 2.9375, 0.3125, -1.75};
  std::printf("inline constexpr double qsgd_golden_kernel_x[16] = {");
  for (int j = 0; j < 16; ++j) std::printf("%s%a,", j % 8 == 0 ? "\n    " : " ", xs[j]);
  std::printf("\n};\n");
  const std::uint64_t firsts[2] = {0, 0x100000000ULL + 4096};
  for (int f = 0; f < 2; ++f) {
    for (int dbl = 0; dbl < 2; ++dbl) {
      std::printf("inline constexpr std::uint32_t qsgd_golden_codes_%s_%d[16] = {", dbl ? "f64" : "f32", f);
      for (int j = 0; j < 16; ++j) {
        const std::uint32_t h = bits_of(key, firsts[f] + static_cast<std::uint64_t>(j));
        const std::uint32_t c = dbl ? code_of<double>(xs[j], 8.0 / 3.0, 8, h)
                                    : code_of<float>(static_cast<float>(xs[j]), 8.0f / 3.0f, 8, h);
        std::printf("%s%u,", j % 8 == 0 ? "\n    " : " ", c);
      }
      std::printf("\n};\n");
    }
  }
  std::printf("inline constexpr std::uint64_t qsgd_golden_firsts[2] = {0x%llxULL, 0x%llxULL};\n\n",
              static_cast<unsigned long long>(firsts[0]), static_cast<unsigned long long>(firsts[1]));
  // 3. Whole payloads: d = 11, buckets of 4 (4, 4, 3), s = 4 (fields of 4 bits: 44 bits, 4 padding bits).
  const std::vector<double> v = {0.5, -0.25, 0.75, 0.0, 1.5, -0.5, 0.125, -1.0, -0.375, 0.625, 0.25};
  std::printf("inline constexpr double qsgd_golden_payload_x[11] = {");
  for (std::size_t j = 0; j < v.size(); ++j) std::printf(" %a,", v[j]);
  std::printf(" };\n");
  const std::uint64_t key_a = 0x2920f4d63b88b54bULL;  // fedpp::Rng(2024)()
  const std::uint64_t key_b = 0x8fbb2847e93b685bULL;  // fedpp::Rng(77)()
  std::printf("inline constexpr std::uint64_t qsgd_golden_key_2024 = 0x%016llxULL;\n", static_cast<unsigned long long>(key_a));
  std::printf("inline constexpr std::uint64_t qsgd_golden_key_77 = 0x%016llxULL;\n\n", static_cast<unsigned long long>(key_b));
  payload<float>("qsgd_golden_packed_f32", v, 4, 4, false, key_a);
  payload<double>("qsgd_golden_packed_f64", v, 4, 4, false, key_a);
  payload<float>("qsgd_golden_elias_f32", v, 4, 4, true, key_b);
  payload<double>("qsgd_golden_whole_f64", v, 3, 11, false, key_b);
  return 0;
}
