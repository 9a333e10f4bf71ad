#pragma once
/// @file bits.hpp
/// Bit-level helpers for compressed payloads: an LSB-first bit writer and a bounds-checked bit reader
/// with Elias gamma and omega codes, and IEEE binary16 / bfloat16 conversions (round to nearest even).
///
/// Bit order: the stream's bit i is bit (i % 8) of byte i / 8 (LSB-first inside each byte).
/// `put(v, n)` emits the n low bits of v least significant bit first, so `get(n)` returns the same
/// value. Elias codes are emitted in their textbook order (the first bit of the code string first),
/// i.e. the binary numbers inside them go most significant bit first.

#include <bit>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "fedpp/core/error.hpp"

namespace fedpp::detail {

/// Reverses the order of the `n` low bits of `v` (1 <= n <= 64); the other bits are dropped.
constexpr std::uint64_t reverse_bits(std::uint64_t v, unsigned n) noexcept {
  v = ((v >> 1) & 0x5555555555555555ULL) | ((v & 0x5555555555555555ULL) << 1);
  v = ((v >> 2) & 0x3333333333333333ULL) | ((v & 0x3333333333333333ULL) << 2);
  v = ((v >> 4) & 0x0f0f0f0f0f0f0f0fULL) | ((v & 0x0f0f0f0f0f0f0f0fULL) << 4);
  v = ((v >> 8) & 0x00ff00ff00ff00ffULL) | ((v & 0x00ff00ff00ff00ffULL) << 8);
  v = ((v >> 16) & 0x0000ffff0000ffffULL) | ((v & 0x0000ffff0000ffffULL) << 16);
  v = (v >> 32) | (v << 32);
  return v >> (64 - n);
}

/// Appends bits to a byte vector, LSB-first inside each byte; call `finish()` to flush the last byte.
class BitWriter {
 public:
  /// Writes into `out` (appending after its current contents).
  explicit BitWriter(std::vector<std::uint8_t>& out) noexcept : out_(&out) {}

  /// Appends the `nbits` (0-64) low bits of `value`, least significant first.
  void put(std::uint64_t value, unsigned nbits) {
    if (nbits == 0) return;
    if (nbits < 64) value &= (std::uint64_t{1} << nbits) - 1;
    acc_ |= value << fill_;
    const unsigned total = fill_ + nbits;
    if (total < 64) {
      fill_ = total;
      return;
    }
    flush_word();
    acc_ = fill_ == 0 ? 0 : value >> (64 - fill_);
    fill_ = total - 64;
  }

  /// Appends one bit.
  void put_bit(bool b) { put(b ? 1u : 0u, 1); }

  /// Appends the `nbits` low bits of `value` most significant first (a binary number in reading order).
  void put_msb_first(std::uint64_t value, unsigned nbits) {
    if (nbits == 0) return;
    put(reverse_bits(value, nbits), nbits);
  }

  /// Elias gamma code of k >= 1: floor(log2 k) zeros, then k in binary (most significant bit first).
  void put_elias_gamma(std::uint64_t k) {
    require(k >= 1, "fedpp::detail::BitWriter", "Elias gamma value must be >= 1", k);
    const unsigned n = static_cast<unsigned>(std::bit_width(k));  // binary length, N + 1
    put(0, n - 1);
    put_msb_first(k, n);
  }

  /// Elias omega code of k >= 1: the recursive length groups (most significant bit first), then a 0.
  void put_elias_omega(std::uint64_t k) {
    require(k >= 1, "fedpp::detail::BitWriter", "Elias omega value must be >= 1", k);
    std::uint64_t groups[8];  // at most 6 groups for 64-bit values (64 -> 6 -> 2 -> 1)
    unsigned widths[8];
    int ng = 0;
    while (k > 1) {
      const unsigned w = static_cast<unsigned>(std::bit_width(k));
      groups[ng] = k;
      widths[ng] = w;
      ++ng;
      k = w - 1;
    }
    for (int g = ng - 1; g >= 0; --g) put_msb_first(groups[g], widths[g]);
    put(0, 1);
  }

  /// Number of bits written since construction (including those not flushed yet).
  [[nodiscard]] std::uint64_t bits_written() const noexcept { return bits_flushed_ + fill_; }

  /// Flushes the pending bits, padding the last byte with zero bits; the writer can be reused after.
  void finish() {
    const unsigned nbytes = (fill_ + 7) / 8;
    for (unsigned i = 0; i < nbytes; ++i) out_->push_back(static_cast<std::uint8_t>(acc_ >> (8 * i)));
    bits_flushed_ += 8 * nbytes;
    acc_ = 0;
    fill_ = 0;
  }

 private:
  void flush_word() {
    const auto n = out_->size();
    out_->resize(n + 8);
    std::memcpy(out_->data() + n, &acc_, 8);  // little-endian host (checked in bytes.hpp)
    bits_flushed_ += 64;
  }

  std::vector<std::uint8_t>* out_;
  std::uint64_t acc_ = 0;        // pending bits, bit 0 first
  unsigned fill_ = 0;            // number of pending bits (< 64)
  std::uint64_t bits_flushed_ = 0;
};

/// Reads what BitWriter wrote; every read is bounds-checked and throws DecodeError past the end
/// or on an impossible Elias code.
class BitReader {
 public:
  /// Reads from `in`; `who` names the decoder in error messages (the string must outlive the reader).
  explicit BitReader(std::span<const std::uint8_t> in, std::string_view who = "fedpp::detail::BitReader") noexcept
      : in_(in), who_(who) {}

  /// Reads `nbits` (0-64) bits written by `BitWriter::put`.
  std::uint64_t get(unsigned nbits) {
    if (nbits == 0) return 0;
    need(nbits);
    const std::uint64_t v = peek_unchecked(nbits);
    pos_ += nbits;
    return v;
  }

  /// Reads one bit.
  bool get_bit() { return get(1) != 0; }

  /// Reads a binary number of `nbits` bits written most significant bit first.
  std::uint64_t get_msb_first(unsigned nbits) {
    if (nbits == 0) return 0;
    return reverse_bits(get(nbits), nbits);
  }

  /// Reads an Elias gamma code; throws DecodeError on truncation or more than 63 leading zeros.
  std::uint64_t get_elias_gamma() {
    const unsigned zeros = count_zeros(64);
    if (zeros > 63) fail<DecodeError>(who_, "Elias gamma code longer than 64 bits at bit", pos_);
    pos_ += zeros;
    // The terminating 1 is the leading bit of the value.
    return get_msb_first(zeros + 1);
  }

  /// Reads an Elias omega code; throws DecodeError on truncation or a group wider than 64 bits.
  std::uint64_t get_elias_omega() {
    std::uint64_t n = 1;
    while (get(1) != 0) {
      if (n > 63) fail<DecodeError>(who_, "Elias omega group wider than 64 bits at bit", pos_);
      const auto w = static_cast<unsigned>(n);
      // The 1 just read is the leading bit of the next group, which has w + 1 bits in total.
      n = (std::uint64_t{1} << w) | get_msb_first(w);
    }
    return n;
  }

  /// Bits consumed so far.
  [[nodiscard]] std::uint64_t bit_position() const noexcept { return pos_; }
  /// Bits left to read.
  [[nodiscard]] std::uint64_t bits_remaining() const noexcept { return total_bits() - pos_; }
  /// Bytes touched so far (the bit position rounded up to a byte).
  [[nodiscard]] std::size_t bytes_consumed() const noexcept { return static_cast<std::size_t>((pos_ + 7) / 8); }

  /// Throws DecodeError unless only padding remains: fewer than 8 bits, all zero.
  void expect_end() {
    const std::uint64_t rest = bits_remaining();
    if (rest >= 8) fail<DecodeError>(who_, "trailing bytes after the bit stream", rest / 8);
    if (rest > 0 && get(static_cast<unsigned>(rest)) != 0)
      fail<DecodeError>(who_, "non-zero padding bits at bit", pos_ - rest);
  }

 private:
  [[nodiscard]] std::uint64_t total_bits() const noexcept { return static_cast<std::uint64_t>(in_.size()) * 8; }

  void need(std::uint64_t nbits) const {
    if (nbits > bits_remaining())
      fail<DecodeError>(who_, "truncated bit stream: need " + std::to_string(nbits) + " bits at bit " +
                                  std::to_string(pos_) + ", remaining", bits_remaining());
  }

  // The next nbits (1-64, all available) without consuming them.
  [[nodiscard]] std::uint64_t peek_unchecked(unsigned nbits) const noexcept {
    const std::size_t byte = static_cast<std::size_t>(pos_ >> 3);
    const unsigned off = static_cast<unsigned>(pos_ & 7);
    std::uint64_t lo = 0;
    const std::size_t avail = in_.size() - byte;
    if (avail >= 8) {
      std::memcpy(&lo, in_.data() + byte, 8);
    } else {
      for (std::size_t i = 0; i < avail; ++i) lo |= static_cast<std::uint64_t>(in_[byte + i]) << (8 * i);
    }
    std::uint64_t v = lo >> off;
    if (off != 0 && nbits > 64 - off) v |= static_cast<std::uint64_t>(in_[byte + 8]) << (64 - off);
    if (nbits < 64) v &= (std::uint64_t{1} << nbits) - 1;
    return v;
  }

  // Number of consecutive zero bits at the read position, looking at most `limit` + 1 bits ahead;
  // returns limit + 1 when at least that many zeros follow, and throws when the stream ends in zeros.
  unsigned count_zeros(unsigned limit) const {
    std::uint64_t p = pos_;
    unsigned zeros = 0;
    while (zeros <= limit) {
      const std::uint64_t left = total_bits() - p;
      if (left == 0)
        fail<DecodeError>(who_, "truncated bit stream: Elias code runs past the end at bit", pos_);
      const unsigned take = left < 64 ? static_cast<unsigned>(left) : 64;
      BitReader probe(in_, who_);
      probe.pos_ = p;
      const std::uint64_t w = probe.peek_unchecked(take);
      if (w != 0) return zeros + static_cast<unsigned>(std::countr_zero(w));
      zeros += take;
      p += take;
    }
    return zeros;
  }

  std::span<const std::uint8_t> in_;
  std::uint64_t pos_ = 0;
  std::string_view who_;
};

// ---------------------------------------------------------------------------------------------
// Half-precision conversions (integer arithmetic only; independent of the FPU rounding mode).

/// float -> IEEE 754 binary16 bits, round to nearest even; overflow -> inf, NaN stays NaN (quiet,
/// sign and top payload bits kept), results below the normal range become subnormals or signed zero.
constexpr std::uint16_t to_f16(float f) noexcept {
  const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  const auto sign = static_cast<std::uint16_t>((x >> 16) & 0x8000u);
  const std::uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return static_cast<std::uint16_t>(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));  // NaN
  if (ax >= 0x47800000u) return static_cast<std::uint16_t>(sign | 0x7c00u);  // >= 65536 or inf
  const int e = static_cast<int>(ax >> 23) - 127;                               // unbiased exponent
  if (e >= -14) {                                                               // normal half
    const std::uint32_t m = ax & 0x7fffffu;
    std::uint32_t h = (static_cast<std::uint32_t>(e + 15) << 10) | (m >> 13);
    const std::uint32_t rem = m & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // a carry may reach inf (0x7c00): correct
    return static_cast<std::uint16_t>(sign | h);
  }
  // Subnormal half: units of 2^-24. The float value is M * 2^(e - 23), so the count is M >> s, s = -(e + 1).
  if (e < -25) return sign;  // below 2^-25: rounds to zero (also every float subnormal)
  const std::uint32_t mfull = (ax & 0x7fffffu) | 0x800000u;
  const auto s = static_cast<unsigned>(-(e + 1));  // 14..24
  std::uint32_t q = mfull >> s;
  const std::uint32_t rem = mfull & ((1u << s) - 1u);
  const std::uint32_t half = 1u << (s - 1);
  if (rem > half || (rem == half && (q & 1u))) ++q;  // q == 0x400 is the smallest normal: correct
  return static_cast<std::uint16_t>(sign | q);
}

/// IEEE 754 binary16 bits -> float (exact; NaN payloads kept).
constexpr float from_f16(std::uint16_t h) noexcept {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t e = (h >> 10) & 0x1fu;
  std::uint32_t m = h & 0x3ffu;
  if (e == 0x1f) return std::bit_cast<float>(sign | 0x7f800000u | (m << 13));
  if (e == 0) {
    if (m == 0) return std::bit_cast<float>(sign);
    int ex = -14;  // value = m * 2^-24 = (m / 2^10) * 2^-14; normalise
    while ((m & 0x400u) == 0) {
      m <<= 1;
      --ex;
    }
    m &= 0x3ffu;
    return std::bit_cast<float>(sign | (static_cast<std::uint32_t>(ex + 127) << 23) | (m << 13));
  }
  return std::bit_cast<float>(sign | ((e + 112u) << 23) | (m << 13));
}

/// float -> bfloat16 bits (the top 16 bits of the float), round to nearest even; NaN stays NaN (quiet).
constexpr std::uint16_t to_bf16(float f) noexcept {
  const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((x >> 16) | 0x40u);
  const std::uint32_t rounded = x + 0x7fffu + ((x >> 16) & 1u);  // overflow of the mantissa carries into inf
  return static_cast<std::uint16_t>(rounded >> 16);
}

/// bfloat16 bits -> float (exact).
constexpr float from_bf16(std::uint16_t b) noexcept { return std::bit_cast<float>(static_cast<std::uint32_t>(b) << 16); }

}  // namespace fedpp::detail
